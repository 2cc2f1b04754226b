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
	buckets map[peer.ID]*bucket // guarded by mu
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter of burst tokens refilled one every every.
func NewLimiter(burst int, every time.Duration) *Limiter {
	return &Limiter{burst: float64(burst), every: every, buckets: make(map[peer.ID]*bucket)}
}

// Allow takes a token for p if one is left.
func (l *Limiter) Allow(p peer.ID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[p]
	if !ok {
		if len(l.buckets) >= limiterMaxPeers {
			l.evictLocked()
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[p] = b
	}
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.last))/float64(l.every))
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *Limiter) evictLocked() {
	var oldest peer.ID
	var at time.Time
	for p, b := range l.buckets {
		if oldest == "" || b.last.Before(at) {
			oldest, at = p, b.last
		}
	}
	delete(l.buckets, oldest)
}
