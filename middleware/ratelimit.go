package middleware

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/claudemesh/claudemesh-go/models"
)

const limiterShards = 32

// RateLimiter is a keyed token bucket. Keys are sharded so one hot key does
// not serialise the rest, and idle buckets are swept so memory stays bounded
// by the number of recently active callers.
type RateLimiter struct {
	limit  rate.Limit
	burst  int
	seed   maphash.Seed
	shards [limiterShards]limiterShard
	now    func() time.Time
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewRateLimiter allows perSecond events per key with the given burst.
func NewRateLimiter(perSecond float64, burst int) *RateLimiter {
	rl := &RateLimiter{limit: rate.Limit(perSecond), burst: burst, seed: maphash.MakeSeed(), now: time.Now}
	for i := range rl.shards {
		rl.shards[i].buckets = map[string]*bucket{}
	}
	return rl
}

// Allow takes one token for key; when refused it says how long to wait.
func (rl *RateLimiter) Allow(key string) (bool, time.Duration) {
	now := rl.now()
	sh := &rl.shards[maphash.String(rl.seed, key)%limiterShards]
	sh.mu.Lock()
	b, ok := sh.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rl.limit, rl.burst)}
		sh.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	sh.mu.Unlock()
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Sweep drops buckets idle for longer than idle; they are full again by then.
func (rl *RateLimiter) Sweep(idle time.Duration) {
	cutoff := rl.now().Add(-idle)
	for i := range rl.shards {
		sh := &rl.shards[i]
		sh.mu.Lock()
		for k, b := range sh.buckets {
			if b.seen.Before(cutoff) {
				delete(sh.buckets, k)
			}
		}
		sh.mu.Unlock()
	}
}

// Run sweeps every minute until ctx ends.
func (rl *RateLimiter) Run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rl.Sweep(2 * time.Minute)
		}
	}
}

// Middleware limits per principal, or per client IP for anonymous calls.
func (rl *RateLimiter) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := "ip:" + c.RealIP()
		if p := PrincipalFrom(c); p != nil {
			key = p.ID()
		}
		if ok, wait := rl.Allow(key); !ok {
			return &models.Error{Kind: models.KindRateLimited, Code: "rate_limited",
				Detail: "too many requests; retry later", RetryAfterSeconds: int(math.Ceil(wait.Seconds()))}
		}
		return next(c)
	}
}
