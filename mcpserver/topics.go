package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/wsproto"
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
func (s *Server) onTopicMessage(e wsproto.Event) {
	var m topicMessage
	if err := json.Unmarshal(e.Data, &m.Message); err != nil || m.Seq <= s.inbox.topicSeq() {
		return
	}
	m.since = time.Now()
	s.feed.add(m)
	s.poke()
}

// subscribe starts the topic feed of every topic this member joined, from
// the last seq pushed (or live, the first time).
func (s *Server) subscribe(ctx context.Context) error {
	topics, err := s.sess.ListTopics(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, t := range topics {
		if t.Joined {
			names = append(names, t.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	s.feed.reset() // the replay from since brings anything queued again
	req := &wsproto.Subscribe{Type: wsproto.TypeSubscribe, Topics: names}
	if seq := s.inbox.topicSeq(); seq > 0 {
		req.Since = &seq
	}
	ack, err := peer.Ask[wsproto.Subscribed](ctx, s.sess, s.link, req)
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
	o, err := s.topicKeys(m.Topic).OpenFetching(ctx, &m.Message, time.Second)
	if (err != nil || o.Pending) && time.Since(m.since) < keyWait {
		return "", false
	}
	if err != nil {
		o = s.topicKeys(m.Topic).Open(&m.Message)
	}
	return bodyText(o, "[encrypted: nobody has sealed this topic's key for you yet; read it later with topic_history]"), true
}

// bodyText is an opened body as the model reads it.
func bodyText(o peer.Opened, pending string) string {
	switch {
	case o.Pending:
		return pending
	case o.Undecryptable && o.Plaintext:
		return "[cannot decode this message]"
	case o.Undecryptable:
		return "[cannot decrypt this message]"
	case o.Plaintext:
		return "[plaintext] " + *o.Text
	}
	return *o.Text
}

// resealLoop does a key holder's duty, as `claudemesh topic tail` does:
// every interval it seals each joined topic's current key for the
// members still waiting for one.
func (s *Server) resealLoop(ctx context.Context, every time.Duration) {
	peer.ResealLoop(ctx, every, func(ctx context.Context) ([]*peer.TopicKeys, error) {
		topics, err := s.sess.ListTopics(ctx)
		var keys []*peer.TopicKeys
		for _, tp := range topics {
			if tp.Joined && tp.Keyed {
				keys = append(keys, s.topicKeys(tp.Name))
			}
		}
		return keys, err
	}, func(r peer.ResealReport) {
		if r.Err != nil {
			s.opt.Logf("seal #%s's key: %v", r.Topic, r.Err)
		} else {
			s.opt.Logf("sealed #%s's key for %v", r.Topic, r.Sealed)
		}
	})
}

// ---- topic_post ----

type topicPostInput struct {
	Topic   string `json:"topic" jsonschema:"the topic name, with or without #, e.g. general"`
	Message string `json:"message" jsonschema:"the text to post"`
}

func topicPostTool(s *Server) serverTool {
	return newTool(&mcp.Tool{Name: "topic_post", Description: "Post a message to a topic of the mesh (e.g. general), encrypted with the topic's key. Every topic member can read it; you must have joined the topic."}, s.topicPost)
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

// postTopic posts encrypted with the topic key (peer.TopicKeys.Post).
func (s *Server) postTopic(ctx context.Context, topic, msg string) (string, error) {
	m, err := s.topicKeys(peer.TopicName(topic)).Post(ctx, msg, peer.PostOptions{ClientPrefix: "mcp"})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("#%s: posted (seq %d, message id %s)", m.Topic, m.Seq, m.Id), nil
}

// ---- topic_history ----

type topicHistoryInput struct {
	Topic string `json:"topic" jsonschema:"the topic name, with or without #, e.g. general"`
	Limit int    `json:"limit,omitempty" jsonschema:"how many of the newest messages, 1 to 200 (default 20)"`
}

func topicHistoryTool(s *Server) serverTool {
	return newTool(&mcp.Tool{Name: "topic_history", Description: "Read a topic's newest messages, decrypted, oldest first.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, s.topicHistory)
}

func (s *Server) topicHistory(ctx context.Context, _ *mcp.CallToolRequest, in topicHistoryInput) (*mcp.CallToolResult, any, error) {
	limit := in.Limit
	if limit == 0 {
		limit = 20
	}
	if limit < 1 || limit > 200 {
		return nil, nil, fmt.Errorf("limit must be 1 to 200, not %d", limit)
	}
	name := peer.TopicName(in.Topic)
	r, err := s.sess.API.ListMessagesWithResponse(ctx, name, &client.ListMessagesParams{Limit: &limit})
	if err := s.sess.Check(err, r, 200); err != nil {
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
		o, err := keys.OpenFetching(ctx, m, time.Hour)
		if err != nil {
			return nil, nil, err
		}
		body := bodyText(o, "[encrypted: nobody has sealed this topic's key for you yet]")
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
