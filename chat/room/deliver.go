package room

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// Commits through mailboxes (PROTOCOL.md "Commits through mailboxes").
//
// The topic and /parley/roomsync/2 reach a member only while some other
// member is online with it. A member that is offline when a commit is
// issued, and comes back while every member is offline, would learn of it
// only later. So the committing admin also hands its commit to the 1:1
// outbox of each member (or member it removed) that is a contact of its
// and that it holds no direct connection to: the outbox delivers directly
// when the member is reachable and deposits at the member's mailboxes when
// it is not. The receiver checks the commit exactly as a fetched one; the
// 1:1 sender lends it no authority.

// deliverCommit queues c, issued by us after before, for the members of
// either roster that are contacts we are not connected to.
func (s *Service) deliverCommit(ctx context.Context, r *room, before, c *group.Commit) {
	var to []peer.ID
	seen := map[peer.ID]bool{s.self(): true}
	consider := func(id peer.ID) {
		if seen[id] {
			return
		}
		seen[id] = true
		// Connected: the topic (or sync) reaches it. A limited (relayed)
		// connection does not carry gossipsub; the 1:1 path does.
		if s.host.Network().Connectedness(id) == network.Connected || !s.chat.IsContact(id) {
			return
		}
		to = append(to, id)
	}
	for _, m := range c.Members {
		consider(m.ID)
	}
	if before != nil {
		for _, m := range before.Members {
			consider(m.ID) // removed by c: told so even while offline
		}
	}
	if len(to) == 0 {
		return
	}
	p := &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_RoomCommit{RoomCommit: &wirepb.RoomCommitDelivery{RoomId: r.id[:], Commit: c.Proto()}}}
	if size := proto.Size(p); size > wire.MaxPayloadSize {
		// A commit of a very large room: members fetch it by sync.
		s.log.Info("room: commit too large for 1:1 delivery", "room", r.id, "epoch", c.Epoch, "bytes", size)
		return
	}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, id := range to {
			if err := s.chat.SendPayload(ctx, tx, id, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Info("room: queue commit for 1:1 delivery", "room", r.id, "epoch", c.Epoch, "err", err)
		return
	}
	for _, id := range to {
		s.chat.Kick(id)
	}
	s.log.Debug("room: commit queued for 1:1 delivery", "room", r.id, "epoch", c.Epoch, "members", len(to))
}

// applyDelivered applies a commit that arrived inside a 1:1 session from
// `from`, with the checks of a commit fetched by sync: only its signature,
// its chain and the roles in it count, never who handed it over.
func (s *Service) applyDelivered(ctx context.Context, from peer.ID, d *wirepb.RoomCommitDelivery) error {
	var id ID
	copy(id[:], d.GetRoomId())
	s.mu.RLock()
	r := s.rooms[id]
	s.mu.RUnlock()
	if r == nil || r.public {
		return fmt.Errorf("room commit from %s: %w", from, ErrNotMember)
	}
	if !s.nextCommit(r, d.GetCommit()) && !s.commitRate.Allow(peer.ID("delivered/"+from), s.now()) {
		// The budget of the topic (checkCommit), per deliverer: anything
		// but our successor costs a signature check and HPKE work.
		return fmt.Errorf("room %s: commits delivered by %s over budget", r.name, from)
	}
	c, err := group.CommitFromProto(d.GetCommit())
	if err != nil {
		return fmt.Errorf("room commit from %s: %w", from, err)
	}
	r.gmu.Lock()
	if r.g == nil || r.g.cur() == nil {
		// Not a member yet: it may be the commit that adds us.
		j := r.join
		r.gmu.Unlock()
		if j != nil && c.Issuer == j.token.Issuer && c.Epoch > j.token.Epoch && c.Welcomes(s.self()) && j.welcoming.CompareAndSwap(false, true) {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer j.welcoming.Store(false)
				s.takeWelcome(r, c)
			}()
			return nil
		}
		return fmt.Errorf("room %x commit from %s: %w", id[:4], from, ErrNotMember)
	}
	out, err := s.applyCommitLocked(ctx, r, c)
	r.gmu.Unlock()
	switch {
	case errors.Is(err, group.ErrUnknownParent):
		// A commit of another admin's came first and went past us: fetch
		// the chain from a member when one is reachable.
		s.fetchCommits(r, "")
		return fmt.Errorf("room %s: commit of epoch %d on a parent we do not hold (fetching)", r.name, c.Epoch)
	case errors.Is(err, group.ErrFork):
		s.reportFork(r, c)
		return err
	case err != nil:
		return err
	}
	switch out {
	case group.Applied, group.Healed, group.Removed:
		s.afterApply(ctx, r, c, out)
	}
	return nil
}
