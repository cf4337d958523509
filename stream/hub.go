package stream

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/claudemesh/claudemesh-go/models"
)

const hubShards = 64

// Store is what the hub needs from the database: the truth it falls back on
// when the live feed has a hole.
type Store interface {
	MeshMessagesBetween(ctx context.Context, meshID string, after, upTo int64, limit int) ([]models.MessageRow, error)
	MeshLastSeqs(ctx context.Context, meshIDs []string) (map[string]int64, error)
}

// Metrics are the stream metrics, registered on the server's registry.
type Metrics struct {
	connections prometheus.Gauge
	sent        prometheus.Counter
	slow        prometheus.Counter
	gaps        prometheus.Counter
	latency     prometheus.Histogram
	nats        prometheus.Gauge
	presence    prometheus.Counter
}

// NewMetrics registers the stream metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "claudemesh_stream_connections", Help: "Open SSE and WebSocket stream subscriptions."}),
		sent:        prometheus.NewCounter(prometheus.CounterOpts{Name: "claudemesh_stream_events_sent_total", Help: "Events written to stream subscribers."}),
		slow:        prometheus.NewCounter(prometheus.CounterOpts{Name: "claudemesh_stream_slow_disconnects_total", Help: "Subscribers cut off because their queue overflowed."}),
		gaps:        prometheus.NewCounter(prometheus.CounterOpts{Name: "claudemesh_stream_gap_fills_total", Help: "Seq gaps in the live feed filled from the database."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "claudemesh_stream_publish_to_write_seconds",
			Help: "Time from a commit reaching the hub to its event being written to a subscriber.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		nats: prometheus.NewGauge(prometheus.GaugeOpts{Name: "claudemesh_nats_connected", Help: "1 while the link to NATS is up; 0 while connecting, after a loss, or without NATS_URL."}),
		presence: prometheus.NewCounter(prometheus.CounterOpts{Name: "claudemesh_presence_batches_total",
			Help: "Coalesced presence batches published (each carries the latest state of every session that changed in one window)."}),
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.sent, m.slow, m.gaps, m.latency, m.nats, m.presence)
	}
	return m
}

// Limits bound each subscriber's queue, and set the presence window.
type Limits struct {
	MaxQueuedEvents int // default 1024
	MaxQueuedBytes  int // default 4 MiB
	// PresenceWindow is how long a mesh's presence changes are gathered
	// into one batch (DefaultPresenceWindow; negative: none, each change is
	// flushed as soon as the previous batch is out).
	PresenceWindow time.Duration
}

// Hub fans events out to subscribers. Meshes are spread over shards so one
// busy mesh does not serialise the others; within a mesh, delivery is in
// seq order and a hole in the seq sequence is filled from the database
// before anything after it is delivered.
type Hub struct {
	store   Store
	log     *slog.Logger
	metrics *Metrics
	limits  Limits
	seed    maphash.Seed
	shards  [hubShards]hubShard
	// forward and forwardEvent, when set, carry local commits and local
	// presence events to the other nodes (the NATS bridge).
	forward      func(models.Committed)
	forwardEvent func(*Event)
	presence     *presence
}

type hubShard struct {
	mu     sync.RWMutex
	meshes map[string]*meshState
}

// meshState is a mesh with live subscribers on this node.
type meshState struct {
	subs map[*Subscription]struct{}
	// list is subs as a slice for fan-out; appended to on subscribe (a
	// reader's snapshot keeps its own length) and rebuilt by the next
	// fan-out after an unsubscribe (stale).
	list  []*Subscription
	stale bool
	// deliver serialises delivery for the mesh so events leave in seq order.
	deliver sync.Mutex
	lastSeq int64 // highest message seq delivered; 0 = not known yet
	// While a gap is being filled from the database (on its own goroutine,
	// never the publisher's), later commits of the mesh wait here in order.
	filling bool
	pending []pendingCommit
}

type pendingCommit struct {
	c  models.Committed
	at time.Time
}

// NewHub builds a hub over the store.
func NewHub(store Store, log *slog.Logger, metrics *Metrics, limits Limits) *Hub {
	if limits.MaxQueuedEvents == 0 {
		limits.MaxQueuedEvents = 1024
	}
	if limits.MaxQueuedBytes == 0 {
		limits.MaxQueuedBytes = 4 << 20
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	switch {
	case limits.PresenceWindow == 0:
		limits.PresenceWindow = DefaultPresenceWindow
	case limits.PresenceWindow < 0:
		limits.PresenceWindow = 0
	}
	h := &Hub{store: store, log: log, metrics: metrics, limits: limits, seed: maphash.MakeSeed()}
	h.presence = newPresence(h, limits.PresenceWindow)
	for i := range h.shards {
		h.shards[i].meshes = map[string]*meshState{}
	}
	return h
}

// Metrics exposes the hub's metrics to the writers.
func (h *Hub) Metrics() *Metrics { return h.metrics }

// SetForward installs the functions local commits and local presence
// events are forwarded to.
func (h *Hub) SetForward(commits func(models.Committed), events func(*Event)) {
	h.forward, h.forwardEvent = commits, events
}

func (h *Hub) shard(meshID string) *hubShard {
	return &h.shards[maphash.String(h.seed, meshID)%hubShards]
}

// Subscribe registers a subscriber of a mesh. baseline is the mesh's
// last_seq as read from the database right after subscribing; it anchors
// gap detection when this is the mesh's first subscriber here.
func (h *Hub) Subscribe(meshID string, wants func(*Event) bool) *Subscription {
	return h.SubscribeNotify(meshID, wants, nil)
}

// SubscribeNotify is Subscribe with a callback run whenever Ready is
// signalled or Done closed (see Subscription.notify); nil means none.
func (h *Hub) SubscribeNotify(meshID string, wants func(*Event) bool, notify func()) *Subscription {
	s := &Subscription{hub: h, meshID: meshID, wants: wants, maxCount: h.limits.MaxQueuedEvents, maxBytes: h.limits.MaxQueuedBytes,
		ready: make(chan struct{}, 1), done: make(chan struct{}), notify: notify}
	sh := h.shard(meshID)
	sh.mu.Lock()
	ms := sh.meshes[meshID]
	if ms == nil {
		ms = &meshState{subs: map[*Subscription]struct{}{}}
		sh.meshes[meshID] = ms
	}
	ms.subs[s] = struct{}{}
	if !ms.stale {
		ms.list = append(ms.list, s)
	}
	sh.mu.Unlock()
	return s
}

// Anchor sets the mesh's delivered seq if nothing was delivered yet, so a
// hole right after the first subscriber arrives is still detected.
func (h *Hub) Anchor(meshID string, lastSeq int64) {
	sh := h.shard(meshID)
	sh.mu.RLock()
	ms := sh.meshes[meshID]
	sh.mu.RUnlock()
	if ms == nil {
		return
	}
	ms.deliver.Lock()
	if ms.lastSeq == 0 {
		ms.lastSeq = lastSeq
	}
	ms.deliver.Unlock()
}

func (h *Hub) unsubscribe(s *Subscription) {
	sh := h.shard(s.meshID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ms := sh.meshes[s.meshID]
	if ms == nil {
		return
	}
	delete(ms.subs, s)
	ms.stale = true
	if len(ms.subs) == 0 {
		delete(sh.meshes, s.meshID)
	}
}

// OnCommit takes a local commit (the store's commit hook): it is forwarded
// to the other nodes and delivered here.
func (h *Hub) OnCommit(c models.Committed) {
	if h.forward != nil {
		h.forward(c)
	}
	h.Deliver(c)
}

// Deliver fans a commit out to this node's subscribers of its mesh, after
// filling any hole between the last delivered seq and the commit's first.
// Messages at or below the delivered seq are duplicates (our own commit
// echoed back, or already fetched) and are dropped. Deliver never reads the
// database itself: a hole is filled on a goroutine of its own while the
// mesh's later commits queue behind it, so neither the committer nor the
// NATS callback (which serves every mesh) waits for a query.
func (h *Hub) Deliver(c models.Committed) {
	at := time.Now()
	sh := h.shard(c.MeshID)
	sh.mu.RLock()
	ms := sh.meshes[c.MeshID]
	sh.mu.RUnlock()
	if ms == nil || len(c.Messages) == 0 {
		return
	}
	ms.deliver.Lock()
	defer ms.deliver.Unlock()
	h.deliverLocked(sh, ms, c, at)
}

// deliverLocked delivers c, or queues it behind a gap fill. ms.deliver is held.
func (h *Hub) deliverLocked(sh *hubShard, ms *meshState, c models.Committed, at time.Time) {
	if ms.filling {
		ms.pending = append(ms.pending, pendingCommit{c, at})
		return
	}
	if first := c.Messages[0].Seq; ms.lastSeq > 0 && first > ms.lastSeq+1 {
		ms.filling = true
		ms.pending = append(ms.pending[:0], pendingCommit{c, at})
		go h.fillGap(sh, ms, c.MeshID, ms.lastSeq, first-1)
		return
	}
	var events []*Event
	for i := range c.Messages {
		if c.Messages[i].Seq > ms.lastSeq || ms.lastSeq == 0 {
			events = append(events, MessageEvent(&c.Messages[i], at))
		}
	}
	if len(events) == 0 {
		return
	}
	for i := range c.Notifications {
		if c.Notifications[i].Seq > ms.lastSeq {
			events = append(events, NotificationEvent(&c.Notifications[i], at))
		}
	}
	ms.lastSeq = max(ms.lastSeq, c.Messages[len(c.Messages)-1].Seq)
	h.fanout(sh, c.MeshID, events)
}

// fillGap reads (after, upTo] from the database without holding the mesh's
// delivery lock, delivers it, then the commits that queued meanwhile. When
// the read fails the mesh's subscribers are cut so they resume from the
// database, which holds everything that was queued.
func (h *Hub) fillGap(sh *hubShard, ms *meshState, meshID string, after, upTo int64) {
	at := time.Now()
	rows, err := h.fill(meshID, after, upTo)
	ms.deliver.Lock()
	defer ms.deliver.Unlock()
	pending := ms.pending
	ms.pending, ms.filling = nil, false
	if err != nil {
		h.log.Warn("stream gap fill failed; cutting subscribers so they resume", slog.String("mesh", meshID), slog.String("error", err.Error()))
		h.failMesh(meshID, ErrGap)
		for _, p := range pending {
			ms.lastSeq = max(ms.lastSeq, p.c.Messages[len(p.c.Messages)-1].Seq)
		}
		return
	}
	var events []*Event
	for i := range rows {
		if rows[i].Seq > ms.lastSeq {
			events = append(events, MessageEvent(&rows[i], at))
		}
	}
	ms.lastSeq = max(ms.lastSeq, upTo)
	if len(events) > 0 {
		h.fanout(sh, meshID, events)
	}
	for _, p := range pending {
		h.deliverLocked(sh, ms, p.c, p.at)
	}
}

// fill reads (after, upTo] from the database.
func (h *Hub) fill(meshID string, after, upTo int64) ([]models.MessageRow, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := h.store.MeshMessagesBetween(ctx, meshID, after, upTo, int(min(upTo-after, 10_000)))
	if err != nil {
		return nil, err
	}
	if int64(len(rows)) != upTo-after && len(rows) < 10_000 {
		// A seq not visible yet (its transaction committed on another node
		// after ours read) cannot be skipped over.
		return nil, errShortFill
	}
	h.metrics.gaps.Inc()
	return rows, nil
}

var errShortFill = errors.New("gap not yet visible in the database")

// Publish delivers a non-message event (presence) to the mesh's
// subscribers on this node and, with NATS on, on the others.
func (h *Hub) Publish(e *Event) {
	if h.forwardEvent != nil {
		h.forwardEvent(e)
	}
	h.PublishLocal(e)
}

// PublishLocal delivers a non-message event to this node's subscribers only
// (what arrives from the other nodes).
func (h *Hub) PublishLocal(e *Event) {
	h.fanout(h.shard(e.MeshID), e.MeshID, []*Event{e})
}

// fanoutChunk is how many subscribers one fan-out goroutine serves: enough
// that starting it costs little next to its writes, few enough that a big
// mesh's writes spread over every core.
const fanoutChunk = 256

func (h *Hub) fanout(sh *hubShard, meshID string, events []*Event) {
	subs := h.subscribers(sh, meshID)
	// Subscribers that write directly cost a write syscall each here, so a
	// big mesh is split over up to GOMAXPROCS goroutines (a small one runs
	// on the caller's alone); the caller waits, which keeps one mesh's
	// deliveries in order.
	var next atomic.Int64
	work := func() {
		var scratch []byte
		for {
			i := int(next.Add(1)-1) * fanoutChunk
			if i >= len(subs) {
				return
			}
			for _, s := range subs[i:min(i+fanoutChunk, len(subs))] {
				s.offerAll(events, &scratch)
			}
		}
	}
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), (len(subs)+fanoutChunk-1)/fanoutChunk) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

// subscribers is a snapshot of the mesh's subscribers on this node.
func (h *Hub) subscribers(sh *hubShard, meshID string) []*Subscription {
	sh.mu.RLock()
	ms := sh.meshes[meshID]
	if ms == nil {
		sh.mu.RUnlock()
		return nil
	}
	if !ms.stale {
		list := ms.list[:len(ms.list):len(ms.list)]
		sh.mu.RUnlock()
		return list
	}
	sh.mu.RUnlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ms = sh.meshes[meshID]; ms == nil {
		return nil
	}
	if ms.stale {
		ms.list = make([]*Subscription, 0, len(ms.subs))
		for s := range ms.subs {
			ms.list = append(ms.list, s)
		}
		ms.stale = false
	}
	return ms.list[:len(ms.list):len(ms.list)]
}

func (h *Hub) failMesh(meshID string, err error) {
	for _, s := range h.subscribers(h.shard(meshID), meshID) {
		s.fail(err)
	}
}

// Reconcile compares each subscribed mesh's delivered seq with the database
// and fills what is missing. With several nodes this repairs commits whose
// NATS message was lost even when no later commit arrives; it is one query
// per node per tick, never one per connection.
func (h *Hub) Reconcile(ctx context.Context) {
	var ids []string
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for id := range sh.meshes {
			ids = append(ids, id)
		}
		sh.mu.RUnlock()
	}
	if len(ids) == 0 {
		return
	}
	last, err := h.store.MeshLastSeqs(ctx, ids)
	if err != nil {
		h.log.Warn("stream reconcile", slog.String("error", err.Error()))
		return
	}
	for _, id := range ids {
		sh := h.shard(id)
		sh.mu.RLock()
		ms := sh.meshes[id]
		sh.mu.RUnlock()
		if ms == nil {
			continue
		}
		ms.deliver.Lock()
		behind := ms.lastSeq > 0 && last[id] > ms.lastSeq
		from := ms.lastSeq
		ms.deliver.Unlock()
		if !behind {
			continue
		}
		rows, err := h.store.MeshMessagesBetween(ctx, id, from, last[id], 10_000)
		if err != nil || len(rows) == 0 {
			continue
		}
		h.Deliver(models.Committed{MeshID: id, Messages: rows})
	}
}

// RunReconciler calls Reconcile every interval until ctx ends.
func (h *Hub) RunReconciler(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.Reconcile(ctx)
		}
	}
}
