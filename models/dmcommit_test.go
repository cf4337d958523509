package models_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// waitFor polls cond until it holds, failing after ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDirectGroupCommit: while one direct send's batch is held open, a
// burst of sends, claims and acks queues behind it and then commits as one
// batch with one audit-chain extension. Inside that batch a send to an
// unknown recipient and a send over the sender's queue bound fail alone,
// and two sends with the same clientMessageId to the same recipient store
// one row. Before the group commit every send was its own transaction and
// chain extension (here: 1 + 40 instead of 2).
func TestDirectGroupCommit(t *testing.T) {
	eachClocked(t, func(t *testing.T, s *models.Store, _ *fakeClock) {
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		alice, bob, carol := joinPeer(t, s, cm, "alice"), joinPeer(t, s, cm, "bob"), joinPeer(t, s, cm, "carol")
		connect(t, s, bob, "sb", "cb")
		// A delivered, unacked row for bob to ack inside the burst.
		first, err := s.EnqueueDirect(ctx, carol.P, models.EnqueueInput{Envelopes: []models.Envelope{envelope(t, carol, bob, "earlier")}})
		if err != nil {
			t.Fatal(err)
		}
		if rows, err := s.ClaimQueued(ctx, models.ClaimInput{MeshID: cm.Mesh.ID, RecipientID: bob.P.MemberID, ConnID: "cb", Priorities: everything}); err != nil || len(rows) != 1 {
			t.Fatalf("claim: %v %v", rows, err)
		}

		release := make(chan struct{})
		var held sync.Once
		var commits, chains atomic.Int32
		s.SetHooks(models.Hooks{AfterStep: func(step string) error {
			switch step {
			case "direct_commit":
				commits.Add(1)
				held.Do(func() { <-release })
			case "audit_chain":
				chains.Add(1)
			}
			return nil
		}})
		defer s.SetHooks(models.Hooks{})

		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the batch that is held
			defer wg.Done()
			if _, err := s.EnqueueDirect(ctx, carol.P, models.EnqueueInput{Envelopes: []models.Envelope{envelope(t, carol, bob, "held")}}); err != nil {
				t.Error(err)
			}
		}()
		waitFor(t, "the first batch", func() bool { return commits.Load() == 1 })

		const sends = 36
		type result struct {
			out *models.Enqueued
			err error
		}
		results := make([]result, sends)
		var ghost, full, dupA, dupB result
		var claimed []models.QueuedRow
		var acked int
		run := func(f func()) {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		for i := range sends {
			run(func() {
				results[i].out, results[i].err = s.EnqueueDirect(ctx, alice.P, models.EnqueueInput{
					Envelopes: []models.Envelope{envelope(t, alice, bob, fmt.Sprint(i))}, ClientMessageID: fmt.Sprintf("m-%d", i)})
			})
		}
		stranger := envelope(t, alice, bob, "to nobody")
		stranger.RecipientID = models.NewID()
		run(func() {
			ghost.out, ghost.err = s.EnqueueDirect(ctx, alice.P, models.EnqueueInput{Envelopes: []models.Envelope{stranger}})
		})
		run(func() {
			full.out, full.err = s.EnqueueDirect(ctx, carol.P, models.EnqueueInput{Envelopes: []models.Envelope{envelope(t, carol, alice,
				strings.Repeat("x", 500))}, MaxPendingBytes: 100})
		})
		dup := models.EnqueueInput{Envelopes: []models.Envelope{envelope(t, alice, carol, "once")}, ClientMessageID: "dup"}
		run(func() { dupA.out, dupA.err = s.EnqueueDirect(ctx, alice.P, dup) })
		run(func() { dupB.out, dupB.err = s.EnqueueDirect(ctx, alice.P, dup) })
		run(func() {
			var err error
			if acked, err = s.AckQueued(ctx, cm.Mesh.ID, bob.P.MemberID, []string{first.Rows[0].ID}); err != nil {
				t.Error(err)
			}
		})
		run(func() {
			var err error
			claimed, err = s.ClaimQueued(ctx, models.ClaimInput{MeshID: cm.Mesh.ID, RecipientID: bob.P.MemberID, ConnID: "cb", Priorities: everything, Limit: 256})
			if err != nil {
				t.Error(err)
			}
		})
		const queued = sends + 6
		waitFor(t, "the burst to queue", func() bool { return s.QueuedDirect(cm.Mesh.ID) == queued })
		close(release)
		wg.Wait()

		if n := commits.Load(); n != 2 {
			t.Errorf("%d direct batches, want 2 (the held one and the burst)", n)
		}
		if n := chains.Load(); n != 2 {
			t.Errorf("%d audit-chain extensions, want 2", n)
		}
		for i, r := range results {
			if r.err != nil || len(r.out.Rows) != 1 || r.out.Replayed[0] {
				t.Errorf("send %d: %+v %v", i, r.out, r.err)
			}
		}
		if de, ok := models.AsError(ghost.err); !ok || de.Code != "recipient_not_found" {
			t.Errorf("send to an unknown member: %v", ghost.err)
		}
		if de, ok := models.AsError(full.err); !ok || de.Code != "queue_full" {
			t.Errorf("send over the bound: %v", full.err)
		}
		if dupA.err != nil || dupB.err != nil || dupA.out.Rows[0].ID != dupB.out.Rows[0].ID || dupA.out.Replayed[0] == dupB.out.Replayed[0] {
			t.Errorf("same clientMessageId twice in one batch: %+v %v / %+v %v", dupA.out, dupA.err, dupB.out, dupB.err)
		}
		if acked != 1 {
			t.Errorf("acked %d, want 1", acked)
		}
		// The claim in the burst took the held send (and, on SQLite, where
		// a batch's claims happen to run after its sends, the burst's too);
		// a second claim takes the rest. Each row once, in id order.
		more, err := s.ClaimQueued(ctx, models.ClaimInput{MeshID: cm.Mesh.ID, RecipientID: bob.P.MemberID, ConnID: "cb", Priorities: everything, Limit: 256})
		if err != nil {
			t.Fatal(err)
		}
		if len(claimed) == 0 || len(claimed)+len(more) != sends+1 {
			t.Errorf("claimed %d then %d rows, want %d in all", len(claimed), len(more), sends+1)
		}
		all := append(claimed, more...)
		for i := 1; i < len(all); i++ {
			if all[i-1].ID >= all[i].ID {
				t.Errorf("claims out of id order (or twice) at %d", i)
			}
		}
		db, _ := s.SQLDB()
		var rows int
		if err := db.QueryRow("SELECT COUNT(*) FROM message_queue WHERE mesh_id = $1", cm.Mesh.ID).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if want := 1 + 1 + sends + 1; rows != want { // earlier, held, the burst, one dup
			t.Errorf("%d queued rows, want %d", rows, want)
		}
		if broken, _, err := s.VerifyMeshAudit(ctx, cm.Mesh.ID); err != nil || broken != nil {
			t.Errorf("audit chain: %+v %v", broken, err)
		}
	})
}

// TestDirectDuplicateAcrossNodes: two brokers (two stores on one database)
// take the same send (sender, recipient, clientMessageId) at the same time;
// one row is stored and both answer with it, one of them as a replay.
func TestDirectDuplicateAcrossNodes(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			nodes := twoNodes(t, d)
			cm, _ := newMesh(t, nodes[0])
			alice, bob := joinPeer(t, nodes[0], cm, "alice"), joinPeer(t, nodes[0], cm, "bob")
			const rounds = 20
			for i := range rounds {
				in := models.EnqueueInput{Envelopes: []models.Envelope{envelope(t, alice, bob, fmt.Sprint(i))}, ClientMessageID: fmt.Sprintf("x-%d", i)}
				var outs [2]*models.Enqueued
				var errs [2]error
				var wg sync.WaitGroup
				for j, s := range nodes {
					wg.Add(1)
					go func() { defer wg.Done(); outs[j], errs[j] = s.EnqueueDirect(ctx, alice.P, in) }()
				}
				wg.Wait()
				if errs[0] != nil || errs[1] != nil {
					t.Fatalf("round %d: %v %v", i, errs[0], errs[1])
				}
				if outs[0].Rows[0].ID != outs[1].Rows[0].ID || outs[0].Replayed[0] == outs[1].Replayed[0] {
					t.Fatalf("round %d: %+v / %+v, want one row, one replay", i, outs[0], outs[1])
				}
			}
			if n := count(t, nodes[0], "message_queue"); n != rounds {
				t.Errorf("queued rows = %d, want %d", n, rounds)
			}
			if broken, _, err := nodes[1].VerifyMeshAudit(ctx, cm.Mesh.ID); err != nil || broken != nil {
				t.Errorf("audit chain: %+v %v", broken, err)
			}
		})
	}
}

// TestDirectBigBatch: a batch of broadcasts (40 sends × 100 envelopes)
// commits as one: its 4,000 queue rows and audit events are inserted in
// runs that stay under SQLite's bind-parameter limit (one insert of 4,000
// events would need 40,000). Under the race detector the SQLite half takes
// longer than a batch may (the driver is instrumented too), so it runs in
// the plain `go test` only.
func TestDirectBigBatch(t *testing.T) {
	eachClocked(t, func(t *testing.T, s *models.Store, _ *fakeClock) {
		if raceOn && s.Dialect() == models.SQLite {
			t.Skip("SQLite under the race detector: run without -race")
		}
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		alice := joinPeer(t, s, cm, "alice")
		const sends, fan = 40, 100
		body := envelope(t, alice, alice, "same bytes for everyone")
		envs := make([]models.Envelope, fan)
		for i := range envs {
			envs[i] = models.Envelope{RecipientID: joinPeer(t, s, cm, fmt.Sprintf("r%03d", i)).P.MemberID, Nonce: body.Nonce, Ciphertext: body.Ciphertext}
		}
		release := make(chan struct{})
		var held sync.Once
		var commits atomic.Int32
		s.SetHooks(models.Hooks{AfterStep: func(step string) error {
			if step == "direct_commit" {
				commits.Add(1)
				held.Do(func() { <-release })
			}
			return nil
		}})
		defer s.SetHooks(models.Hooks{})
		var wg sync.WaitGroup
		errs := make([]error, sends+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[sends] = s.EnqueueDirect(ctx, alice.P, models.EnqueueInput{Envelopes: envs[:1]})
		}()
		waitFor(t, "the first batch", func() bool { return commits.Load() == 1 })
		for i := range sends {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.EnqueueDirect(ctx, alice.P, models.EnqueueInput{Envelopes: envs, Broadcast: true})
			}()
		}
		waitFor(t, "the broadcasts to queue", func() bool { return s.QueuedDirect(cm.Mesh.ID) == sends })
		close(release)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		if n := commits.Load(); n != 2 {
			t.Errorf("%d batches, want 2", n)
		}
		if n := count(t, s, "message_queue"); n != sends*fan+1 {
			t.Errorf("%d queued rows, want %d", n, sends*fan+1)
		}
		if broken, _, err := s.VerifyMeshAudit(ctx, cm.Mesh.ID); err != nil || broken != nil {
			t.Errorf("audit chain: %+v %v", broken, err)
		}
	})
}
