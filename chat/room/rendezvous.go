package room

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// providerFinder is what rendezvous needs of the DHT to find members.
type providerFinder interface {
	FindProvidersAsync(ctx context.Context, c cid.Cid, count int) <-chan peer.AddrInfo
	FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error)
}

// maxProviders bounds the members rendezvous connects to in a room: enough
// for gossipsub's mesh (degree 6 to 12), which connects the rest.
const maxProviders = 8

// minTopicPeers is how many topic peers a member wants before it stops
// looking for others: with three, gossipsub meshes them all and the
// members' meshes join up. A user node's connection manager trims the
// topic peers outside the mesh (all but a few): looking for more while
// the mesh has enough would dial members (and the DHT peers on the way)
// only to see them trimmed, and look again every FindInterval.
const minTopicPeers = 3

// reprovideEvery is how often a member re-announces itself under the
// room's rendezvous key; provider records live 48 h on the DHT, and the
// private-room key changes with the UTC date anyway.
const reprovideEvery = 6 * time.Hour

// provideSettle is how long a member holds a new rendezvous key (a new
// epoch) before it provides under it: a room that commits many changes
// in a row (joins through a link) is provided once, under the last key.
const provideSettle = time.Minute

// rendezvousLoop advertises this node under the room's rendezvous CID and
// connects to the other providers, so that gossipsub meshes the members.
// It looks often while it has no topic peer, and every FindInterval after.
func (s *Service) rendezvousLoop(ctx context.Context, r *room) {
	if s.dht == nil || s.finder == nil {
		return
	}
	var (
		provided   cid.Cid
		providedAt time.Time
		seen       cid.Cid // the newest key, and since when we hold it
		seenAt     time.Time
		settle     time.Duration // how long to hold seen before providing it
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
		if !c.Defined() {
			// A join that waits; joins through one link start together,
			// their lookups should not.
			timer.Reset(s.cfg.FindInterval/2 + rand.N(s.cfg.FindInterval/2+1))
			continue
		}
		if !c.Equals(seen) {
			seen, seenAt = c, time.Now()
			settle = provideSettle + rand.N(provideSettle)
		}
		// A new member without a topic peer provides at once; any other
		// provides under a new epoch's key once it has held it for
		// provideSettle, plus a random part of it (settle): every commit
		// changes the key, a Provide is a DHT lookup that dials the
		// closest peers, and every member provides (a room formed by
		// joins would otherwise see each joiner provide under a key the
		// next join replaces, and all members provide in the same
		// second). Members already connected need no record; one that
		// comes back finds the others under the key it knows, or by
		// peer ID.
		alone := len(s.ps.ListPeers(r.Topic())) == 0
		settled := (provided == cid.Undef && alone) || time.Since(seenAt) >= settle
		if (!c.Equals(provided) && settled) || time.Since(providedAt) > reprovideEvery {
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
		if found == 0 && !r.public && len(s.ps.ListPeers(r.Topic())) == 0 {
			// A member that missed a commit looks under an old epoch's
			// key: look the members up by peer ID instead.
			found = s.dialMembers(ctx, r)
		}
		if len(s.ps.ListPeers(r.Topic())) == 0 && found == 0 {
			wait = min(wait*2, 5*time.Second)
		} else {
			wait = s.cfg.FindInterval
		}
		if provided == cid.Undef && len(s.ps.ListPeers(r.Topic())) == 0 {
			wait = min(wait, 2*time.Second)
		} else if !c.Equals(provided) {
			wait = min(wait, max(time.Until(seenAt.Add(settle)), 0)+time.Second)
		}
		timer.Reset(wait/2 + rand.N(wait/2+1))
	}
}

// rendezvousKey returns the room's rendezvous CID for today.
func (s *Service) rendezvousKey(r *room) cid.Cid {
	if r.public {
		return rendezvousCID(r.id)
	}
	r.gmu.Lock()
	defer r.gmu.Unlock()
	if r.g == nil || r.g.cur() == nil {
		return cid.Undef // a join that waits: we know no member's record
	}
	return rendezvousCID2(r.g.cur().RendezvousKey(), s.now())
}

// findMembers connects, while the room has fewer than minTopicPeers
// topic peers, to providers of c we are not connected to, until it has
// maxProviders, and returns how many it connected. A provider record
// without addresses (stock DHT servers drop non-public ones) is completed
// by looking the peer up.
func (s *Service) findMembers(ctx context.Context, r *room, c cid.Cid) int {
	have := len(s.ps.ListPeers(r.Topic()))
	want := maxProviders - have
	if have >= minTopicPeers || s.finder == nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n := 0
	for info := range s.finder.FindProvidersAsync(ctx, c, 4*maxProviders) {
		if info.ID == s.self() || s.host.Network().Connectedness(info.ID) == network.Connected {
			continue
		}
		if len(info.Addrs) > 0 {
			s.host.Peerstore().AddAddrs(info.ID, info.Addrs, time.Hour)
		} else if len(s.host.Peerstore().Addrs(info.ID)) == 0 {
			fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
			found, err := s.finder.FindPeer(fctx, info.ID)
			fcancel()
			if err != nil || len(found.Addrs) == 0 {
				s.log.Debug("rendezvous: provider without addresses not found", "room", r.id, "peer", info.ID, "err", err)
				continue
			}
			info.Addrs = found.Addrs
			s.host.Peerstore().AddAddrs(info.ID, info.Addrs, time.Hour)
		}
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.host.Connect(cctx, peer.AddrInfo{ID: info.ID, Addrs: info.Addrs})
		ccancel()
		if err == nil {
			if n++; n >= want {
				break
			}
		}
	}
	return n
}

// dialMembers connects to a few members of a private room's roster, found
// by peer ID (the DHT's peer routing, or addresses we know), and returns
// how many it connected.
func (s *Service) dialMembers(ctx context.Context, r *room) int {
	r.gmu.Lock()
	var ids []peer.ID
	if r.g != nil && r.g.st.Commit != nil {
		for _, m := range r.g.st.Commit.Members {
			ids = append(ids, m.ID)
		}
	}
	r.gmu.Unlock()
	return s.dialPeers(ctx, ids, maxProviders)
}

// dialPeers connects to up to n of ids we are not connected to, found by
// peer ID, and returns how many it connected.
func (s *Service) dialPeers(ctx context.Context, ids []peer.ID, n int) int {
	done := 0
	for _, id := range ids {
		if done >= n {
			break
		}
		if id == s.self() || s.host.Network().Connectedness(id) == network.Connected {
			continue
		}
		info := peer.AddrInfo{ID: id}
		if len(s.host.Peerstore().Addrs(id)) == 0 && s.finder != nil {
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			found, err := s.finder.FindPeer(fctx, id)
			cancel()
			if err != nil {
				continue
			}
			info = found
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if s.host.Connect(cctx, info) == nil {
			done++
		}
		cancel()
	}
	return done
}
