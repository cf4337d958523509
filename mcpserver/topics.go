package mcpserver

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/ws"
)

// keyWait is how long a topic message waits for its key to be sealed for
// us before it is pushed as "encrypted, no key yet".
const keyWait = time.Minute

// topicMessage is a topic feed message (the SSE/WS MessageView).
type topicMessage struct {
	ID                string    `json:"id"`
	Topic             string    `json:"topic"`
	Seq               int64     `json:"seq"`
	SenderMemberID    string    `json:"senderMemberId"`
	SenderPubkey      string    `json:"senderPubkey"`
	SenderDisplayName string    `json:"senderDisplayName"`
	Ciphertext        string    `json:"ciphertext"`
	Nonce             string    `json:"nonce"`
	BodyVersion       int       `json:"bodyVersion"`
	KeyEpoch          int       `json:"keyEpoch"`
	Priority          string    `json:"priority"`
	ReplyToID         *string   `json:"replyToId"`
	ClientMessageID   *string   `json:"clientMessageId"`
	CreatedAt         time.Time `json:"createdAt"`

	since time.Time // when it arrived, for keyWait
}

// feed is the topic messages waiting to be pushed by channel, in seq
// order. It is not spooled: the database is the history, and a restart
// resumes the subscription from the last seq pushed (kept in the spool).
type feed struct {
	mu    sync.Mutex
	queue []topicMessage
}

func (f *feed) add(m topicMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, m)
}

func (f *feed) head() (topicMessage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 {
		return topicMessage{}, false
	}
	return f.queue[0], true
}

func (f *feed) pop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) > 0 {
		f.queue = f.queue[1:]
	}
}

func (f *feed) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = nil
}

// onTopicMessage queues a feed message (on the reader goroutine).
func (s *Server) onTopicMessage(f *ws.Frame) {
	var m topicMessage
	if err := f.Decode(&m); err != nil || m.Seq <= s.inbox.topicSeq() {
		return
	}
	m.since = time.Now()
	s.feed.add(m)
	s.poke()
}

// subscribe starts the topic feed of every topic this member joined, from
// the last seq pushed (or live, the first time).
func (s *Server) subscribe(ctx context.Context) error {
	limit := client.Limit(200)
	var names []string
	var cursor *string
	for {
		r, err := s.sess.API.ListTopicsWithResponse(ctx, &client.ListTopicsParams{Limit: &limit, Cursor: cursor})
		if err := s.sess.Check(err, r, http.StatusOK); err != nil {
			return err
		}
		for _, t := range r.JSON200.Items {
			if t.Joined {
				names = append(names, t.Name)
			}
		}
		if !r.JSON200.HasMore || r.JSON200.NextCursor == nil {
			break
		}
		cursor = r.JSON200.NextCursor
	}
	if len(names) == 0 {
		return nil
	}
	s.feed.reset() // the replay from since brings anything queued again
	frame := map[string]any{"type": ws.TypeSubscribe, "topics": names}
	if seq := s.inbox.topicSeq(); seq > 0 {
		frame["since"] = seq
	}
	ack, err := s.link.call(ctx, frame)
	if err != nil {
		return err
	}
	if s.inbox.topicSeq() == 0 {
		return s.inbox.setTopicSeq(ack.LastSeq)
	}
	return nil
}

// deliverTopics pushes queued topic messages by channel, oldest first. A
// message whose key we lack waits (up to keyWait) for a key holder to seal
// it for us; later messages wait behind it, keeping the order.
func (s *Server) deliverTopics(ctx context.Context) (waiting bool) {
	for {
		m, ok := s.feed.head()
		if !ok {
			return false
		}
		if m.Seq <= s.inbox.topicSeq() {
			s.feed.pop() // pushed already (a replay overlapping the live feed)
			continue
		}
		if m.SenderMemberID == s.sess.Mesh.MemberID {
			s.feed.pop() // our own post
			_ = s.inbox.setTopicSeq(m.Seq)
			continue
		}
		text, ready := s.openTopicMessage(ctx, &m)
		if !ready {
			return true
		}
		meta := map[string]string{}
		put := func(k, v string) {
			if v != "" {
				meta[k] = v
			}
		}
		put("from_id", m.SenderMemberID)
		put("from_name", m.SenderDisplayName)
		put("from_pubkey", m.SenderPubkey)
		put("mesh_slug", s.sess.Mesh.Slug)
		put("priority", m.Priority)
		put("message_id", m.ID)
		put("topic", m.Topic)
		if m.ClientMessageID != nil {
			put("client_message_id", *m.ClientMessageID)
		}
		if m.ReplyToID != nil {
			put("reply_to_id", *m.ReplyToID)
		}
		content := priorityPrefix(m.Priority) + m.SenderDisplayName + " (#" + m.Topic + "): " + text
		if err := s.tr.notify(ctx, ChannelMethod, ChannelParams{Content: content, Meta: meta}); err != nil {
			s.opt.Logf("channel notification: %v", err)
			return false
		}
		s.feed.pop()
		if err := s.inbox.setTopicSeq(m.Seq); err != nil {
			s.opt.Logf("spool: %v", err)
		}
	}
}

// openTopicMessage decrypts a feed message; ready is false while its key
// may still be sealed for us.
func (s *Server) openTopicMessage(ctx context.Context, m *topicMessage) (string, bool) {
	if m.BodyVersion == 1 {
		t, err := meshcrypto.DecodeV1(m.Ciphertext)
		if err != nil {
			return "[cannot decode this message]", true
		}
		return "[plaintext] " + t, true
	}
	key, ok, err := s.topicKeys(m.Topic).Get(ctx, max(m.KeyEpoch, 1), time.Second)
	if err != nil || !ok {
		if time.Since(m.since) < keyWait {
			return "", false
		}
		return "[encrypted: nobody has sealed this topic's key for you yet; read it later with topic_history]", true
	}
	pt, err := meshcrypto.DecryptV2(key, m.Ciphertext, m.Nonce)
	if err != nil {
		return "[cannot decrypt this message]", true
	}
	return string(pt), true
}

// resealLoop does a key holder's duty, as `claudemesh topic tail` does:
// every interval it seals each joined topic's current key for the
// members still waiting for one.
func (s *Server) resealLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		limit := client.Limit(200)
		r, err := s.sess.API.ListTopicsWithResponse(ctx, &client.ListTopicsParams{Limit: &limit})
		if err := s.sess.Check(err, r, http.StatusOK); err != nil {
			continue
		}
		for _, tp := range r.JSON200.Items {
			if !tp.Joined || !tp.Keyed {
				continue
			}
			if names, err := s.topicKeys(tp.Name).Reseal(ctx); err != nil && ctx.Err() == nil {
				s.opt.Logf("seal #%s's key: %v", tp.Name, err)
			} else if len(names) > 0 {
				s.opt.Logf("sealed #%s's key for %v", tp.Name, names)
			}
		}
	}
}
