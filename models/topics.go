package models

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Topic visibilities.
const (
	VisibilityPublic  = "public"
	VisibilityPrivate = "private"
	VisibilityDM      = "dm"
)

// Topic member roles.
const (
	TopicRoleLead     = "lead"
	TopicRoleMember   = "member"
	TopicRoleObserver = "observer"
)

// Topic is a named conversation inside a mesh.
type Topic struct {
	ID                 string `gorm:"primaryKey"`
	MeshID             string
	Name               string
	Description        string
	Visibility         string
	EncryptedKeyPubkey *string // the claimer's x25519 key of the current epoch; nil while unclaimed
	KeyEpoch           int     // 0 = never keyed; see RotateTopicKey
	CreatedByMemberID  *string
	CreatedAt          time.Time
	ArchivedAt         *time.Time
}

// Keyed reports whether the topic was ever keyed (v2 bodies only from then
// on, even while a rotated epoch waits for its claimer).
func (t *Topic) Keyed() bool { return t.KeyEpoch > 0 }

// KeyClaimed reports whether the current epoch's key has been claimed.
func (t *Topic) KeyClaimed() bool { return t.EncryptedKeyPubkey != nil }

// TopicMember subscribes a member to a topic.
type TopicMember struct {
	TopicID     string `gorm:"primaryKey"`
	MemberID    string `gorm:"primaryKey"`
	Role        string
	JoinedAt    time.Time
	LastReadSeq int64
}

// TopicAccess is a topic as one caller sees it: Membership is nil when the
// caller is not subscribed (possible only for public topics).
type TopicAccess struct {
	Topic      Topic
	Membership *TopicMember
}

var (
	errTopicNotFound = notFound("topic")
	errNotTopicMem   = E(KindForbidden, "not_topic_member", "you are not a member of this topic; join it first")
)

// ensureGeneral returns the mesh's general topic, creating it if missing.
func (s *Store) ensureGeneral(tx *gorm.DB, meshID, creatorID string) (*Topic, error) {
	var t Topic
	err := tx.Where("mesh_id = ? AND name = ?", meshID, GeneralTopic).Take(&t).Error
	if err == nil {
		return &t, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("find general topic: %w", err)
	}
	cid := creatorID
	t = Topic{ID: NewID(), MeshID: meshID, Name: GeneralTopic, Description: "Everyone in the mesh",
		Visibility: VisibilityPublic, CreatedByMemberID: &cid, CreatedAt: s.nowUTC()}
	if err := tx.Create(&t).Error; err != nil {
		return nil, fmt.Errorf("create general topic: %w", err)
	}
	return &t, nil
}

// inScope reports whether a scoped credential may touch the topic.
func inScope(p *Principal, name string) bool {
	return p.TopicScopes == nil || slices.Contains(p.TopicScopes, name)
}

// topicFor resolves a topic name as the caller sees it. A topic outside the
// caller's scopes, or a private/dm topic the caller is not subscribed to, is
// reported as not found: its existence is not revealed.
func (s *Store) topicFor(db *gorm.DB, p *Principal, name string) (*TopicAccess, error) {
	name = NormaliseTopicName(name)
	if !topicNameRe.MatchString(name) || !inScope(p, name) {
		return nil, errTopicNotFound
	}
	var t Topic
	err := db.Where("mesh_id = ? AND name = ?", p.MeshID, name).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errTopicNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find topic %s: %w", name, err)
	}
	var tm TopicMember
	err = db.Where("topic_id = ? AND member_id = ?", t.ID, p.MemberID).Take(&tm).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		if t.Visibility != VisibilityPublic {
			return nil, errTopicNotFound
		}
		return &TopicAccess{Topic: t}, nil
	case err != nil:
		return nil, fmt.Errorf("find topic membership: %w", err)
	}
	return &TopicAccess{Topic: t, Membership: &tm}, nil
}

// StreamTopicFor is TopicFor for a stream that follows the topic: an
// archived topic ends it with the fixed code topic_archived.
func (s *Store) StreamTopicFor(ctx context.Context, p *Principal, name string) (*TopicAccess, error) {
	ta, err := s.TopicFor(ctx, p, name)
	if err != nil {
		return nil, err
	}
	if ta.Topic.ArchivedAt != nil {
		return nil, E(KindConflict, "topic_archived", "#%s was archived", ta.Topic.Name)
	}
	return ta, nil
}

// TopicFor is topicFor outside a transaction.
func (s *Store) TopicFor(ctx context.Context, p *Principal, name string) (*TopicAccess, error) {
	return s.topicFor(s.db.WithContext(ctx), p, name)
}

// CreateTopicInput describes a new topic.
type CreateTopicInput struct {
	Name        string
	Description string
	Visibility  string
}

// CreateTopic creates a topic with the caller as its lead.
func (s *Store) CreateTopic(ctx context.Context, p *Principal, in CreateTopicInput) (*TopicAccess, error) {
	in.Name = NormaliseTopicName(strings.TrimSpace(in.Name))
	if in.Visibility == "" {
		in.Visibility = VisibilityPublic
	}
	var fe []FieldError
	if !topicNameRe.MatchString(in.Name) {
		fe = append(fe, FieldError{"name", "must match ^#?[a-z0-9][a-z0-9-]{0,49}$"})
	}
	if e := checkText("description", in.Description, 0, 500, true); e != nil {
		fe = append(fe, *e)
	}
	if in.Visibility != VisibilityPublic && in.Visibility != VisibilityPrivate && in.Visibility != VisibilityDM {
		fe = append(fe, FieldError{"visibility", "must be public, private or dm"})
	}
	if fe != nil {
		return nil, Invalid(fe...)
	}
	if !inScope(p, in.Name) {
		return nil, E(KindForbidden, "out_of_scope", "your credential is not scoped to topic %q", in.Name)
	}
	now := s.nowUTC()
	mid := p.MemberID
	out := &TopicAccess{
		Topic:      Topic{ID: NewID(), MeshID: p.MeshID, Name: in.Name, Description: in.Description, Visibility: in.Visibility, CreatedByMemberID: &mid, CreatedAt: now},
		Membership: &TopicMember{MemberID: p.MemberID, Role: TopicRoleLead, JoinedAt: now},
	}
	out.Membership.TopicID = out.Topic.ID
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&out.Topic).Error; err != nil {
			if isUniqueViolation(err) {
				return E(KindConflict, "topic_exists", "topic %q already exists", in.Name)
			}
			return fmt.Errorf("insert topic: %w", err)
		}
		if err := tx.Create(out.Membership).Error; err != nil {
			return fmt.Errorf("insert topic lead: %w", err)
		}
		return s.appendAudit(tx, p.MeshID, AuditTopicCreated, p.MemberID, out.Topic.ID, map[string]any{"visibility": in.Visibility})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// TopicListItem is a topic in a list, with the caller's unread count when
// the caller is a member.
type TopicListItem struct {
	TopicAccess
	Unread *int64
}

// ListTopics pages the topics the caller can see: public ones and the
// private/dm ones it belongs to, within its scopes. q filters by a
// substring of the name, matched literally (LIKE wildcards are escaped).
func (s *Store) ListTopics(ctx context.Context, p *Principal, q string, includeArchived bool, pr PageRequest) (Page[TopicListItem], error) {
	db := s.db.WithContext(ctx)
	query := db.Model(&Topic{}).Where("mesh_id = ?", p.MeshID).
		Where("(visibility = ? OR id IN (SELECT topic_id FROM topic_members WHERE member_id = ?))", VisibilityPublic, p.MemberID)
	if !includeArchived {
		query = query.Where("archived_at IS NULL")
	}
	if p.TopicScopes != nil {
		query = query.Where("name IN ?", append([]string{""}, p.TopicScopes...))
	}
	if q != "" {
		query = query.Where("name LIKE ? ESCAPE '\\'", "%"+escapeLike(strings.ToLower(q))+"%")
	}
	page, err := pageByID[Topic](query, pr, func(t Topic) string { return t.ID })
	if err != nil {
		return Page[TopicListItem]{}, err
	}
	out := Page[TopicListItem]{NextCursor: page.NextCursor, HasMore: page.HasMore, Items: make([]TopicListItem, 0, len(page.Items))}
	if len(page.Items) == 0 {
		return out, nil
	}
	ids := make([]string, len(page.Items))
	for i, t := range page.Items {
		ids[i] = t.ID
	}
	var subs []TopicMember
	if err := db.Where("member_id = ? AND topic_id IN ?", p.MemberID, ids).Find(&subs).Error; err != nil {
		return out, fmt.Errorf("list topic memberships: %w", err)
	}
	type unreadRow struct {
		TopicID string
		N       int64
	}
	var unread []unreadRow
	err = db.Raw(`SELECT tm.topic_id AS topic_id, count(m.id) AS n FROM topic_members tm
		LEFT JOIN messages m ON m.topic_id = tm.topic_id AND m.seq > tm.last_read_seq
		WHERE tm.member_id = ? AND tm.topic_id IN ? GROUP BY tm.topic_id`, p.MemberID, ids).Scan(&unread).Error
	if err != nil {
		return out, fmt.Errorf("count unread: %w", err)
	}
	subOf := make(map[string]*TopicMember, len(subs))
	for i := range subs {
		subOf[subs[i].TopicID] = &subs[i]
	}
	unreadOf := make(map[string]int64, len(unread))
	for _, u := range unread {
		unreadOf[u.TopicID] = u.N
	}
	for _, t := range page.Items {
		item := TopicListItem{TopicAccess: TopicAccess{Topic: t, Membership: subOf[t.ID]}}
		if item.Membership != nil {
			n := unreadOf[t.ID]
			item.Unread = &n
		}
		out.Items = append(out.Items, item)
	}
	return out, nil
}

// escapeLike makes s match literally inside a LIKE pattern with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ArchiveTopic archives a topic (its lead or a mesh admin). general stays.
func (s *Store) ArchiveTopic(ctx context.Context, p *Principal, name string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		ta, err := s.topicFor(tx, p, name)
		if err != nil {
			return err
		}
		if ta.Topic.Name == GeneralTopic {
			return E(KindConflict, "general_topic", "the general topic cannot be archived")
		}
		if !p.Can(CapAdmin) && (ta.Membership == nil || ta.Membership.Role != TopicRoleLead) {
			return E(KindForbidden, "lead_required", "only a topic lead or a mesh admin may archive a topic")
		}
		if ta.Topic.ArchivedAt != nil {
			return nil
		}
		if err := tx.Model(&Topic{}).Where("id = ?", ta.Topic.ID).Update("archived_at", s.nowUTC()).Error; err != nil {
			return fmt.Errorf("archive topic: %w", err)
		}
		return s.appendAudit(tx, p.MeshID, AuditTopicArchived, p.MemberID, ta.Topic.ID, nil)
	})
}

// JoinTopic subscribes the caller to a public topic (idempotent).
func (s *Store) JoinTopic(ctx context.Context, p *Principal, name string) (*TopicAccess, error) {
	var out *TopicAccess
	err := s.tx(ctx, func(tx *gorm.DB) error {
		ta, err := s.topicFor(tx, p, name)
		if err != nil {
			return err
		}
		out = ta
		if ta.Membership != nil {
			return nil
		}
		if ta.Topic.Visibility != VisibilityPublic {
			return errTopicNotFound
		}
		if ta.Topic.ArchivedAt != nil {
			return E(KindConflict, "topic_archived", "topic %q is archived", ta.Topic.Name)
		}
		tm := &TopicMember{TopicID: ta.Topic.ID, MemberID: p.MemberID, Role: TopicRoleMember, JoinedAt: s.nowUTC(), LastReadSeq: 0}
		if err := tx.Create(tm).Error; err != nil {
			if isUniqueViolation(err) {
				return tx.Where("topic_id = ? AND member_id = ?", ta.Topic.ID, p.MemberID).Take(tm).Error
			}
			return fmt.Errorf("join topic: %w", err)
		}
		out.Membership = tm
		return s.appendAudit(tx, p.MeshID, AuditTopicJoined, p.MemberID, ta.Topic.ID, nil)
	})
	return out, err
}

// TopicMemberRow is a topic member with its mesh identity.
type TopicMemberRow struct {
	TopicMember
	DisplayName string
	PeerPubkey  string
}

// ListTopicMembers pages a visible topic's live members by member id.
func (s *Store) ListTopicMembers(ctx context.Context, p *Principal, name string, pr PageRequest) (Page[TopicMemberRow], error) {
	ta, err := s.TopicFor(ctx, p, name)
	if err != nil {
		return Page[TopicMemberRow]{}, err
	}
	limit, after, err := pr.normalise()
	if err != nil {
		return Page[TopicMemberRow]{}, err
	}
	q := s.db.WithContext(ctx).Table("topic_members AS tm").
		Select("tm.*, m.display_name, m.peer_pubkey").
		Joins("JOIN members m ON m.id = tm.member_id").
		Where("tm.topic_id = ? AND m.revoked_at IS NULL", ta.Topic.ID)
	if after != "" {
		q = q.Where("tm.member_id > ?", after)
	}
	var rows []TopicMemberRow
	if err := q.Order("tm.member_id").Limit(limit + 1).Scan(&rows).Error; err != nil {
		return Page[TopicMemberRow]{}, fmt.Errorf("list topic members: %w", err)
	}
	return cut(rows, limit, func(r TopicMemberRow) string { return r.MemberID }), nil
}

// AddTopicMember lets a lead (or mesh admin) add a mesh member to a topic.
func (s *Store) AddTopicMember(ctx context.Context, p *Principal, name, memberID, role string) (*TopicMember, error) {
	if role == "" {
		role = TopicRoleMember
	}
	if role != TopicRoleLead && role != TopicRoleMember && role != TopicRoleObserver {
		return nil, Invalid(FieldError{"role", "must be lead, member or observer"})
	}
	var out TopicMember
	err := s.tx(ctx, func(tx *gorm.DB) error {
		ta, err := s.topicFor(tx, p, name)
		if err != nil {
			return err
		}
		if !p.Can(CapAdmin) && (ta.Membership == nil || ta.Membership.Role != TopicRoleLead) {
			return E(KindForbidden, "lead_required", "only a topic lead or a mesh admin may add members")
		}
		if ta.Topic.ArchivedAt != nil {
			return E(KindConflict, "topic_archived", "topic %q is archived", ta.Topic.Name)
		}
		if !ValidID(memberID) {
			return Invalid(FieldError{"memberId", "must be a member id"})
		}
		if _, err := s.MemberInMeshTx(tx, p.MeshID, memberID); err != nil {
			return err
		}
		out = TopicMember{TopicID: ta.Topic.ID, MemberID: memberID, Role: role, JoinedAt: s.nowUTC()}
		if err := tx.Create(&out).Error; err != nil {
			if isUniqueViolation(err) {
				return E(KindConflict, "already_topic_member", "that member is already in the topic")
			}
			return fmt.Errorf("add topic member: %w", err)
		}
		return s.appendAudit(tx, p.MeshID, AuditTopicMemberAdded, p.MemberID, memberID, map[string]any{"topicId": ta.Topic.ID, "role": role})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveTopicMember removes a member from a topic: a lead or admin removes
// anyone, any member removes itself. Its seals go with it.
func (s *Store) RemoveTopicMember(ctx context.Context, p *Principal, name, memberID string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		ta, err := s.topicFor(tx, p, name)
		if err != nil {
			return err
		}
		self := memberID == p.MemberID
		if !self && !p.Can(CapAdmin) && (ta.Membership == nil || ta.Membership.Role != TopicRoleLead) {
			return E(KindForbidden, "lead_required", "only a topic lead or a mesh admin may remove other members")
		}
		res := tx.Where("topic_id = ? AND member_id = ?", ta.Topic.ID, memberID).Delete(&TopicMember{})
		if res.Error != nil {
			return fmt.Errorf("remove topic member: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return notFound("topic_member")
		}
		if err := tx.Where("topic_id = ? AND member_id = ?", ta.Topic.ID, memberID).Delete(&TopicMemberKey{}).Error; err != nil {
			return fmt.Errorf("drop removed member's seals: %w", err)
		}
		if err := s.appendAudit(tx, p.MeshID, AuditTopicMemberRemoved, p.MemberID, memberID, map[string]any{"topicId": ta.Topic.ID}); err != nil {
			return err
		}
		// The removed member holds the current key: later messages need a new one.
		_, err = s.rotateTopicKey(tx, p.MeshID, p.MemberID, ta.Topic.ID, RotateMemberRemoved)
		return err
	})
}

// MarkRead moves the caller's read mark forward (never back) and never
// creates a membership: a non-member gets not_topic_member.
func (s *Store) MarkRead(ctx context.Context, p *Principal, name string, seq int64) (int64, error) {
	if seq < 0 {
		return 0, Invalid(FieldError{"seq", "must be zero or more"})
	}
	var out int64
	err := s.tx(ctx, func(tx *gorm.DB) error {
		ta, err := s.topicFor(tx, p, name)
		if err != nil {
			return err
		}
		if ta.Membership == nil {
			return errNotTopicMem
		}
		// A mark past the newest seq would hide messages not yet written.
		var last int64
		if err := tx.Raw("SELECT last_seq FROM meshes WHERE id = ?", p.MeshID).Scan(&last).Error; err != nil {
			return fmt.Errorf("read last seq: %w", err)
		}
		seq = min(seq, last)
		if err := tx.Exec("UPDATE topic_members SET last_read_seq = ? WHERE topic_id = ? AND member_id = ? AND last_read_seq < ?",
			seq, ta.Topic.ID, p.MemberID, seq).Error; err != nil {
			return fmt.Errorf("mark read: %w", err)
		}
		return tx.Raw("SELECT last_read_seq FROM topic_members WHERE topic_id = ? AND member_id = ?", ta.Topic.ID, p.MemberID).Scan(&out).Error
	})
	return out, err
}

// cut trims a limit+1 result to a page.
func cut[T any](rows []T, limit int, key func(T) string) Page[T] {
	out := Page[T]{Items: rows}
	if len(rows) > limit {
		out.Items, out.HasMore = rows[:limit], true
		out.NextCursor = encodeCursor(key(rows[limit-1]))
	}
	if out.Items == nil {
		out.Items = []T{}
	}
	return out
}

// VisibleTopics lists the non-archived topics a principal can read right
// now: public ones and the private/dm ones it belongs to, within its
// scopes. Streams without an explicit topic list follow these.
func (s *Store) VisibleTopics(ctx context.Context, p *Principal) ([]Topic, error) {
	q := s.db.WithContext(ctx).Where("mesh_id = ? AND archived_at IS NULL", p.MeshID).
		Where("(visibility = ? OR id IN (SELECT topic_id FROM topic_members WHERE member_id = ?))", VisibilityPublic, p.MemberID)
	if p.TopicScopes != nil {
		q = q.Where("name IN ?", append([]string{""}, p.TopicScopes...))
	}
	var out []Topic
	if err := q.Order("id").Limit(10_000).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("visible topics: %w", err)
	}
	return out, nil
}
