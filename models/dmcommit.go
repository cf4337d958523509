package models

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// Direct messages, their delivery claims and their acks go through a
// per-mesh group commit of their own (the directs batcher): every request
// waiting when a batch starts shares one transaction and one extension of
// the mesh's audit chain. Before, each was its own transaction that locked
// the mesh row to append its audit events and kept the lock across its
// round trips and its commit, so a mesh's direct traffic passed one request
// at a time. Now the mesh row is locked once per batch, after every other
// statement of the batch has run, for the chain extension and the commit
// only. A request that breaks a rule (unknown recipient, queue_full) is
// answered with its error and writes nothing; the rest of its batch commits.

// directKind says what a queued request does.
type directKind int

const (
	directEnqueue directKind = iota
	directClaim
	directAck
)

// directReq is one request of a direct-message batch and, once committed,
// its outcome.
type directReq struct {
	kind directKind
	// enqueue
	sender *Principal
	enq    EnqueueInput
	sizes  []int
	// claim
	claim ClaimInput
	// ack
	recipient string
	ids       []string

	enqueued *Enqueued
	claimed  []QueuedRow
	acked    int
	err      error
	done     chan struct{}
}

// submitDirect queues r on its mesh's group commit and waits for its
// outcome. A caller that gives up still has its request committed (a retry
// with the same clientMessageId replays it; a claimed row whose push never
// went out is claimed again once its connection is gone).
func (s *Store) submitDirect(ctx context.Context, meshID string, r *directReq) error {
	r.done = make(chan struct{})
	s.directs.submit(meshID, r)
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// QueuedDirect reports how many direct-message requests of a mesh wait for
// the next group commit (one in progress not counted). Tests use it to know
// a burst has queued up behind a batch.
func (s *Store) QueuedDirect(meshID string) int {
	s.directs.mu.Lock()
	defer s.directs.mu.Unlock()
	return len(s.directs.queues[meshID])
}

// commitDirect commits one batch of a mesh's direct-message requests.
func (s *Store) commitDirect(meshID string, batch []*directReq) {
	// Not tied to one request: the batch belongs to every caller in it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	// A clientMessageId raced by another node fails the insert; by then the
	// other transaction has committed, so the retry sees it as a replay.
	for range 3 {
		for _, r := range batch {
			r.enqueued, r.claimed, r.acked, r.err = nil, nil, 0, nil
		}
		if s.dialect == Postgres {
			err = s.directPipelined(ctx, meshID, batch)
		} else {
			err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return s.directBatch(tx, meshID, batch) })
		}
		if !errors.Is(err, errQueueRace) {
			break
		}
	}
	for _, r := range batch {
		if err != nil {
			r.enqueued, r.claimed, r.acked, r.err = nil, nil, 0, err
		}
		close(r.done)
	}
}

// directBatch is the portable batch, a statement per round trip (SQLite
// uses it: an in-process database has no round trips to save). Same order
// as the pipelined one (directPipelined): the acks (one read, one update),
// the claims in request order, then the sends (their reads once for the batch, their
// checks in memory, one insert); then one extension of the audit chain with
// every event, in that order.
func (s *Store) directBatch(tx *gorm.DB, meshID string, batch []*directReq) error {
	now := s.nowUTC()
	var enqs, acks []*directReq
	for _, r := range batch {
		switch r.kind {
		case directEnqueue:
			enqs = append(enqs, r)
		case directAck:
			acks = append(acks, r)
		}
	}
	evs, err := s.ackBatch(tx, acks, now)
	if err != nil {
		return err
	}
	for _, r := range batch {
		if r.kind == directClaim {
			ev, err := s.claimOne(tx, r, now)
			if err != nil {
				return err
			}
			evs = append(evs, ev...)
		}
	}
	sent, err := s.enqueueBatch(tx, meshID, enqs, now)
	if err != nil {
		return err
	}
	evs = append(evs, sent...)
	if err := s.step("direct_commit"); err != nil {
		return err
	}
	return s.appendAudits(tx, meshID, evs)
}

// directKey identifies a replayable send: (sender, recipient, clientMessageId).
type directKey [3]string

// enqueueBatch stores the batch's direct sends and returns each accepted
// send's audit events in request order. It reads the recipients, the earlier sends with
// the batch's clientMessageIds and the senders' unacked bytes once, then
// decides every request in order in memory.
// enqueueKeys are what a batch's sends need read: their recipients, their
// senders, their client ids, and the senders whose queued bytes are bounded.
func enqueueKeys(enqs []*directReq) (recipients, senders, cids, bounded []string) {
	for _, r := range enqs {
		senders = appendNew(senders, r.sender.MemberID)
		for _, e := range r.enq.Envelopes {
			recipients = appendNew(recipients, e.RecipientID)
		}
		if r.enq.ClientMessageID != "" {
			cids = appendNew(cids, r.enq.ClientMessageID)
		}
		if r.enq.MaxPendingBytes > 0 {
			bounded = appendNew(bounded, r.sender.MemberID)
		}
	}
	return recipients, senders, cids, bounded
}

func (s *Store) enqueueBatch(tx *gorm.DB, meshID string, enqs []*directReq, now time.Time) ([]auditIn, error) {
	if len(enqs) == 0 {
		return nil, nil
	}
	recipients, senders, cids, bounded := enqueueKeys(enqs)
	live := map[string]bool{}
	for _, ids := range chunks(recipients, 500) {
		var got []string
		if err := tx.Model(&Member{}).Where("mesh_id = ? AND id IN ? AND revoked_at IS NULL", meshID, ids).Pluck("id", &got).Error; err != nil {
			return nil, fmt.Errorf("find recipients: %w", err)
		}
		for _, id := range got {
			live[id] = true
		}
	}
	prior := map[directKey]QueuedMessage{}
	for _, rcpts := range chunks(recipients, 500) {
		if len(cids) == 0 {
			break
		}
		var rows []QueuedMessage
		if err := tx.Where("sender_member_id IN ? AND recipient_member_id IN ? AND client_message_id IN ?", senders, rcpts, cids).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("find earlier sends: %w", err)
		}
		for _, q := range rows {
			prior[directKey{q.SenderMemberID, q.RecipientMemberID, *q.ClientMessageID}] = q
		}
	}
	pending := map[string]int64{}
	if len(bounded) > 0 {
		var rows []struct {
			SenderMemberID string
			Pending        int64
		}
		if err := tx.Raw(`SELECT sender_member_id, COALESCE(SUM(bytes), 0) AS pending FROM message_queue
			WHERE sender_member_id IN ? AND acked_at IS NULL AND expired_at IS NULL GROUP BY sender_member_id`, bounded).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("sum queued bytes: %w", err)
		}
		for _, r := range rows {
			pending[r.SenderMemberID] = r.Pending
		}
	}
	var fresh []QueuedMessage
	var evs []auditIn
	for _, r := range enqs {
		r.err = planEnqueue(r, live, prior, pending, now)
		if r.err != nil {
			continue
		}
		for i, q := range r.enqueued.Rows {
			if r.enqueued.Replayed[i] {
				continue
			}
			fresh = append(fresh, q)
			evs = append(evs, auditIn{AuditDirectQueued, q.SenderMemberID, q.ID, map[string]any{"recipientId": q.RecipientMemberID,
				"priority": q.Priority, "bytes": q.Bytes, "broadcast": r.enq.Broadcast}})
		}
	}
	for _, rows := range queueChunks(fresh) {
		if err := tx.Create(&rows).Error; err != nil {
			if isUniqueViolation(err) {
				return nil, errQueueRace
			}
			return nil, fmt.Errorf("queue messages: %w", err)
		}
	}
	return evs, nil
}

// planEnqueue decides one send against the batch's reads: every recipient
// live, each envelope either a replay (of a committed send, or of an
// earlier send in this batch) or a fresh row, the fresh bytes within the
// sender's bound. An accepted send updates prior and pending, so later
// requests of the batch see it; a refused one changes nothing.
func planEnqueue(r *directReq, live map[string]bool, prior map[directKey]QueuedMessage, pending map[string]int64, now time.Time) error {
	sender, in := r.sender, r.enq
	for _, e := range in.Envelopes {
		if !live[e.RecipientID] {
			return notFound("recipient")
		}
	}
	out := &Enqueued{Rows: make([]QueuedMessage, len(in.Envelopes)), Replayed: make([]bool, len(in.Envelopes))}
	var bytes int64
	for i, e := range in.Envelopes {
		if in.ClientMessageID != "" {
			if q, ok := prior[directKey{sender.MemberID, e.RecipientID, in.ClientMessageID}]; ok {
				out.Rows[i], out.Replayed[i] = q, true
				continue
			}
		}
		q := QueuedMessage{ID: NewID(), MeshID: sender.MeshID, SenderMemberID: sender.MemberID, SenderPubkey: sender.Pubkey,
			RecipientMemberID: e.RecipientID, Priority: in.Priority, Nonce: e.Nonce, Ciphertext: e.Ciphertext, Bytes: r.sizes[i],
			CreatedAt: now, ExpiresAt: now.Add(in.TTL)}
		if in.ClientMessageID != "" {
			cid := in.ClientMessageID
			q.ClientMessageID = &cid
		}
		out.Rows[i] = q
		bytes += int64(r.sizes[i])
	}
	if bytes > 0 && in.MaxPendingBytes > 0 && pending[sender.MemberID]+bytes > in.MaxPendingBytes {
		return &Error{Kind: KindRateLimited, Code: "queue_full", RetryAfterSeconds: 5,
			Detail: fmt.Sprintf("you have %d bytes queued and unacknowledged; the limit is %d", pending[sender.MemberID], in.MaxPendingBytes)}
	}
	pending[sender.MemberID] += bytes
	for i, q := range out.Rows {
		if !out.Replayed[i] && q.ClientMessageID != nil {
			prior[directKey{q.SenderMemberID, q.RecipientMemberID, *q.ClientMessageID}] = q
		}
	}
	r.enqueued = out
	return nil
}

// queueRowsPerInsert bounds one message_queue INSERT below SQLite's 32,766
// bind parameters (17 columns a row).
const queueRowsPerInsert = 1000

func queueChunks(rows []QueuedMessage) [][]QueuedMessage {
	var out [][]QueuedMessage
	for len(rows) > 0 {
		n := min(len(rows), queueRowsPerInsert)
		out = append(out, rows[:n:n])
		rows = rows[n:]
	}
	return out
}

// claimOne hands one connection the recipient's next deliverable rows (see
// ClaimQueued) and returns their delivery events.
func (s *Store) claimOne(tx *gorm.DB, r *directReq, now time.Time) ([]auditIn, error) {
	in := r.claim
	sql := `SELECT q.id FROM message_queue q WHERE q.recipient_member_id = ? AND q.acked_at IS NULL AND q.expired_at IS NULL
		AND q.expires_at > ? AND q.priority IN ? AND NOT (` + liveClaim + `) ORDER BY q.id LIMIT ?`
	if s.dialect == Postgres {
		sql += " FOR UPDATE OF q SKIP LOCKED"
	}
	var ids []string
	if err := tx.Raw(sql, in.RecipientID, now, in.Priorities, in.Limit).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("claim queued messages: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if err := tx.Exec("UPDATE message_queue SET delivered_at = ?, claim_conn = ?, attempts = attempts + 1 WHERE id IN ?", now, in.ConnID, ids).Error; err != nil {
		return nil, fmt.Errorf("mark delivered: %w", err)
	}
	if err := tx.Table("message_queue AS q").Select("q.*, m.display_name AS sender_display_name").
		Joins("JOIN members m ON m.id = q.sender_member_id").Where("q.id IN ?", ids).Order("q.id").Scan(&r.claimed).Error; err != nil {
		return nil, fmt.Errorf("load claimed messages: %w", err)
	}
	evs := make([]auditIn, len(r.claimed))
	for i, q := range r.claimed {
		evs[i] = auditIn{AuditDirectDelivered, q.RecipientMemberID, q.ID, map[string]any{"senderId": q.SenderMemberID,
			"priority": q.Priority, "bytes": q.Bytes, "attempt": q.Attempts, "connId": in.ConnID}}
	}
	return evs, nil
}

// ackBatch records the batch's acks with one read and one update: a row
// counts for the first request of its recipient that names it, once
// delivered and not yet acked. It returns the ack events in request order.
func (s *Store) ackBatch(tx *gorm.DB, acks []*directReq, now time.Time) ([]auditIn, error) {
	if len(acks) == 0 {
		return nil, nil
	}
	var all []string
	for _, r := range acks {
		for _, id := range r.ids {
			all = appendNew(all, id)
		}
	}
	byID := map[string]QueuedMessage{}
	for _, ids := range chunks(all, 500) {
		var rows []QueuedMessage
		// Rows in id order, so two nodes acking the same rows lock them in
		// the same order.
		if err := s.forUpdate(tx.Select("id", "recipient_member_id", "sender_member_id", "priority", "bytes", "created_at").
			Where("id IN ? AND acked_at IS NULL AND delivered_at IS NOT NULL", ids).Order("id")).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("find acked messages: %w", err)
		}
		for _, q := range rows {
			byID[q.ID] = q
		}
	}
	var evs []auditIn
	var acked []string
	for _, r := range acks {
		for _, id := range r.ids {
			q, ok := byID[id]
			if !ok || q.RecipientMemberID != r.recipient {
				continue
			}
			delete(byID, id) // acked once, by its first naming
			acked = append(acked, id)
			r.acked++
			evs = append(evs, auditIn{AuditDirectAcked, r.recipient, id, map[string]any{"senderId": q.SenderMemberID,
				"priority": q.Priority, "bytes": q.Bytes, "latencyMs": now.Sub(q.CreatedAt).Milliseconds()}})
		}
	}
	slices.Sort(acked)
	for _, ids := range chunks(acked, 500) {
		if err := tx.Exec("UPDATE message_queue SET acked_at = ? WHERE id IN ?", now, ids).Error; err != nil {
			return nil, fmt.Errorf("ack messages: %w", err)
		}
	}
	return evs, nil
}
