package models

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// Direct-message queue bounds.
const (
	// DefaultQueueTTL is QUEUE_TTL_SECONDS' default: a week.
	DefaultQueueTTL = 7 * 24 * time.Hour
	// MaxEnvelopes bounds one send (a broadcast carries one per peer).
	MaxEnvelopes = 256
	maxAckIDs    = 256
)

// QueuedMessage is one direct message to one member, kept until the
// recipient acks it or it expires. Its body is a crypto_box the broker
// cannot open.
type QueuedMessage struct {
	ID                string `gorm:"primaryKey"`
	MeshID            string
	SenderMemberID    string
	SenderPubkey      string
	RecipientMemberID string
	Priority          string
	Nonce             string
	Ciphertext        string
	Bytes             int
	ClientMessageID   *string
	CreatedAt         time.Time
	DeliveredAt       *time.Time
	AckedAt           *time.Time
	ExpiresAt         time.Time
	ExpiredAt         *time.Time
	Attempts          int
	// ClaimConn is the connection that was last handed the row; a claim by
	// a connection that is no longer live is void.
	ClaimConn *string
}

// TableName names SPEC §4's table.
func (QueuedMessage) TableName() string { return "message_queue" }

// QueuedRow is a queued message with its sender's display name.
type QueuedRow struct {
	QueuedMessage
	SenderDisplayName string
}

// Envelope is one recipient's copy of a direct message.
type Envelope struct {
	RecipientID string
	Nonce       string
	Ciphertext  string
}

// EnqueueInput is a direct send: one envelope per recipient.
type EnqueueInput struct {
	Envelopes       []Envelope
	Priority        string
	ClientMessageID string
	Broadcast       bool          // recorded in the audit metadata
	TTL             time.Duration // 0 = DefaultQueueTTL
	// MaxPendingBytes bounds what the sender may have queued and unacked
	// across all recipients (0 = unbounded).
	MaxPendingBytes int64
}

// Enqueued is the outcome of a direct send, one entry per envelope.
type Enqueued struct {
	Rows     []QueuedMessage
	Replayed []bool // the clientMessageId was seen for that recipient before
}

// CheckEnvelope is the broker's whole view of a direct body: canonical
// standard base64, a 24-byte nonce, at least the 16-byte tag, at most
// maxBytes decoded. It returns the decoded size.
func CheckEnvelope(nonce, ciphertext string, maxBytes int) (int, error) {
	tooLarge := &Error{Kind: KindTooLarge, Code: "message_too_large", Detail: fmt.Sprintf("the ciphertext is over %d bytes", maxBytes)}
	if base64.StdEncoding.DecodedLen(len(ciphertext)) > maxBytes+3 {
		return 0, tooLarge // refused before decoding anything
	}
	if n, err := meshcrypto.DecodeBase64(nonce); err != nil || len(n) != meshcrypto.NonceSize {
		return 0, Invalid(FieldError{"nonce", "must be canonical standard base64 of exactly 24 bytes"})
	}
	body, err := meshcrypto.DecodeBase64(ciphertext)
	if err != nil || len(body) < meshcrypto.Overhead {
		return 0, Invalid(FieldError{"ciphertext", "must be canonical standard base64 of a crypto_box (at least the 16-byte tag)"})
	}
	if len(body) > maxBytes {
		return 0, tooLarge
	}
	return len(body), nil
}

// lockingSkip is FOR UPDATE SKIP LOCKED (PostgreSQL only).
var lockingSkip = clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"}

var errQueueRace = errors.New("queue client id raced")

// EnqueueDirect stores a direct send for its recipients, with its audit
// events, before the sender is acknowledged, so an acked send survives a
// broker restart. It commits in the mesh's group commit (dmcommit.go). The
// same clientMessageId to the same recipient returns the first row instead
// of storing a second one, also when the two sends share a batch.
func (s *Store) EnqueueDirect(ctx context.Context, sender *Principal, in EnqueueInput) (*Enqueued, error) {
	if !sender.Can(CapSend) {
		return nil, E(KindForbidden, "capability_required", "sending needs the \"send\" capability")
	}
	if in.Priority == "" {
		in.Priority = PriorityNext
	}
	var fe []FieldError
	if in.Priority != PriorityNow && in.Priority != PriorityNext && in.Priority != PriorityLow {
		fe = append(fe, FieldError{"priority", "must be now, next or low"})
	}
	if in.ClientMessageID != "" && !clientIDRe.MatchString(in.ClientMessageID) {
		fe = append(fe, FieldError{"clientMessageId", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -"})
	}
	if len(in.Envelopes) == 0 || len(in.Envelopes) > MaxEnvelopes {
		fe = append(fe, FieldError{"envelopes", fmt.Sprintf("must hold 1 to %d recipients", MaxEnvelopes)})
	}
	if fe != nil {
		return nil, Invalid(fe...)
	}
	sizes := make([]int, len(in.Envelopes))
	seen := map[string]bool{}
	for i, e := range in.Envelopes {
		n, err := CheckEnvelope(e.Nonce, e.Ciphertext, s.maxMessageBytes)
		if err != nil {
			return nil, err
		}
		if seen[e.RecipientID] {
			return nil, Invalid(FieldError{"envelopes", "one envelope per recipient"})
		}
		seen[e.RecipientID], sizes[i] = true, n
	}
	if in.TTL <= 0 {
		in.TTL = DefaultQueueTTL
	}
	r := &directReq{kind: directEnqueue, sender: sender, enq: in, sizes: sizes}
	if err := s.submitDirect(ctx, sender.MeshID, r); err != nil {
		return nil, err
	}
	return r.enqueued, nil
}

// ClaimInput asks for the next rows a connection may push.
type ClaimInput struct {
	MeshID      string
	RecipientID string
	ConnID      string
	Priorities  []string // what the session's status lets through
	Limit       int
}

// liveClaim is true when the row's claim belongs to a live connection.
const liveClaim = `q.claim_conn IS NOT NULL AND EXISTS (SELECT 1 FROM presence p WHERE p.conn_id = q.claim_conn AND p.disconnected_at IS NULL)`

// ClaimQueued hands a connection the recipient's next deliverable rows, in
// id order: rows never delivered, and rows whose claiming connection is
// gone (delivered but never acked). The claim is written before the rows
// are pushed, and PostgreSQL's FOR UPDATE SKIP LOCKED keeps two drains (two
// brokers, two sessions) from taking the same row; SQLite's single
// connection serialises them anyway.
func (s *Store) ClaimQueued(ctx context.Context, in ClaimInput) ([]QueuedRow, error) {
	if in.Limit <= 0 {
		in.Limit = 64
	}
	r := &directReq{kind: directClaim, claim: in}
	if err := s.submitDirect(ctx, in.MeshID, r); err != nil {
		return nil, err
	}
	return r.claimed, nil
}

// AckQueued records the recipient's acknowledgement of delivered rows and
// returns how many were newly acked. Rows of other recipients, never
// delivered, or already acked are ignored.
func (s *Store) AckQueued(ctx context.Context, meshID, recipientID string, ids []string) (int, error) {
	if len(ids) == 0 || len(ids) > maxAckIDs {
		return 0, Invalid(FieldError{"ids", fmt.Sprintf("must hold 1 to %d message ids", maxAckIDs)})
	}
	for _, id := range ids {
		if !ValidID(id) {
			return 0, Invalid(FieldError{"ids", fmt.Sprintf("%q is not a message id", id)})
		}
	}
	r := &directReq{kind: directAck, recipient: recipientID, ids: ids}
	if err := s.submitDirect(ctx, meshID, r); err != nil {
		return 0, err
	}
	return r.acked, nil
}

// ExpireQueued marks up to limit unacked rows past their expiry as expired
// and audits each; it returns how many it marked. Several brokers may run
// it at once: PostgreSQL skips rows another sweep holds.
func (s *Store) ExpireQueued(ctx context.Context, limit int) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx *gorm.DB) error {
		now := s.nowUTC()
		q := tx.Select("id", "mesh_id", "sender_member_id", "recipient_member_id", "priority", "bytes", "attempts").
			Where("acked_at IS NULL AND expired_at IS NULL AND expires_at <= ?", now).Order("expires_at").Limit(limit)
		if s.dialect == Postgres {
			q = q.Clauses(lockingSkip)
		}
		var rows []QueuedMessage
		if err := q.Find(&rows).Error; err != nil {
			return fmt.Errorf("find expired messages: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		ids := make([]string, len(rows))
		byMesh := map[string][]auditIn{}
		var meshes []string
		for i, r := range rows {
			ids[i] = r.ID
			if byMesh[r.MeshID] == nil {
				meshes = append(meshes, r.MeshID)
			}
			byMesh[r.MeshID] = append(byMesh[r.MeshID], auditIn{AuditDirectExpired, "", r.ID, map[string]any{"senderId": r.SenderMemberID,
				"recipientId": r.RecipientMemberID, "priority": r.Priority, "bytes": r.Bytes, "attempts": r.Attempts}})
		}
		if err := tx.Exec("UPDATE message_queue SET expired_at = ? WHERE id IN ?", now, ids).Error; err != nil {
			return fmt.Errorf("expire messages: %w", err)
		}
		for _, m := range meshes {
			if err := s.appendAudits(tx, m, byMesh[m]); err != nil {
				return err
			}
		}
		n = len(rows)
		return nil
	})
	return n, err
}

// PendingRecipients reports, among the given members, those with rows
// waiting to be pushed (never delivered, or claimed by a dead connection),
// and whether any of those rows is priority "now". A broker uses it to wake
// its own connections for rows another broker queued.
func (s *Store) PendingRecipients(ctx context.Context, memberIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	now := s.nowUTC()
	for _, ids := range chunks(memberIDs, 500) {
		var rows []struct {
			RecipientMemberID string
			HasNow            int
		}
		err := s.db.WithContext(ctx).Raw(`SELECT q.recipient_member_id, MAX(CASE WHEN q.priority = 'now' THEN 1 ELSE 0 END) AS has_now
			FROM message_queue q WHERE q.recipient_member_id IN ? AND q.acked_at IS NULL AND q.expired_at IS NULL AND q.expires_at > ?
			AND NOT (`+liveClaim+`) GROUP BY q.recipient_member_id`, ids, now).Scan(&rows).Error
		if err != nil {
			return nil, fmt.Errorf("find pending recipients: %w", err)
		}
		for _, r := range rows {
			out[r.RecipientMemberID] = r.HasNow == 1
		}
	}
	return out, nil
}

// ResolveRecipient finds the live member a direct send names: "@name", a
// 64-hex pubkey, or a member id.
func (s *Store) ResolveRecipient(ctx context.Context, meshID, to string) (*Member, error) {
	q := s.db.WithContext(ctx).Where("mesh_id = ? AND revoked_at IS NULL", meshID)
	switch {
	case strings.HasPrefix(to, "@") && validDisplayName(strings.ToLower(to[1:])):
		q = q.Where("display_name = ?", strings.ToLower(to[1:]))
	case pubkeyRe.MatchString(to):
		q = q.Where("peer_pubkey = ?", to)
	case ValidID(to):
		q = q.Where("id = ?", to)
	default:
		return nil, Invalid(FieldError{"to", "must be a member id, a 64-hex pubkey, @name, #topic or *"})
	}
	var m Member
	err := q.Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound("recipient")
	}
	if err != nil {
		return nil, fmt.Errorf("find recipient: %w", err)
	}
	return &m, nil
}
