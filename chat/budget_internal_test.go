package chat

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestAddrKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"/ip4/192.0.2.7/tcp/4001", "192.0.2.7"},
		{"/ip4/192.0.2.7/udp/4001/quic-v1", "192.0.2.7"},
		{"/ip6/2001:db8:1:2:3:4:5:6/tcp/1", "2001:db8:1:2::/64"},
		{"/ip6/2001:db8:1:2:ffff::1/tcp/1", "2001:db8:1:2::/64"},
		{"/ip4/198.51.100.1/tcp/4001/p2p/12D3KooWLr1gYejUTeriAsSu6roR2aQ423G3Q4fFTqzqSwTsMz9n/p2p-circuit", "198.51.100.1"},
		{"/dns4/example.com/tcp/1", ""},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			a, err := ma.NewMultiaddr(tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			if got := addrKey(a); got != tc.want {
				t.Fatalf("addrKey(%s) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
	if addrKey(nil) != "" {
		t.Fatal("addrKey(nil) != \"\"")
	}
}

// TestDMBudget: a peer's failures spend its budget, which refills with
// time; a stranger's frames also spend per-peer and per-address tokens;
// a contact is never charged per address. Positive control: a fresh
// peer may try, and is no suspect when it is a contact.
func TestDMBudget(t *testing.T) {
	b := newDMBudget()
	now := time.Unix(1000, 0)
	contact := source{peer: "contact", ip: "192.0.2.1"}
	if !b.mayStart(contact, true, now) || !b.mayTry(contact, true, now) || b.suspect(contact, true, now) {
		t.Fatal("a fresh contact is refused or suspect")
	}
	for range dmFailBurst {
		b.failed(contact, true, now)
	}
	if b.mayStart(contact, true, now) || b.mayTry(contact, true, now) || b.admit(contact, true, now) {
		t.Fatal("a contact with no failure budget left may still try")
	}
	if !b.suspect(contact, true, now.Add(dmFailEvery)) {
		t.Fatal("a contact that failed recently is not a suspect")
	}
	if !b.mayTry(contact, true, now.Add(dmFailEvery)) {
		t.Fatal("the failure budget does not refill")
	}
	// Contacts' failures are not charged to their address.
	other := source{peer: "stranger", ip: "192.0.2.1"}
	if !b.mayStart(other, false, now) {
		t.Fatal("a contact's failures were charged to its address")
	}
	tried := 0
	for b.mayTry(other, false, now) {
		tried++
	}
	if tried != dmStrangerBurst {
		t.Fatalf("a stranger tried %d frames at once, want %d", tried, dmStrangerBurst)
	}
	// Many strangers from one address share its budget.
	n := 0
	for i := 0; i < 1000; i++ {
		if b.mayTry(source{peer: peer.ID(fmt.Sprint("s", i)), ip: "198.51.100.9"}, false, now) {
			n++
		}
	}
	if n != 4*dmStrangerBurst {
		t.Fatalf("one address got %d stranger frames, want %d", n, 4*dmStrangerBurst)
	}
}

func TestDMStreamsPerPeer(t *testing.T) {
	b := newDMBudget()
	now := time.Unix(1000, 0)
	src := source{peer: "p", ip: "192.0.2.1"}
	for range dmStreamsPerPeer {
		if !b.admit(src, true, now) {
			t.Fatal("stream refused below the limit")
		}
	}
	if b.admit(src, true, now) {
		t.Fatal("stream admitted above the limit")
	}
	for range dmStreamsPerPeer {
		b.leave(src.peer)
	}
	if len(b.lanes) != 0 {
		t.Fatalf("%d lanes left after every stream ended", len(b.lanes))
	}
}
