package stream

import (
	"errors"
	"sync"
)

// ErrSlowConsumer ends a subscription whose queue overflowed. The client
// resumes with Last-Event-ID; nothing is lost because the database is the
// history.
var ErrSlowConsumer = errors.New("stream: subscriber too slow; resume with Last-Event-ID")

// ErrGap ends a subscription when the hub could not fill a seq gap from the
// database; the client resumes and the replay fills it.
var ErrGap = errors.New("stream: could not fill a gap in the live feed; resume with Last-Event-ID")

// Subscription is one live consumer: a bounded queue the hub appends to
// without ever blocking, and a writer (the connection's goroutine) that
// takes everything queued at once.
type Subscription struct {
	hub    *Hub
	meshID string

	mu       sync.Mutex
	wants    func(*Event) bool
	queue    []*Event
	bytes    int
	maxCount int
	maxBytes int
	err      error

	ready chan struct{} // capacity 1: "something is queued"
	done  chan struct{} // closed when the subscription ends
	once  sync.Once
	// notify, when set, is called (without locks held) after ready is
	// signalled and after done is closed, for a consumer that starts a
	// goroutine only when there is work instead of parking one on the
	// channels. It must not block: the hub calls it while delivering.
	notify func()
}

// SetFilter replaces the subscriber's filter (for example when its topic
// access changed).
func (s *Subscription) SetFilter(wants func(*Event) bool) {
	s.mu.Lock()
	s.wants = wants
	s.mu.Unlock()
}

// offer queues e if the subscriber wants it. It never blocks: a full queue
// ends the subscription instead.
func (s *Subscription) offer(e *Event) {
	s.mu.Lock()
	if s.err != nil || !s.wants(e) {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.maxCount || s.bytes+len(e.SSE) > s.maxBytes {
		s.mu.Unlock()
		s.hub.metrics.slow.Inc()
		s.fail(ErrSlowConsumer)
		return
	}
	s.queue = append(s.queue, e)
	s.bytes += len(e.SSE)
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
	if s.notify != nil {
		s.notify()
	}
}

// Ready signals that Take has events.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Done is closed when the subscription ends; Err says why.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err is the reason the subscription ended, or nil.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Take returns and clears everything queued.
func (s *Subscription) Take() []*Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue, s.bytes = nil, 0
	return q
}

func (s *Subscription) fail(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.err = err
		s.queue = nil
		s.mu.Unlock()
		close(s.done)
		if s.notify != nil {
			s.notify()
		}
	})
}

// Close ends the subscription and removes it from the hub.
func (s *Subscription) Close() {
	s.hub.unsubscribe(s)
	s.fail(errClosed)
}

var errClosed = errors.New("stream: subscription closed")
