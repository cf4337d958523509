package ws

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/claudemesh/claudemesh-go/middleware"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/stream"
)

// Config tunes a Server; a zero field takes the default in its comment.
type Config struct {
	NodeID          string        // this broker's id in presence rows (random)
	QueueTTL        time.Duration // QUEUE_TTL_SECONDS (7 days)
	StatusTTL       time.Duration // STATUS_TTL_SECONDS (60 s)
	HookFreshWindow time.Duration // HOOK_FRESH_WINDOW_SECONDS (30 s); negative means 0
	MaxMessageBytes int           // MAX_MESSAGE_BYTES (models.DefaultMaxMessageBytes)
	MaxFrameBytes   int64         // WS_MAX_FRAME_BYTES (1 MiB); bigger frames close the connection
	SendsPerSecond  float64       // WS_SENDS_PER_SECOND per connection (50)
	SendBurst       int           // WS_SEND_BURST (100)
	MaxQueuedBytes  int64         // WS_MAX_QUEUED_BYTES a member may have queued unacked (32 MiB)
	HelloSkew       time.Duration // allowed |clock - hello ts| (60 s)
	HelloTimeout    time.Duration // time to say hello (10 s)
	PingEvery       time.Duration // protocol ping interval (20 s)
	PingTimeout     time.Duration // pong deadline (20 s)
	WriteTimeout    time.Duration // one frame write (10 s)
	RecheckEvery    time.Duration // maintenance pass: revocation, sweeps, wake-ups (2 s)
	HeartbeatEvery  time.Duration // last_seen_at stamp of this broker's sessions (30 s)
	StaleAfter      time.Duration // another broker's session not heartbeated this long is gone (90 s)
	RevalidateEvery time.Duration // subscribed topic access re-check (5 s)
	// UnavailableGrace is how long a subscription outlives a database it
	// cannot re-check topic access against (1 min).
	UnavailableGrace time.Duration
	HookRate         float64 // hook calls per second per (member, pid, cwd) (5)
	HookBurst        int     // (20)
	// OriginPatterns are browser origins allowed besides the broker's own
	// host (path.Match patterns on the origin host; "*" allows any).
	OriginPatterns []string
	// MaxSessionsPerMember caps one member's sessions on this broker
	// (WS_MAX_SESSIONS_PER_MEMBER, 64); a hello over it is closed with
	// CloseTooManySessions.
	MaxSessionsPerMember int
}

// DefaultMaxFrameBytes is WS_MAX_FRAME_BYTES' default.
const DefaultMaxFrameBytes = 1 << 20

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.NodeID == "" {
		c.NodeID = randomHex(8)
	}
	def(&c.QueueTTL, models.DefaultQueueTTL)
	def(&c.StatusTTL, 60*time.Second)
	def(&c.HookFreshWindow, 30*time.Second)
	c.HookFreshWindow = max(c.HookFreshWindow, 0)
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = models.DefaultMaxMessageBytes
	}
	// A frame must fit the largest message in base64 plus its JSON; the
	// broker's configuration refuses a smaller WS_MAX_FRAME_BYTES at start.
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = max(DefaultMaxFrameBytes, models.RequestBytesFor(c.MaxMessageBytes))
	}
	if c.SendsPerSecond == 0 {
		c.SendsPerSecond = 50
	}
	if c.SendBurst == 0 {
		c.SendBurst = 100
	}
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = 32 << 20
	}
	def(&c.HelloSkew, 60*time.Second)
	def(&c.HelloTimeout, 10*time.Second)
	def(&c.PingEvery, 20*time.Second)
	def(&c.PingTimeout, 20*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.RecheckEvery, 2*time.Second)
	def(&c.HeartbeatEvery, 30*time.Second)
	def(&c.StaleAfter, 90*time.Second)
	def(&c.RevalidateEvery, 5*time.Second)
	def(&c.UnavailableGrace, stream.DefaultUnavailableGrace)
	if c.HookRate == 0 {
		c.HookRate = 5
	}
	if c.HookBurst == 0 {
		c.HookBurst = 20
	}
	if c.MaxSessionsPerMember == 0 {
		c.MaxSessionsPerMember = DefaultMaxSessionsPerMember
	}
}

// Server accepts peer connections and runs delivery and presence for them.
type Server struct {
	cfg   Config
	store *models.Store
	hub   *stream.Hub
	log   *slog.Logger
	hooks *middleware.RateLimiter

	base   context.Context // parent of every connection's context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sweepMu   sync.Mutex // one maintenance pass at a time
	lastTouch time.Time  // last heartbeat write (wall clock)

	mu         sync.Mutex
	closed     bool
	conns      map[*conn]struct{}
	byMember   map[string]map[*conn]struct{}
	bySession  map[sessionKey]*conn
	byPresence map[string]*conn
	reserved   map[string]int // per member: sessions between the cap check and register
}

type sessionKey struct{ member, session string }

// New builds a server over the store and the stream hub.
func New(cfg Config, store *models.Store, hub *stream.Hub, log *slog.Logger) *Server {
	cfg.defaults()
	base, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, store: store, hub: hub, log: log, hooks: middleware.NewRateLimiter(cfg.HookRate, cfg.HookBurst),
		base: base, cancel: cancel, conns: map[*conn]struct{}{}, byMember: map[string]map[*conn]struct{}{},
		bySession: map[sessionKey]*conn{}, byPresence: map[string]*conn{}, reserved: map[string]int{}}
}

// Handle upgrades GET /ws. Requests that are not a WebSocket handshake are
// answered with a domain error for the API's problem renderer.
func (s *Server) Handle(w http.ResponseWriter, r *http.Request) error {
	if !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "websocket") ||
		r.Header.Get("Sec-WebSocket-Version") != "13" || r.Header.Get("Sec-WebSocket-Key") == "" {
		return models.E(models.KindBadRequest, "websocket_upgrade_required",
			"GET /ws is a WebSocket endpoint (RFC 6455 version 13); see docs/ws-protocol.md")
	}
	if !s.originAllowed(r) {
		return models.E(models.KindForbidden, "origin_not_allowed", "this browser origin may not open peer connections")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return models.E(models.KindUnavailable, "shutting_down", "the broker is shutting down; reconnect to another node")
	}
	s.wg.Add(1)
	s.mu.Unlock()
	// Accept hijacks the TCP connection (which also clears the HTTP
	// server's deadlines; liveness is the pings' job from here on).
	hj := &hijacked{ResponseWriter: w, timeout: s.cfg.WriteTimeout}
	wc, err := websocket.Accept(hj, r, &websocket.AcceptOptions{InsecureSkipVerify: true, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		s.wg.Done()
		return nil //nolint:nilerr // Accept answered the request itself
	}
	// The connection continues on its own goroutine and the handler
	// returns, so net/http and the router release the request, its
	// buffers and the handler's deep stack: an idle peer then costs only
	// what the protocol holds.
	go func() {
		defer s.wg.Done()
		s.serve(wc, hj.out)
	}()
	return nil
}

// The bufio buffers a peer connection keeps for its whole life. net/http's
// hijack hands over 4 KiB for each direction. coder/websocket reads frame
// headers and small frames through the reader (a larger payload is read
// past it, one more read call); its writer only has to hold a control
// frame (at most 2+125 bytes), since every other frame is corked in a
// sockWriter (see there).
const (
	connReadBuffer  = 512
	connWriteBuffer = 256
)

// hijacked hands websocket.Accept the hijacked connection (as a sockConn)
// with a connReadBuffer reader and a connWriteBuffer writer over a
// sockWriter (out), instead of net/http's 4 KiB buffers, which are dropped.
type hijacked struct {
	http.ResponseWriter
	timeout time.Duration
	out     *sockWriter
}

func (h *hijacked) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func (h *hijacked) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Flush(); err != nil { // empty after a hijack; flushed to be sure
		_ = nc.Close()
		return nil, nil, err
	}
	// Bytes a client sent before seeing the 101 are in net/http's reader;
	// then that reader is kept (rare: a client waits for the 101).
	rd := brw.Reader
	if rd.Buffered() == 0 {
		rd = bufio.NewReaderSize(nc, connReadBuffer)
	}
	h.out = &sockWriter{nc: nc, timeout: h.timeout}
	return &sockConn{Conn: nc, w: h.out}, bufio.NewReadWriter(rd, bufio.NewWriterSize(h.out, connWriteBuffer)), nil
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// originAllowed admits non-browser clients (no Origin), the broker's own
// host, and the configured patterns: a page elsewhere cannot make a
// visitor's browser open a peer connection.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range s.cfg.OriginPatterns {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); ok || p == "*" || strings.EqualFold(p, u.Scheme+"://"+u.Host) {
			return true
		}
	}
	return false
}

// Run performs the maintenance pass every RecheckEvery until ctx ends.
func (s *Server) Run(ctx context.Context) {
	go s.hooks.Run(ctx)
	t := time.NewTicker(s.cfg.RecheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("ws maintenance pass", slog.String("error", err.Error()))
			}
		}
	}
}

// Sweep is one maintenance pass (Run calls it; tests call it after moving
// an injected clock): it re-reads this broker's sessions (stamping them
// every HeartbeatEvery) and closes those whose member was revoked, mesh
// archived, key changed or session taken over; learns status changes made
// through other brokers; flips stuck working statuses; expires queued
// messages; and wakes connections whose member has rows to receive (queued
// through another broker, or left unacked by a connection that died).
func (s *Server) Sweep(ctx context.Context) error {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	conns := s.snapshot()
	byPresence := make(map[string][]*conn, len(conns))
	gens := make(map[*conn]uint64, len(conns))
	var ids []string
	for _, c := range conns {
		gens[c] = c.statusGeneration()
		if byPresence[c.presence] == nil {
			ids = append(ids, c.presence)
		}
		byPresence[c.presence] = append(byPresence[c.presence], c)
	}
	// Reads every pass (revocation within seconds); the heartbeat write
	// only every HeartbeatEvery, so idle peers cost no steady write load.
	touch := time.Since(s.lastTouch) >= s.cfg.HeartbeatEvery
	checks, err := s.store.CheckSessions(ctx, ids, touch)
	if err != nil {
		return err
	}
	if touch {
		s.lastTouch = time.Now()
	}
	found := map[string]bool{}
	for _, chk := range checks {
		found[chk.PresenceID] = true
		for _, c := range byPresence[chk.PresenceID] {
			c.recheck(&chk, gens[c])
		}
	}
	for id, cs := range byPresence {
		if !found[id] {
			for _, c := range cs {
				c.closeWith(CloseSessionReplaced, "session_gone", "the session record is gone")
			}
		}
	}
	swept, err := s.store.SweepPresence(ctx, models.SweepInput{StatusTTL: s.cfg.StatusTTL, StaleAfter: s.cfg.StaleAfter, Node: s.cfg.NodeID})
	if err != nil {
		return err
	}
	s.announce(swept...)
	for {
		n, err := s.store.ExpireQueued(ctx, 500)
		if err != nil {
			return err
		}
		if n < 500 {
			break
		}
	}
	members := s.localMembers()
	pending, err := s.store.PendingRecipients(ctx, members)
	if err != nil {
		return err
	}
	for member, hasNow := range pending {
		s.wakeMember(member, hasNow)
	}
	return nil
}

// Close ends every connection with 1001 going away and waits (up to ten
// seconds) for their goroutines, which record the disconnects. Call it
// before closing the store. New connections are refused from then on.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for _, c := range s.snapshot() {
		c.closeWith(websocket.StatusGoingAway, "shutting_down", "the broker is shutting down")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.log.Warn("ws: connections still open after 10 s; abandoning them")
	}
	s.cancel()
}

// HookStatus applies POST /hook/set-status for the caller's own sessions,
// rate limited per (member, pid, cwd).
func (s *Server) HookStatus(ctx context.Context, p *models.Principal, in models.HookInput) (*models.HookResult, error) {
	if ok, wait := s.hooks.Allow(p.MemberID + "|" + strconv.Itoa(in.Pid) + "|" + in.Cwd); !ok {
		return nil, &models.Error{Kind: models.KindRateLimited, Code: "rate_limited", Detail: "too many status reports for this session; retry later",
			RetryAfterSeconds: int(wait/time.Second) + 1}
	}
	res, err := s.store.HookStatus(ctx, p, in, s.cfg.HookFreshWindow)
	if err != nil {
		return nil, err
	}
	if res.Changed && res.Session != nil {
		s.announce(*res.Session)
	}
	return res, nil
}

// announce hands presence changes to the hub, which coalesces them per
// mesh and publishes them to the mesh's SSE and WebSocket subscribers in
// batches, and tells a local connection its own new status at once (a turn
// to idle releases held messages).
func (s *Server) announce(rows ...models.PresenceRow) {
	for i := range rows {
		r := &rows[i]
		s.hub.PublishPresence(r.MeshID, r.ID, ViewPeer(r))
		s.mu.Lock()
		c := s.byPresence[r.ID]
		s.mu.Unlock()
		if c != nil && r.ConnID == c.id && r.DisconnectedAt == nil {
			c.setStatus(r.Status)
		}
	}
}

// register indexes an authenticated connection and ends an older local
// connection of the same session.
func (s *Server) register(c *conn) {
	k := sessionKey{c.p.MemberID, c.session}
	s.mu.Lock()
	old := s.bySession[k]
	s.conns[c] = struct{}{}
	s.bySession[k] = c
	s.byPresence[c.presence] = c
	if s.byMember[c.p.MemberID] == nil {
		s.byMember[c.p.MemberID] = map[*conn]struct{}{}
	}
	s.byMember[c.p.MemberID][c] = struct{}{}
	s.mu.Unlock()
	if old != nil {
		old.closeWith(CloseSessionReplaced, "session_replaced", "this session connected again")
	}
}

func (s *Server) unregister(c *conn) {
	k := sessionKey{c.p.MemberID, c.session}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.bySession[k] == c {
		delete(s.bySession, k)
	}
	if s.byPresence[c.presence] == c {
		delete(s.byPresence, c.presence)
	}
	if m := s.byMember[c.p.MemberID]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(s.byMember, c.p.MemberID)
		}
	}
}

func (s *Server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

func (s *Server) localMembers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.byMember))
	for m := range s.byMember {
		out = append(out, m)
	}
	return out
}

// wakeMember asks the member's local connections to claim their rows. When
// none of the rows is priority "now", connections whose status holds
// next/low (working, dnd) are left asleep.
func (s *Server) wakeMember(memberID string, hasNow bool) {
	s.mu.Lock()
	var cs []*conn
	for c := range s.byMember[memberID] {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		if hasNow || c.currentStatus() == models.StatusIdle {
			c.wakeUp()
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}
