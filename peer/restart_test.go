package peer_test

import (
	"context"
	ma "github.com/multiformats/go-multiaddr"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/peertest"
)

// TestRestartReconnectsFromAddressBook restarts a node in the same home: it
// keeps its peer ID and, with no bootstrap peer at all, reconnects to the
// peer it knew from its address book.
func TestRestartReconnectsFromAddressBook(t *testing.T) {
	friend := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	home := peertest.Home(t)
	first := peertest.Start(t, peertest.Config(t, home, friend.Addr()), nil)
	firstID := first.Host().ID()
	peertest.Eventually(t, 10*time.Second, "the friend in the address book", func() bool {
		_, ok, err := first.DB().LookupPeer(context.Background(), friend.Host().ID())
		return ok && err == nil
	})
	first.Stop(t)

	connected := make(chan struct{})
	second := peertest.Start(t, peertest.Config(t, home /* no bootstrap */), func(n *peer.Node) {
		waitConnected(t, n, friend.Host().ID(), connected)
	})
	if second.Host().ID() != firstID {
		t.Fatalf("peer ID changed across restart: %s, then %s", firstID, second.Host().ID())
	}
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatal("restarted node did not reconnect to the peer in its address book")
	}
}

// waitConnected closes done when n connects to id. It subscribes at once
// (call it before Run) and keeps draining events until the test ends, so
// the event bus never blocks on it.
func waitConnected(t *testing.T, n *peer.Node, id lpeer.ID, done chan<- struct{}) {
	t.Helper()
	sub, err := n.Host().EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	exited := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		<-exited
		sub.Close()
	})
	go func() {
		defer close(exited)
		once := false
		for {
			select {
			case <-stop:
				return
			case e := <-sub.Out():
				if ev := e.(event.EvtPeerConnectednessChanged); !once && ev.Peer == id && ev.Connectedness == network.Connected {
					once = true
					close(done)
				}
			}
		}
	}()
}

// TestAddressBookRemembersEarlyPeers connects a node to its bootstrap peer
// before Run starts (the DHT dials bootstrap peers as soon as it is built,
// and a slow service setup widens that window): the peer must still be
// recorded in the address book.
func TestAddressBookRemembersEarlyPeers(t *testing.T) {
	friend := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	n := peertest.Start(t, peertest.Config(t, peertest.Home(t), friend.Addr()), func(n *peer.Node) {
		peertest.Eventually(t, 10*time.Second, "the DHT to connect and identify the bootstrap peer", func() bool {
			protos, _ := n.Host().Peerstore().GetProtocols(friend.Host().ID())
			return n.Host().Network().Connectedness(friend.Host().ID()) == network.Connected && len(protos) > 0
		})
	})
	peertest.Eventually(t, 10*time.Second, "the bootstrap peer in the address book", func() bool {
		_, ok, err := n.DB().LookupPeer(context.Background(), friend.Host().ID())
		return ok && err == nil
	})
}

// TestRestartKeepsPorts starts a node with the default listeners twice on
// one home: the second start listens on the same ports, so contacts find it
// at the address they remember. (Nothing is dialled: no bootstrap, no mDNS,
// no port mapping.)
func TestRestartKeepsPorts(t *testing.T) {
	home := peertest.Home(t)
	cfg := peertest.Config(t, home)
	cfg.Listen = nil
	first := peertest.Start(t, cfg, nil)
	before := first.Host().Network().ListenAddresses()
	first.Stop(t)
	second := peertest.Start(t, cfg, nil)
	after := second.Host().Network().ListenAddresses()
	set := func(as []ma.Multiaddr) map[string]bool {
		m := map[string]bool{}
		for _, a := range as {
			m[a.String()] = true
		}
		return m
	}
	b, a := set(before), set(after)
	if len(b) < 3 || len(b) != len(a) {
		t.Fatalf("listen addresses %v, then %v", before, after)
	}
	for s := range b {
		if !a[s] {
			t.Errorf("%s not listened on after the restart (%v)", s, after)
		}
	}
}
