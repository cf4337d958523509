package middleware

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestRateLimiterBucketsAreSeparateAndRefill(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rl := NewRateLimiter(2, 3) // 2/s, burst 3
	rl.now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := rl.Allow("a"); !ok {
			t.Fatalf("request %d within burst refused", i)
		}
	}
	ok, wait := rl.Allow("a")
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("4th request: ok=%v wait=%v; want refused with a wait ≤ 1 s", ok, wait)
	}
	if ok, _ := rl.Allow("b"); !ok {
		t.Error("another key shares a's bucket")
	}
	now = now.Add(500 * time.Millisecond) // one token back at 2/s
	if ok, _ := rl.Allow("a"); !ok {
		t.Error("no refill after 500 ms")
	}
	if ok, _ := rl.Allow("a"); ok {
		t.Error("refilled more than one token in 500 ms")
	}
}

func TestRateLimiterSweepForgetsIdleKeys(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rl := NewRateLimiter(1, 1)
	rl.now = func() time.Time { return now }
	for i := range 1000 {
		rl.Allow(fmt.Sprint("k", i))
	}
	now = now.Add(3 * time.Minute)
	rl.Allow("fresh")
	rl.Sweep(2 * time.Minute)
	n := 0
	for i := range rl.shards {
		n += len(rl.shards[i].buckets)
	}
	if n != 1 {
		t.Errorf("%d buckets after sweep, want 1", n)
	}
}

func TestRateLimiterConcurrentCallersNeverExceedBurst(t *testing.T) {
	rl := NewRateLimiter(0.001, 50)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if ok, _ := rl.Allow("shared"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 50 {
		t.Errorf("allowed %d of 400 concurrent requests, want exactly the burst of 50", allowed)
	}
}
