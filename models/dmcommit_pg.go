package models

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// directPipelined is the PostgreSQL direct-message batch in two pipelined
// round trips (the GORM path, directBatch, takes a dozen). The first opens
// the transaction, runs every ack and claim as one UPDATE … RETURNING each
// (in request order, so an ack lands before a later claim), reads what the
// sends need (live recipients, earlier clientMessageIds, unacked bytes) and
// lastly locks the mesh row and reads the audit chain's head. The sends are
// then decided in memory, as in directBatch; the second round trip inserts
// the queued rows and the audit events (acks, claims, then sends: the order
// they ran in), moves the chain's counter and commits. The mesh row is locked from the end of the first round trip to
// the commit: never across a client's request or a push.
//
// Within the batch a claim does not see rows sent in the same batch (they
// are inserted after it); their senders wake the recipient once committed,
// and that claim takes them.
func (s *Store) directPipelined(ctx context.Context, meshID string, batch []*directReq) error {
	return s.onPgConn(ctx, func(pc *pgx.Conn) error { return s.directPipeline(ctx, pc, meshID, batch) })
}

// queueCols are message_queue's columns in QueuedMessage's field order.
const queueCols = `q.id, q.mesh_id, q.sender_member_id, q.sender_pubkey, q.recipient_member_id, q.priority, q.nonce, q.ciphertext, q.bytes,
	q.client_message_id, q.created_at, q.delivered_at, q.acked_at, q.expires_at, q.expired_at, q.attempts, q.claim_conn`

func scanQueued(r pgx.CollectableRow, q *QueuedMessage, extra ...any) error {
	dst := append([]any{&q.ID, &q.MeshID, &q.SenderMemberID, &q.SenderPubkey, &q.RecipientMemberID, &q.Priority, &q.Nonce, &q.Ciphertext,
		&q.Bytes, &q.ClientMessageID, &q.CreatedAt, &q.DeliveredAt, &q.AckedAt, &q.ExpiresAt, &q.ExpiredAt, &q.Attempts, &q.ClaimConn}, extra...)
	if err := r.Scan(dst...); err != nil {
		return err
	}
	utc := func(t *time.Time) {
		if t != nil {
			*t = t.UTC()
		}
	}
	q.CreatedAt, q.ExpiresAt = q.CreatedAt.UTC(), q.ExpiresAt.UTC()
	utc(q.DeliveredAt)
	utc(q.AckedAt)
	utc(q.ExpiredAt)
	return nil
}

func (s *Store) directPipeline(ctx context.Context, pc *pgx.Conn, meshID string, batch []*directReq) error {
	now := s.nowUTC()
	var enqs []*directReq
	for _, r := range batch {
		if r.kind == directEnqueue {
			enqs = append(enqs, r)
		}
	}
	recipients, senders, cids, bounded := enqueueKeys(enqs)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	for _, r := range batch {
		switch r.kind {
		case directAck:
			b.Queue(`UPDATE message_queue SET acked_at = $1 WHERE id = ANY($2) AND recipient_member_id = $3 AND acked_at IS NULL
				AND delivered_at IS NOT NULL RETURNING id, sender_member_id, priority, bytes, created_at`, now, r.ids, r.recipient)
		case directClaim:
			in := r.claim
			b.Queue(`UPDATE message_queue q SET delivered_at = $1, claim_conn = $2, attempts = q.attempts + 1 FROM members m
				WHERE m.id = q.sender_member_id AND q.id IN (SELECT q.id FROM message_queue q WHERE q.recipient_member_id = $3
					AND q.acked_at IS NULL AND q.expired_at IS NULL AND q.expires_at > $1 AND q.priority = ANY($4)
					AND NOT (`+liveClaim+`) ORDER BY q.id LIMIT $5 FOR UPDATE OF q SKIP LOCKED)
				RETURNING `+queueCols+`, m.display_name`, now, in.ConnID, in.RecipientID, in.Priorities, in.Limit)
		}
	}
	if len(enqs) > 0 {
		b.Queue("SELECT id FROM members WHERE mesh_id = $1 AND id = ANY($2) AND revoked_at IS NULL", meshID, recipients)
		if len(cids) > 0 {
			b.Queue("SELECT "+queueCols+" FROM message_queue q WHERE q.sender_member_id = ANY($1) AND q.recipient_member_id = ANY($2)"+
				" AND q.client_message_id = ANY($3)", senders, recipients, cids)
		}
		if len(bounded) > 0 {
			b.Queue(`SELECT sender_member_id, COALESCE(SUM(bytes), 0) FROM message_queue
				WHERE sender_member_id = ANY($1) AND acked_at IS NULL AND expired_at IS NULL GROUP BY sender_member_id`, bounded)
		}
	}
	// Last: the lock, then the head under it (its own snapshot, after the
	// lock was granted, so it sees the previous holder's events).
	b.Queue("SELECT last_audit_seq FROM meshes WHERE id = $1 FOR UPDATE", meshID)
	b.Queue(`SELECT hash FROM audit_events WHERE mesh_id = $1 AND seq = (SELECT last_audit_seq FROM meshes WHERE id = $1)`, meshID)

	var ackEvs, claimEvs []auditIn
	live := map[string]bool{}
	prior := map[directKey]QueuedMessage{}
	pending := map[string]int64{}
	var lastSeq int64
	var head string
	err := func() error {
		br := pc.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		for _, r := range batch {
			switch r.kind {
			case directAck:
				rows, err := collect(br, func(row pgx.CollectableRow) (QueuedMessage, error) {
					var q QueuedMessage
					err := row.Scan(&q.ID, &q.SenderMemberID, &q.Priority, &q.Bytes, &q.CreatedAt)
					return q, err
				})
				if err != nil {
					return fmt.Errorf("ack messages: %w", err)
				}
				slices.SortFunc(rows, func(a, b QueuedMessage) int { return cmpString(a.ID, b.ID) })
				r.acked = len(rows)
				for _, q := range rows {
					ackEvs = append(ackEvs, auditIn{AuditDirectAcked, r.recipient, q.ID, map[string]any{"senderId": q.SenderMemberID,
						"priority": q.Priority, "bytes": q.Bytes, "latencyMs": now.Sub(q.CreatedAt).Milliseconds()}})
				}
			case directClaim:
				rows, err := collect(br, func(row pgx.CollectableRow) (QueuedRow, error) {
					var q QueuedRow
					err := scanQueued(row, &q.QueuedMessage, &q.SenderDisplayName)
					return q, err
				})
				if err != nil {
					return fmt.Errorf("claim queued messages: %w", err)
				}
				slices.SortFunc(rows, func(a, b QueuedRow) int { return cmpString(a.ID, b.ID) })
				r.claimed = rows
				for _, q := range rows {
					claimEvs = append(claimEvs, auditIn{AuditDirectDelivered, q.RecipientMemberID, q.ID, map[string]any{"senderId": q.SenderMemberID,
						"priority": q.Priority, "bytes": q.Bytes, "attempt": q.Attempts, "connId": r.claim.ConnID}})
				}
			}
		}
		if len(enqs) > 0 {
			ids, err := collect(br, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("find recipients: %w", err)
			}
			for _, id := range ids {
				live[id] = true
			}
			if len(cids) > 0 {
				rows, err := collect(br, func(row pgx.CollectableRow) (QueuedMessage, error) {
					var q QueuedMessage
					err := scanQueued(row, &q)
					return q, err
				})
				if err != nil {
					return fmt.Errorf("find earlier sends: %w", err)
				}
				for _, q := range rows {
					prior[directKey{q.SenderMemberID, q.RecipientMemberID, *q.ClientMessageID}] = q
				}
			}
			if len(bounded) > 0 {
				rows, err := collect(br, func(row pgx.CollectableRow) (struct {
					id string
					n  int64
				}, error) {
					var v struct {
						id string
						n  int64
					}
					err := row.Scan(&v.id, &v.n)
					return v, err
				})
				if err != nil {
					return fmt.Errorf("sum queued bytes: %w", err)
				}
				for _, v := range rows {
					pending[v.id] = v.n
				}
			}
		}
		if err := br.QueryRow().Scan(&lastSeq); err != nil {
			return fmt.Errorf("lock mesh: %w", err)
		}
		heads, err := collect(br, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("audit prev hash: %w", err)
		}
		switch {
		case len(heads) == 1:
			head = heads[0]
		case lastSeq == 0:
			head = genesisHash
		default:
			return fmt.Errorf("audit chain of mesh %s has no event %d", meshID, lastSeq)
		}
		return br.Close()
	}()
	if err != nil {
		return err
	}

	var fresh []QueuedMessage
	var evs []auditIn
	for _, r := range enqs {
		if r.err = planEnqueue(r, live, prior, pending, now); r.err != nil {
			continue
		}
		for i, q := range r.enqueued.Rows {
			if !r.enqueued.Replayed[i] {
				fresh = append(fresh, q)
				evs = append(evs, auditIn{AuditDirectQueued, q.SenderMemberID, q.ID, map[string]any{"recipientId": q.RecipientMemberID,
					"priority": q.Priority, "bytes": q.Bytes, "broadcast": r.enq.Broadcast}})
			}
		}
	}
	evs = append(append(ackEvs, claimEvs...), evs...)
	if err := s.step("direct_commit"); err != nil {
		return err
	}
	w := &pgx.Batch{}
	var steps []string
	for _, rows := range queueChunks(fresh) {
		s.queueInsert(w, &rows)
		steps = append(steps, "queue messages")
	}
	if len(evs) > 0 {
		if err := s.step("audit_chain"); err != nil {
			return err
		}
		chain, err := chainAudit(meshID, head, lastSeq+1, now, evs)
		if err != nil {
			return err
		}
		w.Queue("UPDATE meshes SET last_audit_seq = $1 WHERE id = $2", lastSeq+int64(len(evs)), meshID)
		steps = append(steps, "audit seq")
		for _, c := range auditChunks(chain) {
			s.queueInsert(w, &c)
			steps = append(steps, "insert audit events")
		}
	}
	w.Queue("COMMIT")
	br := pc.SendBatch(ctx, w)
	defer br.Close()
	for _, step := range steps {
		if _, err := br.Exec(); err != nil {
			if step == "queue messages" && isUniqueViolation(err) {
				return errQueueRace
			}
			return fmt.Errorf("%s: %w", step, err)
		}
	}
	// COMMIT of an aborted transaction answers ROLLBACK, not an error.
	tag, err := br.Exec()
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if tag.String() != "COMMIT" {
		return errors.New("commit: the transaction was rolled back")
	}
	return br.Close()
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
