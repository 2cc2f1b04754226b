// Package budget prices untrusted work before it is done: token buckets
// keyed by who asks (a peer ID, an IP address) with a bounded memory, and
// helpers to key a connection by its remote IP.
//
// A protocol handler takes a token from each budget that applies (the
// peer's, the peer's IP's, the global one) before any expensive work
// (database, cryptography); a request over budget is refused cheaply. Keys
// are forgotten once a budget remembers MaxKeys of them (evictLocked), so
// a flood of fresh keys (throwaway peer IDs) costs bounded memory and
// bounded time, and the global budget, a single key, still holds.
package budget

import (
	"net"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// MaxKeys is how many keys one Keyed budget remembers.
const MaxKeys = 8192

// Keyed is a token bucket per key: Burst tokens at most, one more every
// Every. The zero value is not usable; use New.
type Keyed[K comparable] struct {
	burst float64
	every time.Duration

	mu      sync.Mutex
	buckets map[K]*bucket // guarded by mu
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a budget of burst tokens per key, refilled one every every.
func New[K comparable](burst int, every time.Duration) *Keyed[K] {
	return &Keyed[K]{burst: float64(burst), every: every, buckets: make(map[K]*bucket)}
}

// Allow takes a token for k if one is left.
func (b *Keyed[K]) Allow(k K, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, ok := b.buckets[k]
	if !ok {
		if len(b.buckets) >= MaxKeys {
			b.evictLocked(now)
		}
		bk = &bucket{tokens: b.burst, last: now}
		b.buckets[k] = bk
	}
	bk.tokens = min(b.burst, bk.tokens+float64(now.Sub(bk.last))/float64(b.every))
	bk.last = now
	if bk.tokens < 1 {
		return false
	}
	bk.tokens--
	return true
}

// evictLocked makes room when the budget remembers MaxKeys keys: it
// forgets every bucket that is full again (it holds nothing worth
// keeping) and, if that frees less than an eighth, an eighth of the keys
// in the map's random order. So each eviction costs one pass and happens
// at most once per MaxKeys/8 new keys. Under a flood of more than MaxKeys
// keys a forgotten key gets a fresh burst; the global budget, which has a
// single key, still bounds the total.
func (b *Keyed[K]) evictLocked(now time.Time) {
	for k, bk := range b.buckets {
		if bk.tokens+float64(now.Sub(bk.last))/float64(b.every) >= b.burst {
			delete(b.buckets, k)
		}
	}
	for k := range b.buckets {
		if len(b.buckets) <= MaxKeys-MaxKeys/8 {
			break
		}
		delete(b.buckets, k)
	}
}

// Len returns how many keys the budget remembers.
func (b *Keyed[K]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.buckets)
}

// IPKey returns the key of a remote address for per-IP budgets: the IP
// address, with IPv6 addresses cut to their /64 (one host usually has a
// whole /64); "" if the address has no IP (a relayed connection: then the
// peer's own budget and the global one apply).
func IPKey(addr ma.Multiaddr) string {
	if addr == nil {
		return ""
	}
	if v, err := addr.ValueForProtocol(ma.P_IP4); err == nil {
		return v
	}
	if v, err := addr.ValueForProtocol(ma.P_IP6); err == nil {
		ip := net.ParseIP(v)
		if ip == nil {
			return v
		}
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ""
}

// Gate is the three budgets of one protocol handler: per peer, per IP and
// global.
type Gate struct {
	Peer   *Keyed[string]
	IP     *Keyed[string]
	Global *Keyed[struct{}]
}

// NewGate returns a gate: each peer may make burst requests and one more
// every every; each IP ipFactor times that; everyone together globalFactor
// times that.
func NewGate(burst int, every time.Duration, ipFactor, globalFactor int) *Gate {
	return &Gate{
		Peer:   New[string](burst, every),
		IP:     New[string](burst*ipFactor, every/time.Duration(ipFactor)),
		Global: New[struct{}](burst*globalFactor, every/time.Duration(globalFactor)),
	}
}

// Refusal says which budget refused a request: "peer", "ip" or "global";
// "" if none did.
type Refusal string

// Allow takes a token from each budget, the peer's first (so a flooding
// peer spends its own budget, not its IP's or everyone's), and reports
// which one refused.
func (g *Gate) Allow(peerKey string, ip string, now time.Time) Refusal {
	if !g.Peer.Allow(peerKey, now) {
		return "peer"
	}
	if ip != "" && !g.IP.Allow(ip, now) {
		return "ip"
	}
	if !g.Global.Allow(struct{}{}, now) {
		return "global"
	}
	return ""
}
