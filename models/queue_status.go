package models

import (
	"context"
	"fmt"
	"time"
)

// Where a direct message stands, as its sender sees it.
const (
	QueueQueued    = "queued"    // stored, not yet pushed to the recipient
	QueueDelivered = "delivered" // pushed to a recipient's session, not acked yet
	QueueAcked     = "acked"     // the recipient's session acknowledged it
	QueueExpired   = "expired"   // never acked within the queue TTL
)

// QueueState is one direct message's state for its sender.
type QueueState struct {
	ID                string
	RecipientMemberID string
	State             string
	CreatedAt         time.Time
	DeliveredAt       *time.Time
	AckedAt           *time.Time
	ExpiredAt         *time.Time
}

// QueueStates returns the states of the given direct messages that
// senderID sent in the mesh; ids of other senders' rows, or of no row,
// are left out (a sender learns nothing about messages it did not send).
func (s *Store) QueueStates(ctx context.Context, meshID, senderID string, ids []string) ([]QueueState, error) {
	if len(ids) == 0 || len(ids) > maxAckIDs {
		return nil, Invalid(FieldError{"ids", fmt.Sprintf("must hold 1 to %d message ids", maxAckIDs)})
	}
	for _, id := range ids {
		if !ValidID(id) {
			return nil, Invalid(FieldError{"ids", fmt.Sprintf("%q is not a message id", id)})
		}
	}
	var rows []QueuedMessage
	if err := s.db.WithContext(ctx).Select("id", "recipient_member_id", "created_at", "delivered_at", "acked_at", "expired_at").
		Where("id IN ? AND mesh_id = ? AND sender_member_id = ?", ids, meshID, senderID).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read message states: %w", err)
	}
	out := make([]QueueState, len(rows))
	for i, r := range rows {
		st := QueueQueued
		switch {
		case r.AckedAt != nil:
			st = QueueAcked
		case r.ExpiredAt != nil:
			st = QueueExpired
		case r.DeliveredAt != nil:
			st = QueueDelivered
		}
		out[i] = QueueState{ID: r.ID, RecipientMemberID: r.RecipientMemberID, State: st, CreatedAt: r.CreatedAt.UTC(),
			DeliveredAt: utcPtr(r.DeliveredAt), AckedAt: utcPtr(r.AckedAt), ExpiredAt: utcPtr(r.ExpiredAt)}
	}
	return out, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
