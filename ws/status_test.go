package ws_test

import (
	"testing"

	wsclient "github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/ws"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// TestMessageStatus: a sender follows its direct message from queued to
// delivered to acked; ids it did not send (or that do not exist) are left
// out, so nobody learns about other members' messages.
func TestMessageStatus(t *testing.T) {
	eachWorld(t, nil, func(t *testing.T, w *world) {
		alice, bob, eve := w.join("alice"), w.join("bob"), w.join("eve")
		ca := w.dial(alice, "a")
		id := peertest.View(send(t, ca, direct(t, alice, bob, "status me", "next", ""))).IDs[0]
		state := func(c *wsclient.Conn, ids ...string) []ws.MessageState {
			t.Helper()
			f := send(t, c, map[string]any{"type": wsproto.TypeMessageStatus, "ids": ids})
			if f.Type != wsproto.TypeMessageStatus {
				t.Fatalf("answer %+v", f)
			}
			return peertest.View(f).Messages
		}
		if s := state(ca, id); len(s) != 1 || s[0].State != "queued" || s[0].To != bob.p.MemberID || s[0].DeliveredAt != nil {
			t.Fatalf("queued: %+v", s)
		}
		cb := w.dial(bob, "b")
		p := next(t, cb, wsproto.TypePush)
		if s := state(ca, id); len(s) != 1 || s[0].State != "delivered" || s[0].DeliveredAt == nil {
			t.Fatalf("delivered: %+v", s)
		}
		send(t, cb, map[string]any{"type": wsproto.TypeAck, "ids": []string{peertest.View(p).ID}})
		if s := state(ca, id); len(s) != 1 || s[0].State != "acked" || s[0].AckedAt == nil {
			t.Fatalf("acked: %+v", s)
		}
		ce := w.dial(eve, "e")
		if s := state(ce, id, "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"); len(s) != 0 {
			t.Fatalf("eve sees alice's message: %+v", s)
		}
		if e := send(t, ca, map[string]any{"type": wsproto.TypeMessageStatus, "ids": []string{"nope"}}); peertest.View(e).Code != "validation_failed" {
			t.Fatalf("bad id: %+v", e)
		}
	})
}
