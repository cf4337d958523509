package stream

import "sync"

// Slots caps the streams each credential holds open at once on this node:
// one key cannot pin thousands of idle connections (and the fan-out to
// them). Counting is per node: behind a load balancer with N brokers a
// credential may hold up to N × the cap.
type Slots struct {
	max  int
	mu   sync.Mutex
	open map[string]int
}

// NewSlots makes a counter that allows max streams per credential.
func NewSlots(max int) *Slots {
	return &Slots{max: max, open: map[string]int{}}
}

// Max is the cap per credential.
func (s *Slots) Max() int { return s.max }

// Take reserves a slot for the credential key. It reports false, and holds
// nothing, when key already has Max streams open; otherwise release frees
// the slot (once, however often it is called).
func (s *Slots) Take(key string) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key] >= s.max {
		return nil, false
	}
	s.open[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.open[key]--; s.open[key] <= 0 {
				delete(s.open, key)
			}
		})
	}, true
}

// Open is how many streams key holds now.
func (s *Slots) Open(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[key]
}
