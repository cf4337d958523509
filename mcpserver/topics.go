package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/ws"
)

// keyWait is how long a topic message waits for its key to be sealed for
// us before it is pushed as "encrypted, no key yet".
const keyWait = time.Minute

// topicMessage is a topic feed message: the contract's Message (the data of
// a /ws "message" frame) and when it arrived, for keyWait.
type topicMessage struct {
	client.Message
	since time.Time
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
	if err := f.Decode(&m.Message); err != nil || m.Seq <= s.inbox.topicSeq() {
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
		if m.SenderMemberId.String() == s.sess.Mesh.MemberID {
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
		put("from_id", m.SenderMemberId.String())
		put("from_name", m.SenderDisplayName)
		put("from_pubkey", m.SenderPubkey)
		put("mesh_slug", s.sess.Mesh.Slug)
		put("priority", string(m.Priority))
		put("message_id", m.Id.String())
		put("topic", m.Topic)
		if m.ClientMessageId != nil {
			put("client_message_id", *m.ClientMessageId)
		}
		if m.ReplyToId != nil {
			put("reply_to_id", m.ReplyToId.String())
		}
		content := priorityPrefix(string(m.Priority)) + m.SenderDisplayName + " (#" + m.Topic + "): " + text
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

func (s *Server) topicPost(ctx context.Context, _ *mcp.CallToolRequest, in topicPostInput) (*mcp.CallToolResult, any, error) {
	if strings.TrimSpace(in.Message) == "" {
		return nil, nil, errors.New("message is empty")
	}
	line, err := s.postTopic(ctx, in.Topic, in.Message)
	if err != nil {
		return nil, nil, err
	}
	return text("%s", line), nil, nil
}

// postTopic encrypts with the topic key of the current epoch (claiming an
// unkeyed topic first) and posts over REST; it never sends plaintext.
func (s *Server) postTopic(ctx context.Context, topic, msg string) (string, error) {
	name := strings.TrimPrefix(strings.TrimSpace(topic), "#")
	keys := s.topicKeys(name)
	cid := newClientID()
	for attempt := 0; ; attempt++ {
		key, epoch, err := keys.KeyForPosting(ctx)
		if err != nil {
			return "", err
		}
		ct, nonce, err := meshcrypto.EncryptV2(key, []byte(msg))
		if err != nil {
			return "", err
		}
		r, err := s.sess.API.PostMessageWithResponse(ctx, client.PostMessageRequest{Topic: name, BodyVersion: client.PostMessageRequestBodyVersionN2,
			Ciphertext: ct, Nonce: &nonce, KeyEpoch: &epoch, ClientMessageId: &cid})
		err = s.sess.Check(err, r, http.StatusCreated, http.StatusOK)
		var ae *peer.APIError
		if err != nil && errors.As(err, &ae) && attempt < 2 && (ae.Code() == "key_epoch_mismatch" || ae.Code() == "topic_key_unclaimed") {
			continue // rotated between reading the key and posting
		}
		if err != nil {
			return "", err
		}
		m := r.JSON201
		if m == nil {
			m = r.JSON200
		}
		return fmt.Sprintf("#%s: posted (seq %d, message id %s)", m.Topic, m.Seq, m.Id), nil
	}
}

func (s *Server) topicHistory(ctx context.Context, _ *mcp.CallToolRequest, in topicHistoryInput) (*mcp.CallToolResult, any, error) {
	limit := in.Limit
	if limit == 0 {
		limit = 20
	}
	if limit < 1 || limit > 200 {
		return nil, nil, fmt.Errorf("limit must be 1 to 200, not %d", limit)
	}
	name := strings.TrimPrefix(strings.TrimSpace(in.Topic), "#")
	r, err := s.sess.API.ListMessagesWithResponse(ctx, name, &client.ListMessagesParams{Limit: &limit})
	if err := s.sess.Check(err, r, http.StatusOK); err != nil {
		return nil, nil, err
	}
	items := r.JSON200.Items
	if len(items) == 0 {
		return text("#%s has no messages yet.", name), nil, nil
	}
	keys := s.topicKeys(name)
	var b strings.Builder
	fmt.Fprintf(&b, "The %d newest message(s) of #%s, oldest first:\n", len(items), name)
	for i := len(items) - 1; i >= 0; i-- {
		m := &items[i]
		body := ""
		switch {
		case m.BodyVersion == client.MessageBodyVersionN1:
			t, err := meshcrypto.DecodeV1(m.Ciphertext)
			body = "[plaintext] " + t
			if err != nil {
				body = "[cannot decode this message]"
			}
		default:
			key, ok, err := keys.Get(ctx, max(m.KeyEpoch, 1), time.Hour)
			switch {
			case err != nil:
				return nil, nil, err
			case !ok:
				body = "[encrypted: nobody has sealed this topic's key for you yet]"
			default:
				pt, err := meshcrypto.DecryptV2(key, m.Ciphertext, m.Nonce)
				body = string(pt)
				if err != nil {
					body = "[cannot decrypt this message]"
				}
			}
		}
		fmt.Fprintf(&b, "- [seq %d, %s] @%s: %s\n", m.Seq, m.CreatedAt.UTC().Format(time.RFC3339), m.SenderDisplayName, body)
	}
	return text("%s", strings.TrimRight(b.String(), "\n")), nil, nil
}

// topicKeys keeps each topic's keys for the server's life.
func (s *Server) topicKeys(name string) *peer.TopicKeys {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[string]*peer.TopicKeys{}
	}
	k, ok := s.keys[name]
	if !ok {
		k = peer.NewTopicKeys(s.sess, name)
		s.keys[name] = k
	}
	return k
}
