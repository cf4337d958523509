package ws_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
	wsclient "github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/ws"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// TestOfflineQueueRedeliveryAndIdempotency: a send to an offline member is
// acked once stored; a retry with the same clientMessageId stores nothing
// new; the member receives it on connect, again on the next connection if
// it did not ack, and never after acking.
func TestOfflineQueueRedeliveryAndIdempotency(t *testing.T) {
	eachWorld(t, nil, func(t *testing.T, w *world) {
		alice, bob := w.join("alice"), w.join("bob")
		ca := w.dial(alice, "a")
		ack := send(t, ca, direct(t, alice, bob, "while you were out", "next", "m-1"))
		if ack.Type != wsproto.TypeAck || len(peertest.View(ack).IDs) != 1 || *peertest.View(ack).Replayed || peertest.View(ack).To != bob.p.MemberID {
			t.Fatalf("ack = %+v", ack)
		}
		again := send(t, ca, direct(t, alice, bob, "while you were out (retry)", "next", "m-1"))
		if !*peertest.View(again).Replayed || peertest.View(again).IDs[0] != peertest.View(ack).IDs[0] {
			t.Fatalf("retry = %+v, want the first row replayed", again)
		}

		cb := w.dial(bob, "b")
		p := next(t, cb, wsproto.TypePush)
		if peertest.View(p).ID != peertest.View(ack).IDs[0] || peertest.View(p).Attempt != 1 || peertest.View(p).From.ID != alice.p.MemberID || open(t, p, bob) != "while you were out" {
			t.Fatalf("push = %+v", p)
		}
		_ = cb.Close() // no ack

		cb = w.dial(bob, "b")
		p = next(t, cb, wsproto.TypePush)
		if peertest.View(p).ID != peertest.View(ack).IDs[0] || peertest.View(p).Attempt != 2 {
			t.Fatalf("redelivery = %+v", p)
		}
		if r := send(t, cb, map[string]any{"type": "ack", "ids": []string{peertest.View(p).ID}}); *peertest.View(r).Acked != 1 {
			t.Fatalf("ack reply = %+v", r)
		}
		_ = cb.Close()

		cb = w.dial(bob, "b")
		m2 := send(t, ca, direct(t, alice, bob, "second", "next", "m-2"))
		if p := next(t, cb, wsproto.TypePush); peertest.View(p).ID != peertest.View(m2).IDs[0] {
			t.Fatalf("after ack the first push is %s (%q), want the new message", peertest.View(p).ID, open(t, p, bob))
		}
		// Recipients: @name, pubkey and member id all reach bob; a stranger is refused.
		for _, to := range []string{"@bob", bob.id.PublicKeyHex()} {
			f := direct(t, alice, bob, "via "+to, "now", "")
			f["to"] = to
			if a := send(t, ca, f); a.Type != wsproto.TypeAck || peertest.View(a).To != bob.p.MemberID {
				t.Errorf("to %s: %+v", to, a)
			}
		}
		f := direct(t, alice, bob, "nobody", "now", "")
		f["to"] = "@nobody"
		if e := send(t, ca, f); peertest.View(e).Code != "recipient_not_found" {
			t.Errorf("to @nobody: %+v", e)
		}
	})
}

// TestPriorityGating: a working (or dnd) session receives only "now"; its
// held next/low messages go out, in order, the moment it turns idle.
func TestPriorityGating(t *testing.T) {
	eachWorld(t, nil, func(t *testing.T, w *world) {
		alice, bob := w.join("alice"), w.join("bob")
		ca, cb := w.dial(alice, "a"), w.dial(bob, "b")
		for _, status := range []string{models.StatusWorking, models.StatusDND} {
			if r := send(t, cb, map[string]any{"type": "set_status", "status": status}); peertest.View(r).Session.Status != status {
				t.Fatalf("set %s: %+v", status, r)
			}
			n := send(t, ca, direct(t, alice, bob, "next while "+status, "next", ""))
			l := send(t, ca, direct(t, alice, bob, "low while "+status, "low", ""))
			x := send(t, ca, direct(t, alice, bob, "now while "+status, "now", ""))
			if p := next(t, cb, wsproto.TypePush); peertest.View(p).ID != peertest.View(x).IDs[0] {
				t.Fatalf("%s: first push %q, want the now message", status, open(t, p, bob))
			}
			send(t, cb, map[string]any{"type": "set_status", "status": "idle"})
			for _, want := range []*wsclient.Frame{n, l} {
				if p := next(t, cb, wsproto.TypePush); peertest.View(p).ID != peertest.View(want).IDs[0] {
					t.Fatalf("%s: released %q out of order", status, open(t, p, bob))
				}
			}
		}
	})
}

// TestStatusTTLReleasesHeldMessages: the sweeper (run by hand after moving
// the injected clock) flips a session stuck in working to idle, which
// releases its held messages and tells the other peers.
func TestStatusTTLReleasesHeldMessages(t *testing.T) {
	eachWorld(t, nil, func(t *testing.T, w *world) {
		alice, bob := w.join("alice"), w.join("bob")
		ca, cb := w.dial(alice, "a"), w.dial(bob, "b")
		send(t, cb, map[string]any{"type": "set_status", "status": "working", "summary": "long build"})
		held := send(t, ca, direct(t, alice, bob, "when you are free", "next", ""))
		w.clock.Advance(59 * time.Second)
		if err := w.srv.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		w.clock.Advance(2 * time.Second) // 61 s: past STATUS_TTL_SECONDS
		if err := w.srv.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		if p := next(t, cb, wsproto.TypePush); peertest.View(p).ID != peertest.View(held).IDs[0] {
			t.Fatalf("push %s", peertest.View(p).ID)
		}
		for {
			f := next(t, ca, wsproto.TypePresence)
			var v ws.PeerView
			if err := peertest.DecodeData(f, &v); err != nil {
				t.Fatal(err)
			}
			if v.MemberID == bob.p.MemberID && v.Status == models.StatusIdle && v.StatusSource == models.SourceJSONL {
				break
			}
		}
	})
}

// TestTwoBrokersNeverPushTwice: the recipient has a session on each of two
// brokers over one database; messages from a sender on the first broker are
// pushed exactly once across both, while both drain concurrently.
func TestTwoBrokersNeverPushTwice(t *testing.T) {
	eachWorld(t, func(c *ws.Config) { c.RecheckEvery = time.Hour }, func(t *testing.T, w *world) {
		other := w.another(nil)
		alice, bob := w.join("alice"), w.join("bob")
		ca := w.dial(alice, "a")
		b1, b2 := w.dial(bob, "b1"), other.dial(bob, "b2")
		const n = 200
		got := make(chan string, 2*n)
		var perBroker [2]int
		var mu sync.Mutex
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		for i, c := range []*wsclient.Conn{b1, b2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					f, err := c.Next(ctx)
					if err != nil {
						return
					}
					if f.Type == wsproto.TypePush {
						mu.Lock()
						perBroker[i]++
						mu.Unlock()
						got <- peertest.View(f).ID
						_ = c.Send(ctx, map[string]any{"type": "ack", "ids": []string{peertest.View(f).ID}})
					}
				}
			}()
		}
		// The second broker learns of rows queued through the first on its
		// maintenance pass; run it continuously to race the first's drains.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_ = other.srv.Sweep(ctx)
			}
		}()
		for i := range n {
			send(t, ca, direct(t, alice, bob, fmt.Sprint(i), "now", ""))
		}
		seen := map[string]bool{}
		deadline := time.After(20 * time.Second)
		for len(seen) < n {
			select {
			case id := <-got:
				if seen[id] {
					t.Fatalf("row %s pushed twice", id)
				}
				seen[id] = true
			case <-deadline:
				t.Fatalf("received %d of %d", len(seen), n)
			}
		}
		cancel()
		wg.Wait()
		close(got)
		t.Logf("pushes per broker: %v", perBroker)
		for id := range got {
			if seen[id] {
				t.Fatalf("row %s pushed twice", id)
			}
		}
	})
}

// TestBroadcastTopicsAndSubscribe: "*" reaches every online peer through
// its own envelope; "#topic" posts like REST (a seq, same rules); a topic
// subscription replays from a seq, then continues live, exactly.
func TestBroadcastTopicsAndSubscribe(t *testing.T) {
	eachWorld(t, nil, func(t *testing.T, w *world) {
		alice, bob, carol, dave := w.join("alice"), w.join("bob"), w.join("carol"), w.join("dave")
		ca, cb, cc := w.dial(alice, "a"), w.dial(bob, "b"), w.dial(carol, "c")
		var envs []map[string]any
		for _, to := range []peer{bob, carol, dave} {
			f := direct(t, alice, to, "all hands", "now", "")
			envs = append(envs, map[string]any{"to": to.p.MemberID, "nonce": f["nonce"], "ciphertext": f["ciphertext"]})
		}
		ack := send(t, ca, map[string]any{"type": "send", "to": "*", "priority": "now", "envelopes": envs[:2], "clientMessageId": "all-1"})
		if len(peertest.View(ack).IDs) != 2 || len(peertest.View(ack).Missing) != 0 || len(peertest.View(ack).Skipped) != 0 {
			t.Fatalf("broadcast ack = %+v", ack)
		}
		for _, c := range []struct {
			cl *wsclient.Conn
			p  peer
		}{{cb, bob}, {cc, carol}} {
			if got := open(t, next(t, c.cl, wsproto.TypePush), c.p); got != "all hands" {
				t.Errorf("%s got %q", c.p.name, got)
			}
		}
		ack = send(t, ca, map[string]any{"type": "send", "to": "*", "envelopes": []map[string]any{envs[0], envs[2]}})
		if len(peertest.View(ack).IDs) != 1 || len(peertest.View(ack).Skipped) != 1 || peertest.View(ack).Skipped[0] != dave.p.MemberID || len(peertest.View(ack).Missing) != 1 || peertest.View(ack).Missing[0] != carol.p.MemberID {
			t.Fatalf("partial broadcast ack = %+v", ack)
		}

		sub := send(t, cb, map[string]any{"type": "subscribe", "topics": []string{"#general"}})
		if sub.Type != wsproto.TypeSubscribed || peertest.View(sub).Resumed || len(peertest.View(sub).Topics) != 1 {
			t.Fatalf("subscribed = %+v", sub)
		}
		var seqs []int64
		for i := range 3 {
			a := send(t, ca, map[string]any{"type": "send", "to": "#general", "bodyVersion": 1, "priority": "next",
				"ciphertext": base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("post %d @bob", i)))})
			if a.Type != wsproto.TypeAck || peertest.View(a).Seq == 0 || peertest.View(a).To != "#general" {
				t.Fatalf("topic ack = %+v", a)
			}
			seqs = append(seqs, peertest.View(a).Seq)
		}
		for _, want := range seqs {
			f := next(t, cb, wsproto.TypeMessage)
			var m struct {
				Seq         int64 `json:"seq"`
				BodyVersion int   `json:"bodyVersion"`
			}
			if err := peertest.DecodeData(f, &m); err != nil || m.Seq != want || m.BodyVersion != 1 {
				t.Fatalf("live message %+v, want seq %d", m, want)
			}
		}
		// Resume on a new connection from the first seq: the rest is replayed.
		cb2 := w.dial(bob, "b2")
		sub = send(t, cb2, map[string]any{"type": "subscribe", "topics": []string{"general"}, "since": seqs[0]})
		if !peertest.View(sub).Resumed || peertest.View(sub).LastSeq != seqs[2] {
			t.Fatalf("resumed = %+v", sub)
		}
		for _, want := range seqs[1:] {
			var m struct{ Seq int64 }
			if f := next(t, cb2, wsproto.TypeMessage); peertest.DecodeData(f, &m) != nil || m.Seq != want {
				t.Fatalf("replayed seq %d, want %d", m.Seq, want)
			}
		}
		// Topic rules are REST's.
		if e := send(t, ca, map[string]any{"type": "send", "to": "#nope", "bodyVersion": 1, "ciphertext": "aGk="}); peertest.View(e).Code != "topic_not_found" {
			t.Errorf("unknown topic: %+v", e)
		}
		if e := send(t, ca, map[string]any{"type": "subscribe", "topics": []string{"nope"}}); peertest.View(e).Code != "topic_not_found" {
			t.Errorf("subscribe unknown topic: %+v", e)
		}
	})
}

// TestLimits: over-limit sends get error frames and the connection stays;
// an oversized frame or a flood of bad frames closes it.
func TestLimits(t *testing.T) {
	w := newWorld(t, models.SQLite, func(c *ws.Config) {
		c.SendsPerSecond, c.SendBurst, c.MaxQueuedBytes = 0.001, 3, 40
	})
	alice, bob := w.join("alice"), w.join("bob")
	ca := w.dial(alice, "a")
	if a := send(t, ca, direct(t, alice, bob, "0123456789", "now", "")); a.Type != wsproto.TypeAck {
		t.Fatalf("first send: %+v", a)
	}
	if e := send(t, ca, direct(t, alice, bob, strings.Repeat("x", 40), "now", "")); peertest.View(e).Code != "queue_full" {
		t.Errorf("over the queued bytes: %+v", e)
	}
	big := direct(t, alice, bob, "x", "now", "")
	big["ciphertext"] = base64.StdEncoding.EncodeToString(make([]byte, 70000))
	if e := send(t, ca, big); peertest.View(e).Code != "message_too_large" {
		t.Errorf("oversized ciphertext: %+v", e)
	}
	if e := send(t, ca, direct(t, alice, bob, "x", "now", "")); peertest.View(e).Code != "rate_limited" {
		t.Errorf("over the send rate: %+v", e)
	}
	if e := send(t, ca, map[string]any{"type": "list_peers"}); e.Type != wsproto.TypePeers || len(peertest.View(e).Peers) != 1 {
		t.Errorf("connection unusable after refusals: %+v", e)
	}

	flood := w.dial(bob, "b")
	for range 40 {
		if err := flood.SendRaw(context.Background(), []byte(`{"type":"nope"}`)); err != nil {
			break
		}
	}
	if code, reason := closed(t, flood); code != 4429 || !strings.HasPrefix(reason, "abusive:") {
		t.Errorf("flood: %d %q", code, reason)
	}
	huge := w.dial(bob, "b2")
	_ = huge.SendRaw(context.Background(), []byte(`{"type":"send","ciphertext":"`+strings.Repeat("A", 2<<20)+`"}`))
	if code, _ := closed(t, huge); code != 1009 {
		t.Errorf("oversized frame: %d", code)
	}
}

// TestExpiry: an unacked row past QUEUE_TTL is marked expired by the sweep,
// audited, and never pushed.
func TestExpiry(t *testing.T) {
	eachWorld(t, func(c *ws.Config) { c.QueueTTL = time.Hour }, func(t *testing.T, w *world) {
		alice, bob := w.join("alice"), w.join("bob")
		ca := w.dial(alice, "a")
		old := send(t, ca, direct(t, alice, bob, "stale news", "now", ""))
		w.clock.Advance(61 * time.Minute)
		if err := w.srv.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		cb := w.dial(bob, "b")
		fresh := send(t, ca, direct(t, alice, bob, "fresh", "now", ""))
		if p := next(t, cb, wsproto.TypePush); peertest.View(p).ID != peertest.View(fresh).IDs[0] {
			t.Fatalf("pushed %s, want only the fresh message (expired %s)", peertest.View(p).ID, peertest.View(old).IDs[0])
		}
		db, _ := w.store.SQLDB()
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM audit_events WHERE kind = 'message.expired' AND target = $1", peertest.View(old).IDs[0]).Scan(&n); err != nil || n != 1 {
			t.Errorf("expiry audited %d times (%v)", n, err)
		}
	})
}
