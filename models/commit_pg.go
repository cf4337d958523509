package models

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
)

// commitPipelined is the PostgreSQL commit: the same reads, checks and
// writes as commitTx in two round trips instead of one per statement. The
// first pipeline opens the transaction, locks the mesh row and runs every
// read; planBatch decides in memory; the second pipeline writes and
// commits. On loopback a round trip costs about as much as the statement
// it carries, so a batch of one went from ten round trips to two.
//
// The statements go through pgx's batch API on the pool's own connection
// (database/sql cannot pipeline); the INSERTs are the ones GORM builds for
// the models, so the column lists have one source.
func (s *Store) commitPipelined(ctx context.Context, meshID string, batch []*postReq) (Committed, error) {
	var out Committed
	err := s.onPgConn(ctx, func(pc *pgx.Conn) (err error) {
		out, err = s.pipelineBatch(ctx, pc, meshID, batch)
		return err
	})
	return out, err
}

// onPgConn runs fn on one of the pool's connections as a pgx connection
// (database/sql cannot pipeline). fn's transaction is fn's to commit: one
// that an error left open or aborted is rolled back here, or the pool
// discards the connection.
func (s *Store) onPgConn(ctx context.Context, fn func(pc *pgx.Conn) error) error {
	conn, err := s.sqlDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("database connection: %w", err)
	}
	defer conn.Close()
	var fnErr error
	rawErr := conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		fnErr = fn(pc)
		if pc.PgConn().TxStatus() != 'I' {
			if _, err := pc.Exec(ctx, "ROLLBACK"); err != nil {
				return driver.ErrBadConn
			}
		}
		return nil
	})
	if fnErr == nil && rawErr != nil {
		fnErr = fmt.Errorf("database connection: %w", rawErr)
	}
	return fnErr
}

// pipelineBatch runs one batch on pc; on error the caller ends the
// transaction.
func (s *Store) pipelineBatch(ctx context.Context, pc *pgx.Conn, meshID string, batch []*postReq) (Committed, error) {
	rd, err := pipelineReads(ctx, pc, meshID, keysOf(batch))
	if err != nil {
		return Committed{MeshID: meshID}, err
	}
	out, w, err := planBatch(meshID, batch, rd, s.nowUTC())
	if err != nil {
		return out, err
	}
	if err := s.step("batch_commit"); err != nil {
		return out, err
	}
	b := &pgx.Batch{}
	if w != nil {
		b.Queue("UPDATE meshes SET last_seq = $1, last_audit_seq = $2 WHERE id = $3", w.lastSeq, w.lastAuditSeq, meshID)
		s.queueInsert(b, &w.msgs)
		for _, chunk := range noteChunks(w.notes) {
			s.queueInsert(b, &chunk)
		}
		s.queueInsert(b, &w.audit)
	}
	b.Queue("COMMIT")
	br := pc.SendBatch(ctx, b)
	defer br.Close()
	if w != nil {
		steps := []string{"allocate seqs", "insert messages"}
		for range noteChunks(w.notes) {
			steps = append(steps, "insert notifications")
		}
		steps = append(steps, "insert audit events")
		for _, step := range steps {
			if _, err := br.Exec(); err != nil {
				if step == "insert messages" && isUniqueViolation(err) {
					return out, errClientIDRace
				}
				return out, fmt.Errorf("%s: %w", step, err)
			}
		}
	}
	// COMMIT of an aborted transaction answers ROLLBACK, not an error.
	tag, err := br.Exec()
	if err != nil {
		return out, fmt.Errorf("commit: %w", err)
	}
	if tag.String() != "COMMIT" {
		return out, errors.New("commit: the transaction was rolled back")
	}
	return out, br.Close()
}

// queueInsert queues the multi-row INSERT GORM builds for rows (a pointer
// to a slice of models) without running it.
func (s *Store) queueInsert(b *pgx.Batch, rows any) {
	st := s.db.Session(&gorm.Session{DryRun: true}).Create(rows).Statement
	b.Queue(st.SQL.String(), st.Vars...)
}

// pipelineReads opens the transaction and reads what planBatch needs in one
// round trip. The mesh row lock comes first; each later statement takes its
// own snapshot (READ COMMITTED), so it sees everything committed before the
// lock was granted.
func pipelineReads(ctx context.Context, pc *pgx.Conn, meshID string, k batchKeys) (*batchReads, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SELECT last_seq, last_audit_seq FROM meshes WHERE id = $1 FOR UPDATE", meshID)
	b.Queue(`SELECT id, mesh_id, name, description, visibility, encrypted_key_pubkey, key_epoch, created_by_member_id, created_at, archived_at
		FROM topics WHERE mesh_id = $1 AND name = ANY($2)`, meshID, k.names)
	b.Queue(`SELECT tm.topic_id, tm.member_id, tm.role, tm.joined_at, tm.last_read_seq FROM topic_members tm JOIN topics t ON t.id = tm.topic_id
		WHERE t.mesh_id = $1 AND t.name = ANY($2) AND tm.member_id = ANY($3)`, meshID, k.names, k.members)
	// A scalar subquery, not a join with meshes: with the join, ingest at
	// 16 clients fell to half over a 6,000-message run while the database
	// spent three times the CPU per post (most likely a plan chosen while
	// the chain was short, kept for the life of the prepared statement);
	// this form is a probe of the unique (mesh_id, seq) index at any size.
	b.Queue(`SELECT hash FROM audit_events WHERE mesh_id = $1 AND seq = (SELECT last_audit_seq FROM meshes WHERE id = $1)`, meshID)
	if len(k.clientIDs) > 0 {
		b.Queue(`SELECT msg.id, msg.mesh_id, msg.topic_id, msg.seq, msg.sender_member_id, msg.sender_pubkey, msg.nonce, msg.ciphertext,
			msg.body_version, msg.key_epoch, msg.priority, msg.reply_to_id, msg.client_message_id, msg.created_at, t.name, mem.display_name
			FROM messages msg JOIN topics t ON t.id = msg.topic_id JOIN members mem ON mem.id = msg.sender_member_id
			WHERE msg.sender_member_id = ANY($1) AND msg.client_message_id = ANY($2)`, k.members, k.clientIDs)
	}
	if len(k.replyIDs) > 0 {
		b.Queue("SELECT id, topic_id FROM messages WHERE id = ANY($1)", k.replyIDs)
	}
	if len(k.mentionNames) > 0 {
		b.Queue(`SELECT tm.topic_id, m.id, m.display_name FROM topic_members tm
			JOIN members m ON m.id = tm.member_id JOIN topics t ON t.id = tm.topic_id
			WHERE t.mesh_id = $1 AND t.name = ANY($2) AND m.revoked_at IS NULL AND m.display_name = ANY($3) ORDER BY m.id`,
			meshID, k.mentionTopics, k.mentionNames)
	}
	br := pc.SendBatch(ctx, b)
	defer br.Close()
	rd := newBatchReads()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	if err := br.QueryRow().Scan(&rd.lastSeq, &rd.lastAuditSeq); err != nil {
		return nil, fmt.Errorf("lock mesh: %w", err)
	}
	topics, err := collect(br, func(r pgx.CollectableRow) (Topic, error) {
		var t Topic
		err := r.Scan(&t.ID, &t.MeshID, &t.Name, &t.Description, &t.Visibility, &t.EncryptedKeyPubkey, &t.KeyEpoch, &t.CreatedByMemberID,
			&t.CreatedAt, &t.ArchivedAt)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("load topics: %w", err)
	}
	for i := range topics {
		topics[i].CreatedAt = topics[i].CreatedAt.UTC()
		rd.topics[topics[i].Name] = &topics[i]
	}
	subs, err := collect(br, func(r pgx.CollectableRow) (TopicMember, error) {
		var m TopicMember
		err := r.Scan(&m.TopicID, &m.MemberID, &m.Role, &m.JoinedAt, &m.LastReadSeq)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("load subscriptions: %w", err)
	}
	for i := range subs {
		rd.subs[[2]string{subs[i].TopicID, subs[i].MemberID}] = &subs[i]
	}
	heads, err := collect(br, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("audit prev hash: %w", err)
	}
	switch {
	case len(heads) == 1:
		rd.auditHead = heads[0]
	case rd.lastAuditSeq == 0:
		rd.auditHead = genesisHash
	default:
		return nil, fmt.Errorf("audit chain of mesh %s has no event %d", meshID, rd.lastAuditSeq)
	}
	if len(k.clientIDs) > 0 {
		rows, err := collect(br, func(r pgx.CollectableRow) (MessageRow, error) {
			var m MessageRow
			err := r.Scan(&m.ID, &m.MeshID, &m.TopicID, &m.Seq, &m.SenderMemberID, &m.SenderPubkey, &m.Nonce, &m.Ciphertext, &m.BodyVersion,
				&m.KeyEpoch, &m.Priority, &m.ReplyToID, &m.ClientMessageID, &m.CreatedAt, &m.TopicName, &m.SenderDisplayName)
			m.CreatedAt = m.CreatedAt.UTC()
			return m, err
		})
		if err != nil {
			return nil, fmt.Errorf("load earlier client ids: %w", err)
		}
		for i := range rows {
			rd.replays[[2]string{rows[i].SenderMemberID, *rows[i].ClientMessageID}] = &rows[i]
		}
	}
	if len(k.replyIDs) > 0 {
		rows, err := collect(br, func(r pgx.CollectableRow) ([2]string, error) {
			var v [2]string
			err := r.Scan(&v[0], &v[1])
			return v, err
		})
		if err != nil {
			return nil, fmt.Errorf("load reply targets: %w", err)
		}
		for _, r := range rows {
			rd.replyTos[r[0]] = r[1]
		}
	}
	if len(k.mentionNames) > 0 {
		if rd.mentions, err = collect(br, pgx.RowToStructByPos[mentionRow]); err != nil {
			return nil, fmt.Errorf("resolve mentions: %w", err)
		}
	}
	return rd, br.Close()
}

// collect reads the next result of a pipeline as rows.
func collect[T any](br pgx.BatchResults, fn pgx.RowToFunc[T]) ([]T, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, fn)
}
