package models

import (
	"sync"
	"time"
)

// batcher groups concurrent requests by key. The first request to find its
// key idle runs the first batch itself (what is queued, its own request
// included, at most max) and, if more queued meanwhile, starts a drain
// goroutine for the rest; the drain exits when the queue is empty.
// Requests of one key therefore run strictly one batch after another, a
// burst of n requests costs about one batch's fixed cost (round trips, a
// commit) instead of n, and an uncontended request runs on its own
// goroutine with no hand-off. An idle key costs nothing.
type batcher[T any] struct {
	max int
	// linger, when set, is how long a batch waits for more requests before
	// it runs: for requests nobody waits on closely (periodic re-checks).
	linger  time.Duration
	run     func(key string, batch []T)
	mu      sync.Mutex
	queues  map[string][]T
	running map[string]bool // keys with a batch in progress; len is what wait waits for
	idle    *sync.Cond      // broadcast when running empties
}

func newBatcher[T any](max int, run func(key string, batch []T)) *batcher[T] {
	b := &batcher[T]{max: max, run: run, queues: map[string][]T{}, running: map[string]bool{}}
	b.idle = sync.NewCond(&b.mu)
	return b
}

// submit queues r; when it returns, r has run or is queued behind a batch
// in progress (whose drain will run it).
func (b *batcher[T]) submit(key string, r T) {
	b.mu.Lock()
	b.queues[key] = append(b.queues[key], r)
	if b.running[key] {
		b.mu.Unlock()
		return
	}
	b.running[key] = true
	b.mu.Unlock()
	if b.next(key) {
		go b.drain(key)
	}
}

// drain runs batches of key until its queue is empty.
func (b *batcher[T]) drain(key string) {
	for b.next(key) {
	}
}

// next runs the next batch of key and reports whether more are queued;
// when none are, key is idle again.
func (b *batcher[T]) next(key string) bool {
	if b.linger > 0 {
		time.Sleep(b.linger)
	}
	b.mu.Lock()
	q := b.queues[key]
	n := min(len(q), b.max)
	batch := q[:n:n]
	b.queues[key] = q[n:]
	b.mu.Unlock()
	b.run(key, batch)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queues[key]) == 0 {
		delete(b.queues, key)
		delete(b.running, key)
		if len(b.running) == 0 {
			b.idle.Broadcast()
		}
		return false
	}
	return true
}

// wait blocks until no batch is in progress or queued (Store.Close). It
// uses the batcher's own lock, not a WaitGroup, because requests may still
// arrive while the store closes (a stream re-checking), and a WaitGroup
// must not grow from zero while someone waits on it.
func (b *batcher[T]) wait() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.running) > 0 {
		b.idle.Wait()
	}
}
