package models

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// maxBatch bounds one group commit; a bigger queue is drained in several.
// Posts are batched per mesh (the mesh row lock would serialise them
// anyway), so each batch pays for one commit and a few round trips instead
// of a commit and several round trips per message.
const maxBatch = 256

// postReq is one queued post and, once committed, its outcome.
type postReq struct {
	p    *Principal
	in   PostInput
	out  *Posted
	err  error
	done chan struct{}
}

// commitBatch commits a batch in one transaction. Posts that break a rule
// are answered with their error and take no seq; the rest commit together.
// Committed messages reach the commit hook in seq order before any poster is
// answered.
func (s *Store) commitBatch(meshID string, batch []*postReq) {
	// Not tied to one request: the batch belongs to every poster in it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		committed Committed
		err       error
	)
	// A clientMessageId raced by another node fails the insert; by then the
	// other transaction has committed, so the retry sees it as a replay.
	for attempt := 0; attempt < 3; attempt++ {
		if s.dialect == Postgres {
			committed, err = s.commitPipelined(ctx, meshID, batch)
		} else {
			committed, err = s.commitTx(ctx, meshID, batch)
		}
		if !errors.Is(err, errClientIDRace) {
			break
		}
	}
	if err != nil {
		committed = Committed{}
		for _, r := range batch {
			r.out, r.err = nil, fmt.Errorf("commit messages: %w", err)
		}
	}
	if len(committed.Messages) > 0 && s.onCommit != nil {
		s.onCommit(committed)
	}
	for _, r := range batch {
		close(r.done)
	}
}

// commitTx is the portable commit: the reads, checks and writes of
// planBatch inside one GORM transaction, a statement per round trip. SQLite
// uses it (an in-process database has no round trips to save).
func (s *Store) commitTx(ctx context.Context, meshID string, batch []*postReq) (Committed, error) {
	var out Committed
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		rd, err := s.readBatch(tx, meshID, keysOf(batch))
		if err != nil {
			return err
		}
		var w *batchWrites
		out, w, err = planBatch(meshID, batch, rd, s.nowUTC())
		if err != nil || w == nil {
			return err
		}
		if err := writeBatch(tx, meshID, w); err != nil {
			return err
		}
		return s.step("batch_commit")
	})
	return out, err
}

// batchKeys are the values a batch's reads look up, each listed once.
type batchKeys struct {
	names, members, clientIDs, replyIDs []string
	// mentionTopics and mentionNames bound the mention candidates: members
	// of the topics of posts that mention anyone, with a mentioned name.
	mentionTopics, mentionNames []string
}

func keysOf(batch []*postReq) batchKeys {
	var k batchKeys
	for _, r := range batch {
		k.names = appendNew(k.names, r.in.Topic)
		k.members = appendNew(k.members, r.p.MemberID)
		if r.in.ClientMessageID != "" {
			k.clientIDs = appendNew(k.clientIDs, r.in.ClientMessageID)
		}
		if r.in.ReplyToID != "" {
			k.replyIDs = appendNew(k.replyIDs, r.in.ReplyToID)
		}
		if len(r.in.Mentions) > 0 {
			k.mentionTopics = appendNew(k.mentionTopics, r.in.Topic)
			for _, n := range r.in.Mentions {
				k.mentionNames = appendNew(k.mentionNames, n)
			}
		}
	}
	return k
}

// batchReads is what a batch reads once, under the mesh row lock.
type batchReads struct {
	lastSeq, lastAuditSeq int64
	auditHead             string                     // hash of event lastAuditSeq; genesis when there is none
	topics                map[string]*Topic          // by name
	subs                  map[[2]string]*TopicMember // by (topic id, member id)
	replays               map[[2]string]*MessageRow  // by (sender id, client id)
	replyTos              map[string]string          // message id → topic id
	mentions              []mentionRow               // in member-id order
}

func newBatchReads() *batchReads {
	return &batchReads{topics: map[string]*Topic{}, subs: map[[2]string]*TopicMember{}, replays: map[[2]string]*MessageRow{},
		replyTos: map[string]string{}}
}

// mentionRow is a live member of a topic whose display name a post mentions.
type mentionRow struct {
	TopicID     string
	MemberID    string
	DisplayName string
}

// batchWrites is what a batch writes: the mesh row's new counters and the
// rows to insert.
type batchWrites struct {
	lastSeq, lastAuditSeq int64
	msgs                  []Message
	notes                 []Notification
	audit                 []AuditEvent
}

// notesPerInsert bounds one notification INSERT: a full batch (256 posts
// × 16 mentions × 9 columns) would pass SQLite's 32,766 bind parameters.
const notesPerInsert = 1000

// noteChunks splits notifications into INSERT-sized runs.
func noteChunks(notes []Notification) [][]Notification {
	var out [][]Notification
	for len(notes) > 0 {
		n := min(len(notes), notesPerInsert)
		out = append(out, notes[:n:n])
		notes = notes[n:]
	}
	return out
}

// Committed is what one group commit wrote, in seq order: the stream hub
// fans it out and the NATS bridge forwards it to the other nodes.
type Committed struct {
	MeshID        string
	Messages      []MessageRow
	Notifications []NotificationRow
}

// planBatch checks every post against the state read once for the batch
// and builds the rows the accepted ones write, with consecutive seqs after
// the mesh's last and audit events linked to the chain's head. It answers
// refused posts and replays through r.err and r.out; the writes are nil when
// nothing is accepted. It reads nothing, so both commit paths share it.
func planBatch(meshID string, batch []*postReq, rd *batchReads, now time.Time) (Committed, *batchWrites, error) {
	out := Committed{MeshID: meshID}
	var accepted []*postReq
	topicOf := map[*postReq]*Topic{}
	seen := map[[2]string]*postReq{} // first post of each (sender, clientMessageId)
	var dups [][2]*postReq           // later copies in the same batch, with their first
	for _, r := range batch {
		r.out, r.err = nil, nil
		t, err := rd.check(r)
		if err != nil {
			r.err = err
			continue
		}
		if r.out != nil { // replay of a committed message
			continue
		}
		if cid := r.in.ClientMessageID; cid != "" {
			k := [2]string{r.p.MemberID, cid}
			if first, dup := seen[k]; dup {
				if first.in.Topic != r.in.Topic {
					r.err = E(KindConflict, "client_message_id_reused", "clientMessageId %q was already used for a message in #%s", cid, first.in.Topic)
					continue
				}
				dups = append(dups, [2]*postReq{r, first})
				continue
			}
			seen[k] = r
		}
		topicOf[r] = t
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		return out, nil, nil
	}
	n := int64(len(accepted))
	w := &batchWrites{lastSeq: rd.lastSeq + n, lastAuditSeq: rd.lastAuditSeq + n, msgs: make([]Message, n)}
	audit := make([]auditIn, n)
	for i, r := range accepted {
		m := &w.msgs[i]
		*m = Message{ID: NewID(), MeshID: meshID, TopicID: topicOf[r].ID, Seq: rd.lastSeq + 1 + int64(i), SenderMemberID: r.p.MemberID,
			SenderPubkey: r.p.Pubkey, Nonce: r.in.Nonce, Ciphertext: r.in.Ciphertext, BodyVersion: r.in.BodyVersion, Priority: r.in.Priority, CreatedAt: now}
		if r.in.BodyVersion == 2 {
			m.KeyEpoch = topicOf[r].KeyEpoch
		}
		if r.in.ReplyToID != "" {
			m.ReplyToID = &r.in.ReplyToID
		}
		if r.in.ClientMessageID != "" {
			m.ClientMessageID = &r.in.ClientMessageID
		}
		notified := rd.mentioned(r, m.TopicID)
		for _, rcpt := range notified {
			w.notes = append(w.notes, Notification{ID: NewID(), MeshID: meshID, TopicID: m.TopicID, MessageID: m.ID, RecipientMemberID: rcpt,
				SenderMemberID: m.SenderMemberID, Kind: NotificationMention, CreatedAt: now})
		}
		r.out = &Posted{Row: MessageRow{Message: *m, TopicName: topicOf[r].Name, SenderDisplayName: r.p.DisplayName}, Notified: len(notified)}
		audit[i] = auditIn{kind: AuditMessageSent, actor: m.SenderMemberID, target: m.ID, meta: messageAudit{
			BodyVersion: m.BodyVersion, Bytes: base64.StdEncoding.DecodedLen(len(m.Ciphertext)), Notified: len(notified),
			Seq: m.Seq, TopicID: m.TopicID}}
	}
	var err error
	if w.audit, err = chainAudit(meshID, rd.auditHead, rd.lastAuditSeq+1, now, audit); err != nil {
		return out, nil, err
	}
	// In-batch duplicates answer with the message their first copy made.
	for _, d := range dups {
		d[0].out = &Posted{Row: d[1].out.Row, Replayed: true}
	}
	out.Messages = make([]MessageRow, len(accepted))
	byID := map[string]*MessageRow{}
	for i, r := range accepted {
		out.Messages[i] = r.out.Row
		byID[r.out.Row.ID] = &out.Messages[i]
	}
	for _, n := range w.notes {
		m := byID[n.MessageID]
		out.Notifications = append(out.Notifications, NotificationRow{Notification: n, TopicName: m.TopicName,
			SenderDisplayName: m.SenderDisplayName, Seq: m.Seq, BodyVersion: m.BodyVersion, KeyEpoch: m.KeyEpoch, Ciphertext: m.Ciphertext, Nonce: m.Nonce})
	}
	return out, w, nil
}

// mentioned lists the members post r notifies: live members of its topic
// named in its mention list, never the sender, at most
// MaxNotificationsPerMsg, in member-id order.
func (rd *batchReads) mentioned(r *postReq, topicID string) []string {
	var out []string
	for _, row := range rd.mentions {
		if row.TopicID == topicID && row.MemberID != r.p.MemberID && slices.Contains(r.in.Mentions, row.DisplayName) &&
			len(out) < MaxNotificationsPerMsg {
			out = append(out, row.MemberID)
		}
	}
	return out
}

// readBatch reads, one query each, what planBatch needs: the mesh row's
// counters (locked first on PostgreSQL: key rotations, removals and archives
// append audit events under the same lock, so a post can never commit with
// a key epoch or membership that a committed rotation replaced), the
// topics, subscriptions, earlier clientMessageIds, reply targets, mention
// candidates and the audit chain's head.
func (s *Store) readBatch(tx *gorm.DB, meshID string, k batchKeys) (*batchReads, error) {
	rd := newBatchReads()
	var mesh Mesh
	if err := s.forUpdate(tx.Select("last_seq", "last_audit_seq")).Where("id = ?", meshID).Take(&mesh).Error; err != nil {
		return nil, fmt.Errorf("lock mesh: %w", err)
	}
	rd.lastSeq, rd.lastAuditSeq = mesh.LastSeq, mesh.LastAuditSeq
	var topics []Topic
	if err := tx.Where("mesh_id = ? AND name IN ?", meshID, k.names).Find(&topics).Error; err != nil {
		return nil, fmt.Errorf("load topics: %w", err)
	}
	var topicIDs []string
	for i := range topics {
		rd.topics[topics[i].Name] = &topics[i]
		topicIDs = append(topicIDs, topics[i].ID)
	}
	if len(topicIDs) > 0 {
		var subs []TopicMember
		if err := tx.Where("topic_id IN ? AND member_id IN ?", topicIDs, k.members).Find(&subs).Error; err != nil {
			return nil, fmt.Errorf("load subscriptions: %w", err)
		}
		for i := range subs {
			rd.subs[[2]string{subs[i].TopicID, subs[i].MemberID}] = &subs[i]
		}
	}
	if len(k.clientIDs) > 0 {
		var rows []MessageRow
		if err := messageRows(tx).Where("msg.sender_member_id IN ? AND msg.client_message_id IN ?", k.members, k.clientIDs).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("load earlier client ids: %w", err)
		}
		for i := range rows {
			rd.replays[[2]string{rows[i].SenderMemberID, *rows[i].ClientMessageID}] = &rows[i]
		}
	}
	if len(k.replyIDs) > 0 {
		var rows []struct{ ID, TopicID string }
		if err := tx.Raw("SELECT id, topic_id FROM messages WHERE id IN ?", k.replyIDs).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("load reply targets: %w", err)
		}
		for _, r := range rows {
			rd.replyTos[r.ID] = r.TopicID
		}
	}
	if len(k.mentionNames) > 0 {
		err := tx.Raw(`SELECT tm.topic_id, m.id AS member_id, m.display_name FROM topic_members tm
			JOIN members m ON m.id = tm.member_id JOIN topics t ON t.id = tm.topic_id
			WHERE t.mesh_id = ? AND t.name IN ? AND m.revoked_at IS NULL AND m.display_name IN ? ORDER BY m.id`,
			meshID, k.mentionTopics, k.mentionNames).Scan(&rd.mentions).Error
		if err != nil {
			return nil, fmt.Errorf("resolve mentions: %w", err)
		}
	}
	head, err := auditPrevHash(tx, meshID, rd.lastAuditSeq+1)
	if err != nil {
		return nil, err
	}
	rd.auditHead = head
	return rd, nil
}

// writeBatch stores a plan: the mesh row's counters, then one multi-row
// insert per table.
func writeBatch(tx *gorm.DB, meshID string, w *batchWrites) error {
	if err := tx.Exec("UPDATE meshes SET last_seq = ?, last_audit_seq = ? WHERE id = ?", w.lastSeq, w.lastAuditSeq, meshID).Error; err != nil {
		return fmt.Errorf("allocate seqs: %w", err)
	}
	if err := tx.Create(&w.msgs).Error; err != nil {
		if isUniqueViolation(err) {
			return errClientIDRace
		}
		return fmt.Errorf("insert messages: %w", err)
	}
	for _, chunk := range noteChunks(w.notes) {
		if err := tx.Create(&chunk).Error; err != nil {
			return fmt.Errorf("insert notifications: %w", err)
		}
	}
	if err := tx.Create(&w.audit).Error; err != nil {
		return fmt.Errorf("insert audit events: %w", err)
	}
	return nil
}

// check applies the posting rules to one request. It returns the topic, or
// sets r.out for a replay of an already committed message.
func (rd *batchReads) check(r *postReq) (*Topic, error) {
	p, in := r.p, r.in
	t := rd.topics[in.Topic]
	if t == nil || !inScope(p, in.Topic) {
		return nil, errTopicNotFound
	}
	sub := rd.subs[[2]string{t.ID, p.MemberID}]
	if sub == nil && t.Visibility != VisibilityPublic {
		return nil, errTopicNotFound
	}
	if in.ClientMessageID != "" {
		if orig := rd.replays[[2]string{p.MemberID, in.ClientMessageID}]; orig != nil {
			if orig.TopicID != t.ID {
				return nil, E(KindConflict, "client_message_id_reused", "clientMessageId %q was already used for a message in #%s", in.ClientMessageID, orig.TopicName)
			}
			r.out = &Posted{Row: *orig, Replayed: true}
			return t, nil
		}
	}
	switch {
	case sub == nil:
		return nil, errNotTopicMem
	case sub.Role == TopicRoleObserver:
		return nil, E(KindForbidden, "observer", "observers of #%s may not post", t.Name)
	case t.ArchivedAt != nil:
		return nil, E(KindConflict, "topic_archived", "#%s is archived", t.Name)
	case t.Keyed() && in.BodyVersion == 1:
		return nil, E(KindConflict, "plaintext_on_keyed_topic", "#%s is end-to-end encrypted: send bodyVersion 2", t.Name)
	}
	if err := checkKeyEpoch(t, in); err != nil {
		return nil, err
	}
	if in.ReplyToID != "" && rd.replyTos[in.ReplyToID] != t.ID {
		return nil, Invalid(FieldError{"replyToId", "is not a message of this topic"})
	}
	return t, nil
}

// messageAudit is a message.sent event's metadata: sizes and ids only.
type messageAudit struct {
	BodyVersion int    `json:"bodyVersion"`
	Bytes       int    `json:"bytes"`
	Notified    int    `json:"notified"`
	Seq         int64  `json:"seq"`
	TopicID     string `json:"topicId"`
}

// appendNew appends s unless list holds it already.
func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// checkKeyEpoch requires a v2 post to a keyed topic to name the topic's
// current key epoch (an omitted epoch means 1, what clients older than
// epochs encrypt with) and that epoch's key to be claimed. A mismatch is a
// 409 carrying the current epoch, so the client can fetch that key.
func checkKeyEpoch(t *Topic, in PostInput) error {
	if in.BodyVersion != 2 {
		return nil
	}
	want := in.KeyEpoch
	if want == 0 && t.Keyed() {
		want = 1
	}
	if want != t.KeyEpoch {
		e := E(KindConflict, "key_epoch_mismatch", "#%s is at key epoch %d; encrypt with that epoch's key", t.Name, t.KeyEpoch)
		e.Extra = map[string]any{"keyEpoch": t.KeyEpoch}
		return e
	}
	if t.Keyed() && !t.KeyClaimed() {
		e := E(KindConflict, "topic_key_unclaimed", "#%s has a new key epoch %d that nobody has claimed yet; claim it first", t.Name, t.KeyEpoch)
		e.Extra = map[string]any{"keyEpoch": t.KeyEpoch}
		return e
	}
	return nil
}
