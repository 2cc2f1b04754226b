package room

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

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
// only later. So an owner that commits also hands its commit to the 1:1
// outbox of each member (or member it removed) that is a contact of its
// and that it holds no direct connection to: the outbox delivers directly
// when the member is reachable and deposits at the member's mailboxes when
// it is not. The receiver applies only an owner's next commits so
// delivered, whoever hands them over (applyDelivered).

// deliverCommit queues c, issued by us (an owner) after before, for the
// members of either roster that are contacts we are not connected to.
func (s *Service) deliverCommit(ctx context.Context, r *room, before, c *group.Commit) {
	if m, ok := before.Member(s.self()); !ok || m.Role != group.RoleOwner {
		// Members apply a delivered commit only if an owner issued it
		// (applyDelivered): an admin's copy would be a hint at most,
		// which sync gives them anyway.
		return
	}
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

// maxHeld bounds the delivered commits a room keeps while their parent is
// missing; maxForkReports the commits a room remembers having reported a
// fork for.
const (
	maxHeld        = 8
	maxForkReports = 64
)

// applyDelivered takes a commit that arrived inside a 1:1 session from
// `from`. Only its signature, its chain and the roles in it give it
// authority, never who handed it over, and a delivered commit must not be
// more powerful than one on the topic, where every member online judges
// it at once. So it is applied only if its issuer is an owner in our
// current epoch and it comes after our current commit: its successor is
// applied at once; one whose parent we do not hold yet is kept (at most
// maxHeld) and applied when its parent is, by whatever path the parent
// comes (retryHeld): a mailbox may hand deposits over out of order.
//
// Anything else (an admin's commit, a rival or older commit, whoever
// delivers it) only tells us that the room moved on: we fetch the commits
// from members when one is reachable (rate-limited). So a removed admin,
// with or without the help of a stale member identity, cannot through our
// mailbox and while the room is away remove us or put us on a branch of
// its own. (A second review broke a rule that also took commits a
// member vouched for: on an offline member's stale roster, a member
// kicked since could vouch.)
func (s *Service) applyDelivered(ctx context.Context, from peer.ID, d *wirepb.RoomCommitDelivery) error {
	var id ID
	copy(id[:], d.GetRoomId())
	s.mu.RLock()
	r := s.rooms[id]
	s.mu.RUnlock()
	if r == nil || r.public {
		return fmt.Errorf("room commit from %s: %w", from, ErrNotMember)
	}
	// The budget of the topic (checkCommit), per deliverer and per claimed
	// issuer: anything but our successor costs a signature check and HPKE
	// work.
	var body wirepb.CommitBody
	if err := proto.Unmarshal(d.GetCommit().GetBody(), &body); err != nil {
		return fmt.Errorf("room commit from %s: %w", from, err)
	}
	if !s.successorBody(r, &body) {
		if !s.commitRate.Allow(peer.ID("delivered/"+from), s.now()) || !s.commitRate.Allow(peer.ID("issuer/"+string(body.GetIssuer())), s.now()) {
			return fmt.Errorf("room %s: commits delivered by %s over budget", r.name, from)
		}
	}
	c, err := group.CommitFromProto(d.GetCommit())
	if err != nil {
		return fmt.Errorf("room commit from %s: %w", from, err)
	}
	r.gmu.Lock()
	if r.g == nil || r.g.cur() == nil {
		// Not a member yet: it may be the commit that adds us. Its chain
		// is confirmed with members other than its issuer (takeWelcome).
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
	cur := r.g.st.Commit
	if m, _ := cur.Member(c.Issuer); m.Role != group.RoleOwner || c.Epoch <= cur.Epoch {
		r.gmu.Unlock()
		if c.Epoch > cur.Epoch {
			s.newerEpochClaimed(r)
		}
		return fmt.Errorf("room %s: commit of epoch %d by %s (not an owner's next), delivered by %s: taken as a hint", r.name, c.Epoch, c.Issuer, from)
	}
	out, err := s.applyCommitLocked(ctx, r, c)
	if errors.Is(err, group.ErrUnknownParent) {
		g := r.g
		if !slices.ContainsFunc(g.held, func(h *group.Commit) bool { return h.Hash() == c.Hash() }) {
			if len(g.held) >= maxHeld {
				g.held = g.held[1:]
			}
			g.held = append(g.held, c)
		}
		r.gmu.Unlock()
		s.newerEpochClaimed(r)
		return fmt.Errorf("room %s: commit of epoch %d on a parent we do not hold: held, fetching", r.name, c.Epoch)
	}
	r.gmu.Unlock()
	// No ErrFork here: nextCommit let through only a commit of a later
	// epoch, which State.Apply applies, holds or refuses, never reports.
	if err != nil {
		return err
	}
	if out == group.Applied || out == group.Healed || out == group.Removed {
		s.afterApply(ctx, r, c, out)
	}
	return nil
}

// retryHeld applies the held commit that follows our current one, if
// any, once its issuer is still an owner there (afterApply calls it after
// every commit applied, whichever path brought it; each applied held
// commit calls it again, at most maxHeld times).
func (s *Service) retryHeld(ctx context.Context, r *room) {
	r.gmu.Lock()
	g := r.g
	if g == nil || g.cur() == nil || len(g.held) == 0 {
		r.gmu.Unlock()
		return
	}
	cur := g.st.Commit
	g.held = slices.DeleteFunc(g.held, func(h *group.Commit) bool { return h.Epoch <= cur.Epoch })
	i := slices.IndexFunc(g.held, func(h *group.Commit) bool { return h.Epoch == cur.Epoch+1 && h.Parent == cur.Hash() })
	if i < 0 {
		r.gmu.Unlock()
		return
	}
	c := g.held[i]
	g.held = slices.Delete(g.held, i, i+1)
	if m, _ := cur.Member(c.Issuer); m.Role != group.RoleOwner {
		r.gmu.Unlock()
		return
	}
	out, err := s.applyCommitLocked(ctx, r, c)
	r.gmu.Unlock()
	if err != nil {
		s.log.Info("room: held commit refused", "room", r.id, "epoch", c.Epoch, "err", err)
		return
	}
	if out == group.Applied || out == group.Healed || out == group.Removed {
		s.afterApply(ctx, r, c, out)
	}
}
