package models

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// Member roles.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Capabilities an API key or member token may carry.
const (
	CapRead       = "read"
	CapSend       = "send"
	CapStateWrite = "state_write"
	CapAdmin      = "admin"
)

// AllCaps lists every capability in canonical order.
var AllCaps = []string{CapRead, CapSend, CapStateWrite, CapAdmin}

// CapsForRole is what a member's own tokens may do.
func CapsForRole(role string) []string {
	if role == RoleAdmin {
		return slices.Clone(AllCaps)
	}
	return []string{CapRead, CapSend, CapStateWrite}
}

var (
	displayNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	pubkeyRe      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Member is an identity inside one mesh: a peer or a person.
type Member struct {
	ID              string `gorm:"primaryKey"`
	MeshID          string
	PeerPubkey      string
	DisplayName     string
	Role            string
	UserID          *string
	DashboardUserID *string
	JoinedAt        time.Time
	RevokedAt       *time.Time
}

// Principal is the authenticated caller of a request. A user principal has
// UserID set and nothing else; a member principal is bound to one mesh.
type Principal struct {
	UserID string

	MemberID    string
	MeshID      string
	Role        string
	DisplayName string
	Pubkey      string
	Caps        []string
	TopicScopes []string   // nil = every topic
	APIKeyID    string     // set when the caller used an API key
	TokenID     string     // jti when the caller used a member JWT
	ExpiresAt   *time.Time // when the credential itself expires, if it does
	// FamilyID is the refresh-token family a user token (or a member token
	// minted with one) belongs to: revoking the family (logout, reuse
	// detection) ends them at once, not when they expire.
	FamilyID string
}

// IsMember reports a mesh-scoped principal.
func (p *Principal) IsMember() bool { return p != nil && p.MemberID != "" }

// IsUser reports a dashboard-user principal.
func (p *Principal) IsUser() bool { return p != nil && p.UserID != "" && p.MemberID == "" }

// Can reports whether the principal holds a capability.
func (p *Principal) Can(capability string) bool {
	return p != nil && slices.Contains(p.Caps, capability)
}

// ID names the principal for rate limits and logs (never a secret).
func (p *Principal) ID() string {
	switch {
	case p == nil:
		return ""
	case p.APIKeyID != "":
		return "key:" + p.APIKeyID
	case p.MemberID != "":
		return "member:" + p.MemberID
	default:
		return "user:" + p.UserID
	}
}

// ListMembers pages the members of the caller's mesh.
func (s *Store) ListMembers(ctx context.Context, meshID string, includeRevoked bool, p PageRequest) (Page[Member], error) {
	q := s.db.WithContext(ctx).Model(&Member{}).Where("mesh_id = ?", meshID)
	if !includeRevoked {
		q = q.Where("revoked_at IS NULL")
	}
	return pageByID[Member](q, p, func(m Member) string { return m.ID })
}

// MemberInMesh loads a member of the given mesh (revoked or not).
func (s *Store) MemberInMesh(ctx context.Context, meshID, memberID string) (*Member, error) {
	if !ValidID(memberID) {
		return nil, notFound("member")
	}
	var m Member
	err := s.db.WithContext(ctx).Where("id = ? AND mesh_id = ?", memberID, meshID).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound("member")
	}
	if err != nil {
		return nil, fmt.Errorf("find member %s: %w", memberID, err)
	}
	return &m, nil
}

// RevokeMember revokes a member and every API key it issued, in one
// transaction, so the member's credentials fail on their next request.
func (s *Store) RevokeMember(ctx context.Context, caller *Principal, memberID string) error {
	if !caller.Can(CapAdmin) {
		return E(KindForbidden, "admin_required", "revoking a member needs the admin capability")
	}
	if err := authorityOf(caller, nil).meshWide(); err != nil {
		return err
	}
	if !ValidID(memberID) {
		return notFound("member")
	}

	return s.tx(ctx, func(tx *gorm.DB) error {
		var m Member
		err := s.forUpdate(tx.Where("id = ? AND mesh_id = ?", memberID, caller.MeshID)).Take(&m).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return notFound("member")
		}
		if err != nil {
			return fmt.Errorf("find member %s: %w", memberID, err)
		}
		if m.RevokedAt != nil {
			return nil // already revoked: idempotent
		}
		var mesh Mesh
		if err := tx.Where("id = ?", m.MeshID).Take(&mesh).Error; err != nil {
			return fmt.Errorf("load mesh: %w", err)
		}
		if (m.DashboardUserID != nil && *m.DashboardUserID == mesh.OwnerUserID) || (m.UserID != nil && *m.UserID == mesh.OwnerUserID) {
			return E(KindConflict, "owner_member", "the mesh owner's member cannot be revoked")
		}
		if m.ID == caller.MemberID {
			// Revoking oneself would skip leave's rules (the last admin, a
			// whole credential), so it is leave's job.
			return E(KindConflict, "revoke_self", "to end your own membership, leave the mesh (POST /v1/meshes/{id}/leave)")
		}
		now := s.nowUTC()
		if err := tx.Model(&Member{}).Where("id = ?", m.ID).Update("revoked_at", now).Error; err != nil {
			return fmt.Errorf("revoke member: %w", err)
		}
		if err := tx.Model(&APIKey{}).Where("issued_by_member_id = ? AND revoked_at IS NULL", m.ID).Update("revoked_at", now).Error; err != nil {
			return fmt.Errorf("revoke member keys: %w", err)
		}
		if err := s.appendAudit(tx, m.MeshID, AuditMemberRevoked, caller.MemberID, m.ID, nil); err != nil {
			return err
		}
		return s.rotateKeysOf(tx, m.MeshID, caller.MemberID, m.ID, RotateMemberRevoked)
	})
}

// Membership is one of a user's live member rows, with its mesh.
type Membership struct {
	Member Member
	Mesh   Mesh
}

// Memberships lists a user's live members in non-archived meshes. Users
// belong to few meshes; the list is capped at MaxPageLimit.
func (s *Store) Memberships(ctx context.Context, userID string) ([]Membership, error) {
	var members []Member
	err := s.db.WithContext(ctx).
		Where("revoked_at IS NULL AND (dashboard_user_id = ? OR user_id = ?)", userID, userID).
		Where("mesh_id IN (SELECT id FROM meshes WHERE archived_at IS NULL)").
		Order("id").Limit(MaxPageLimit).Find(&members).Error
	if err != nil {
		return nil, fmt.Errorf("list memberships: %w", err)
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.MeshID
	}
	var meshes []Mesh
	if err := s.db.WithContext(ctx).Where("id IN ?", ids).Find(&meshes).Error; err != nil {
		return nil, fmt.Errorf("load membership meshes: %w", err)
	}
	byID := make(map[string]*Mesh, len(meshes))
	for i := range meshes {
		byID[meshes[i].ID] = &meshes[i]
	}
	out := make([]Membership, 0, len(members))
	for _, m := range members {
		if mesh := byID[m.MeshID]; mesh != nil {
			out = append(out, Membership{Member: m, Mesh: *mesh})
		}
	}
	return out, nil
}

// MembershipFor finds the user's member row in a mesh, preferring the
// dashboard row when the user also has a CLI row.
func (s *Store) MembershipFor(ctx context.Context, userID, meshID string) (*Member, error) {
	if !ValidID(meshID) {
		return nil, notFound("mesh")
	}
	var m Member
	err := s.db.WithContext(ctx).
		Where("mesh_id = ? AND revoked_at IS NULL AND (dashboard_user_id = ? OR user_id = ?)", meshID, userID, userID).
		Where("mesh_id IN (SELECT id FROM meshes WHERE archived_at IS NULL)").
		// Order(gorm.Expr(…)) with bound variables is silently dropped by
		// GORM; an explicit ORDER BY clause keeps the dashboard row first.
		Clauses(clause.OrderBy{Expression: clause.Expr{SQL: "CASE WHEN dashboard_user_id = ? THEN 0 ELSE 1 END, id", Vars: []any{userID}, WithoutParentheses: true}}).
		Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound("mesh")
	}
	if err != nil {
		return nil, fmt.Errorf("find membership: %w", err)
	}
	return &m, nil
}

// LiveMemberPrincipal loads a member for a member-JWT request: the member must
// be live and its mesh not archived. Caps are narrowed to what the role allows
// now, so a demoted member's old token loses admin at once.
func (s *Store) LiveMemberPrincipal(ctx context.Context, memberID, meshID string, caps []string) (*Principal, error) {
	var m Member
	err := s.db.WithContext(ctx).
		Where("id = ? AND mesh_id = ? AND revoked_at IS NULL", memberID, meshID).
		Where("mesh_id IN (SELECT id FROM meshes WHERE archived_at IS NULL)").
		Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrUnauthorized
	}
	if err != nil {
		return nil, fmt.Errorf("load member: %w", err)
	}
	allowed := CapsForRole(m.Role)
	var eff []string
	for _, c := range caps {
		if slices.Contains(allowed, c) {
			eff = append(eff, c)
		}
	}
	return &Principal{MemberID: m.ID, MeshID: m.MeshID, Role: m.Role, DisplayName: m.DisplayName, Pubkey: m.PeerPubkey, Caps: eff}, nil
}

func validDisplayName(s string) bool { return displayNameRe.MatchString(s) }

// validPubkey accepts 64 lowercase hex characters that decode to an ed25519
// point libsodium would convert to x25519; any other key could never
// receive a sealed topic key or a direct message.
func validPubkey(s string) bool {
	if !pubkeyRe.MatchString(s) {
		return false
	}
	_, err := meshcrypto.ParsePublicKeyHex(s)
	return err == nil
}

// StillValid re-checks a principal for a long-lived connection: its key or
// member is live, its mesh not archived, and its credential not expired.
// A refusal is a *Error with a fixed code (credential_expired,
// credential_revoked, mesh_archived) that streams send as their end
// reason; a database failure is returned as a plain error, never as a
// refusal, so a transient outage does not look like a revocation.
func (s *Store) StillValid(ctx context.Context, p *Principal) error {
	return s.RecheckStream(ctx, p, "")
}

// RecheckStream is StillValid and, when topic is named, the topic stream's
// access rules (still visible to the member, not archived). Every open
// stream runs it every few seconds, thousands of times a second on a busy
// node, so the state it needs is one statement, and the re-checks of the
// node's streams are read together (readStreamState).
func (s *Store) RecheckStream(ctx context.Context, p *Principal, topic string) error {
	now := s.nowUTC()
	if p.ExpiresAt != nil && !now.Before(*p.ExpiresAt) {
		return E(KindUnauthorized, "credential_expired", "the credential behind this stream has expired")
	}
	if p.FamilyID != "" {
		if err := s.CheckRefreshFamily(ctx, p.FamilyID); err != nil {
			return err
		}
	}
	if topic != "" {
		topic = NormaliseTopicName(topic)
		if !topicNameRe.MatchString(topic) || !inScope(p, topic) {
			return errTopicNotFound
		}
	}
	st, err := s.readStreamState(ctx, streamKey{keyID: p.APIKeyID, topic: topic, memberID: p.MemberID, meshID: p.MeshID})
	switch {
	case err != nil:
		return fmt.Errorf("re-check member %s: %w", p.MemberID, err)
	case st == nil || st.Role == "":
		return E(KindUnauthorized, "credential_revoked", "the member behind this stream no longer exists")
	case st.MeshArchivedAt != nil:
		return E(KindGone, "mesh_archived", "the mesh was archived")
	case st.MemberRevokedAt != nil:
		return E(KindUnauthorized, "credential_revoked", "the member behind this stream was revoked")
	}
	if p.APIKeyID != "" {
		switch {
		case !st.KeyFound:
			return E(KindUnauthorized, "credential_revoked", "the API key behind this stream no longer exists")
		case st.KeyRevokedAt != nil:
			return E(KindUnauthorized, "credential_revoked", "the API key behind this stream was revoked")
		case st.KeyExpiresAt != nil && !now.Before(*st.KeyExpiresAt):
			return E(KindUnauthorized, "credential_expired", "the API key behind this stream has expired")
		}
	}
	if topic == "" {
		return nil
	}
	// The same rules as topicFor and StreamTopicFor, in the same order.
	switch {
	case st.TopicID == nil:
		return errTopicNotFound
	case !st.TopicMember && (st.TopicVisibility == nil || *st.TopicVisibility != VisibilityPublic):
		return errTopicNotFound
	case st.TopicArchivedAt != nil:
		return E(KindConflict, "topic_archived", "#%s was archived", topic)
	}
	return nil
}

// streamKey names what a stream re-check reads: the credential's key (empty
// for a token), the topic (empty for a mesh stream), the member and mesh.
type streamKey struct{ keyID, topic, memberID, meshID string }

// streamState is the database's side of a stream re-check.
type streamState struct {
	I               string // the key's index in its batch
	MemberRevokedAt *time.Time
	Role            string
	MeshArchivedAt  *time.Time
	KeyFound        bool
	KeyRevokedAt    *time.Time
	KeyExpiresAt    *time.Time
	TopicID         *string
	TopicVisibility *string
	TopicArchivedAt *time.Time
	TopicMember     bool
}

// streamRead is one queued re-check read and its answer.
type streamRead struct {
	key  streamKey
	st   *streamState // nil: the member is gone
	err  error
	done chan struct{}
}

// maxStreamReads bounds the re-checks one statement reads.
const maxStreamReads = 256

// streamReadLinger is how long the first re-check of a batch waits for
// others. Streams re-check every few seconds, so a short wait costs
// nothing anyone sees, and at 10,000 streams it turns ~2,000 statements a
// second into ~100.
const streamReadLinger = 10 * time.Millisecond

// readStreamState reads one stream's re-check state, batched with the
// other streams re-checking at about the same time.
func (s *Store) readStreamState(ctx context.Context, k streamKey) (*streamState, error) {
	r := &streamRead{key: k, done: make(chan struct{})}
	s.streamReads.submit("", r)
	select {
	case <-r.done:
		return r.st, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readStreamStates answers a batch of re-check reads with one statement:
// the keys as a VALUES list joined to the member, mesh, key, topic and
// subscription rows.
func (s *Store) readStreamStates(batch []*streamRead) {
	// Not tied to one stream: the statement answers the whole batch.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	values := make([]string, len(batch))
	args := make([]any, 0, 5*len(batch))
	for i, r := range batch {
		values[i] = "(?, ?, ?, ?, ?)"
		args = append(args, strconv.Itoa(i), r.key.keyID, r.key.topic, r.key.memberID, r.key.meshID)
	}
	var rows []streamState
	err := s.db.WithContext(ctx).Raw(`WITH v (i, key_id, topic, member_id, mesh_id) AS (VALUES `+strings.Join(values, ", ")+`)
		SELECT v.i, m.revoked_at AS member_revoked_at, m.role, s.archived_at AS mesh_archived_at,
			k.id IS NOT NULL AS key_found, k.revoked_at AS key_revoked_at, k.expires_at AS key_expires_at,
			t.id AS topic_id, t.visibility AS topic_visibility, t.archived_at AS topic_archived_at,
			tm.member_id IS NOT NULL AS topic_member
		FROM v JOIN members m ON m.id = v.member_id AND m.mesh_id = v.mesh_id
		JOIN meshes s ON s.id = m.mesh_id
		LEFT JOIN api_keys k ON k.id = v.key_id
		LEFT JOIN topics t ON t.mesh_id = m.mesh_id AND t.name = v.topic
		LEFT JOIN topic_members tm ON tm.topic_id = t.id AND tm.member_id = m.id`, args...).Scan(&rows).Error
	for i := range rows {
		if n, perr := strconv.Atoi(rows[i].I); perr == nil && n >= 0 && n < len(batch) {
			batch[n].st = &rows[i]
		}
	}
	for _, r := range batch {
		r.err = err
		close(r.done)
	}
}
