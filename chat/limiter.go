package chat

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Prekey bundles: each peer may fetch prekeyBurst bundles at once and one
// more every prekeyEvery; a peer over its budget is refused, so one peer
// cannot drain the one-time prekey pool (at most prekeyBurst + 1/hour... of
// the pool per peer, and the pool refills itself).
const (
	prekeyBurst = 3
	prekeyEvery = 10 * time.Minute
	// limiterMaxPeers bounds the limiter's memory; the oldest entries go first.
	limiterMaxPeers = 4096
)

// Limiter is a token bucket per peer: burst tokens at most, one more every
// interval. It remembers at most limiterMaxPeers peers, forgetting the one
// seen longest ago. The prekey endpoint and room validators use it.
type Limiter struct {
	burst float64
	every time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket // guarded by mu; keyed by peer ID or address
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter of burst tokens refilled one every every.
func NewLimiter(burst int, every time.Duration) *Limiter {
	return &Limiter{burst: float64(burst), every: every, buckets: make(map[string]*bucket)}
}

// Allow takes a token for p if one is left.
func (l *Limiter) Allow(p peer.ID, now time.Time) bool { return l.AllowKey(string(p), now) }

// AllowKey takes a token for key (a peer ID or a network address) if one
// is left.
func (l *Limiter) AllowKey(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refillLocked(key, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Has reports whether key has a token left, without taking it.
func (l *Limiter) Has(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refillLocked(key, now).tokens >= 1
}

// Full reports whether key has every token of its burst.
func (l *Limiter) Full(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refillLocked(key, now).tokens >= l.burst
}

// Charge takes a token from key whether or not one is left (never below
// zero): the price of work already done, such as a frame that failed to
// authenticate.
func (l *Limiter) Charge(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refillLocked(key, now)
	b.tokens = max(0, b.tokens-1)
}

func (l *Limiter) refillLocked(key string, now time.Time) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= limiterMaxPeers {
			l.evictLocked()
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if now.After(b.last) {
		b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.last))/float64(l.every))
		b.last = now
	}
	return b
}

func (l *Limiter) evictLocked() {
	var oldest string
	var at time.Time
	for p, b := range l.buckets {
		if oldest == "" || b.last.Before(at) {
			oldest, at = p, b.last
		}
	}
	delete(l.buckets, oldest)
}
