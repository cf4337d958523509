package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/r3labs/sse/v2"

	"github.com/claudemesh/claudemesh-go/api"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// pgProxy is a TCP proxy in front of PostgreSQL that the test can cut: an
// outage closes every open connection and refuses new ones until it ends,
// which is what a database restart or a network partition looks like to
// the broker.
type pgProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

// postgresBehindProxy is a fresh PostgreSQL schema reached through a proxy
// the test can cut, with a short connect timeout so a cut shows quickly.
func postgresBehindProxy(t *testing.T) (models.Options, *pgProxy) {
	t.Helper()
	opt := storetest.Options(t, models.Postgres)
	u, err := url.Parse(opt.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startPGProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	opt.DatabaseURL = u.String()
	return opt, proxy
}

func startPGProxy(t *testing.T, target string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
	})
	go p.accept()
	return p
}

func (p *pgProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		go p.pipe(c)
	}
}

func (p *pgProxy) pipe(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[client], p.conns[server] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(server, client); server.Close(); client.Close() }()
	_, _ = io.Copy(client, server)
	client.Close()
	server.Close()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// setDown starts (true) or ends (false) an outage.
func (p *pgProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// leaks lists what must never reach a client: driver and network error text.
var leaks = []string{"SQLSTATE", "failed to connect", "dial tcp", "connection refused", "unexpected EOF", "conn closed",
	"pgx", "postgres", "127.0.0.1:", "broken pipe", "reset by peer"}

func leaked(b []byte) string {
	for _, l := range leaks {
		if bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(l))) {
			return l
		}
	}
	return ""
}

// TestStreamsSurviveDatabaseOutage: PostgreSQL becomes unreachable for a few
// seconds under a live SSE stream and a live WebSocket subscription. Both
// streams stay open (their re-checks fail and are retried, not read as a
// revocation), posts meanwhile answer 503 database_unavailable with
// Retry-After, and every message committed after recovery reaches both
// exactly once and in order. No driver error text reaches any client.
func TestStreamsSurviveDatabaseOutage(t *testing.T) {
	opt, proxy := postgresBehindProxy(t)
	e, _ := brokerOn(t, opt, func(c *api.Config) {
		c.StreamRevalidate = 100 * time.Millisecond
		c.WSRecheck = 100 * time.Millisecond
		c.StreamUnavailableGrace = time.Minute
	})

	owner := e.signup()
	m := e.createMesh(owner.AccessToken, "Outage")
	poster := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "poster")
	reader := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "reader")
	peer := e.joinWithIdentity(e.invite(owner.AccessToken, m.Mesh.ID, nil), "peer")

	// One stream on an API key, one on a member token: their re-checks
	// take different paths through the store.
	f := e.follow("/v1/topics/general/stream", reader.APIKey.Key, "")
	defer f.cancel()
	f.next(t, "ready")
	fj := e.follow("/v1/topics/general/stream", e.memberToken(owner.AccessToken, m.Mesh.ID), "")
	defer fj.cancel()
	fj.next(t, "ready")
	c := e.dialPeer(peer, m.Mesh.ID, "sess-outage")
	if got := wsSend(t, c, map[string]any{"type": "subscribe", "topics": []string{"general"}, "ref": "sub"}); got.Type != "subscribed" {
		t.Fatalf("subscribe answered %s %s", got.Type, peertest.View(got).Code)
	}

	var want []int64
	postOne := func(i int) {
		t.Helper()
		s, err := e.post(poster.APIKey.Key, "general", fmt.Appendf(nil, "message %d", i))
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		want = append(want, s)
	}
	for i := range 5 {
		postOne(i)
	}

	// The outage: several re-check cycles of both transports fail.
	proxy.setDown(true)
	var sawUnavailable bool
	for range 3 {
		status, raw, hdr := e.call("POST", "/v1/messages", poster.APIKey.Key,
			map[string]any{"topic": "general", "bodyVersion": 1, "ciphertext": "aGk=", "clientMessageId": "during-outage"})
		if status == http.StatusServiceUnavailable && strings.Contains(string(raw), `"database_unavailable"`) && hdr.Get("Retry-After") != "" {
			sawUnavailable = true
		} else {
			t.Errorf("post during the outage = %d %s (Retry-After %q), want 503 database_unavailable with Retry-After", status, raw, hdr.Get("Retry-After"))
		}
		if l := leaked(raw); l != "" {
			t.Errorf("a REST error leaked %q: %s", l, raw)
		}
		time.Sleep(time.Second) // hold the outage across many 100 ms re-checks
	}
	if !sawUnavailable {
		t.Fatal("no 503 during the outage")
	}
	proxy.setDown(false)

	// After recovery the retried post lands once, and more follow.
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, raw, _ := e.call("POST", "/v1/messages", poster.APIKey.Key,
			map[string]any{"topic": "general", "bodyVersion": 1, "ciphertext": "aGk=", "clientMessageId": "during-outage"})
		if status == http.StatusCreated || status == http.StatusOK {
			var out struct {
				Seq int64 `json:"seq"`
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				t.Fatal(err)
			}
			want = append(want, out.Seq)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("posts still fail 30 s after the database came back: %d %s", status, raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 5; i < 25; i++ {
		postOne(i)
	}

	// SSE: every seq once, in order, and no end event.
	for _, fl := range []*follower{f, fj} {
		for _, w := range want {
			var ev struct {
				Seq int64 `json:"seq"`
			}
			raw := fl.nextAny(t)
			if string(raw.Event) != "message" {
				t.Fatalf("SSE got %q %s, want message seq %d (the stream must survive the outage)", raw.Event, raw.Data, w)
			}
			if l := leaked(raw.Data); l != "" {
				t.Fatalf("SSE event leaked %q: %s", l, raw.Data)
			}
			if err := json.Unmarshal(raw.Data, &ev); err != nil || ev.Seq != w {
				t.Fatalf("SSE got seq %d, want %d", ev.Seq, w)
			}
		}
	}
	// WS: the same.
	for _, w := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		fr, err := c.NextOf(ctx, wsproto.TypeMessage, wsproto.TypeError)
		cancel()
		if err != nil {
			t.Fatalf("WS waiting for seq %d: %v", w, err)
		}
		if fr.Type == wsproto.TypeError {
			t.Fatalf("WS error frame %s %q (reason %q) where seq %d was due", peertest.View(fr).Code, peertest.View(fr).Message, peertest.View(fr).Reason, w)
		}
		if l := leaked(append([]byte(peertest.View(fr).Message), peertest.View(fr).Data...)); l != "" {
			t.Fatalf("WS frame leaked %q: %s", l, peertest.View(fr).Data)
		}
		var ev struct {
			Seq int64 `json:"seq"`
		}
		if err := peertest.DecodeData(fr, &ev); err != nil || ev.Seq != w {
			t.Fatalf("WS got seq %d, want %d", ev.Seq, w)
		}
	}
	// Nothing more: no duplicate, no end.
	for _, fl := range []*follower{f, fj} {
		select {
		case ev := <-fl.events:
			if k := string(ev.Event); k == "message" || k == "end" {
				t.Fatalf("SSE sent more than the committed messages: %s %s", ev.Event, ev.Data)
			}
		case err := <-fl.done:
			t.Fatalf("SSE stream ended: %v", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if fr, err := c.NextOf(ctx, wsproto.TypeMessage, wsproto.TypeError); err == nil {
		t.Fatalf("WS sent more than the committed messages: %s %s", fr.Type, peertest.View(fr).Data)
	} else if ctx.Err() == nil {
		t.Fatalf("WS connection did not survive: %v", err)
	}
}

// nextAny waits for the next message or end event (presence and
// notifications are skipped).
func (f *follower) nextAny(t testing.TB) *sse.Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-f.events:
			if k := string(ev.Event); k == "message" || k == "end" {
				return ev
			}
		case err := <-f.done:
			t.Fatalf("stream ended: %v", err)
		case <-timeout:
			t.Fatal("no message or end event within 20 s")
		}
	}
}
