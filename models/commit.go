package models

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"gorm.io/gorm"
)

// maxBatch bounds one group commit; a bigger queue is drained in several.
const maxBatch = 256

// postReq is one queued post and, once committed, its outcome.
type postReq struct {
	p    *Principal
	in   PostInput
	out  *Posted
	err  error
	done chan struct{}
}

// committer batches concurrent posts per mesh into one transaction. The
// first post to find a mesh idle starts a drain goroutine; it commits what
// is queued, then whatever queued meanwhile, and exits when the queue is
// empty. Posts to one mesh therefore commit strictly one batch after
// another (the mesh row lock would serialise them anyway), and each batch
// pays for one commit and a handful of statements instead of several
// round trips and a commit per message.
type committer struct {
	s       *Store
	mu      sync.Mutex
	queues  map[string][]*postReq
	running map[string]bool
	wg      sync.WaitGroup
}

func newCommitter(s *Store) *committer {
	return &committer{s: s, queues: map[string][]*postReq{}, running: map[string]bool{}}
}

func (c *committer) submit(meshID string, r *postReq) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queues[meshID] = append(c.queues[meshID], r)
	if !c.running[meshID] {
		c.running[meshID] = true
		c.wg.Add(1)
		go c.drain(meshID)
	}
}

func (c *committer) drain(meshID string) {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		q := c.queues[meshID]
		if len(q) == 0 {
			delete(c.queues, meshID)
			delete(c.running, meshID)
			c.mu.Unlock()
			return
		}
		n := min(len(q), maxBatch)
		batch := q[:n:n]
		c.queues[meshID] = q[n:]
		c.mu.Unlock()
		c.s.commitBatch(meshID, batch)
	}
}

// wait blocks until every drain has finished (Store.Close).
func (c *committer) wait() { c.wg.Wait() }

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
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var werr error
			committed, werr = s.writeBatch(tx, meshID, batch)
			if werr != nil {
				return werr
			}
			return s.step("batch_commit")
		})
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

// batchReads is what writeBatch looks up once for the whole batch.
type batchReads struct {
	topics   map[string]*Topic          // by name
	subs     map[[2]string]*TopicMember // by (topic id, member id)
	replays  map[[2]string]*MessageRow  // by (sender id, client id)
	replyTos map[string]string          // message id → topic id
}

// Committed is what one group commit wrote, in seq order: the stream hub
// fans it out and the NATS bridge forwards it to the other nodes.
type Committed struct {
	MeshID        string
	Messages      []MessageRow
	Notifications []NotificationRow
}

// writeBatch checks every post against the state read once for the batch,
// then writes the accepted ones with one seq allocation and one multi-row
// insert per table.
func (s *Store) writeBatch(tx *gorm.DB, meshID string, batch []*postReq) (Committed, error) {
	out := Committed{MeshID: meshID}
	rd, err := s.readBatch(tx, meshID, batch)
	if err != nil {
		return out, err
	}
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
		return out, nil
	}
	mentioned, err := s.resolveMentions(tx, accepted, topicOf)
	if err != nil {
		return out, err
	}
	var seqs struct {
		LastSeq      int64
		LastAuditSeq int64
	}
	n := int64(len(accepted))
	if err := tx.Raw("UPDATE meshes SET last_seq = last_seq + ?, last_audit_seq = last_audit_seq + ? WHERE id = ? RETURNING last_seq, last_audit_seq", n, n, meshID).
		Scan(&seqs).Error; err != nil {
		return out, fmt.Errorf("allocate seqs: %w", err)
	}
	now := s.nowUTC()
	msgs := make([]Message, len(accepted))
	var notes []Notification
	for i, r := range accepted {
		m := &msgs[i]
		*m = Message{ID: NewID(), MeshID: meshID, TopicID: topicOf[r].ID, Seq: seqs.LastSeq - n + 1 + int64(i), SenderMemberID: r.p.MemberID,
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
		for _, rcpt := range mentioned[r] {
			notes = append(notes, Notification{ID: NewID(), MeshID: meshID, TopicID: m.TopicID, MessageID: m.ID, RecipientMemberID: rcpt,
				SenderMemberID: m.SenderMemberID, Kind: NotificationMention, CreatedAt: now})
		}
		r.out = &Posted{Row: MessageRow{Message: *m, TopicName: topicOf[r].Name, SenderDisplayName: r.p.DisplayName}, Notified: len(mentioned[r])}
	}
	if err := tx.Create(&msgs).Error; err != nil {
		if isUniqueViolation(err) {
			return out, errClientIDRace
		}
		return out, fmt.Errorf("insert messages: %w", err)
	}
	if len(notes) > 0 {
		if err := tx.Create(&notes).Error; err != nil {
			return out, fmt.Errorf("insert notifications: %w", err)
		}
	}
	if err := s.auditMessages(tx, meshID, seqs.LastAuditSeq-n+1, accepted, msgs); err != nil {
		return out, err
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
	for _, n := range notes {
		m := byID[n.MessageID]
		out.Notifications = append(out.Notifications, NotificationRow{Notification: n, TopicName: m.TopicName,
			SenderDisplayName: m.SenderDisplayName, Seq: m.Seq, BodyVersion: m.BodyVersion, KeyEpoch: m.KeyEpoch, Ciphertext: m.Ciphertext, Nonce: m.Nonce})
	}
	return out, nil
}

// readBatch loads the topics, subscriptions, earlier clientMessageIds and
// reply targets the batch refers to, one query each.
func (s *Store) readBatch(tx *gorm.DB, meshID string, batch []*postReq) (*batchReads, error) {
	var names, members, clientIDs, replyIDs []string
	for _, r := range batch {
		names = appendNew(names, r.in.Topic)
		members = appendNew(members, r.p.MemberID)
		if r.in.ClientMessageID != "" {
			clientIDs = appendNew(clientIDs, r.in.ClientMessageID)
		}
		if r.in.ReplyToID != "" {
			replyIDs = appendNew(replyIDs, r.in.ReplyToID)
		}
	}
	rd := &batchReads{topics: map[string]*Topic{}, subs: map[[2]string]*TopicMember{}, replays: map[[2]string]*MessageRow{}, replyTos: map[string]string{}}
	// Lock the mesh row before reading: key rotations, removals and archives
	// append audit events under the same lock, so a post can never commit
	// with a key epoch (or membership) that a committed rotation replaced.
	if s.dialect == Postgres {
		if err := tx.Exec("SELECT 1 FROM meshes WHERE id = ? FOR UPDATE", meshID).Error; err != nil {
			return nil, fmt.Errorf("lock mesh: %w", err)
		}
	}
	var topics []Topic
	if err := tx.Where("mesh_id = ? AND name IN ?", meshID, names).Find(&topics).Error; err != nil {
		return nil, fmt.Errorf("load topics: %w", err)
	}
	var topicIDs []string
	for i := range topics {
		rd.topics[topics[i].Name] = &topics[i]
		topicIDs = append(topicIDs, topics[i].ID)
	}
	if len(topicIDs) > 0 {
		var subs []TopicMember
		if err := tx.Where("topic_id IN ? AND member_id IN ?", topicIDs, members).Find(&subs).Error; err != nil {
			return nil, fmt.Errorf("load subscriptions: %w", err)
		}
		for i := range subs {
			rd.subs[[2]string{subs[i].TopicID, subs[i].MemberID}] = &subs[i]
		}
	}
	if len(clientIDs) > 0 {
		var rows []MessageRow
		if err := messageRows(tx).Where("msg.sender_member_id IN ? AND msg.client_message_id IN ?", members, clientIDs).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("load earlier client ids: %w", err)
		}
		for i := range rows {
			rd.replays[[2]string{rows[i].SenderMemberID, *rows[i].ClientMessageID}] = &rows[i]
		}
	}
	if len(replyIDs) > 0 {
		var rows []struct{ ID, TopicID string }
		if err := tx.Raw("SELECT id, topic_id FROM messages WHERE id IN ?", replyIDs).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("load reply targets: %w", err)
		}
		for _, r := range rows {
			rd.replyTos[r.ID] = r.TopicID
		}
	}
	return rd, nil
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

// resolveMentions maps each post to the members it notifies: live members
// of the post's topic named in its mention list, never the sender, at most
// MaxNotificationsPerMsg, in member-id order.
func (s *Store) resolveMentions(tx *gorm.DB, posts []*postReq, topicOf map[*postReq]*Topic) (map[*postReq][]string, error) {
	var names, topicIDs []string
	for _, r := range posts {
		for _, n := range r.in.Mentions {
			names = appendNew(names, n)
		}
		if len(r.in.Mentions) > 0 {
			topicIDs = appendNew(topicIDs, topicOf[r].ID)
		}
	}
	out := map[*postReq][]string{}
	if len(names) == 0 {
		return out, nil
	}
	var rows []struct {
		TopicID     string
		MemberID    string
		DisplayName string
	}
	err := tx.Raw(`SELECT tm.topic_id, m.id AS member_id, m.display_name FROM topic_members tm JOIN members m ON m.id = tm.member_id
		WHERE tm.topic_id IN ? AND m.revoked_at IS NULL AND m.display_name IN ? ORDER BY m.id`, topicIDs, names).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("resolve mentions: %w", err)
	}
	for _, r := range posts {
		for _, row := range rows {
			if row.TopicID == topicOf[r].ID && row.MemberID != r.p.MemberID && slices.Contains(r.in.Mentions, row.DisplayName) &&
				len(out[r]) < MaxNotificationsPerMsg {
				out[r] = append(out[r], row.MemberID)
			}
		}
	}
	return out, nil
}

// auditMessages appends one message.sent event per message to the mesh's
// chain, reading the previous hash once.
func (s *Store) auditMessages(tx *gorm.DB, meshID string, firstSeq int64, posts []*postReq, msgs []Message) error {
	in := make([]auditIn, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		in[i] = auditIn{kind: AuditMessageSent, actor: m.SenderMemberID, target: m.ID, meta: messageAudit{
			BodyVersion: m.BodyVersion, Bytes: base64.StdEncoding.DecodedLen(len(m.Ciphertext)), Notified: posts[i].out.Notified,
			Seq: m.Seq, TopicID: m.TopicID}}
	}
	return s.writeAuditChain(tx, meshID, firstSeq, msgs[0].CreatedAt, in)
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
