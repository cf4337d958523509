package models_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/models"
)

func TestCheckEnvelope(t *testing.T) {
	nonce := base64.StdEncoding.EncodeToString(make([]byte, 24))
	box := base64.StdEncoding.EncodeToString(make([]byte, 40))
	for _, tc := range []struct {
		name, nonce, ct string
		code            string
	}{
		{"valid", nonce, box, ""},
		{"short nonce", base64.StdEncoding.EncodeToString(make([]byte, 23)), box, "validation_failed"},
		{"unpadded nonce", strings.TrimRight(base64.StdEncoding.EncodeToString(make([]byte, 25)), "="), box, "validation_failed"},
		{"shorter than the tag", nonce, base64.StdEncoding.EncodeToString(make([]byte, 15)), "validation_failed"},
		{"line breaks", nonce, box[:20] + "\n" + box[20:], "validation_failed"},
		{"non-zero padding bits", nonce, "AAB=", "validation_failed"},
		{"url alphabet", nonce, strings.Repeat("_-", 12), "validation_failed"},
		{"over the limit", nonce, base64.StdEncoding.EncodeToString(make([]byte, 1025)), "message_too_large"},
		{"far over the limit (not decoded)", nonce, strings.Repeat("A", 1<<20), "message_too_large"},
	} {
		n, err := models.CheckEnvelope(tc.nonce, tc.ct, 1024)
		var code string
		if de, ok := models.AsError(err); ok {
			code = de.Code
		}
		if code != tc.code || (tc.code == "" && n != 40) {
			t.Errorf("%s: %d, %v", tc.name, n, err)
		}
	}
}

func envelope(t *testing.T, from peer, to peer, text string) models.Envelope {
	t.Helper()
	ct, nonce, err := meshcrypto.SealDirect([]byte(text), from.ID, to.ID.PublicKeyHex())
	if err != nil {
		t.Fatal(err)
	}
	return models.Envelope{RecipientID: to.P.MemberID, Nonce: nonce, Ciphertext: ct}
}

func connect(t *testing.T, s *models.Store, p peer, session, conn string) *models.PresenceRow {
	t.Helper()
	row, err := s.ConnectSession(context.Background(), models.ConnectInput{MeshID: p.P.MeshID, MemberID: p.P.MemberID, SessionID: session,
		NodeID: "n1", ConnID: conn, FreshWindow: fresh})
	if err != nil {
		t.Fatal(err)
	}
	return row
}

var everything = []string{models.PriorityNow, models.PriorityNext, models.PriorityLow}

// TestQueueClaimAckRedelivery: idempotent enqueue, gating by priority, a
// claim by a live connection excludes the row, a dead connection's claim
// does not, acks are the recipient's only, and every step is audited.
func TestQueueClaimAckRedelivery(t *testing.T) {
	eachClocked(t, func(t *testing.T, s *models.Store, clk *fakeClock) {
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		alice, bob, eve := joinPeer(t, s, cm, "alice"), joinPeer(t, s, cm, "bob"), joinPeer(t, s, cm, "eve")
		in := models.EnqueueInput{Envelopes: []models.Envelope{envelope(t, alice, bob, "hi")}, Priority: models.PriorityNext, ClientMessageID: "x-1"}
		first, err := s.EnqueueDirect(ctx, alice.P, in)
		if err != nil || first.Replayed[0] || first.Rows[0].SenderPubkey != alice.P.Pubkey || first.Rows[0].Bytes != 18 {
			t.Fatalf("enqueue = %+v, %v", first, err)
		}
		again, err := s.EnqueueDirect(ctx, alice.P, in)
		if err != nil || !again.Replayed[0] || again.Rows[0].ID != first.Rows[0].ID {
			t.Fatalf("retry = %+v, %v", again, err)
		}
		if _, err := s.EnqueueDirect(ctx, alice.P, models.EnqueueInput{Envelopes: []models.Envelope{{RecipientID: models.NewID(),
			Nonce: in.Envelopes[0].Nonce, Ciphertext: in.Envelopes[0].Ciphertext}}}); err == nil {
			t.Error("queued for a stranger")
		}
		id := first.Rows[0].ID
		connect(t, s, bob, "s1", "c1")
		claim := func(conn string, prio ...string) []models.QueuedRow {
			t.Helper()
			rows, err := s.ClaimQueued(ctx, models.ClaimInput{MeshID: cm.Mesh.ID, RecipientID: bob.P.MemberID, ConnID: conn, Priorities: prio})
			if err != nil {
				t.Fatal(err)
			}
			return rows
		}
		if rows := claim("c1", models.PriorityNow); len(rows) != 0 {
			t.Fatal("a next message went to a working session")
		}
		rows := claim("c1", everything...)
		if len(rows) != 1 || rows[0].ID != id || rows[0].Attempts != 1 || rows[0].SenderDisplayName != "alice" {
			t.Fatalf("claim = %+v", rows)
		}
		connect(t, s, bob, "s2", "c2")
		if len(claim("c1", everything...))+len(claim("c2", everything...)) != 0 {
			t.Fatal("a row claimed by a live connection was claimed again")
		}
		pending, _ := s.PendingRecipients(ctx, []string{bob.P.MemberID})
		if len(pending) != 0 {
			t.Fatalf("pending while claimed by a live connection: %v", pending)
		}
		if _, _, err := s.DisconnectSession(ctx, connect(t, s, bob, "s1", "c1").ID, "c1", "test"); err != nil {
			t.Fatal(err)
		}
		if pending, _ := s.PendingRecipients(ctx, []string{bob.P.MemberID}); len(pending) != 1 {
			t.Fatalf("a dead connection's claim is not pending: %v", pending)
		}
		rows = claim("c2", everything...)
		if len(rows) != 1 || rows[0].Attempts != 2 {
			t.Fatalf("redelivery claim = %+v", rows)
		}
		if n, err := s.AckQueued(ctx, cm.Mesh.ID, eve.P.MemberID, []string{id}); err != nil || n != 0 {
			t.Fatalf("eve acked bob's row: %d %v", n, err)
		}
		if n, err := s.AckQueued(ctx, cm.Mesh.ID, bob.P.MemberID, []string{id, id}); err != nil || n != 1 {
			t.Fatalf("ack = %d %v", n, err)
		}
		if n, _ := s.AckQueued(ctx, cm.Mesh.ID, bob.P.MemberID, []string{id}); n != 0 {
			t.Fatal("acked twice")
		}
		if _, err := s.AckQueued(ctx, cm.Mesh.ID, bob.P.MemberID, []string{"nope"}); err == nil {
			t.Error("a malformed id was accepted")
		}

		// Expiry, then the audit trail: every step, metadata only.
		clk.Advance(time.Minute)
		short, _ := s.EnqueueDirect(ctx, alice.P, models.EnqueueInput{Envelopes: []models.Envelope{envelope(t, alice, bob, "soon stale")}, TTL: time.Hour})
		clk.Advance(2 * time.Hour)
		if n, err := s.ExpireQueued(ctx, 100); err != nil || n != 1 {
			t.Fatalf("expired %d (%v)", n, err)
		}
		if rows := claim("c2", everything...); len(rows) != 0 {
			t.Fatal("an expired row was claimed")
		}
		db, _ := s.SQLDB()
		kinds := map[string]int{}
		r, err := db.Query("SELECT kind, metadata FROM audit_events WHERE mesh_id = $1", cm.Mesh.ID)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var kind, meta string
			_ = r.Scan(&kind, &meta)
			kinds[kind]++
			for _, body := range []string{in.Envelopes[0].Ciphertext, in.Envelopes[0].Nonce, short.Rows[0].Ciphertext} {
				if strings.Contains(meta, body) {
					t.Errorf("%s metadata carries a body: %s", kind, meta)
				}
			}
		}
		r.Close()
		want := map[string]int{models.AuditDirectQueued: 2, models.AuditDirectDelivered: 2, models.AuditDirectAcked: 1, models.AuditDirectExpired: 1,
			models.AuditPeerConnected: 3, models.AuditPeerDisconnected: 1}
		for k, n := range want {
			if kinds[k] != n {
				t.Errorf("%d %s events, want %d (%v)", kinds[k], k, n, kinds)
			}
		}
		if breaks, _, err := s.VerifyAudit(ctx); err != nil || len(breaks) != 0 {
			t.Errorf("audit chain: %+v %v", breaks, err)
		}
	})
}

// TestConcurrentClaimsNeverOverlap: eight live connections of one member
// drain the same queue at once; every row is claimed exactly once.
func TestConcurrentClaimsNeverOverlap(t *testing.T) {
	eachClocked(t, func(t *testing.T, s *models.Store, _ *fakeClock) {
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		alice, bob := joinPeer(t, s, cm, "alice"), joinPeer(t, s, cm, "bob")
		const rows = 300
		for i := range rows {
			if _, err := s.EnqueueDirect(ctx, alice.P, models.EnqueueInput{Envelopes: []models.Envelope{envelope(t, alice, bob, fmt.Sprint(i))}}); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		seen := map[string]string{}
		var wg sync.WaitGroup
		for i := range 8 {
			conn := fmt.Sprintf("c%d", i)
			connect(t, s, bob, "s"+conn, conn)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := s.ClaimQueued(ctx, models.ClaimInput{MeshID: cm.Mesh.ID, RecipientID: bob.P.MemberID, ConnID: conn, Priorities: everything, Limit: 7})
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, r := range got {
						if prev, dup := seen[r.ID]; dup {
							t.Errorf("row %s claimed by %s and %s", r.ID, prev, conn)
						}
						seen[r.ID] = conn
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != rows {
			t.Fatalf("claimed %d of %d", len(seen), rows)
		}
	})
}

func TestQueueFull(t *testing.T) {
	eachClocked(t, func(t *testing.T, s *models.Store, _ *fakeClock) {
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		alice, bob := joinPeer(t, s, cm, "alice"), joinPeer(t, s, cm, "bob")
		in := models.EnqueueInput{Envelopes: []models.Envelope{envelope(t, alice, bob, strings.Repeat("x", 90))}, MaxPendingBytes: 200}
		if _, err := s.EnqueueDirect(ctx, alice.P, in); err != nil {
			t.Fatal(err)
		}
		_, err := s.EnqueueDirect(ctx, alice.P, in)
		if de, ok := models.AsError(err); !ok || de.Code != "queue_full" {
			t.Fatalf("second send: %v", err)
		}
	})
}
