package stream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
)

type testView struct {
	Session string `json:"session"`
	N       int    `json:"n"`
}

// viewsOf decodes every presence view the events carry, in order, from
// their /ws frames, and checks that their SSE bytes say the same.
func viewsOf(t *testing.T, evs []*Event) []testView {
	t.Helper()
	var out []testView
	for _, e := range evs {
		if e.Kind != KindPresence {
			continue
		}
		frames := e.WSFrames()
		if n := bytes.Count(e.SSE, []byte("event: presence\ndata: ")); n != len(frames) {
			t.Fatalf("event has %d SSE presence events and %d /ws frames", n, len(frames))
		}
		for _, f := range frames {
			var fr struct {
				Type string   `json:"type"`
				Data testView `json:"data"`
			}
			if err := json.Unmarshal(f, &fr); err != nil || fr.Type != KindPresence {
				t.Fatalf("frame %s: %v", f, err)
			}
			out = append(out, fr.Data)
		}
	}
	return out
}

func presenceHub(window time.Duration) (*Hub, *Subscription) {
	h := NewHub(&memStore{rows: map[int64]models.MessageRow{}}, slog.New(slog.DiscardHandler), nil,
		Limits{MaxQueuedEvents: 1 << 20, MaxQueuedBytes: 1 << 30, PresenceWindow: window})
	return h, h.Subscribe("mesh", all)
}

// TestPresenceBurstIsCoalesced: 2,000 changes of 1,000 sessions (each
// changes twice) inside one window reach a subscriber as a handful of
// events (the quiet mesh's first change at once, the rest at the end of
// the window in chunks of maxBatchViews), carrying each session once with
// its latest view.
func TestPresenceBurstIsCoalesced(t *testing.T) {
	h, sub := presenceHub(time.Hour) // the window ends by FlushPresence
	for i := range 2000 {
		k := i % 1000
		h.PublishPresence("mesh", fmt.Sprint("s", k), testView{Session: fmt.Sprint("s", k), N: i})
	}
	h.FlushPresence()
	evs := sub.Take()
	// Two flushes at most (the first may already hold many sessions), each
	// in chunks.
	if want := 2 * ((1000 + maxBatchViews - 1) / maxBatchViews); len(evs) == 0 || len(evs) > want {
		t.Fatalf("a burst of 2,000 changes gave %d events, want 1 to %d", len(evs), want)
	}
	for _, e := range evs {
		if len(e.views) > maxBatchViews {
			t.Fatalf("a batch of %d views", len(e.views))
		}
	}
	latest := map[string]int{}
	for _, v := range viewsOf(t, evs) {
		if n, ok := latest[v.Session]; ok && n > v.N {
			t.Fatalf("session %s went back from %d to %d", v.Session, n, v.N)
		}
		latest[v.Session] = v.N
	}
	if len(latest) != 1000 {
		t.Fatalf("%d sessions reached the subscriber, want 1000", len(latest))
	}
	for k := range 1000 {
		if n := latest[fmt.Sprint("s", k)]; n != 1000+k {
			t.Fatalf("session s%d's last view is %d, want %d", k, n, 1000+k)
		}
	}
}

// TestPresenceQuietMeshIsImmediate: a single change of a quiet mesh does
// not wait for a window to end.
func TestPresenceQuietMeshIsImmediate(t *testing.T) {
	h, sub := presenceHub(time.Hour)
	h.PublishPresence("mesh", "s1", testView{Session: "s1", N: 1})
	select {
	case <-sub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("a quiet mesh's presence change waited for the window")
	}
	if v := viewsOf(t, sub.Take()); len(v) != 1 || v[0].N != 1 {
		t.Fatalf("views = %+v", v)
	}
}

// TestPresenceFinalStateIsNeverLost: changes from many goroutines, with
// real windows opening and closing, always end with every session's last
// view delivered, and no session ever goes back to an older view.
func TestPresenceFinalStateIsNeverLost(t *testing.T) {
	h, sub := presenceHub(5 * time.Millisecond)
	const writers, changes = 8, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprint("s", w)
			for i := 1; i <= changes; i++ {
				h.PublishPresence("mesh", key, testView{Session: key, N: i})
				if i%50 == 0 {
					time.Sleep(7 * time.Millisecond) // let windows close and reopen mid-run
				}
			}
		})
	}
	wg.Wait()
	latest := map[string]int{}
	done := func() bool {
		for w := range writers {
			if latest[fmt.Sprint("s", w)] != changes {
				return false
			}
		}
		return true
	}
	deadline := time.After(10 * time.Second)
	events := 0
	for !done() {
		select {
		case <-sub.Ready():
			evs := sub.Take()
			events += len(evs)
			for _, v := range viewsOf(t, evs) {
				if v.N < latest[v.Session] {
					t.Fatalf("session %s went back from %d to %d", v.Session, latest[v.Session], v.N)
				}
				latest[v.Session] = v.N
			}
		case <-deadline:
			t.Fatalf("final views after 10 s: %v", latest)
		}
	}
	if events >= writers*changes {
		t.Errorf("%d events for %d changes: nothing was coalesced", events, writers*changes)
	}
}
