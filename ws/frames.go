package ws

import (
	"context"
	"strings"

	"golang.org/x/time/rate"

	"github.com/claudemesh/claudemesh-go/models"
)

// handleSend routes a send: "#topic" through the same store path as REST
// (group commit, seq, topic rules), "*" to every online peer's envelope,
// anything else to one member's queue. The ack goes out only once the rows
// are committed, so an acked send survives a broker restart.
func (c *conn) handleSend(ctx context.Context, f *clientFrame) {
	if c.sends == nil { // a new limiter is full: the same as one made at connect
		c.sends = rate.NewLimiter(rate.Limit(c.s.cfg.SendsPerSecond), c.s.cfg.SendBurst)
	}
	if !c.sends.Allow() {
		c.protocolError(ctx, f.Ref, "rate_limited", "too many sends; slow down")
		return
	}
	switch {
	case f.To == "":
		c.replyError(ctx, f.Ref, "validation_failed", "to is required: a member id, a pubkey, @name, #topic or *")
	case strings.HasPrefix(f.To, "#"):
		c.sendTopic(ctx, f)
	case f.To == "*":
		c.sendBroadcast(ctx, f)
	default:
		c.sendDirect(ctx, f)
	}
}

func (c *conn) sendTopic(ctx context.Context, f *clientFrame) {
	if f.Envelopes != nil {
		c.replyError(ctx, f.Ref, "validation_failed", "envelopes are for to=\"*\" only")
		return
	}
	posted, err := c.s.store.PostMessage(ctx, c.p, models.PostInput{Topic: f.To, Ciphertext: f.Ciphertext, Nonce: f.Nonce,
		BodyVersion: f.BodyVersion, KeyEpoch: f.KeyEpoch, Priority: f.Priority, Mentions: f.Mentions, ReplyToID: f.ReplyToID, ClientMessageID: f.ClientMessageID})
	if err != nil {
		c.storeError(ctx, f.Ref, err)
		return
	}
	replayed := posted.Replayed
	_ = c.write(ctx, mustJSON(ackFrame{Type: TypeAck, Ref: f.Ref, To: "#" + posted.Row.TopicName, IDs: []string{posted.Row.ID},
		Seq: posted.Row.Seq, Replayed: &replayed}))
}

func (c *conn) sendDirect(ctx context.Context, f *clientFrame) {
	if f.Envelopes != nil || f.BodyVersion != 0 || f.Mentions != nil || f.ReplyToID != "" {
		c.replyError(ctx, f.Ref, "validation_failed", "a direct send takes to, nonce, ciphertext, priority and clientMessageId only")
		return
	}
	// A member id needs no lookup: the send's batch checks that the member
	// is live and in the mesh (404 recipient_not_found otherwise), which
	// saves a query per send.
	to := f.To
	if !models.ValidID(to) {
		m, err := c.s.store.ResolveRecipient(ctx, c.p.MeshID, f.To)
		if err != nil {
			c.storeError(ctx, f.Ref, err)
			return
		}
		to = m.ID
	}
	out, err := c.s.store.EnqueueDirect(ctx, c.p, models.EnqueueInput{Envelopes: []models.Envelope{{RecipientID: to, Nonce: f.Nonce,
		Ciphertext: f.Ciphertext}}, Priority: f.Priority, ClientMessageID: f.ClientMessageID, TTL: c.s.cfg.QueueTTL,
		MaxPendingBytes: c.s.cfg.MaxQueuedBytes})
	if err != nil {
		c.storeError(ctx, f.Ref, err)
		return
	}
	replayed := out.Replayed[0]
	_ = c.write(ctx, mustJSON(ackFrame{Type: TypeAck, Ref: f.Ref, To: to, IDs: []string{out.Rows[0].ID}, Replayed: &replayed}))
	if !replayed {
		c.s.wakeMember(to, out.Rows[0].Priority == models.PriorityNow)
	}
}

// sendBroadcast stores one envelope per online peer (every connected
// member of the mesh but the sender). Direct bodies are crypto_box per
// recipient, so the sender encrypts once per peer (list_peers gives the
// keys); envelopes for members not online are skipped and online members
// without one are reported missing, both in the ack.
func (c *conn) sendBroadcast(ctx context.Context, f *clientFrame) {
	if f.Nonce != "" || f.Ciphertext != "" || f.BodyVersion != 0 || f.Mentions != nil || f.ReplyToID != "" {
		c.replyError(ctx, f.Ref, "validation_failed", "a broadcast carries envelopes [{to, nonce, ciphertext}], one per peer")
		return
	}
	if len(f.Envelopes) == 0 || len(f.Envelopes) > models.MaxEnvelopes {
		c.replyError(ctx, f.Ref, "validation_failed", "envelopes must hold 1 to 256 entries")
		return
	}
	online, err := c.s.store.OnlinePeers(ctx, c.p.MeshID)
	if err != nil {
		c.storeError(ctx, f.Ref, err)
		return
	}
	type peerKey struct{ id, name, pubkey string }
	peers := map[string]peerKey{}
	for _, r := range online {
		if r.MemberID != c.p.MemberID {
			peers[r.MemberID] = peerKey{r.MemberID, r.DisplayName, r.Pubkey}
		}
	}
	resolve := func(to string) string {
		for id, k := range peers {
			if to == id || to == k.pubkey || strings.EqualFold(to, "@"+k.name) {
				return id
			}
		}
		return ""
	}
	var envs []models.Envelope
	var skipped []string
	covered := map[string]bool{}
	for _, e := range f.Envelopes {
		id := resolve(e.To)
		if id == "" || covered[id] {
			skipped = append(skipped, e.To)
			continue
		}
		covered[id] = true
		envs = append(envs, models.Envelope{RecipientID: id, Nonce: e.Nonce, Ciphertext: e.Ciphertext})
	}
	var missing []string
	for id := range peers {
		if !covered[id] {
			missing = append(missing, id)
		}
	}
	ack := ackFrame{Type: TypeAck, Ref: f.Ref, To: "*", IDs: []string{}, Skipped: skipped, Missing: missing}
	if len(envs) > 0 {
		out, err := c.s.store.EnqueueDirect(ctx, c.p, models.EnqueueInput{Envelopes: envs, Priority: f.Priority, ClientMessageID: f.ClientMessageID,
			Broadcast: true, TTL: c.s.cfg.QueueTTL, MaxPendingBytes: c.s.cfg.MaxQueuedBytes})
		if err != nil {
			c.storeError(ctx, f.Ref, err)
			return
		}
		all := true
		for i, r := range out.Rows {
			ack.IDs = append(ack.IDs, r.ID)
			all = all && out.Replayed[i]
		}
		ack.Replayed = &all
		_ = c.write(ctx, mustJSON(ack))
		for i, r := range out.Rows {
			if !out.Replayed[i] {
				c.s.wakeMember(r.RecipientMemberID, r.Priority == models.PriorityNow)
			}
		}
		return
	}
	_ = c.write(ctx, mustJSON(ack))
}

// handleAck records the recipient's acknowledgement of pushed rows.
func (c *conn) handleAck(ctx context.Context, f *clientFrame) {
	n, err := c.s.store.AckQueued(ctx, c.p.MeshID, c.p.MemberID, f.IDs)
	if err != nil {
		c.storeError(ctx, f.Ref, err)
		return
	}
	if f.Ref != "" {
		_ = c.write(ctx, mustJSON(ackFrame{Type: TypeAck, Ref: f.Ref, Acked: &n}))
	}
}

// handleSetStatus applies the session's own status report (source manual
// unless it says otherwise) under the same rules as hooks.
func (c *conn) handleSetStatus(ctx context.Context, f *clientFrame) {
	src := f.Source
	if src == "" {
		src = models.SourceManual
	}
	row, changed, err := c.s.store.SetSessionStatus(ctx, c.presence, models.StatusSignal{Status: f.Status, Source: src}, f.Summary,
		c.s.cfg.HookFreshWindow)
	if err != nil {
		c.storeError(ctx, f.Ref, err)
		return
	}
	if changed {
		c.s.announce(*row)
	}
	v := ViewPeer(row)
	_ = c.write(ctx, mustJSON(ackFrame{Type: TypeAck, Ref: f.Ref, Changed: &changed, Session: &v}))
}

// handleListPeers answers with every connected session of the mesh, from
// the database, so sessions on other brokers are included.
func (c *conn) handleListPeers(ctx context.Context, f *clientFrame) {
	rows, err := c.s.store.OnlinePeers(ctx, c.p.MeshID)
	if err != nil {
		c.storeError(ctx, f.Ref, err)
		return
	}
	views := make([]PeerView, len(rows))
	for i := range rows {
		views[i] = ViewPeer(&rows[i])
	}
	_ = c.write(ctx, mustJSON(peersFrame{Type: TypePeers, Ref: f.Ref, Peers: views}))
}

// handleMessageStatus tells a sender where its direct messages stand; ids
// it did not send are left out.
func (c *conn) handleMessageStatus(ctx context.Context, f *clientFrame) {
	rows, err := c.s.store.QueueStates(ctx, c.p.MeshID, c.p.MemberID, f.IDs)
	if err != nil {
		c.storeError(ctx, f.Ref, err)
		return
	}
	out := make([]MessageState, len(rows))
	for i, r := range rows {
		out[i] = MessageState{ID: r.ID, To: r.RecipientMemberID, State: r.State, CreatedAt: r.CreatedAt,
			DeliveredAt: r.DeliveredAt, AckedAt: r.AckedAt, ExpiredAt: r.ExpiredAt}
	}
	_ = c.write(ctx, mustJSON(messageStatusFrame{Type: TypeMessageStatus, Ref: f.Ref, Messages: out}))
}
