package stream

import (
	"errors"
	"sync"
	"time"
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
//
// A subscriber that has caught up may also be written to directly: once
// its writer installs a non-blocking socket write (GoDirect), the hub writes
// an event straight to the socket whenever nothing is queued or being
// written, so a delivery costs one write syscall and no goroutine wake-up.
// A write that would block leaves its unwritten tail pending for the
// writer goroutine, and everything after it is queued as before, so order
// is kept and a slow socket never stalls the hub.
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
	lastSent int64 // highest message seq written or handed to the writer (Feed)

	direct func([]byte) (int, error) // non-blocking socket write; nil until GoDirect
	pend   []byte                    // unwritten tail of a direct write, written first
	wmu    sync.Mutex                // held by whoever writes to the socket

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

// offerAll hands the subscriber the events of one delivery: written to its
// socket at once when it writes directly and nothing is ahead of them,
// queued otherwise (never blocking: a full queue ends the subscription
// instead). scratch is the caller's reusable buffer for joining several
// events into one write.
func (s *Subscription) offerAll(events []*Event, scratch *[]byte) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	if s.direct == nil || len(s.queue) > 0 || s.pend != nil || !s.wmu.TryLock() {
		full := false
		for _, e := range events {
			full = full || s.queueLocked(e)
		}
		s.mu.Unlock()
		s.queued(full)
		return
	}
	// This goroutine now holds the socket: build what the subscriber
	// wants, skipping seqs already written, as the writer would.
	out, n := []byte(nil), 0
	for _, e := range events {
		if !s.wants(e) {
			continue
		}
		if e.Kind == KindMessage {
			if e.Seq <= s.lastSent {
				continue
			}
			s.lastSent = e.Seq
		}
		switch n++; n {
		case 1:
			out = e.SSE
		case 2:
			*scratch = append(append((*scratch)[:0], out...), e.SSE...)
			out = *scratch
		default:
			*scratch = append(*scratch, e.SSE...)
			out = *scratch
		}
	}
	write := s.direct
	s.mu.Unlock()
	if n == 0 {
		s.wmu.Unlock()
		return
	}
	written, err := write(out)
	if err == nil && written < len(out) {
		// The socket is full: the writer goroutine finishes this (a copy,
		// since scratch is reused) before anything queued after it.
		s.mu.Lock()
		s.pend = append([]byte(nil), out[written:]...)
		s.mu.Unlock()
	}
	s.wmu.Unlock()
	if err != nil {
		s.fail(writeErr{err}) // the socket is broken: no end event can follow
		return
	}
	m := s.hub.metrics
	m.sent.Add(float64(n))
	if written < len(out) {
		s.signal()
	} else if at := events[0].At; !at.IsZero() {
		m.latency.Observe(time.Since(at).Seconds())
	}
}

// queueLocked appends e if wanted and reports whether the queue overflowed,
// in which case the subscription takes nothing more and the caller, once it
// has released s.mu, ends it (queued).
func (s *Subscription) queueLocked(e *Event) (full bool) {
	if s.err != nil || !s.wants(e) {
		return false
	}
	if len(s.queue) >= s.maxCount || s.bytes+len(e.SSE) > s.maxBytes {
		s.err = ErrSlowConsumer
		s.queue = nil
		return true
	}
	s.queue = append(s.queue, e)
	s.bytes += len(e.SSE)
	return false
}

// queued wakes the writer, or ends an overflowed subscription.
func (s *Subscription) queued(full bool) {
	if full {
		s.hub.metrics.slow.Inc()
		s.fail(ErrSlowConsumer)
		return
	}
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
	if s.notify != nil {
		s.notify()
	}
}

// GoDirect lets the hub write events to the subscriber's socket itself
// from now on (see Subscription). write must never block: it returns how
// much it wrote, short when the socket is full. Call it once the writer is
// live (after any replay), from the writer goroutine.
func (s *Subscription) GoDirect(write func([]byte) (int, error)) {
	s.mu.Lock()
	s.direct = write
	s.mu.Unlock()
}

// LockWrites takes the socket for the writer goroutine, waiting for a
// direct write in progress; UnlockWrites gives it back.
func (s *Subscription) LockWrites()   { s.wmu.Lock() }
func (s *Subscription) UnlockWrites() { s.wmu.Unlock() }

// TakePending returns the unwritten tail of a direct write, to be written
// before anything taken after it. The caller holds LockWrites.
func (s *Subscription) TakePending() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pend
	s.pend = nil
	return p
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

// takeAfter returns and clears everything queued, dropping messages at or
// below the subscriber's position and advancing it.
func (s *Subscription) takeAfter() []*Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	queued := s.queue
	s.queue, s.bytes = nil, 0
	out := queued[:0]
	for _, e := range queued {
		if e.Kind == KindMessage {
			if e.Seq <= s.lastSent {
				continue
			}
			s.lastSent = e.Seq
		}
		out = append(out, e)
	}
	return out
}

// position is the highest message seq written or handed to the writer.
func (s *Subscription) position() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSent
}

func (s *Subscription) setPosition(seq int64) {
	s.mu.Lock()
	s.lastSent = seq
	s.mu.Unlock()
}

func (s *Subscription) fail(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
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
