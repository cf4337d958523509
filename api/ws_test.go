package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/api"
	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
	wsclient "github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// wsURL is the env's /ws endpoint.
func (e *env) wsURL() string { return "ws" + strings.TrimPrefix(e.base, "http") + "/ws" }

// dialPeer connects a joined peer over /ws as the given session.
func (e *env) dialPeer(p cryptoPeer, meshID, session string, edit ...func(*wsclient.HelloOptions)) *wsclient.Conn {
	e.t.Helper()
	opt := wsclient.HelloOptions{Identity: p.id, MeshID: meshID, MemberID: p.Member.ID, SessionID: session}
	for _, f := range edit {
		f(&opt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsclient.Dial(ctx, e.wsURL(), nil, opt)
	if err != nil {
		e.t.Fatalf("dial %s: %v", session, err)
	}
	e.t.Cleanup(func() { _ = c.Socket().CloseNow() })
	return c
}

// wsNext reads frames until one of the given type arrives.
func wsNext(t testing.TB, c *wsclient.Conn, typ string) *wsclient.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := c.NextOf(ctx, typ)
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	return f
}

// wsSend writes a frame with a ref and returns the answer to it.
func wsSend(t testing.TB, c *wsclient.Conn, f map[string]any) *wsclient.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := c.Call(ctx, peertest.MapFrame(f))
	if err != nil {
		t.Fatalf("waiting for the answer to %v: %v", f["type"], err)
	}
	return g
}

func sealFor(t testing.TB, from, to cryptoPeer, text, priority, cid string) map[string]any {
	t.Helper()
	f, err := wsclient.SealedSend(from.id, to.Member.ID, to.id.PublicKeyHex(), []byte(text), priority, cid)
	if err != nil {
		t.Fatal(err)
	}
	return peertest.ToMap(f)
}

func TestWSRequiresAnUpgrade(t *testing.T) {
	e := newEnv(t, models.SQLite, nil)
	e.wantProblem("GET", "/ws", "", nil, http.StatusBadRequest, "websocket_upgrade_required")
}

// brokerOn starts a broker over an existing database, as a restart does;
// stop closes the server, then its store.
func brokerOn(t *testing.T, opt models.Options, tweak func(*api.Config)) (*env, func()) {
	t.Helper()
	store, err := models.Open(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg, _ := api.LoadConfig(func(string) string { return "" })
	cfg.JWTSecret = testSecret
	cfg.RateLimit, cfg.RateLimitBurst, cfg.AuthRateLimit, cfg.AuthRateLimitBurst = 10000, 10000, 10000, 10000
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := api.New(context.Background(), cfg, store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Echo)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			hs.Close()
			_ = store.Close()
		})
	}
	t.Cleanup(stop)
	return &env{t: t, srv: srv, base: hs.URL, client: newContractClient(t), store: store}, stop
}

// TestWSAckedSendSurvivesRestart: A's send to offline B is acked, the broker
// stops (server and store closed) and a new one opens the same database; B
// connects to it and receives the message exactly once, acks it, and never
// sees it again.
func TestWSAckedSendSurvivesRestart(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			opt := storetest.Options(t, d)
			e1, stop := brokerOn(t, opt, nil)
			owner := e1.signup()
			m := e1.createMesh(owner.AccessToken, "Restart")
			inv := e1.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2})
			alice, bob := e1.joinWithIdentity(inv, "alice"), e1.joinWithIdentity(inv, "bob")
			ca := e1.dialPeer(alice, m.Mesh.ID, "a")
			ack := wsSend(t, ca, sealFor(t, alice, bob, "survive this", "now", "r-1"))
			if ack.Type != wsproto.TypeAck || len(peertest.View(ack).IDs) != 1 {
				t.Fatalf("ack = %+v", ack)
			}
			ended := make(chan error, 1)
			go func() { // keep reading, as a peer does, so the close handshake completes
				for {
					if _, err := ca.Next(context.Background()); err != nil {
						ended <- err
						return
					}
				}
			}()
			stop()
			if code, _ := wsclient.CloseStatus(<-ended); code != 1001 {
				t.Errorf("shutdown closed alice with %d, want 1001", code)
			}

			e2, _ := brokerOn(t, opt, nil)
			cb := e2.dialPeer(bob, m.Mesh.ID, "b")
			p := wsNext(t, cb, wsproto.TypePush)
			plain, err := meshcrypto.OpenDirect(peertest.View(p).Ciphertext, peertest.View(p).Nonce, bob.id, peertest.View(p).From.Pubkey)
			if peertest.View(p).ID != peertest.View(ack).IDs[0] || err != nil || string(plain) != "survive this" || peertest.View(p).Attempt != 1 {
				t.Fatalf("push after restart = %+v (%q, %v)", p, plain, err)
			}
			if r := wsSend(t, cb, map[string]any{"type": "ack", "ids": []string{peertest.View(p).ID}}); peertest.View(r).Acked == nil || *peertest.View(r).Acked != 1 {
				t.Fatalf("ack reply = %+v", r)
			}
			_ = cb.Close()
			ca2 := e2.dialPeer(alice, m.Mesh.ID, "a")
			cb = e2.dialPeer(bob, m.Mesh.ID, "b")
			marker := wsSend(t, ca2, sealFor(t, alice, bob, "marker", "now", ""))
			if p := wsNext(t, cb, wsproto.TypePush); peertest.View(p).ID != peertest.View(marker).IDs[0] {
				t.Fatalf("after the ack bob got %s again, want only the marker", peertest.View(p).ID)
			}
		})
	}
}

// TestWS1000DirectMessages: four senders send 250 messages each, at once,
// to one recipient; all 1,000 arrive exactly once and each sender's arrive
// in the order sent.
func TestWS1000DirectMessages(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			e := newEnv(t, d, func(c *api.Config) { c.WSSendsPerSecond, c.WSSendBurst = 1e6, 1e6 })
			t.Cleanup(e.srv.Close)
			owner := e.signup()
			m := e.createMesh(owner.AccessToken, "Load")
			inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 10})
			bob := e.joinWithIdentity(inv, "bob")
			const senders, each = 4, 250
			var from []cryptoPeer
			for i := range senders {
				from = append(from, e.joinWithIdentity(inv, fmt.Sprintf("sender-%d", i)))
			}
			cb := e.dialPeer(bob, m.Mesh.ID, "b")
			got := make(chan *wsclient.Frame, senders*each)
			go func() {
				for {
					f, err := cb.Next(context.Background())
					if err != nil {
						close(got)
						return
					}
					if f.Type == wsproto.TypePush {
						got <- f
						_ = cb.Send(context.Background(), map[string]any{"type": "ack", "ids": []string{peertest.View(f).ID}})
					}
				}
			}()
			var wg sync.WaitGroup
			for i, s := range from {
				c := e.dialPeer(s, m.Mesh.ID, "s")
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := range each {
						f, err := wsclient.SealedSend(s.id, bob.Member.ID, bob.id.PublicKeyHex(), []byte(fmt.Sprintf("%d:%d", i, n)), "now", fmt.Sprintf("m-%d", n))
						if err != nil {
							t.Error(err)
							return
						}
						if a := wsSend(t, c, peertest.ToMap(f)); a.Type != wsproto.TypeAck {
							t.Errorf("sender %d message %d: %+v", i, n, a)
							return
						}
					}
				}()
			}
			wg.Wait()
			seen := map[string]bool{}
			last := make([]int, senders)
			for i := range last {
				last[i] = -1
			}
			timeout := time.After(60 * time.Second)
			for len(seen) < senders*each {
				select {
				case f, ok := <-got:
					if !ok {
						t.Fatal("bob's connection ended")
					}
					if seen[peertest.View(f).ID] {
						t.Fatalf("%s delivered twice", peertest.View(f).ID)
					}
					seen[peertest.View(f).ID] = true
					plain, err := meshcrypto.OpenDirect(peertest.View(f).Ciphertext, peertest.View(f).Nonce, bob.id, peertest.View(f).From.Pubkey)
					if err != nil {
						t.Fatal(err)
					}
					var s, n int
					if _, err := fmt.Sscanf(string(plain), "%d:%d", &s, &n); err != nil || n != last[s]+1 {
						t.Fatalf("sender %d: message %d after %d", s, n, last[s])
					}
					last[s] = n
				case <-timeout:
					t.Fatalf("received %d of %d", len(seen), senders*each)
				}
			}
		})
	}
}

// TestWSClosedWhenRevoked: revoking a member over REST closes its live
// connection within the maintenance interval (the real ticker here).
func TestWSClosedWhenRevoked(t *testing.T) {
	eachEnvWith(t, func(c *api.Config) { c.WSRecheck = 50 * time.Millisecond }, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go e.srv.Peers().Run(ctx)
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Revoke")
		bob := e.joinWithIdentity(e.invite(owner.AccessToken, m.Mesh.ID, nil), "bob")
		cb := e.dialPeer(bob, m.Mesh.ID, "b")
		admin := e.memberToken(owner.AccessToken, m.Mesh.ID)
		e.must("DELETE", "/v1/members/"+bob.Member.ID, admin, nil, http.StatusNoContent, nil)
		start := time.Now()
		_, err := cb.Next(context.Background())
		for err == nil {
			_, err = cb.Next(context.Background())
		}
		if code, reason := wsclient.CloseStatus(err); code != 4403 || !strings.HasPrefix(reason, "member_revoked") {
			t.Fatalf("closed with %d %q", code, reason)
		}
		t.Logf("closed %v after the revocation", time.Since(start).Round(time.Millisecond))
	})
}

// eachEnvWith is eachEnv with a configuration tweak; the server is closed
// before its store.
func eachEnvWith(t *testing.T, tweak func(*api.Config), fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			e := newEnv(t, d, tweak)
			t.Cleanup(e.srv.Close)
			fn(t, e)
		})
	}
}
