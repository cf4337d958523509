package ws_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
	wsclient "github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/stream"
	"github.com/claudemesh/claudemesh-go/ws"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// TestEarlyHookStash: a hook signal that arrives before its session's hello
// is applied at the hello within 10 s (by the injected clock), and dropped
// after.
func TestEarlyHookStash(t *testing.T) {
	eachWorld(t, nil, func(t *testing.T, w *world) {
		ctx := context.Background()
		bob := w.join("bob")
		pid, cwd := 4242, "/home/bob/app"
		res, err := w.srv.HookStatus(ctx, bob.p, models.HookInput{Status: models.StatusWorking, Pid: pid, Cwd: cwd, Summary: ptr("tests")})
		if err != nil || !res.Stashed {
			t.Fatalf("hook before hello = %+v, %v", res, err)
		}
		w.clock.Advance(9 * time.Second)
		c := w.dial(bob, "s1", func(o *wsclient.HelloOptions) { o.Pid, o.Cwd = &pid, &cwd })
		if s := c.Welcome.Session; s.Status != models.StatusWorking || s.StatusSource != models.SourceHook || s.Summary != "tests" {
			t.Fatalf("session after stashed hook = %+v", s)
		}
		// Used once: a second session of the same cwd starts idle.
		if s := w.dial(bob, "s2", func(o *wsclient.HelloOptions) { o.Pid, o.Cwd = &pid, &cwd }).Welcome.Session; s.Status != models.StatusIdle {
			t.Fatalf("stash applied twice: %+v", s)
		}

		other := "/home/bob/other"
		if res, err := w.srv.HookStatus(ctx, bob.p, models.HookInput{Status: models.StatusWorking, Pid: 7, Cwd: other}); err != nil || !res.Stashed {
			t.Fatalf("second stash = %+v, %v", res, err)
		}
		w.clock.Advance(11 * time.Second)
		if s := w.dial(bob, "s3", func(o *wsclient.HelloOptions) { o.Cwd = &other }).Welcome.Session; s.Status != models.StatusIdle {
			t.Fatalf("a stash older than 10 s was applied: %+v", s)
		}

		// With the session connected, the hook matches it by (pid, cwd).
		res, err = w.srv.HookStatus(ctx, bob.p, models.HookInput{Status: models.StatusIdle, Pid: pid, Cwd: cwd})
		if err != nil || res.Stashed || res.Session == nil || res.Session.SessionID != "s2" && res.Session.SessionID != "s1" {
			t.Fatalf("hook with sessions = %+v, %v", res, err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestPresenceReachesPeersAndStreams: connects, status changes and
// disconnects reach the other peers as presence frames and the hub's SSE
// subscribers as presence events, with the same Peer payload.
func TestPresenceReachesPeersAndStreams(t *testing.T) {
	eachWorld(t, nil, func(t *testing.T, w *world) {
		alice, bob := w.join("alice"), w.join("bob")
		sse := w.hub.Subscribe(w.mesh.Mesh.ID, func(e *stream.Event) bool { return e.Kind == stream.KindPresence })
		defer sse.Close()
		ca := w.dial(alice, "a")
		cb := w.dial(bob, "b")
		send(t, cb, map[string]any{"type": "set_status", "status": "dnd", "summary": "focus"})
		_ = cb.Close()

		var frames []ws.PeerView
		for len(frames) < 3 {
			f := next(t, ca, wsproto.TypePresence)
			var v ws.PeerView
			if err := peertest.DecodeData(f, &v); err != nil {
				t.Fatal(err)
			}
			if v.MemberID == bob.p.MemberID {
				frames = append(frames, v)
			}
		}
		if frames[0].DisconnectedAt != nil || frames[1].Status != models.StatusDND || frames[1].Summary != "focus" || frames[2].DisconnectedAt == nil {
			t.Fatalf("bob's presence frames = %+v", frames)
		}
		var events []ws.PeerView
		deadline := time.After(5 * time.Second)
		for len(events) < 4 { // alice's connect and bob's three
			select {
			case <-sse.Ready():
				for _, e := range sse.Take() {
					var v ws.PeerView
					if err := json.Unmarshal(e.Data, &v); err != nil {
						t.Fatal(err)
					}
					events = append(events, v)
				}
			case <-deadline:
				t.Fatalf("SSE subscriber got %d presence events", len(events))
			}
		}
		if events[3].MemberID != bob.p.MemberID || events[3].DisconnectedAt == nil {
			t.Errorf("last SSE presence event = %+v", events[3])
		}

		peers := send(t, ca, map[string]any{"type": "list_peers"})
		if len(peertest.View(peers).Peers) != 1 || peertest.View(peers).Peers[0].MemberID != alice.p.MemberID {
			t.Errorf("list_peers after bob left = %+v", peertest.View(peers).Peers)
		}
		// A reconnecting session keeps dnd; anything else restarts idle.
		if s := w.dial(bob, "b").Welcome.Session; s.Status != models.StatusDND {
			t.Errorf("dnd lost on reconnect: %+v", s)
		}
	})
}

// TestSilentPeerIsDisconnected: a peer that stops answering protocol pings
// is closed and its session shown disconnected to the others (pings every
// 20 s with a 20 s pong deadline in production; shortened here).
func TestSilentPeerIsDisconnected(t *testing.T) {
	w := newWorld(t, models.SQLite, func(c *ws.Config) { c.PingEvery, c.PingTimeout = 30*time.Millisecond, 30*time.Millisecond })
	alice, bob := w.join("alice"), w.join("bob")
	ca := w.dial(alice, "a")
	_ = w.dial(bob, "silent") // never read again: pongs are only sent while reading
	for {
		var v ws.PeerView
		// alice keeps reading, so she answers her own pings.
		if err := peertest.DecodeData(next(t, ca, wsproto.TypePresence), &v); err != nil {
			t.Fatal(err)
		}
		if v.MemberID == bob.p.MemberID && v.DisconnectedAt != nil {
			break
		}
	}
	db, _ := w.store.SQLDB()
	var reason string
	if err := db.QueryRow("SELECT metadata FROM audit_events WHERE kind = 'peer.disconnected' ORDER BY seq DESC LIMIT 1").Scan(&reason); err != nil ||
		!strings.Contains(reason, `"reason":"ping_timeout"`) {
		t.Errorf("disconnect audit = %s (%v)", reason, err)
	}
}
