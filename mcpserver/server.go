// Package mcpserver is `claudemesh mcp`: a Model Context Protocol server
// over stdio that makes one Claude Code session a peer of the mesh. It
// holds the session's /ws connection (reconnecting with backoff), gives the
// model tools to message peers and topics, pushes incoming messages into
// the session as `notifications/claude/channel`, and reports the status
// inferred from the session's transcript.
package mcpserver

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// Name is the server's name: tools appear as mcp__claudemesh__<tool>.
const Name = "claudemesh"

// Options configure one server.
type Options struct {
	Home peer.Home
	// Mesh selects the mesh by slug or id ("" = the default mesh).
	Mesh string
	HTTP *http.Client
	// SessionID, Pid and Cwd name the Claude Code session on /ws.
	SessionID string
	Pid       int
	Cwd       string
	// Channel pushes messages as channel notifications even when the
	// client did not declare the capability (`claudemesh launch` sets it:
	// Claude Code listens when started with the channel enabled).
	Channel bool
	// Watch, when set, runs for the server's life and calls report with
	// each inferred status (idle or working); see claudecode.Watch.
	Watch func(ctx context.Context, report func(status string)) error
	// ResealEvery is how often the server seals joined topics' keys for
	// members waiting for them (0: 30 s; negative: never).
	ResealEvery time.Duration
	Version     string
	Logf        func(format string, args ...any)
}

// Server is one running MCP session.
type Server struct {
	opt   Options
	sess  *peer.Session
	link  *link
	inbox *inbox
	tr    *channelTransport
	sent  *sentLog

	mu      sync.Mutex
	channel bool // deliver by channel notification
	needSub bool // (re)subscribe the topic feed: a new connection
	// synced is closed once the first connection's queued pushes are in.
	synced   chan struct{}
	syncOnce sync.Once
	feed     feed
	wake     chan struct{}
	status   string // the last status set by the set_status tool ("" = none)
	summary  *string
	keys     map[string]*peer.TopicKeys
}

// Run serves MCP on t until the client goes away or ctx ends.
func Run(ctx context.Context, opt Options, t mcp.Transport) error {
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	if opt.HTTP == nil {
		opt.HTTP = http.DefaultClient
	}
	sess, err := opt.Home.Open(opt.Mesh, opt.HTTP)
	if err != nil {
		return err
	}
	path := spoolPath(opt.Home, sess.Mesh.ID, opt.SessionID)
	pruneSpools(filepath.Dir(path), time.Now())
	ib, err := openInbox(path)
	if err != nil {
		return fmt.Errorf("open the message spool: %w", err)
	}
	s := &Server{opt: opt, sess: sess, inbox: ib, tr: &channelTransport{Transport: t}, sent: newSentLog(), wake: make(chan struct{}, 1), synced: make(chan struct{})}
	ws := peer.WSSession{ID: opt.SessionID}
	if opt.Pid > 0 {
		ws.Pid = &opt.Pid
	}
	if opt.Cwd != "" {
		ws.Cwd = &opt.Cwd
	}
	s.link = newLink(sess, opt.HTTP, ws)
	s.link.logf = opt.Logf
	s.link.onPush = s.onPush
	s.link.onMessage = s.onTopicMessage
	s.link.onUp = s.onUp

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := mcp.NewServer(&mcp.Implementation{Name: Name, Title: "claudemesh", Version: opt.Version}, &mcp.ServerOptions{
		Instructions: instructions,
		Capabilities: &mcp.ServerCapabilities{
			Tools:        &mcp.ToolCapabilities{},
			Experimental: map[string]any{ChannelCapability: map[string]any{}},
		},
	})
	srv.AddReceivingMiddleware(s.watchClient)
	s.addTools(srv)
	ss, err := srv.Connect(ctx, s.tr, nil)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.link.run(ctx) }()
	go func() { defer wg.Done(); s.deliverLoop(ctx) }()
	if every := cmp.Or(opt.ResealEvery, 30*time.Second); every > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); s.resealLoop(ctx, every) }()
	}
	if opt.Watch != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := opt.Watch(ctx, func(st string) { s.reportInferred(ctx, st) }); err != nil && ctx.Err() == nil {
				opt.Logf("transcript watch: %v", err)
			}
		}()
	}
	stop := context.AfterFunc(ctx, func() { _ = ss.Close() })
	defer stop()
	err = ss.Wait()
	cancel()
	wg.Wait()
	return err
}

// watchClient turns channel delivery on once the client is talking to
// us: when it declared the experimental claude/channel capability (at
// initialize, or in a request's _meta with the stateless protocol), or
// when Options.Channel says the client listens anyway. Messages that
// arrived before stay in the spool until then.
func (s *Server) watchClient(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		on := s.opt.Channel
		if ss, ok := req.GetSession().(*mcp.ServerSession); ok && !on {
			if p := ss.InitializeParams(); p != nil && p.Capabilities != nil {
				_, on = p.Capabilities.Experimental[ChannelCapability]
			}
		}
		if on && method != "initialize" {
			s.mu.Lock()
			was := s.channel
			s.channel = true
			s.mu.Unlock()
			if !was {
				s.poke()
			}
		}
		return res, err
	}
}

// onPush keeps a pushed message in the spool; the deliverer reports it.
func (s *Server) onPush(ctx context.Context, p wsproto.Push) {
	_, fresh, done, err := s.inbox.add(s.sess.OpenPush(p))
	switch {
	case err != nil:
		// Not acked: the broker pushes it again on the next connection.
		s.opt.Logf("keep message %s: %v", p.ID, err)
	case done:
		s.link.ack(ctx, []string{p.ID})
	case fresh:
		s.poke()
	}
}

// onUp runs after each (re)connect: acks the reports an earlier run may not
// have acked, and restores the status and summary the model set.
func (s *Server) onUp(ctx context.Context) {
	s.link.ack(ctx, s.inbox.reported())
	// The broker pushes the queued messages right after the welcome; the
	// answer to a round trip comes after them, so once it is in, a
	// check_messages right at start sees them.
	if _, err := s.link.Call(ctx, &wsproto.ListPeers{Type: wsproto.TypeListPeers}); err == nil {
		s.syncOnce.Do(func() { close(s.synced) })
	}
	s.mu.Lock()
	s.needSub = true
	s.mu.Unlock()
	s.mu.Lock()
	st, sum := s.status, s.summary
	s.mu.Unlock()
	if st != "" || sum != nil {
		if st == "" {
			st = "idle"
		}
		if _, err := s.sess.SetStatus(ctx, s.link, st, sum, "manual"); err != nil {
			s.opt.Logf("restore status: %v", err)
		}
	}
	s.poke()
}

func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// deliverLoop writes pending messages as channel notifications when the
// session takes them, then marks them reported and acks them.
func (s *Server) deliverLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.mu.Lock()
		on := s.channel
		s.mu.Unlock()
		if !on {
			continue
		}
		for _, m := range s.inbox.peek() {
			if err := s.tr.notify(ctx, ChannelMethod, channelParams(m, s.sess.Mesh.Slug)); err != nil {
				s.opt.Logf("channel notification: %v", err)
				break // kept for check_messages
			}
			if _, err := s.inbox.take(map[string]bool{m.ID: true}); err != nil {
				s.opt.Logf("spool: %v", err)
				break
			}
			s.link.ack(ctx, []string{m.ID})
		}
		s.mu.Lock()
		sub := s.needSub
		s.needSub = false
		s.mu.Unlock()
		if sub {
			if err := s.subscribe(ctx); err != nil && ctx.Err() == nil {
				s.opt.Logf("follow topics: %v", err)
				s.mu.Lock()
				s.needSub = true // again on the next wake
				s.mu.Unlock()
			}
		}
		if s.deliverTopics(ctx) {
			time.AfterFunc(time.Second, s.poke) // a message waits for its key
		}
	}
}

// reportInferred sends a status inferred from the transcript (source
// jsonl); the broker's ranking lets a fresh hook or a manual status win.
func (s *Server) reportInferred(ctx context.Context, status string) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := s.sess.SetStatus(ctx, s.link, status, nil, "jsonl"); err != nil {
		s.opt.Logf("report status %s: %v", status, err)
		return
	}
	s.opt.Logf("transcript: %s", status)
}
