package stream

import (
	"sync"
	"time"
)

// DefaultPresenceWindow is how long presence changes of one mesh are
// gathered before they go out as one batch.
const DefaultPresenceWindow = 200 * time.Millisecond

// maxBatchViews bounds the views in one published batch event (about
// 100 KiB of Peer views).
const maxBatchViews = 256

// presence coalesces presence changes per mesh. Without it every /ws
// handshake was one event to every subscriber of the mesh: 2,000 peers
// connecting under 2,000 idle streams were 4 million events and as many
// socket writes. Now a quiet mesh's first change goes out at once, and the
// changes that follow within a window go out together when it ends, as one
// batch holding the latest view of each session that changed (a session
// that connects and turns idle within the window is sent once, idle).
// The batch is prepared once (its SSE bytes and /ws frames) and written to
// each subscriber in one write, so a burst costs a handful of writes per
// subscriber. The final state is never dropped: every change lands in the
// mesh's open window, and a window is only closed by a flush that found it
// empty.
type presence struct {
	hub    *Hub
	window time.Duration

	mu     sync.Mutex
	meshes map[string]*presenceWindow
}

// presenceWindow is one mesh's gathering window.
type presenceWindow struct {
	// pub is held by whoever publishes this window's batch, from taking
	// the views to the end of the fan-out, so the mesh's batches leave in
	// order and never overlap.
	pub   sync.Mutex
	keys  []string          // sessions in the order they first changed (under presence.mu)
	views map[string][]byte // the latest view of each (under presence.mu)
	timer *time.Timer
}

func newPresence(hub *Hub, window time.Duration) *presence {
	return &presence{hub: hub, window: window, meshes: map[string]*presenceWindow{}}
}

// add records the latest view of one session (key) of a mesh.
func (p *presence) add(meshID, key string, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.meshes[meshID]
	if w == nil {
		// A quiet mesh: flush at once (on the timer's goroutine, never the
		// caller's), then gather for a window.
		w = &presenceWindow{views: map[string][]byte{}}
		p.meshes[meshID] = w
		w.timer = time.AfterFunc(0, func() { p.flush(meshID, w, true) })
	}
	if _, ok := w.views[key]; !ok {
		w.keys = append(w.keys, key)
	}
	w.views[key] = data
}

// flush publishes what the window gathered. With rearm (the timer's
// flush) the window stays open for another period after a batch, and
// closes when a period gathered nothing.
func (p *presence) flush(meshID string, w *presenceWindow, rearm bool) {
	w.pub.Lock()
	defer w.pub.Unlock()
	p.mu.Lock()
	if len(w.keys) == 0 {
		if rearm && p.meshes[meshID] == w {
			delete(p.meshes, meshID)
		}
		p.mu.Unlock()
		return
	}
	views := make([][]byte, len(w.keys))
	for i, k := range w.keys {
		views[i] = w.views[k]
	}
	w.keys, w.views = nil, map[string][]byte{}
	p.mu.Unlock()
	// Big batches go out in chunks, so one event stays far below a
	// subscriber's queue byte limit (a batch over it would cut every
	// subscriber that queues it).
	now := time.Now()
	for len(views) > 0 {
		n := min(len(views), maxBatchViews)
		p.hub.metrics.presence.Inc()
		p.hub.Publish(presenceBatch(meshID, views[:n:n], now))
		views = views[n:]
	}
	if rearm {
		p.mu.Lock()
		w.timer.Reset(p.window)
		p.mu.Unlock()
	}
}

// flushAll publishes every open window now (shutdown, tests).
func (p *presence) flushAll() {
	p.mu.Lock()
	type open struct {
		mesh string
		w    *presenceWindow
	}
	all := make([]open, 0, len(p.meshes))
	for id, w := range p.meshes {
		all = append(all, open{id, w})
	}
	p.mu.Unlock()
	for _, o := range all {
		p.flush(o.mesh, o.w, false)
	}
}

// PublishPresence hands the hub a session's new presence view; it reaches
// the mesh's subscribers (here and, with NATS, on the other nodes) in the
// mesh's next coalesced batch. key names the session (its presence row):
// within a batch a later view of the same key replaces an earlier one.
func (h *Hub) PublishPresence(meshID, key string, view any) {
	h.presence.add(meshID, key, mustJSON(view))
}

// FlushPresence publishes every gathered presence change now instead of at
// the end of its window: at shutdown, so the last disconnects reach the
// other nodes, and in tests.
func (h *Hub) FlushPresence() { h.presence.flushAll() }

// presenceBatch prepares a batch of presence views once for every
// subscriber: the SSE bytes are one `event: presence` per view, back to
// back (the event every client already knows, so none has to learn a new
// one), and the /ws frames one presence frame per view (WSFrames).
func presenceBatch(meshID string, views [][]byte, at time.Time) *Event {
	n := 0
	for _, v := range views {
		n += len(v) + 32
	}
	sse := make([]byte, 0, n)
	for _, v := range views {
		sse = append(sse, frame(0, KindPresence, v)...)
	}
	e := &Event{Kind: KindPresence, MeshID: meshID, SSE: sse, At: at, views: views}
	if len(views) == 1 {
		e.Data = views[0]
	}
	return e
}
