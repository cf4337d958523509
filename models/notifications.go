package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// NotificationMention is the only notification kind so far.
const NotificationMention = "mention"

// Notification tells a topic member it was mentioned. One per (message,
// recipient), enforced by a unique index.
type Notification struct {
	ID                string `gorm:"primaryKey"`
	MeshID            string
	TopicID           string
	MessageID         string
	RecipientMemberID string
	SenderMemberID    string
	Kind              string
	CreatedAt         time.Time
	ReadAt            *time.Time
}

// NotificationRow is a notification with what a client needs to render it.
type NotificationRow struct {
	Notification
	TopicName         string
	SenderDisplayName string
	Seq               int64
	BodyVersion       int
	KeyEpoch          int
	Ciphertext        string
	Nonce             string
}

// NotificationQuery filters the caller's notifications.
type NotificationQuery struct {
	UnreadOnly bool
	Since      *time.Time
	Page       PageRequest // cursor: older than the notification it names
}

// ListNotifications pages the caller's notifications, newest first. Only
// notifications in topics the caller can still see are shown.
func (s *Store) ListNotifications(ctx context.Context, p *Principal, q NotificationQuery) (Page[NotificationRow], error) {
	if !p.Can(CapRead) {
		return Page[NotificationRow]{}, E(KindForbidden, "capability_required", "reading needs the \"read\" capability")
	}
	limit, before, err := q.Page.normalise()
	if err != nil {
		return Page[NotificationRow]{}, err
	}
	db := s.db.WithContext(ctx).Table("notifications AS n").
		Select("n.*, t.name AS topic_name, mem.display_name AS sender_display_name, msg.seq, msg.body_version, msg.key_epoch, msg.ciphertext, msg.nonce").
		Joins("JOIN topics t ON t.id = n.topic_id").
		Joins("JOIN messages msg ON msg.id = n.message_id").
		Joins("JOIN members mem ON mem.id = n.sender_member_id").
		Where("n.recipient_member_id = ? AND n.mesh_id = ?", p.MemberID, p.MeshID).
		Where("(t.visibility = ? OR EXISTS (SELECT 1 FROM topic_members tm WHERE tm.topic_id = n.topic_id AND tm.member_id = n.recipient_member_id))", VisibilityPublic)
	if p.TopicScopes != nil {
		db = db.Where("t.name IN ?", append([]string{""}, p.TopicScopes...))
	}
	if q.UnreadOnly {
		db = db.Where("n.read_at IS NULL")
	}
	if q.Since != nil {
		db = db.Where("n.created_at > ?", q.Since.UTC())
	}
	if before != "" {
		db = db.Where("n.id < ?", before)
	}
	var rows []NotificationRow
	if err := db.Order("n.id DESC").Limit(limit + 1).Scan(&rows).Error; err != nil {
		return Page[NotificationRow]{}, fmt.Errorf("list notifications: %w", err)
	}
	return cut(rows, limit, func(r NotificationRow) string { return r.ID }), nil
}

// MarkNotificationsRead marks the caller's unread notifications read, by
// ids or every one up to and including upTo, and returns how many rows
// actually changed (already-read and foreign ids count zero).
func (s *Store) MarkNotificationsRead(ctx context.Context, p *Principal, ids []string, upTo string) (int64, error) {
	if err := checkMarkRead(ids, upTo); err != nil {
		return 0, err
	}
	q := s.db.WithContext(ctx).Model(&Notification{}).
		Where("recipient_member_id = ? AND mesh_id = ? AND read_at IS NULL", p.MemberID, p.MeshID)
	n, err := s.markRead(q, ids, upTo)
	if err != nil {
		return 0, fmt.Errorf("mark notifications read: %w", err)
	}
	return n, nil
}

// markRead stamps read_at on the unread notifications q scopes, by ids or
// every one up to and including upTo (checkMarkRead has vetted which), and
// says how many rows changed.
func (s *Store) markRead(q *gorm.DB, ids []string, upTo string) (int64, error) {
	if len(ids) > 0 {
		q = q.Where("id IN ?", ids)
	} else {
		q = q.Where("id <= ?", upTo)
	}
	res := q.Update("read_at", s.nowUTC())
	return res.RowsAffected, res.Error
}

// checkMarkRead validates a mark-read request: exactly one of ids and upTo.
func checkMarkRead(ids []string, upTo string) error {
	switch {
	case len(ids) == 0 && upTo == "":
		return Invalid(FieldError{"ids", "give ids or upTo"})
	case len(ids) > 0 && upTo != "":
		return Invalid(FieldError{"upTo", "give ids or upTo, not both"})
	case len(ids) > MaxPageLimit:
		return Invalid(FieldError{"ids", fmt.Sprintf("at most %d ids", MaxPageLimit)})
	}
	for _, id := range ids {
		if !ValidID(id) {
			return Invalid(FieldError{"ids", fmt.Sprintf("%q is not a notification id", id)})
		}
	}
	if upTo != "" && !ValidID(upTo) {
		return Invalid(FieldError{"upTo", "is not a notification id"})
	}
	return nil
}
