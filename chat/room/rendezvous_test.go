package room

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// records is a providerFinder that answers with fixed provider records and
// resolves peer IDs from its own table, like a DHT would.
type records struct {
	providers []peer.AddrInfo
	addrs     map[peer.ID]peer.AddrInfo
	mu        sync.Mutex
	lookups   int
}

func (f *records) FindProvidersAsync(ctx context.Context, _ cid.Cid, count int) <-chan peer.AddrInfo {
	ch := make(chan peer.AddrInfo)
	go func() {
		defer close(ch)
		for i, p := range f.providers {
			if i == count {
				return
			}
			select {
			case ch <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

func (f *records) FindPeer(_ context.Context, id peer.ID) (peer.AddrInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	return f.addrs[id], nil
}

func loopbackHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestRendezvousProviders: a provider record without addresses (as stock
// DHT servers return them for non-public addresses) is looked up and
// connected; a record with addresses is connected directly (the control);
// and of 12 providers, rendezvous connects 8.
func TestRendezvousProviders(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	self := loopbackHost(t)
	ps, err := pubsub.NewGossipSub(ctx, self)
	if err != nil {
		t.Fatal(err)
	}
	f := &records{addrs: map[peer.ID]peer.AddrInfo{}}
	s := &Service{host: self, ps: ps, finder: f, log: slog.New(slog.DiscardHandler)}
	r := &room{id: PublicID("meet"), public: true}

	bare, full := loopbackHost(t), loopbackHost(t)
	f.addrs[bare.ID()] = peer.AddrInfo{ID: bare.ID(), Addrs: bare.Addrs()}
	f.providers = []peer.AddrInfo{{ID: bare.ID()}, {ID: full.ID(), Addrs: full.Addrs()}}
	if n := s.findMembers(ctx, r, cid.Undef); n != 2 {
		t.Fatalf("connected %d providers, want 2", n)
	}
	for _, h := range []host.Host{bare, full} {
		if self.Network().Connectedness(h.ID()) != network.Connected {
			t.Errorf("not connected to provider %s", h.ID())
		}
	}
	if f.lookups != 1 {
		t.Errorf("%d peer lookups, want 1 (the record without addresses)", f.lookups)
	}

	self2 := loopbackHost(t)
	ps2, err := pubsub.NewGossipSub(ctx, self2)
	if err != nil {
		t.Fatal(err)
	}
	s2 := &Service{host: self2, ps: ps2, finder: f, log: slog.New(slog.DiscardHandler)}
	f.providers = nil
	for range 12 {
		h := loopbackHost(t)
		f.providers = append(f.providers, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	}
	if n := s2.findMembers(ctx, r, cid.Undef); n != maxProviders {
		t.Fatalf("connected %d of 12 providers, want %d", n, maxProviders)
	}
	if n := len(self2.Network().Peers()); n != maxProviders {
		t.Fatalf("%d connections, want %d", n, maxProviders)
	}
}
