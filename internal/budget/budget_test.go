package budget

import (
	"fmt"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

func TestKeyedBurstAndRefill(t *testing.T) {
	b := New[string](3, time.Second)
	now := time.Unix(1000, 0)
	for i := range 3 {
		if !b.Allow("a", now) {
			t.Fatalf("token %d refused within the burst", i)
		}
	}
	if b.Allow("a", now) {
		t.Fatal("a fourth token at once")
	}
	if !b.Allow("b", now) {
		t.Fatal("another key shares the first one's bucket")
	}
	if b.Allow("a", now.Add(999*time.Millisecond)) {
		t.Fatal("refilled early")
	}
	if !b.Allow("a", now.Add(2*time.Second)) {
		t.Fatal("not refilled after the interval")
	}
}

// TestKeyedBoundedMemory: a flood of fresh keys (throwaway peer IDs) costs
// at most MaxKeys buckets; recent keys keep their state.
func TestKeyedBoundedMemory(t *testing.T) {
	b := New[string](2, time.Hour)
	now := time.Unix(1000, 0)
	for i := range 3 * MaxKeys {
		b.Allow(fmt.Sprint(i), now.Add(time.Duration(i)))
	}
	if n := b.Len(); n > MaxKeys {
		t.Fatalf("remembers %d keys, want at most %d", n, MaxKeys)
	}
	b.Allow("busy", now)
	if b.Allow("busy", now); b.Allow("busy", now) {
		t.Fatal("a key kept no state right after a flood")
	}
}

// BenchmarkKeyedFlood is the cost of one request under a flood of fresh
// keys (the budget full): amortised constant, not a scan per request.
func BenchmarkKeyedFlood(b *testing.B) {
	k := New[int](2, time.Hour)
	now := time.Unix(1000, 0)
	for i := 0; b.Loop(); i++ {
		k.Allow(i, now)
	}
}

func TestIPKey(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"/ip4/192.0.2.7/tcp/4001", "192.0.2.7"},
		{"/ip6/2001:db8:1:2:3:4:5:6/udp/1/quic-v1", "2001:db8:1:2::/64"},
		{"/ip6/2001:db8:1:2:ffff::1/tcp/1", "2001:db8:1:2::/64"},
		{"/p2p-circuit", ""},
	} {
		if got := IPKey(ma.StringCast(c.addr)); got != c.want {
			t.Errorf("IPKey(%s) = %q, want %q", c.addr, got, c.want)
		}
	}
	if IPKey(nil) != "" {
		t.Error("IPKey(nil) is not empty")
	}
}

func TestGateOrder(t *testing.T) {
	g := NewGate(1, time.Hour, 2, 3)
	now := time.Unix(1000, 0)
	if r := g.Allow("p1", "ip", now); r != "" {
		t.Fatalf("first request refused by %s", r)
	}
	if r := g.Allow("p1", "ip", now); r != "peer" {
		t.Fatalf("second request of one peer: %q, want peer", r)
	}
	if r := g.Allow("p2", "ip", now); r != "" {
		t.Fatalf("second peer of the IP: %q", r)
	}
	if r := g.Allow("p3", "ip", now); r != "ip" {
		t.Fatalf("third peer of the IP: %q, want ip", r)
	}
	if r := g.Allow("p4", "other", now); r != "" {
		t.Fatalf("third request to reach the global budget: %q", r)
	}
	if r := g.Allow("p5", "another", now); r != "global" {
		t.Fatalf("fourth request to reach the global budget: %q, want global", r)
	}
}
