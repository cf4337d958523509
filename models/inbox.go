package models

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// The cross-mesh inbox of a signed-in user: their notifications and joined
// topics over every live membership in a non-archived mesh. Each query is
// bounded by the user's own member rows, so it can never reach a mesh the
// user does not belong to.

// userMembers is the subquery of the user's live members in live meshes.
func userMembers(db *gorm.DB, userID string) *gorm.DB {
	return db.Table("members").Select("id").
		Where("revoked_at IS NULL AND (dashboard_user_id = ? OR user_id = ?)", userID, userID).
		Where("mesh_id IN (SELECT id FROM meshes WHERE archived_at IS NULL)")
}

// InboxNotification is a notification with the mesh it belongs to.
type InboxNotification struct {
	NotificationRow
	MeshName string
}

// ListMyNotifications pages the user's notifications across meshes, newest
// first, in topics the recipient member can still see.
func (s *Store) ListMyNotifications(ctx context.Context, userID string, unreadOnly bool, pr PageRequest) (Page[InboxNotification], error) {
	limit, before, err := pr.normalise()
	if err != nil {
		return Page[InboxNotification]{}, err
	}
	db := s.db.WithContext(ctx)
	q := db.Table("notifications AS n").
		Select("n.*, t.name AS topic_name, mem.display_name AS sender_display_name, msg.seq, msg.body_version, msg.key_epoch, msg.ciphertext, msg.nonce, s.name AS mesh_name").
		Joins("JOIN meshes s ON s.id = n.mesh_id").
		Joins("JOIN topics t ON t.id = n.topic_id").
		Joins("JOIN messages msg ON msg.id = n.message_id").
		Joins("JOIN members mem ON mem.id = n.sender_member_id").
		Where("n.recipient_member_id IN (?)", userMembers(db, userID)).
		Where("(t.visibility = ? OR EXISTS (SELECT 1 FROM topic_members tm WHERE tm.topic_id = n.topic_id AND tm.member_id = n.recipient_member_id))", VisibilityPublic)
	if unreadOnly {
		q = q.Where("n.read_at IS NULL")
	}
	if before != "" {
		q = q.Where("n.id < ?", before)
	}
	var rows []InboxNotification
	if err := q.Order("n.id DESC").Limit(limit + 1).Scan(&rows).Error; err != nil {
		return Page[InboxNotification]{}, fmt.Errorf("list inbox notifications: %w", err)
	}
	return cut(rows, limit, func(r InboxNotification) string { return r.ID }), nil
}

// MarkMyNotificationsRead is MarkNotificationsRead over every member of the
// user: by ids, or every unread one up to and including upTo.
func (s *Store) MarkMyNotificationsRead(ctx context.Context, userID string, ids []string, upTo string) (int64, error) {
	if err := checkMarkRead(ids, upTo); err != nil {
		return 0, err
	}
	db := s.db.WithContext(ctx)
	q := db.Model(&Notification{}).Where("read_at IS NULL AND recipient_member_id IN (?)", userMembers(db, userID))
	n, err := s.markRead(q, ids, upTo)
	if err != nil {
		return 0, fmt.Errorf("mark inbox notifications read: %w", err)
	}
	return n, nil
}

// InboxTopic is one of the user's topic subscriptions with its unread count.
type InboxTopic struct {
	Topic
	MeshName    string
	MemberID    string
	Role        string
	LastReadSeq int64
	Unread      int64
}

// ListMyTopics pages the live topics the user's members have joined, across
// meshes, ordered by (topic id, member id), each with its unread count.
func (s *Store) ListMyTopics(ctx context.Context, userID string, pr PageRequest) (Page[InboxTopic], error) {
	limit := pr.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	limit = min(limit, MaxPageLimit)
	db := s.db.WithContext(ctx)
	q := db.Table("topic_members AS tm").
		Select("t.*, s.name AS mesh_name, tm.member_id, tm.role, tm.last_read_seq").
		Joins("JOIN topics t ON t.id = tm.topic_id AND t.archived_at IS NULL").
		Joins("JOIN meshes s ON s.id = t.mesh_id").
		Where("tm.member_id IN (?)", userMembers(db, userID))
	if pr.Cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(pr.Cursor)
		topicID, memberID, ok := strings.Cut(string(raw), "|")
		if err != nil || !ok || !ValidID(topicID) || !ValidID(memberID) {
			return Page[InboxTopic]{}, E(KindBadRequest, "invalid_query", "cursor is not a cursor this server issued")
		}
		q = q.Where("(tm.topic_id > ? OR (tm.topic_id = ? AND tm.member_id > ?))", topicID, topicID, memberID)
	}
	var rows []InboxTopic
	if err := q.Order("tm.topic_id, tm.member_id").Limit(limit + 1).Scan(&rows).Error; err != nil {
		return Page[InboxTopic]{}, fmt.Errorf("list inbox topics: %w", err)
	}
	page := Page[InboxTopic]{Items: rows}
	if len(rows) > limit {
		page.Items, page.HasMore = rows[:limit], true
		last := rows[limit-1]
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(last.ID + "|" + last.MemberID))
	}
	if len(page.Items) == 0 {
		page.Items = []InboxTopic{}
		return page, nil
	}
	var topicIDs, memberIDs []string
	for _, r := range page.Items {
		topicIDs = appendNew(topicIDs, r.ID)
		memberIDs = appendNew(memberIDs, r.MemberID)
	}
	var counts []struct {
		TopicID  string
		MemberID string
		N        int64
	}
	err := db.Raw(`SELECT tm.topic_id, tm.member_id, count(m.id) AS n FROM topic_members tm
		LEFT JOIN messages m ON m.topic_id = tm.topic_id AND m.seq > tm.last_read_seq
		WHERE tm.topic_id IN ? AND tm.member_id IN ? GROUP BY tm.topic_id, tm.member_id`, topicIDs, memberIDs).Scan(&counts).Error
	if err != nil {
		return Page[InboxTopic]{}, fmt.Errorf("count inbox unread: %w", err)
	}
	unread := map[[2]string]int64{}
	for _, c := range counts {
		unread[[2]string{c.TopicID, c.MemberID}] = c.N
	}
	for i := range page.Items {
		page.Items[i].Unread = unread[[2]string{page.Items[i].ID, page.Items[i].MemberID}]
	}
	return page, nil
}

// MarkMyTopicRead moves the read mark of every member of the user
// subscribed to the topic forward to seq (never back, clamped to the
// mesh's newest seq) and returns the resulting mark. A topic none of the
// user's members has joined is not found; nothing is ever joined.
func (s *Store) MarkMyTopicRead(ctx context.Context, userID, topicID string, seq int64) (int64, error) {
	if seq < 0 {
		return 0, Invalid(FieldError{"seq", "must be zero or more"})
	}
	if !ValidID(topicID) {
		return 0, errTopicNotFound
	}
	var out int64
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var subs []TopicMember
		if err := tx.Where("topic_id = ? AND member_id IN (?)", topicID, userMembers(tx, userID)).
			Where("topic_id IN (SELECT id FROM topics WHERE archived_at IS NULL)").Find(&subs).Error; err != nil {
			return fmt.Errorf("find subscriptions: %w", err)
		}
		if len(subs) == 0 {
			return errTopicNotFound
		}
		var last int64
		if err := tx.Raw("SELECT s.last_seq FROM meshes s JOIN topics t ON t.mesh_id = s.id WHERE t.id = ?", topicID).Scan(&last).Error; err != nil {
			return fmt.Errorf("read last seq: %w", err)
		}
		seq = min(seq, last)
		ids := make([]string, len(subs))
		for i, sub := range subs {
			ids[i] = sub.MemberID
			out = max(out, sub.LastReadSeq)
		}
		if err := tx.Exec("UPDATE topic_members SET last_read_seq = ? WHERE topic_id = ? AND member_id IN ? AND last_read_seq < ?",
			seq, topicID, ids, seq).Error; err != nil {
			return fmt.Errorf("mark read: %w", err)
		}
		out = max(out, seq)
		return nil
	})
	return out, err
}
