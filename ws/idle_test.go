package ws_test

import (
	"context"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
	wsclient "github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/ws"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// connGoroutines counts the goroutines now running a connection's reader,
// its writer, or its handshake.
func connGoroutines() (readers, writers, handshakes int) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		switch {
		case strings.Contains(g, "ws.(*conn).writeLoop"):
			writers++
		case strings.Contains(g, "ws.(*conn).readLoop"):
			readers++
		case strings.Contains(g, "ws.(*Server).serve"):
			handshakes++
		}
	}
	return readers, writers, handshakes
}

// TestIdleConnectionHoldsOneGoroutine: once its work is written, an idle
// authenticated connection is its reader alone; the writer is started for
// work and exits when none is left, and a later push starts it again. The
// writer's exit is asynchronous, so the test waits for it (with a generous
// bound) instead of timing anything.
func TestIdleConnectionHoldsOneGoroutine(t *testing.T) {
	w := newWorld(t, models.SQLite, nil)
	const n = 5
	peers := make([]peer, n)
	clients := make([]*wsclient.Conn, n)
	for i := range peers {
		peers[i] = w.join("p" + string(rune('a'+i)))
		clients[i] = w.dial(peers[i], "s")
	}
	idle := func() {
		t.Helper()
		var r, wr, h int
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if r, wr, h = connGoroutines(); r == n && wr == 0 && h == 0 {
				return
			}
		}
		t.Fatalf("idle connections: %d readers, %d writers, %d handshakes; want %d, 0, 0", r, wr, h, n)
	}
	idle()
	// The writer comes back for a push (the wake), and leaves again.
	if f := send(t, clients[0], direct(t, peers[0], peers[1], "hello", "now", "")); f.Type != wsproto.TypeAck {
		t.Fatalf("send = %+v", f)
	}
	if got := open(t, next(t, clients[1], wsproto.TypePush), peers[1]); got != "hello" {
		t.Fatalf("push = %q", got)
	}
	idle()
}

// stallConn counts the client's writes; once stallAfter of them happened
// after arm, its reads block until release is closed, so the client stops
// answering pings as a peer that went silent would.
type stallConn struct {
	net.Conn
	armed      atomic.Bool
	writes     atomic.Int64
	stallAfter int64
	release    chan struct{}
}

func (c *stallConn) Write(p []byte) (int, error) {
	if c.armed.Load() {
		c.writes.Add(1)
	}
	return c.Conn.Write(p)
}

func (c *stallConn) Read(p []byte) (int, error) {
	if c.armed.Load() && c.writes.Load() >= c.stallAfter {
		<-c.release
	}
	return c.Conn.Read(p)
}

// TestPingsRepeatUntilPeerFallsSilent: pings are re-armed after each pong,
// not sent once: a peer that answers three pings (after the welcome it
// writes nothing but pongs, so its writes count them) and then stops
// reading is closed for ping_timeout.
func TestPingsRepeatUntilPeerFallsSilent(t *testing.T) {
	w := newWorld(t, models.SQLite, func(c *ws.Config) { c.PingEvery, c.PingTimeout = 20*time.Millisecond, time.Second })
	alice, bob := w.join("alice"), w.join("bob")
	ca := w.dial(alice, "a")
	sc := &stallConn{stallAfter: 3, release: make(chan struct{})}
	var once sync.Once
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		once.Do(func() { sc.Conn = nc })
		return sc, nil
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cb, err := wsclient.Dial(ctx, w.url, hc, w.hello(bob, "b"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cb.Socket().CloseNow() })
	t.Cleanup(func() { close(sc.release) }) // runs first: bob's stalled read returns
	sc.armed.Store(true)
	go func() { // bob reads (answering pings) until his reads stall
		for {
			if _, err := cb.Next(context.Background()); err != nil {
				return
			}
		}
	}()
	for {
		var v ws.PeerView
		if err := peertest.DecodeData(next(t, ca, wsproto.TypePresence), &v); err != nil {
			t.Fatal(err)
		}
		if v.MemberID == bob.p.MemberID && v.DisconnectedAt != nil {
			break
		}
	}
	if got := sc.writes.Load(); got < 3 {
		t.Errorf("bob was closed after %d pongs; want at least 3", got)
	}
	db, _ := w.store.SQLDB()
	var reason string
	if err := db.QueryRow("SELECT metadata FROM audit_events WHERE kind = 'peer.disconnected' ORDER BY seq DESC LIMIT 1").Scan(&reason); err != nil ||
		!strings.Contains(reason, `"reason":"ping_timeout"`) {
		t.Errorf("disconnect audit = %s (%v)", reason, err)
	}
}
