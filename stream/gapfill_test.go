package stream

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
)

// gateStore holds messages of several meshes; reads of one mesh block until
// the test opens its gate, like a database that is slow for that mesh.
type gateStore struct {
	mu      sync.Mutex
	rows    map[string]map[int64]models.MessageRow
	blocked string
	entered chan struct{} // a read of the blocked mesh started
	gate    chan struct{} // closed to let it finish
}

func (g *gateStore) MeshMessagesBetween(ctx context.Context, meshID string, after, upTo int64, limit int) ([]models.MessageRow, error) {
	if meshID == g.blocked {
		g.entered <- struct{}{}
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []models.MessageRow
	for s := after + 1; s <= upTo && len(out) < limit; s++ {
		if r, ok := g.rows[meshID][s]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func (g *gateStore) MeshLastSeqs(context.Context, []string) (map[string]int64, error) {
	return nil, nil
}

func (g *gateStore) commit(meshID string, seqs ...int64) models.Committed {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.rows[meshID] == nil {
		g.rows[meshID] = map[int64]models.MessageRow{}
	}
	c := models.Committed{MeshID: meshID}
	for _, s := range seqs {
		r := models.MessageRow{Message: models.Message{ID: fmt.Sprint(meshID, s), MeshID: meshID, TopicID: "t", Seq: s, BodyVersion: 2}, TopicName: "t"}
		g.rows[meshID][s] = r
		c.Messages = append(c.Messages, r)
	}
	return c
}

// waitSeqs takes events from sub until it has n messages or the deadline.
func waitSeqs(t *testing.T, sub *Subscription, n int, within time.Duration) []int64 {
	t.Helper()
	var got []int64
	deadline := time.After(within)
	for len(got) < n {
		select {
		case <-sub.Ready():
			got = append(got, seqsOf(sub.Take())...)
		case <-deadline:
			return got
		}
	}
	return got
}

// TestGapFillDoesNotDelayOtherMeshes: a gap fill whose query hangs (mesh A)
// must not hold up delivery of mesh B, even when both arrive on the same
// goroutine (the NATS callback serves every mesh), nor the publisher of A's
// later commits; when the read returns, A's subscriber gets the gap and the
// queued commits in seq order.
func TestGapFillDoesNotDelayOtherMeshes(t *testing.T) {
	g := &gateStore{rows: map[string]map[int64]models.MessageRow{}, blocked: "A", entered: make(chan struct{}, 1), gate: make(chan struct{})}
	h := NewHub(g, slog.New(slog.DiscardHandler), nil, Limits{})
	subA, subB := h.Subscribe("A", all), h.Subscribe("B", all)
	defer subA.Close()
	defer subB.Close()
	h.Deliver(g.commit("A", 1))
	h.Deliver(g.commit("B", 1))
	if got := waitSeqs(t, subA, 1, 10*time.Second); len(got) != 1 {
		t.Fatalf("A: %v", got)
	}
	waitSeqs(t, subB, 1, 10*time.Second)

	g.commit("A", 2, 3) // committed elsewhere; its live event was lost
	delivered := make(chan struct{})
	go func() { // one goroutine delivering for every mesh, like the NATS callback
		h.Deliver(g.commit("A", 4)) // a hole at 2..3: the fill blocks
		h.Deliver(g.commit("A", 5)) // queued behind the fill
		h.Deliver(g.commit("B", 2))
		close(delivered)
	}()
	<-g.entered
	if got := waitSeqs(t, subB, 1, 10*time.Second); len(got) != 1 || got[0] != 2 {
		t.Fatalf("mesh B got %v while mesh A's gap fill was blocked; want [2] at once", got)
	}
	select {
	case <-delivered:
	case <-time.After(10 * time.Second):
		t.Fatal("the delivering goroutine is stuck behind mesh A's gap fill")
	}
	select {
	case <-subA.Ready():
		t.Fatalf("mesh A delivered %v before its gap was filled", seqsOf(subA.Take()))
	default:
	}
	close(g.gate)
	if got := waitSeqs(t, subA, 4, 10*time.Second); fmt.Sprint(got) != "[2 3 4 5]" {
		t.Fatalf("mesh A after the fill: %v, want [2 3 4 5]", got)
	}
}
