package peer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-im/parley/peer/client"
	"github.com/parley-im/parley/peer/peertest"
)

// TestDHTLookups starts a bootstrap node and dhtNodes nodes that know only
// its address. Every node must find every other one by a DHT lookup over
// the network (the pair is disconnected and the target's addresses are
// forgotten first, so the peerstore cannot answer), a few through the local
// API as `parley find` does. Then the bootstrap node stops and lookups among
// the rest must still succeed.
func TestDHTLookups(t *testing.T) {
	const dhtNodes = 20
	boot := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	nodes := make([]*peertest.Running, dhtNodes)
	for i := range nodes {
		nodes[i] = peertest.Start(t, peertest.Config(t, peertest.Home(t), boot.Addr()), nil)
	}
	peertest.Eventually(t, 30*time.Second, "every node in the bootstrap node's routing table", func() bool {
		return boot.Discovery().RoutingTableSize() == dhtNodes
	})
	peertest.Eventually(t, 30*time.Second, "every node's routing table to hold another node than the bootstrap", func() bool {
		for _, n := range nodes {
			if n.Discovery().RoutingTableSize() < 2 {
				return false
			}
		}
		return true
	})

	t.Run("all pairs", func(t *testing.T) {
		lookupAll(t, nodes, func(i int) []int {
			var js []int
			for j := range nodes {
				if j != i {
					js = append(js, j)
				}
			}
			return js
		})
	})

	t.Run("local API", func(t *testing.T) {
		for _, pair := range [][2]int{{0, dhtNodes - 1}, {dhtNodes / 2, 1}} {
			from, to := nodes[pair[0]], nodes[pair[1]]
			forget(from, to)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			res, err := client.New(from.Home).Find(ctx, to.Host().ID().String())
			cancel()
			if err != nil {
				t.Fatalf("GET /v1/find %s from node %d: %v", to.Host().ID(), pair[0], err)
			}
			if res.PeerID != to.Host().ID().String() {
				t.Errorf("find answered peer %s, want %s", res.PeerID, to.Host().ID())
			}
			if !slices.Contains(res.Addrs, to.Host().Addrs()[0].String()) {
				t.Errorf("find answered addrs %v, want %v among them", res.Addrs, to.Host().Addrs()[0])
			}
		}
	})

	t.Run("without bootstrap", func(t *testing.T) {
		bootID := boot.Host().ID()
		boot.Stop(t)
		// The first phase made every node forget most others; let each
		// refill its routing table from the rest (as the DHT does on its
		// own every few minutes) before looking peers up without the
		// bootstrap node.
		for i, n := range nodes {
			if err := <-n.Discovery().DHT().ForceRefresh(); err != nil {
				t.Logf("node %d: routing table refresh: %v", i, err)
			}
		}
		// Every node looks up five others, none of them its neighbour in
		// start order (which may share the bootstrap's view).
		lookupAll(t, nodes, func(i int) []int {
			var js []int
			for k := 2; k < 7; k++ {
				js = append(js, (i+k*3)%dhtNodes)
			}
			return js
		})
		for i, n := range nodes {
			if n.Host().Network().Connectedness(bootID) == network.Connected {
				t.Errorf("node %d still connected to the stopped bootstrap node", i)
			}
		}
	})
}

// lookupAll makes every node i look up nodes[j] for each j in targets(i)
// by a DHT query, one lookup at a time so that no other lookup reconnects a
// pair that forget has just separated.
func lookupAll(t *testing.T, nodes []*peertest.Running, targets func(i int) []int) {
	t.Helper()
	for i := range nodes {
		for _, j := range targets(i) {
			// A Kademlia lookup can miss under load (a peer that
			// answers late, a dial that fails): a real client retries,
			// and so does this test, after refreshing the routing
			// table. Every pair must still be found.
			err := lookup(nodes[i], nodes[j])
			for try := 1; err != nil && try < 3; try++ {
				t.Logf("node %d finding node %d, try %d: %v; retrying", i, j, try, err)
				<-nodes[i].Discovery().DHT().ForceRefresh()
				err = lookup(nodes[i], nodes[j])
			}
			if err != nil {
				t.Errorf("node %d finding node %d: %v", i, j, err)
			}
		}
	}
}

// forget makes from lose every trace of to: the connection, the routing
// table entry and the addresses. Only a DHT query can then tell from where
// to is.
func forget(from, to *peertest.Running) {
	id := to.Host().ID()
	from.Host().Network().ClosePeer(id)
	from.Discovery().DHT().RoutingTable().RemovePeer(id)
	from.Host().Peerstore().ClearAddrs(id)
}

// lookup finds to from from and checks that the answer came over the
// network: some third peer's response must have named to.
func lookup(from, to *peertest.Running) error {
	forget(from, to)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctx, events := routing.RegisterForQueryEvents(ctx)
	heard := make(chan bool, 1)
	go func() {
		told := false
		for e := range events {
			if e.Type == routing.PeerResponse && e.ID != to.Host().ID() &&
				slices.ContainsFunc(e.Responses, func(ai *lpeer.AddrInfo) bool { return ai.ID == to.Host().ID() }) {
				told = true
			}
		}
		heard <- told
	}()
	info, err := from.Discovery().FindPeer(ctx, to.Host().ID())
	cancel() // closes events
	told := <-heard
	if err != nil {
		return err
	}
	if !told {
		return errors.New("answered without a DHT query naming the peer")
	}
	return checkFound(info, to)
}
func checkFound(info lpeer.AddrInfo, to *peertest.Running) error {
	if info.ID != to.Host().ID() {
		return fmt.Errorf("found peer %s, want %s", info.ID, to.Host().ID())
	}
	want := to.Host().Addrs()[0]
	if !slices.ContainsFunc(info.Addrs, func(a ma.Multiaddr) bool { return a.Equal(want) }) {
		return fmt.Errorf("found addrs %v, want %s among them", info.Addrs, want)
	}
	return nil
}
