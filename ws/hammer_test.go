package ws_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/models"
	wsclient "github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/ws"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// TestDirectHammer: 50 peers of one mesh, each on its own /ws connection,
// send at once, each 20 direct messages to the next peer in a ring, and
// ack what they receive. Every message arrives exactly once and in its
// sender's order, every send and ack is answered, each message has one
// queued, one delivered and one acked audit event, and the chain verifies.
// The sends, claims and acks share group commits: fewer chain extensions
// than messages (one transaction per request took one per send alone).
func TestDirectHammer(t *testing.T) {
	// The clients read only once all 50 are connected; under the race
	// detector on SQLite that can outlast a ping, which they would miss.
	noPings := func(c *ws.Config) { c.PingEvery = time.Hour }
	eachWorld(t, noPings, func(t *testing.T, w *world) {
		const peers, each = 50, 20
		ps := make([]peer, peers)
		for i := range ps {
			ps[i] = w.join(fmt.Sprintf("p%02d", i))
		}
		var chains atomic.Int64
		w.store.SetHooks(models.Hooks{AfterStep: func(step string) error {
			if step == "audit_chain" {
				chains.Add(1)
			}
			return nil
		}})
		cs := make([]*wsclient.Conn, peers)
		for i, p := range ps {
			cs[i] = w.dial(p, "s")
		}
		base := chains.Load()

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range ps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if err := hammerPeer(ctx, cs[i], ps[i], ps[(i+1)%peers], ps[(i+peers-1)%peers], i, (i+peers-1)%peers, each); err != nil {
					t.Errorf("peer %d: %v", i, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
		messages := int64(peers * each)
		used := chains.Load() - base
		t.Logf("%d messages, %d audit-chain extensions for their sends, claims and acks", messages, used)
		if used >= messages {
			t.Errorf("%d chain extensions for %d messages: the sends did not share commits", used, messages)
		}
		db, err := w.store.SQLDB()
		if err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{models.AuditDirectQueued, models.AuditDirectDelivered, models.AuditDirectAcked} {
			var n int64
			if err := db.QueryRow("SELECT COUNT(*) FROM audit_events WHERE mesh_id = $1 AND kind = $2", w.mesh.Mesh.ID, kind).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != messages {
				t.Errorf("%d %s events, want %d", n, kind, messages)
			}
		}
		if broken, _, err := w.store.VerifyMeshAudit(context.Background(), w.mesh.Mesh.ID); err != nil || broken != nil {
			t.Errorf("audit chain: %+v %v", broken, err)
		}
	})
}

// hammerPeer sends each messages to `to` without waiting between them,
// then reads until every send is acked, every message of `from` has
// arrived (in order, once, and been acked) and every ack is answered.
func hammerPeer(ctx context.Context, c *wsclient.Conn, me, to, from peer, mine, theirs, each int) error {
	for k := range each {
		f, err := wsclient.SealedSend(me.id, to.p.MemberID, to.id.PublicKeyHex(), fmt.Appendf(nil, "%d:%d", mine, k), models.PriorityNext,
			fmt.Sprintf("h-%d-%d", mine, k))
		if err != nil {
			return err
		}
		f.Ref = fmt.Sprintf("s-%d", k)
		if err := c.Send(ctx, f); err != nil {
			return err
		}
	}
	sent, got, acked := 0, 0, 0
	for sent < each || got < each || acked < each {
		fr, err := c.Next(ctx)
		if err != nil {
			return fmt.Errorf("after %d sends acked, %d pushes, %d acks answered: %w", sent, got, acked, err)
		}
		f := peertest.View(fr)
		switch {
		case f.Type == wsproto.TypePush:
			want := fmt.Sprintf("%d:%d", theirs, got)
			plain, err := meshcrypto.OpenDirect(f.Ciphertext, f.Nonce, me.id, f.From.Pubkey)
			if err != nil {
				return fmt.Errorf("open push %s: %w", f.ID, err)
			}
			if text := string(plain); f.From.ID != from.p.MemberID || text != want {
				return fmt.Errorf("push %q from %s, want %q from %s (a duplicate or out of order)", text, f.From.ID, want, from.p.MemberID)
			}
			got++
			if err := c.Send(ctx, map[string]any{"type": "ack", "ref": "a-" + f.ID, "ids": []string{f.ID}}); err != nil {
				return err
			}
		case f.Type == wsproto.TypeAck && strings.HasPrefix(f.Ref, "s-"):
			if *f.Replayed {
				return fmt.Errorf("send %s answered as a replay", f.Ref)
			}
			sent++
		case f.Type == wsproto.TypeAck && strings.HasPrefix(f.Ref, "a-"):
			if *f.Acked != 1 {
				return fmt.Errorf("ack %s counted %d", f.Ref, *f.Acked)
			}
			acked++
		case f.Type == wsproto.TypeError:
			return fmt.Errorf("error frame: %+v", f)
		}
	}
	return nil
}
