package discovery

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// trimHost is a loopback host whose connection manager trims to low
// connections at once (no grace period) when asked.
func trimHost(t *testing.T, low int) (host.Host, *connmgr.BasicConnMgr) {
	t.Helper()
	cm, err := connmgr.NewConnManager(low, low+1, connmgr.WithGracePeriod(0))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.ConnectionManager(cm), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, cm
}

func startDHT(t *testing.T, h host.Host, pin bool) *Discovery {
	t.Helper()
	d, err := New(h, Config{Prefix: "/parley-test", Mode: ModeServer, PinRoutingTable: pin, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestIdleDHTConnectionsTrimmed: the connections a node's DHT made (here,
// to every node of a 16-node network, as lookups in a small network do)
// are trimmed by the connection manager like any idle connection, and
// the routing table keeps the peers. The control is a node that pins its
// routing table (kad-dht's default, kept for bootstrap nodes): trimming
// leaves the peers of its two widest buckets connected.
func TestIdleDHTConnectionsTrimmed(t *testing.T) {
	const others, low = 16, 2
	var infos []peer.AddrInfo
	for range others {
		h, _ := trimHost(t, 64)
		startDHT(t, h, true)
		infos = append(infos, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	}
	for _, tc := range []struct {
		name string
		pin  bool
	}{{"unpinned", false}, {"pinned", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h, cm := trimHost(t, low)
			d := startDHT(t, h, tc.pin)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, info := range infos {
				if err := h.Connect(ctx, info); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "every peer in the routing table", func() bool { return d.RoutingTableSize() == others })
			cm.TrimOpenConns(ctx)
			left := len(h.Network().Peers())
			t.Logf("%s: %d of %d connections left after trimming to %d", tc.name, left, others, low)
			if d.RoutingTableSize() != others {
				t.Errorf("routing table holds %d peers after trimming, want %d", d.RoutingTableSize(), others)
			}
			if tc.pin {
				// Three quarters of the peers, on average, share fewer than
				// two leading key bits with us.
				if left <= low {
					t.Errorf("a pinned routing table kept %d connections, want more than %d", left, low)
				}
				return
			}
			if left > low {
				t.Errorf("%d connections left, want at most %d", left, low)
			}
			for _, p := range d.DHT().RoutingTable().ListPeers() {
				if cm.IsProtected(p, "") {
					t.Errorf("routing-table peer %s protected", p)
				}
			}
		})
	}
}

// waitFor polls cond (routing tables have no event to wait on).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
