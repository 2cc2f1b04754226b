package room

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// reprovideEvery is how often a member re-announces itself under the
// room's rendezvous key; provider records live 48 h on the DHT, and the
// private-room key changes with the UTC date anyway.
const reprovideEvery = 6 * time.Hour

// rendezvousLoop advertises this node under the room's rendezvous CID and
// connects to the other providers, so that gossipsub meshes the members.
// It looks often while it has no topic peer, and every FindInterval after.
func (s *Service) rendezvousLoop(ctx context.Context, r *room) {
	if s.dht == nil {
		return
	}
	var (
		provided   cid.Cid
		providedAt time.Time
		wait       = 200 * time.Millisecond
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		c := s.rendezvousKey(r)
		if !c.Equals(provided) || time.Since(providedAt) > reprovideEvery {
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := s.dht.Provide(pctx, c, true)
			cancel()
			if err == nil {
				provided, providedAt = c, time.Now()
			} else if ctx.Err() == nil {
				s.log.Debug("rendezvous provide", "room", r.id, "err", err)
			}
		}
		found := s.findMembers(ctx, r, c)
		if len(s.ps.ListPeers(r.id.Topic())) == 0 && found == 0 {
			wait = min(wait*2, 5*time.Second)
		} else {
			wait = s.cfg.FindInterval
		}
		if provided == cid.Undef {
			wait = min(wait, 2*time.Second)
		}
		timer.Reset(wait/2 + rand.N(wait/2+1))
	}
}

// rendezvousKey returns the room's rendezvous CID for today.
func (s *Service) rendezvousKey(r *room) cid.Cid {
	if r.public {
		return rendezvousCID(r.id, nil, s.now())
	}
	s.mu.RLock()
	e := r.current()
	s.mu.RUnlock()
	return rendezvousCID(r.id, e.secret, s.now())
}

// findMembers connects to the providers of c that we are not connected to,
// and returns how many it connected.
func (s *Service) findMembers(ctx context.Context, r *room, c cid.Cid) int {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n := 0
	for info := range s.dht.FindProvidersAsync(ctx, c, 50) {
		if info.ID == s.self() || s.host.Network().Connectedness(info.ID) == network.Connected {
			continue
		}
		if len(info.Addrs) > 0 {
			s.host.Peerstore().AddAddrs(info.ID, info.Addrs, time.Hour)
		}
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.host.Connect(cctx, peer.AddrInfo{ID: info.ID, Addrs: info.Addrs})
		ccancel()
		if err == nil {
			n++
		}
	}
	return n
}
