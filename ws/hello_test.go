package ws_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/models"
	wsclient "github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/ws"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// TestHelloVector pins the signed hello bytes and signature printed in
// docs/ws-protocol.md, so the document and the code cannot drift apart.
func TestHelloVector(t *testing.T) {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	id, err := meshcrypto.IdentityFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	const nonce = "8f0e2d6c4b3a29187f6e5d4c3b2a19080f1e2d3c4b5a69788796a5b4c3d2e1f0"
	h := wsproto.Hello{MeshID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", MemberID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c", Pubkey: id.PublicKeyHex(),
		SessionID: "cc-4242", DisplayName: "alice", TS: 1795694400000}
	wantBytes := "claudemesh-ws-hello-v1\n" + nonce + "\n0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\n0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c\n" +
		"79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664\ncc-4242\nalice\n1795694400000"
	if got := string(wsproto.HelloBytes(nonce, h)); got != wantBytes {
		t.Fatalf("hello bytes = %q", got)
	}
	const wantSig = "q7T3fbLH+TT8ninhG391Gmy+VA2WsbQgGzk+CXS4hmNKLBD2UVs9u5CFNFhdAwIScg/9Kyuli8OCa/JjvfLYAQ=="
	if sig := wsproto.SignHello(id, nonce, h); sig != wantSig {
		t.Fatalf("sig = %s", sig)
	}
	if err := wsproto.VerifyHello(nonce, h, wantSig); err != nil {
		t.Fatal(err)
	}
	// Every signed field matters.
	for name, edit := range map[string]func(*ws.Hello){
		"mesh": func(h *ws.Hello) { h.MeshID = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d" }, "member": func(h *ws.Hello) { h.MemberID = h.MeshID },
		"session": func(h *ws.Hello) { h.SessionID = "cc-4243" }, "name": func(h *ws.Hello) { h.DisplayName = "" },
		"ts": func(h *ws.Hello) { h.TS++ },
	} {
		h2 := h
		edit(&h2)
		if wsproto.VerifyHello(nonce, h2, wantSig) == nil {
			t.Errorf("signature still verifies with %s changed", name)
		}
	}
	if wsproto.VerifyHello(strings.Replace(nonce, "8f", "8e", 1), h, wantSig) == nil {
		t.Error("signature verifies for another nonce")
	}
}

// TestHelloRefused covers every refusal: each closes with its code and
// reason and leaves no session behind.
func TestHelloRefused(t *testing.T) {
	eachWorld(t, nil, func(t *testing.T, w *world) {
		alice, bob, eve := w.join("alice"), w.join("bob"), w.join("eve")
		ctx := context.Background()
		connect := func() *wsclient.Conn {
			t.Helper()
			c, err := wsclient.Connect(ctx, w.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Socket().CloseNow() })
			return c
		}
		refused := func(name string, c *wsclient.Conn, frame any, wantCode int, wantReason string) {
			t.Helper()
			if err := c.Send(ctx, frame); err != nil {
				t.Fatalf("%s: send: %v", name, err)
			}
			code, reason := closed(t, c)
			if code != wantCode || !strings.HasPrefix(reason, wantReason+":") {
				t.Errorf("%s: closed %d %q, want %d %s", name, code, reason, wantCode, wantReason)
			}
		}

		c := connect()
		refused("frame before hello", c, direct(t, alice, bob, "hi", "now", ""), 4400, "hello_required")

		c = connect()
		refused("list_peers before hello", c, map[string]any{"type": "list_peers"}, 4400, "hello_required")

		c = connect()
		h := c.HelloFrame(w.hello(alice, "s1"))
		h.Sig = wsproto.SignHello(eve.id, c.Nonce, wsproto.Hello{MeshID: alice.p.MeshID, MemberID: alice.p.MemberID, Pubkey: alice.id.PublicKeyHex(),
			SessionID: "s1", TS: h.TS})
		refused("signed with another key", c, h, 4401, "bad_signature")

		// A captured hello, replayed on a new connection: its signature
		// covers the first connection's nonce.
		first := connect()
		captured := first.HelloFrame(w.hello(alice, "s1"))
		c = connect()
		refused("replayed hello", c, captured, 4401, "bad_signature")

		c = connect()
		refused("stale ts", c, c.HelloFrame(withClock(w.hello(alice, "s1"), w.clock.Now().Add(-61*time.Second))), 4401, "stale_hello")
		c = connect()
		refused("future ts", c, c.HelloFrame(withClock(w.hello(alice, "s1"), w.clock.Now().Add(61*time.Second))), 4401, "stale_hello")

		c = connect()
		ghost := w.hello(alice, "s1")
		ghost.MemberID = models.NewID()
		refused("unknown member", c, c.HelloFrame(ghost), 4401, "unknown_member")

		c = connect()
		impostor := w.hello(eve, "s1")
		impostor.MemberID = alice.p.MemberID // eve's own valid signature, alice's member
		refused("another member's id", c, c.HelloFrame(impostor), 4401, "pubkey_mismatch")

		c = connect()
		named := w.hello(alice, "s1")
		named.DisplayName = "bob"
		refused("wrong display name", c, c.HelloFrame(named), 4401, "display_name_mismatch")

		c = connect()
		bad := c.HelloFrame(w.hello(alice, "s1"))
		bad.SessionID = "has space"
		refused("bad session id", c, bad, 4400, "bad_hello")

		c = connect()
		if err := c.SendRaw(ctx, []byte("{not json")); err != nil {
			t.Fatal(err)
		}
		if code, reason := closed(t, c); code != 4400 || !strings.HasPrefix(reason, "hello_required") {
			t.Errorf("garbage first frame: %d %q", code, reason)
		}

		owner, err := w.store.LiveMemberPrincipal(ctx, w.mesh.Member.ID, w.mesh.Mesh.ID, models.AllCaps)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.store.RevokeMember(ctx, owner, eve.p.MemberID); err != nil {
			t.Fatal(err)
		}
		c = connect()
		refused("revoked member", c, c.HelloFrame(w.hello(eve, "s1")), 4403, "member_revoked")

		peers, err := w.store.OnlinePeers(ctx, w.mesh.Mesh.ID)
		if err != nil || len(peers) != 0 {
			t.Fatalf("refused hellos left sessions: %v %+v", err, peers)
		}

		db, _ := w.store.SQLDB()
		if _, err := db.Exec("UPDATE meshes SET archived_at = CURRENT_TIMESTAMP WHERE id = $1", w.mesh.Mesh.ID); err != nil {
			t.Fatal(err)
		}
		c = connect()
		refused("archived mesh", c, c.HelloFrame(w.hello(bob, "s1")), 4403, "mesh_archived")
	})
}

func withClock(o wsclient.HelloOptions, at time.Time) wsclient.HelloOptions {
	o.Now = func() time.Time { return at }
	return o
}

func TestHelloTimeout(t *testing.T) {
	w := newWorld(t, models.SQLite, func(c *ws.Config) { c.HelloTimeout = 50 * time.Millisecond })
	c, err := wsclient.Connect(context.Background(), w.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Socket().CloseNow()
	if code, reason := closed(t, c); code != 4408 || !strings.HasPrefix(reason, "hello_timeout:") {
		t.Errorf("closed %d %q", code, reason)
	}
}

// TestClosedOnRevocation: a live connection is closed by the next
// maintenance pass when its member is revoked, its mesh archived or its key
// changed; a session that connects again replaces the older connection.
func TestClosedOnRevocation(t *testing.T) {
	eachWorld(t, nil, func(t *testing.T, w *world) {
		ctx := context.Background()
		alice, bob, carol := w.join("alice"), w.join("bob"), w.join("carol")
		ca, cb, cc := w.dial(alice, "s"), w.dial(bob, "s"), w.dial(carol, "s")

		f := send(t, ca, map[string]any{"type": "hello", "meshId": alice.p.MeshID})
		if f.Type != wsproto.TypeError || peertest.View(f).Code != "already_authenticated" {
			t.Errorf("second hello = %+v", f)
		}
		again := w.dial(alice, "s")
		if code, reason := closed(t, ca); code != 4409 || !strings.HasPrefix(reason, "session_replaced:") {
			t.Errorf("replaced session: %d %q", code, reason)
		}

		owner, _ := w.store.LiveMemberPrincipal(ctx, w.mesh.Member.ID, w.mesh.Mesh.ID, models.AllCaps)
		if err := w.store.RevokeMember(ctx, owner, bob.p.MemberID); err != nil {
			t.Fatal(err)
		}
		id, _ := meshcrypto.GenerateIdentity()
		if _, err := w.store.SetPeerPubkey(ctx, owner, carol.p.MemberID, id.PublicKeyHex()); err != nil {
			t.Fatal(err)
		}
		if err := w.srv.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if code, reason := closed(t, cb); code != 4403 || !strings.HasPrefix(reason, "member_revoked:") {
			t.Errorf("revoked: %d %q", code, reason)
		}
		if code, reason := closed(t, cc); code != 4401 || !strings.HasPrefix(reason, "pubkey_changed:") {
			t.Errorf("key changed: %d %q", code, reason)
		}
		db, _ := w.store.SQLDB()
		if _, err := db.Exec("UPDATE meshes SET archived_at = CURRENT_TIMESTAMP WHERE id = $1", w.mesh.Mesh.ID); err != nil {
			t.Fatal(err)
		}
		if err := w.srv.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if code, reason := closed(t, again); code != 4403 || !strings.HasPrefix(reason, "mesh_archived:") {
			t.Errorf("archived: %d %q", code, reason)
		}
	})
}
