package peer_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/parley-im/parley/peer/peertest"
)

// benchDHTNodes is the size of each DHT network of BenchmarkDHT100.
const benchDHTNodes = 100

// dhtNet is one network of BenchmarkDHT100 and the times it measured.
type dhtNet struct {
	name          string
	dhts          []*dht.IpfsDHT
	ids           []lpeer.ID
	provide, find []time.Duration
}

// BenchmarkDHT100 times a provide and a find-providers in two networks of
// benchDHTNodes nodes each on 127.0.0.1, run in the same process and
// measured alternately: real Parley nodes (peertest, DHT in server mode,
// discovery's configuration) and default go-libp2p hosts with kad-dht at its
// defaults but for server mode (auto mode stays a client on loopback) and
// the bootstrap peer (the default list is the public network). In each,
// every node bootstraps from the first one. Every iteration, in each
// network, a random node provides a fresh CID and another random node
// finds it (until it sees that provider). p99 needs samples:
//
//	go test -run '^$' -bench DHT100 -benchtime 200x ./peer
func BenchmarkDHT100(b *testing.B) {
	if testing.Short() {
		b.Skip("starts 200 nodes")
	}
	start := time.Now()
	ours := parleyDHTNet(b)
	b.Logf("%d Parley nodes started in %v", benchDHTNodes, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	raw := rawDHTNet(b)
	b.Logf("%d raw nodes started in %v", benchDHTNodes, time.Since(start).Round(time.Millisecond))
	for _, n := range []*dhtNet{ours, raw} {
		start = time.Now()
		waitRoutingTables(b, n)
		b.Logf("%s routing tables filled in %v more", n.name, time.Since(start).Round(time.Millisecond))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	key := 0
	for b.Loop() {
		for _, n := range []*dhtNet{ours, raw} {
			key++
			n.provideFind(b, rng, key)
		}
	}
	for _, n := range []*dhtNet{ours, raw} {
		b.ReportMetric(ms(pct(n.provide, 50)), n.name+"-provide-p50-ms")
		b.ReportMetric(ms(pct(n.provide, 99)), n.name+"-provide-p99-ms")
		b.ReportMetric(ms(pct(n.find, 50)), n.name+"-find-p50-ms")
		b.ReportMetric(ms(pct(n.find, 99)), n.name+"-find-p99-ms")
	}
	b.ReportMetric(float64(pct(ours.provide, 50))/float64(pct(raw.provide, 50)), "provide-p50-parley/raw")
	b.ReportMetric(float64(pct(ours.provide, 99))/float64(pct(raw.provide, 99)), "provide-p99-parley/raw")
	b.ReportMetric(float64(pct(ours.find, 50))/float64(pct(raw.find, 50)), "find-p50-parley/raw")
	b.ReportMetric(float64(pct(ours.find, 99))/float64(pct(raw.find, 99)), "find-p99-parley/raw")
}

// parleyDHTNet starts benchDHTNodes Parley nodes, all bootstrapping from the
// first.
func parleyDHTNet(b *testing.B) *dhtNet {
	n := &dhtNet{name: "parley"}
	boot := peertest.Start(b, peertest.Config(b, peertest.Home(b)), nil)
	n.add(boot.Discovery().DHT(), boot.Host())
	for range benchDHTNodes - 1 {
		r := peertest.Start(b, peertest.Config(b, peertest.Home(b), boot.Addr()), nil)
		n.add(r.Discovery().DHT(), r.Host())
	}
	return n
}

// rawDHTNet starts benchDHTNodes default hosts with kad-dht, all
// bootstrapping from the first.
func rawDHTNet(b *testing.B) *dhtNet {
	n := &dhtNet{name: "raw"}
	var boot lpeer.AddrInfo
	for i := range benchDHTNodes {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		var opts []dht.Option
		if i == 0 {
			boot = lpeer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
			opts = append(opts, dht.BootstrapPeersFunc(func() []lpeer.AddrInfo { return nil }))
		} else {
			opts = append(opts, dht.BootstrapPeers(boot))
		}
		d, err := dht.New(h, append(opts, dht.Mode(dht.ModeServer))...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		if i > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := h.Connect(ctx, boot)
			if err == nil {
				err = d.Bootstrap(ctx)
			}
			cancel()
			if err != nil {
				b.Fatalf("raw node %d: bootstrap: %v", i, err)
			}
		}
		n.add(d, h)
	}
	return n
}

func (n *dhtNet) add(d *dht.IpfsDHT, h host.Host) {
	n.dhts = append(n.dhts, d)
	n.ids = append(n.ids, h.ID())
}

// waitRoutingTables waits until every routing table holds at least a
// bucket's worth of peers (20), as a network that finished bootstrapping.
func waitRoutingTables(b *testing.B, n *dhtNet) {
	peertest.Eventually(b, 2*time.Minute, n.name+" routing tables of at least 20 peers", func() bool {
		for _, d := range n.dhts {
			if d.RoutingTable().Size() < 20 {
				return false
			}
		}
		return true
	})
}

// provideFind has a random node provide a CID made from key and another
// find it, and records both times.
func (n *dhtNet) provideFind(b *testing.B, rng *rand.Rand, key int) {
	i := rng.IntN(len(n.dhts))
	j := (i + 1 + rng.IntN(len(n.dhts)-1)) % len(n.dhts)
	c := benchCID(n.name, key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := n.dhts[i].Provide(ctx, c, true); err != nil {
		b.Fatalf("%s: node %d: provide: %v", n.name, i, err)
	}
	mid := time.Now()
	found := false
	for info := range n.dhts[j].FindProvidersAsync(ctx, c, 0) {
		if info.ID == n.ids[i] {
			found = true
			break
		}
	}
	if !found {
		b.Fatalf("%s: node %d did not find node %d providing %s", n.name, j, i, c)
	}
	n.find = append(n.find, time.Since(mid))
	n.provide = append(n.provide, mid.Sub(start))
}

// benchCID returns a CIDv1 (raw) of the SHA-256 of the network's name and key.
func benchCID(name string, key int) cid.Cid {
	sum := sha256.Sum256(binary.BigEndian.AppendUint64([]byte(name), uint64(key)))
	h, err := mh.Encode(sum[:], mh.SHA2_256)
	if err != nil {
		panic(fmt.Sprintf("multihash: %v", err)) // unreachable: a 32-byte SHA-256
	}
	return cid.NewCidV1(cid.Raw, h)
}

// pct returns the p-th percentile of ds (nearest rank).
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
