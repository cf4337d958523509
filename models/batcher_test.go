package models

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wait must return only when everything queued has run, and must be safe
// to call while requests keep arriving (a store closing under open
// streams): the race detector checks the second.
func TestBatcherWaitsForQueuedWorkWhileRequestsArrive(t *testing.T) {
	var ran atomic.Int64
	b := newBatcher(4, func(_ string, batch []int) {
		time.Sleep(time.Millisecond) // so requests pile up behind a batch
		ran.Add(int64(len(batch)))
	})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				b.submit(strconv.Itoa(g%3), i)
			}
		})
	}
	var waiters sync.WaitGroup
	for range 4 {
		waiters.Go(func() {
			for range 50 {
				b.wait()
			}
		})
	}
	wg.Wait()
	waiters.Wait()
	b.wait()
	if got := ran.Load(); got != 400 {
		t.Fatalf("ran %d requests after wait, want 400", got)
	}
}
