package ws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/stream"
)

// claimBatch bounds one claim transaction.
const claimBatch = 64

// The error budget: a client may cause errorBurst error frames at once and
// errorRate a second after that before it is closed as abusive.
const (
	errorRate  = 2
	errorBurst = 30
)

// conn is one peer connection. One goroutine owns it while it is idle:
// the reader, which answers client frames. A writer goroutine, which pushes
// queued messages, hub events and pings and runs subscribe commands, exists
// only while there is such work: kick starts it, it exits when nothing is
// left, and at most one runs at a time (so its frames keep their order).
// Pings and revalidation are runtime timers that kick it; nothing parks a
// goroutine per connection but the reader. Both may write; the library
// serialises frames.
type conn struct {
	s   *Server
	ws  *websocket.Conn
	out *sockWriter // under ws: corks frames into one write
	id  string      // random connection id; queue claims are tied to it

	// Set by the handshake, read-only afterwards.
	p        *models.Principal
	presence string // presence row id
	session  string
	slot     func() // releases the session's reservation under the cap

	// claimMu orders status changes with queue claims: a claim reads the
	// status and claims under it, and a status change waits for a claim in
	// flight, so no row is claimed under a status that is no longer
	// current (a "next" pushed to a session that has just turned dnd).
	claimMu sync.Mutex

	mu        sync.Mutex
	status    string // the session's status, for delivery gating
	statusGen uint64 // bumped by every local status change
	reason    string // why the connection is closing (audited)
	closing   bool
	// The writer's single-flight state, under mu.
	writing  bool               // a writer goroutine is running
	dirty    bool               // work arrived since the running writer last looked
	wstop    bool               // no writer may start again (torn down, or a write failed)
	wcancel  context.CancelFunc // ends the running writer's context
	pingDue  bool               // the ping timer fired
	revalDue bool               // the revalidation timer fired
	writers  sync.WaitGroup

	wake  chan struct{}              // capacity 1: "claim queued rows"
	cmds  chan func(context.Context) // work the writer must do in order (subscribe)
	sub   *stream.Subscription       // writer-owned after the handshake
	sends *rate.Limiter              // sends per second; reader-owned, made at the first send
	errs  *rate.Limiter              // error budget, spent means abusive; reader-owned, made at the first error
	subst subscription               // writer-owned topic subscription state
	pingT *time.Timer                // pings every PingEvery; rearmed after each pong
	revT  *time.Timer                // writer-owned revalidation timer while subscribed
}

// serve runs a connection from the challenge to the disconnect record. The
// handshake's queries grow the calling goroutine's stack; the connection
// then continues on a fresh goroutine (the reader) and this one returns, so
// an idle peer's one goroutine keeps only the small stack a read needs.
//
// The reader and the handshake run under the server's context: nothing
// but a shutdown cancels them, and a context per connection would cost
// every idle peer its allocations. The writer gets a context per run,
// which the teardown cancels.
func (s *Server) serve(wc *websocket.Conn, out *sockWriter) {
	wc.SetReadLimit(s.cfg.MaxFrameBytes)
	ctx := s.base
	// writing starts true: this goroutine stands in for the writer until
	// the welcome is out, so no hub event overtakes it.
	c := &conn{s: s, ws: wc, out: out, id: randomHex(16), writing: true,
		wake: make(chan struct{}, 1), cmds: make(chan func(context.Context), 4)}
	row := c.handshake(ctx)
	if row == nil {
		_ = wc.CloseNow()
		return
	}
	c.status = row.Status
	c.sub = s.hub.SubscribeNotify(c.p.MeshID, presenceOnly, c.kick)
	s.register(c)
	c.slot() // registered: the session is counted in byMember now
	view := ViewPeer(row)
	if err := c.write(ctx, mustJSON(welcomeFrame{Type: TypeWelcome, Protocol: Protocol, ConnectionID: c.id,
		Member:  MemberRef{ID: c.p.MemberID, DisplayName: c.p.DisplayName, Pubkey: c.p.Pubkey},
		Session: view, ServerTime: s.store.Now(), Limits: Limits{MaxFrameBytes: s.cfg.MaxFrameBytes, MaxMessageBytes: s.cfg.MaxMessageBytes,
			SendsPerSecond: s.cfg.SendsPerSecond, SendBurst: s.cfg.SendBurst, MaxQueuedBytes: s.cfg.MaxQueuedBytes, MaxEnvelopes: models.MaxEnvelopes},
	})); err != nil {
		c.finish()
		return
	}
	s.announce(*row)
	c.pingT = time.AfterFunc(s.cfg.PingEvery, func() { c.due(&c.pingDue) })
	c.mu.Lock()
	c.writing = false
	c.mu.Unlock()
	c.wakeUp()  // a first writer claims what was queued, and anything the hub sent meanwhile
	s.wg.Add(1) // the reader outlives this goroutine; Close waits for it
	go func() {
		defer s.wg.Done()
		c.readLoop(ctx)
		c.finish()
	}()
}

// finish tears an authenticated connection down: it stops the writer (and
// waits for one running), leaves the hub and the indexes, and records the
// disconnect.
func (c *conn) finish() {
	s := c.s
	c.mu.Lock()
	c.wstop = true
	if c.wcancel != nil {
		c.wcancel() // a query or write in flight ends now
	}
	c.mu.Unlock()
	c.writers.Wait()
	if c.pingT != nil {
		c.pingT.Stop()
	}
	c.stopRevalidation() // writer-owned; no writer runs any more
	c.sub.Close()
	s.unregister(c)
	// The connection's context is gone; the disconnect must still be recorded.
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	row, changed, err := s.store.DisconnectSession(dctx, c.presence, c.id, c.closeReason())
	if err != nil {
		s.log.Warn("ws: record disconnect", slog.String("member", c.p.MemberID), slog.String("error", err.Error()))
	} else if changed {
		s.announce(*row)
	}
	_ = c.ws.CloseNow()
}

func presenceOnly(e *stream.Event) bool { return e.Kind == stream.KindPresence }

// write sends one text frame within WriteTimeout. Inside a batch it goes
// out with the batch's other frames.
func (c *conn) write(ctx context.Context, b []byte) error {
	return c.batch(func() error {
		wctx, cancel := context.WithTimeout(ctx, c.s.cfg.WriteTimeout)
		defer cancel()
		return c.ws.Write(wctx, websocket.MessageText, b)
	})
}

// batch runs f's writes corked: the frames leave in one write call when it
// returns (or when they pass corkFlushAt). f must not wait on anything but
// writes (no query, no ping), or it would hold back the other side's frames.
func (c *conn) batch(f func() error) error {
	c.out.cork()
	err := f()
	if ferr := c.out.uncork(); err == nil {
		err = ferr
	}
	return err
}

// closeWith ends the connection with a close code; the first reason wins.
// The close handshake runs on its own goroutine so no caller blocks on it.
func (c *conn) closeWith(code websocket.StatusCode, reason, detail string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.reason = true, reason
	c.mu.Unlock()
	go func() { _ = c.ws.Close(code, closeReason(reason, detail)) }()
}

func (c *conn) closeReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason == "" {
		return "client_closed"
	}
	return c.reason
}

func (c *conn) currentStatus() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// setStatus updates the gating status; turning idle releases held rows.
func (c *conn) setStatus(status string) {
	c.claimMu.Lock()
	defer c.claimMu.Unlock()
	c.mu.Lock()
	was := c.status
	c.status = status
	c.statusGen++
	c.mu.Unlock()
	if status == models.StatusIdle && was != models.StatusIdle {
		c.wakeUp()
	}
}

// statusGeneration counts local status changes; a maintenance pass notes it
// before reading the database so it never applies a reading older than a
// change made meanwhile.
func (c *conn) statusGeneration() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statusGen
}

func (c *conn) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
	c.kick()
}

// kick makes sure a writer looks at the connection's work: it starts one,
// or tells the running one to look again before it exits. Every producer
// of writer work (wake, cmds, the hub subscription, the timers) records
// the work first and kicks after, so none is left unseen.
func (c *conn) kick() {
	c.mu.Lock()
	if c.wstop {
		c.mu.Unlock()
		return
	}
	if c.writing {
		c.dirty = true
		c.mu.Unlock()
		return
	}
	c.writing = true
	c.writers.Add(1)
	ctx, cancel := context.WithCancel(c.s.base)
	c.wcancel = cancel
	c.mu.Unlock()
	go c.writeLoop(ctx, cancel)
}

// due sets a timer's flag and kicks the writer.
func (c *conn) due(flag *bool) {
	c.mu.Lock()
	*flag = true
	c.mu.Unlock()
	c.kick()
}

// recheck applies a maintenance-pass reading of the connection's session,
// taken after the status generation gen was noted.
func (c *conn) recheck(chk *models.SessionCheck, gen uint64) {
	switch {
	case chk.RevokedAt != nil:
		c.closeWith(CloseForbidden, "member_revoked", "the member was revoked")
	case chk.ArchivedAt != nil:
		c.closeWith(CloseForbidden, "mesh_archived", "the mesh was archived")
	case chk.Pubkey != c.p.Pubkey:
		c.closeWith(CloseUnauthorized, "pubkey_changed", "the member's key changed; say hello with the new key")
	case chk.ConnID != c.id:
		c.closeWith(CloseSessionReplaced, "session_replaced", "this session is served by another connection")
	case chk.DisconnectedAt != nil: // another broker found our heartbeat stale
		c.closeWith(CloseSessionReplaced, "session_gone", "the session was marked disconnected; reconnect")
	default:
		// A status set through another broker; a local change made while the
		// pass was reading wins, since the reading may predate it.
		c.mu.Lock()
		stale := c.statusGen != gen
		c.mu.Unlock()
		if !stale {
			c.setStatus(chk.Status)
		}
	}
}

// readLoop answers client frames until the connection ends.
func (c *conn) readLoop(ctx context.Context) {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusMessageTooBig {
				c.mu.Lock()
				c.reason = "frame_too_large" // the library closed it with 1009
				c.mu.Unlock()
			}
			return
		}
		if typ != websocket.MessageText {
			c.protocolError(ctx, "", "bad_frame", "frames are JSON text")
			continue
		}
		var f clientFrame
		if err := decodeStrict(data, &f); err != nil {
			c.protocolError(ctx, "", "bad_frame", "not a frame of this protocol: "+err.Error())
			continue
		}
		if f.Ref != "" && !refRe.MatchString(f.Ref) {
			c.protocolError(ctx, "", "bad_frame", "ref must be 1 to 64 characters of A-Z a-z 0-9 . _ : -")
			continue
		}
		if field, bad := models.NULField(data); bad {
			c.replyError(ctx, f.Ref, "validation_failed", field+" must not contain the NUL character (U+0000)")
			continue
		}
		switch f.Type {
		case TypeSend:
			c.handleSend(ctx, &f)
		case TypeAck:
			c.handleAck(ctx, &f)
		case TypeSetStatus:
			c.handleSetStatus(ctx, &f)
		case TypeListPeers:
			c.handleListPeers(ctx, &f)
		case TypeMessageStatus:
			c.handleMessageStatus(ctx, &f)
		case TypeSubscribe:
			c.handleSubscribe(ctx, &f)
		case TypeUnsubscribe:
			c.handleUnsubscribe(ctx, &f)
		case TypeHello:
			c.protocolError(ctx, f.Ref, "already_authenticated", "hello was already accepted on this connection")
		default:
			c.protocolError(ctx, f.Ref, "unknown_type", "unknown frame type")
		}
	}
}

// decodeStrict decodes one JSON object, refusing unknown fields and
// trailing data, as the REST API does.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("malformed JSON or an unknown field")
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

// replyError writes an error frame; the connection stays open.
func (c *conn) replyError(ctx context.Context, ref, code, msg string) {
	f := errorFrame{Type: TypeError, Code: code, Message: msg}
	if ref != "" {
		f.Ref = &ref
	}
	_ = c.write(ctx, mustJSON(f))
}

// protocolError is an error frame that spends the error budget: a client
// that keeps sending bad or refused frames is closed as abusive.
func (c *conn) protocolError(ctx context.Context, ref, code, msg string) {
	if c.errs == nil { // a new limiter is full: the same as one made at connect
		c.errs = rate.NewLimiter(errorRate, errorBurst)
	}
	if !c.errs.Allow() {
		c.closeWith(CloseAbusive, "abusive", "too many bad or refused frames")
		return
	}
	c.replyError(ctx, ref, code, msg)
}

// storeError renders a store error as an error frame.
func (c *conn) storeError(ctx context.Context, ref string, err error) {
	if de, ok := models.AsError(err); ok {
		msg := de.Detail
		for _, fe := range de.Fields {
			msg += "; " + fe.Field + " " + fe.Message
		}
		c.replyError(ctx, ref, de.Code, msg)
		return
	}
	if ctx.Err() != nil {
		return
	}
	if models.IsUnavailable(err) {
		c.s.log.Warn("ws: database unavailable", slog.String("member", c.p.MemberID))
		c.replyError(ctx, ref, models.ErrDatabaseUnavailable.Code, "the database is briefly unavailable; retry (a send retried with the same clientMessageId is stored once)")
		return
	}
	c.s.log.Error("ws: request failed", slog.String("member", c.p.MemberID), slog.String("error", err.Error()))
	c.replyError(ctx, ref, "internal", "an internal error occurred")
}

// enqueue hands the writer a command, waiting while four are queued. After
// writing has ended for good the command is dropped: nothing could be
// written.
func (c *conn) enqueue(ctx context.Context, f func(context.Context)) {
	c.mu.Lock()
	dead := c.wstop
	c.mu.Unlock()
	if dead {
		return
	}
	select {
	case c.cmds <- f:
		c.kick()
	case <-ctx.Done():
	}
}

// writeLoop does the connection's writer work until none is left, then
// exits; a failed write (or a ping without pong) ends writing for good.
func (c *conn) writeLoop(ctx context.Context, cancel context.CancelFunc) {
	defer c.writers.Done()
	defer cancel()
	for {
		c.mu.Lock()
		c.dirty = false
		ping, reval := c.pingDue, c.revalDue
		c.pingDue, c.revalDue = false, false
		c.mu.Unlock()
		if err := c.writeWork(ctx, ping, reval); err != nil {
			// The connection cannot be written to any more (the library
			// closes it on a failed write); the reader ends at its next
			// read. Commands queued meanwhile are dropped so the reader
			// never waits on a full queue that nobody takes from.
			c.mu.Lock()
			c.wstop, c.writing, c.wcancel = true, false, nil
			c.mu.Unlock()
			for more := true; more; {
				select {
				case <-c.cmds:
				default:
					more = false
				}
			}
			return
		}
		c.mu.Lock()
		if !c.dirty || c.wstop {
			c.writing, c.wcancel = false, nil
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// writeWork is one pass over the writer's work sources; each is taken
// without waiting.
func (c *conn) writeWork(ctx context.Context, ping, reval bool) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if ping {
		pctx, cancel := context.WithTimeout(ctx, c.s.cfg.PingTimeout)
		err := c.ws.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return err // torn down meanwhile, not a silent peer
			}
			c.mu.Lock()
			c.reason, c.closing = "ping_timeout", true
			c.mu.Unlock()
			_ = c.ws.CloseNow() // silent peer: no close handshake to wait for
			return err
		}
		c.pingT.Reset(c.s.cfg.PingEvery)
	}
	select {
	case <-c.wake:
		if err := c.drain(ctx); err != nil {
			return err
		}
	default:
	}
	for more := true; more; {
		select {
		case f := <-c.cmds:
			f(ctx)
		default:
			more = false
		}
	}
	select {
	case <-c.sub.Ready():
		if err := c.flushEvents(ctx); err != nil {
			return err
		}
	default:
	}
	select {
	case <-c.sub.Done():
		if err := c.resubscribe(ctx); err != nil {
			c.closeWith(CloseSlowConsumer, "slow_consumer", "fell behind the live feed; reconnect and resubscribe with since")
			return err
		}
	default:
	}
	if reval && c.subst.active {
		c.revalidate(ctx)
		if c.revT != nil {
			c.revT.Reset(c.s.cfg.RevalidateEvery)
		}
	}
	return nil
}

// drain claims and pushes the member's deliverable rows until none is left.
func (c *conn) drain(ctx context.Context) error {
	for {
		c.claimMu.Lock()
		rows, err := c.s.store.ClaimQueued(ctx, models.ClaimInput{MeshID: c.p.MeshID, RecipientID: c.p.MemberID, ConnID: c.id,
			Priorities: models.DeliverablePriorities(c.currentStatus()), Limit: claimBatch})
		c.claimMu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				// The next wake or maintenance pass retries; the rows stay queued.
				c.s.log.Warn("ws: claim queued messages", slog.String("member", c.p.MemberID), slog.String("error", err.Error()))
			}
			return nil
		}
		err = c.batch(func() error {
			for i := range rows {
				if err := c.write(ctx, mustJSON(viewPush(&rows[i]))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err // unacked: the rows go out again on the next connection
		}
		if len(rows) < claimBatch {
			return nil
		}
	}
}

// flushEvents writes what the hub queued: presence always, and while a
// topic feed is active its messages (seqs already written skipped) and
// notifications. Each frame's bytes are built once per event.
func (c *conn) flushEvents(ctx context.Context) error {
	var events []*stream.Event
	if c.subst.active {
		events = c.subst.feed.Live()
	} else {
		events = c.sub.Take()
	}
	return c.batch(func() error {
		for _, e := range events {
			if e.Kind != stream.KindPresence && !c.subst.active {
				continue // queued before the feed stopped
			}
			for _, f := range e.WSFrames() {
				if err := c.write(ctx, f); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// handshake sends the challenge and checks the hello. It returns the
// session, or nil after closing the connection with the reason.
func (c *conn) handshake(ctx context.Context) *models.PresenceRow {
	s := c.s
	nonce := randomHex(32)
	if err := c.write(ctx, mustJSON(challengeFrame{Type: TypeChallenge, Nonce: nonce, Protocol: Protocol, ServerTime: s.store.Now()})); err != nil {
		return nil
	}
	// A context deadline would drop the TCP connection without a close
	// frame; a timer closes it properly instead.
	t := time.AfterFunc(s.cfg.HelloTimeout, func() { c.closeWith(CloseHelloTimeout, "hello_timeout", "no hello in time") })
	typ, data, err := c.ws.Read(ctx)
	t.Stop()
	if err != nil {
		return nil
	}
	// Refusals close synchronously: the close frame must be out before
	// serve's deferred CloseNow drops the TCP connection.
	refuse := func(code websocket.StatusCode, reason, detail string) *models.PresenceRow {
		c.mu.Lock()
		c.closing, c.reason = true, reason
		c.mu.Unlock()
		_ = c.ws.Close(code, closeReason(reason, detail))
		return nil
	}
	var f clientFrame
	if typ != websocket.MessageText || decodeStrict(data, &f) != nil {
		return refuse(CloseProtocolError, "hello_required", "the first frame must be a JSON hello")
	}
	if f.Type != TypeHello {
		return refuse(CloseProtocolError, "hello_required", "the first frame must be hello")
	}
	h := f.Hello()
	if detail := checkHelloFields(&f); detail != "" {
		return refuse(CloseProtocolError, "bad_hello", detail)
	}
	now := s.store.Now()
	if skew := now.Sub(time.UnixMilli(h.TS)); skew > s.cfg.HelloSkew || skew < -s.cfg.HelloSkew {
		return refuse(CloseUnauthorized, "stale_hello", "ts is more than 60 s from the server's clock")
	}
	if err := VerifyHello(nonce, h, f.Sig); err != nil {
		return refuse(CloseUnauthorized, "bad_signature", "the signature does not verify for this challenge")
	}
	member, mesh, err := s.store.HelloMember(ctx, h.MeshID, h.MemberID)
	var de *models.Error
	switch {
	case errors.As(err, &de) && de.Kind == models.KindNotFound:
		return refuse(CloseUnauthorized, "unknown_member", "no such member in this mesh")
	case err != nil:
		s.log.Error("ws: hello lookup", slog.String("error", err.Error()))
		return refuse(websocket.StatusInternalError, "internal", "try again")
	case member.PeerPubkey != h.Pubkey:
		return refuse(CloseUnauthorized, "pubkey_mismatch", "pubkey is not the member's current key")
	case member.RevokedAt != nil:
		return refuse(CloseForbidden, "member_revoked", "the member was revoked")
	case mesh.ArchivedAt != nil:
		return refuse(CloseForbidden, "mesh_archived", "the mesh is archived")
	case h.DisplayName != "" && h.DisplayName != member.DisplayName:
		return refuse(CloseUnauthorized, "display_name_mismatch", "displayName is not the member's")
	}
	release, ok := s.reserveSession(member.ID, h.SessionID)
	if !ok {
		return refuse(CloseTooManySessions, "too_many_sessions", "this member has too many peer sessions on this broker; close one")
	}
	c.slot = release
	c.p = models.RolePrincipal(member) // the signed hello proves the member itself: its role's every capability
	c.session = h.SessionID
	cwd := ""
	if f.Cwd != nil {
		cwd = *f.Cwd
	}
	row, err := s.store.ConnectSession(ctx, models.ConnectInput{MeshID: member.MeshID, MemberID: member.ID, SessionID: h.SessionID,
		NodeID: s.cfg.NodeID, ConnID: c.id, Pid: f.Pid, Cwd: cwd, FreshWindow: s.cfg.HookFreshWindow})
	if err != nil {
		release()
		s.log.Error("ws: record connect", slog.String("error", err.Error()))
		return refuse(websocket.StatusInternalError, "internal", "try again")
	}
	c.presence = row.ID
	return row
}

// checkHelloFields validates a hello's shape before any crypto or query.
func checkHelloFields(f *clientFrame) string {
	switch {
	case !models.ValidID(f.MeshID) || !models.ValidID(f.MemberID):
		return "meshId and memberId must be ids"
	case !pubkeyHexRe.MatchString(f.Pubkey):
		return "pubkey must be 64 lowercase hex characters"
	case !sessionIDRe.MatchString(f.SessionID):
		return "sessionId must be 1 to 128 characters of A-Z a-z 0-9 . _ : -"
	case f.DisplayName != "" && !displayNameRe.MatchString(f.DisplayName):
		return "displayName is not a display name"
	case f.TS <= 0:
		return "ts must be unix milliseconds"
	case f.Sig == "":
		return "sig is required"
	case f.Pid != nil && *f.Pid < 1:
		return "pid must be positive"
	case f.Cwd != nil && !models.ValidCwd(*f.Cwd):
		return "cwd must be UTF-8 without NUL, at most 4096 bytes"
	case f.Ref != "" || f.To != "" || f.Ciphertext != "" || f.IDs != nil || f.Status != "" || f.Topics != nil || f.Envelopes != nil:
		return "hello carries only hello fields"
	}
	return ""
}
