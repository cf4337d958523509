package models

import (
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Audit event kinds of peer routing (ws/). Their metadata carries ids,
// sizes, priorities and times only, never a body.
const (
	AuditPeerConnected    = "peer.connected"
	AuditPeerDisconnected = "peer.disconnected"
	AuditDirectQueued     = "message.queued"
	AuditDirectDelivered  = "message.delivered"
	AuditDirectAcked      = "message.acked"
	AuditDirectExpired    = "message.expired"
)

// Now is the store's clock (UTC, microseconds). The WebSocket server reads
// it too, so one injected clock drives every time rule in tests.
func (s *Store) Now() time.Time { return s.nowUTC() }

// auditIn is one event to append with appendAudits.
type auditIn struct {
	kind, actor, target string
	meta                map[string]any
}

// appendAudits appends several events to one mesh's chain inside tx with a
// single seq allocation and one multi-row insert, so a batch of deliveries
// or acks costs one mesh-row lock, not one per row.
func (s *Store) appendAudits(tx *gorm.DB, meshID string, in []auditIn) error {
	if len(in) == 0 {
		return nil
	}
	n := int64(len(in))
	var last int64
	if err := tx.Raw("UPDATE meshes SET last_audit_seq = last_audit_seq + ? WHERE id = ? RETURNING last_audit_seq", n, meshID).Scan(&last).Error; err != nil {
		return fmt.Errorf("audit seq: %w", err)
	}
	if last == 0 {
		return fmt.Errorf("audit seq: mesh %s not found", meshID)
	}
	first := last - n + 1
	prev, err := auditPrevHash(tx, meshID, first)
	if err != nil {
		return err
	}
	now := s.nowUTC()
	evs := make([]AuditEvent, len(in))
	for i, e := range in {
		meta := e.meta
		if meta == nil {
			meta = map[string]any{}
		}
		raw, err := json.Marshal(meta)
		if err != nil {
			return fmt.Errorf("audit metadata: %w", err)
		}
		evs[i] = AuditEvent{ID: NewID(), MeshID: meshID, Seq: first + int64(i), Kind: e.kind, Target: e.target, Metadata: string(raw),
			CreatedAt: now, PrevHash: prev}
		if e.actor != "" {
			a := e.actor
			evs[i].ActorMemberID = &a
		}
		evs[i].Hash = evs[i].computeHash()
		prev = evs[i].Hash
	}
	if err := tx.Create(&evs).Error; err != nil {
		return fmt.Errorf("insert audit events: %w", err)
	}
	return nil
}

// chunks splits ids into slices of at most n, keeping IN lists bounded.
func chunks(ids []string, n int) [][]string {
	var out [][]string
	for len(ids) > n {
		out = append(out, ids[:n:n])
		ids = ids[n:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}
