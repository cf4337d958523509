package api_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// feedReader is one transport's view of a topic feed: the next message seq,
// and a way to drop the connection.
type feedReader struct {
	next  func(t *testing.T) int64
	close func()
}

// transports open a topic feed resuming after since (-1: start live).
var transports = map[string]func(t *testing.T, e *env, p cryptoPeer, meshID string, since int64) feedReader{
	"sse": func(t *testing.T, e *env, p cryptoPeer, _ string, since int64) feedReader {
		lastID := ""
		if since >= 0 {
			lastID = strconv.FormatInt(since, 10)
		}
		f := e.follow("/v1/topics/general/stream", p.APIKey.Key, lastID)
		f.next(t, "ready")
		return feedReader{next: func(t *testing.T) int64 { return f.seq(t) }, close: f.cancel}
	},
	"ws": func(t *testing.T, e *env, p cryptoPeer, meshID string, since int64) feedReader {
		c := e.dialPeer(p, meshID, "feed-"+models.NewID()[:8])
		sub := map[string]any{"type": "subscribe", "topics": []string{"general"}}
		if since >= 0 {
			sub["since"] = since
		}
		if got := wsSend(t, c, sub); got.Type != wsproto.TypeSubscribed {
			t.Fatalf("subscribe: %s %s", got.Type, peertest.View(got).Code)
		}
		return feedReader{
			next: func(t *testing.T) int64 {
				var ev struct {
					Seq int64 `json:"seq"`
				}
				if err := peertest.DecodeData(wsNext(t, c, wsproto.TypeMessage), &ev); err != nil {
					t.Fatal(err)
				}
				return ev.Seq
			},
			close: func() { _ = c.Socket().CloseNow() },
		}
	},
}

// TestResumeIsTheSameOnEveryTransport: one scenario, one table of
// transports. A reader takes part of a topic while four writers post, drops
// its connection, and resumes after the last seq it saw; it gets every seq
// exactly once, in order, on SSE and on /ws alike (they share one feed).
func TestResumeIsTheSameOnEveryTransport(t *testing.T) {
	for name, open := range transports {
		t.Run(name, func(t *testing.T) {
			eachEnv(t, func(t *testing.T, e *env) {
				owner := e.signup()
				m := e.createMesh(owner.AccessToken, "Feed "+name)
				reader := e.joinWithIdentity(e.invite(owner.AccessToken, m.Mesh.ID, nil), "reader")
				key := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "poster").APIKey.Key
				const writers, each = 4, 100
				var wg sync.WaitGroup
				errs := make(chan error, writers)
				start := make(chan struct{})
				for w := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						for i := range each {
							if _, err := e.post(key, "general", fmt.Appendf(nil, "w%d-%d", w, i)); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				r := open(t, e, reader, m.Mesh.ID, 0)
				close(start)
				var seen []int64
				for len(seen) < 150 {
					seen = append(seen, r.next(t))
				}
				r.close()
				r = open(t, e, reader, m.Mesh.ID, seen[len(seen)-1])
				defer r.close()
				for len(seen) < writers*each {
					seen = append(seen, r.next(t))
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				for i, s := range seen {
					if s != int64(i+1) {
						t.Fatalf("%s: message %d has seq %d: lost, doubled or out of order", name, i, s)
					}
				}
				// One more post arrives next: nothing doubled after the last.
				s, err := e.post(key, "general", []byte("last"))
				if err != nil {
					t.Fatal(err)
				}
				if got := r.next(t); got != s {
					t.Fatalf("%s: after all %d, got seq %d, want %d", name, writers*each, got, s)
				}
			})
		})
	}
}
