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
// only later. So the committing admin also hands its commit to the 1:1
// outbox of each member (or member it removed) that is a contact of its
// and that it holds no direct connection to: the outbox delivers directly
// when the member is reachable and deposits at the member's mailboxes when
// it is not. The receiver checks the commit exactly as a fetched one; the
// 1:1 sender lends it no authority.

// deliverCommit queues c, issued by us (an owner) after before, for the
// members of either roster that are contacts we are not connected to.
func (s *Service) deliverCommit(ctx context.Context, r *room, before, c *group.Commit) {
	if m, ok := before.Member(s.self()); !ok || m.Role != group.RoleOwner {
		// Members apply a delivered commit only if an owner issued it or
		// another member vouches for it (applyDelivered): an admin's own
		// copy would be a hint at most, which sync gives them anyway.
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
// it at once. So it is applied only when
//
//   - a member other than its issuer delivered it, a member of both our
//     current roster and the commit's (it vouches that this commit is on
//     the chain it follows, as a member relaying it on the topic does), or
//   - it is the successor of our current commit and its issuer is an
//     owner in our current epoch (nothing but another owner can beat it).
//
// Anything else (an admin's own commit, a commit from a stranger) only
// tells us that the room moved on: we fetch the commits from members when
// one is reachable (rate-limited), so that a removed admin cannot, through
// our mailbox and while the room is away, put us on a branch of its own or
// remove us. A commit whose parent we do not hold yet is kept (at most
// maxHeld) and tried again after the next commit we apply: a mailbox may
// hand over deposits out of order.
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
	if !s.nextCommit(r, d.GetCommit()) {
		var body wirepb.CommitBody
		proto.Unmarshal(d.GetCommit().GetBody(), &body)
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
	_, deliverer := cur.Member(from)
	_, stays := c.Member(from)
	vouched := from != c.Issuer && deliverer && stays
	issuer, _ := cur.Member(c.Issuer)
	owners := c.Epoch == cur.Epoch+1 && c.Parent == cur.Hash() && issuer.Role == group.RoleOwner
	if !vouched && !owners {
		r.gmu.Unlock()
		s.newerEpochClaimed(r)
		return fmt.Errorf("room %s: commit of epoch %d by %s, delivered by %s, taken as a hint: fetching from members", r.name, c.Epoch, c.Issuer, from)
	}
	err = s.applyHeldLocked(ctx, r, c)
	r.gmu.Unlock()
	return err
}

// applyHeldLocked applies c and then, as long as one applies, the held
// commits; a commit whose parent is missing is held. r.gmu is held; the
// lock is released around afterApply, and given back.
func (s *Service) applyHeldLocked(ctx context.Context, r *room, c *group.Commit) error {
	for {
		out, err := s.applyCommitLocked(ctx, r, c)
		switch {
		case errors.Is(err, group.ErrUnknownParent):
			if !slices.ContainsFunc(r.g.held, func(h *group.Commit) bool { return h.Hash() == c.Hash() }) {
				if len(r.g.held) >= maxHeld {
					r.g.held = r.g.held[1:]
				}
				r.g.held = append(r.g.held, c)
			}
			r.gmu.Unlock()
			s.newerEpochClaimed(r)
			r.gmu.Lock()
			return fmt.Errorf("room %s: commit of epoch %d on a parent we do not hold: held, fetching", r.name, c.Epoch)
		case errors.Is(err, group.ErrFork):
			r.gmu.Unlock()
			s.reportFork(r, c)
			r.gmu.Lock()
			return err
		case err != nil:
			return err
		}
		if out != group.Applied && out != group.Healed && out != group.Removed {
			return nil
		}
		r.gmu.Unlock()
		s.afterApply(ctx, r, c, out)
		r.gmu.Lock()
		if out == group.Removed || r.g == nil || r.g.cur() == nil {
			return nil
		}
		// The held commit that follows the one just applied, if any.
		next := -1
		for i, h := range r.g.held {
			if h.Epoch == r.g.st.Commit.Epoch+1 && h.Parent == r.g.st.Commit.Hash() {
				next = i
				break
			}
		}
		if next < 0 {
			r.g.held = slices.DeleteFunc(r.g.held, func(h *group.Commit) bool { return h.Epoch <= r.g.st.Commit.Epoch })
			return nil
		}
		c = r.g.held[next]
		r.g.held = slices.Delete(r.g.held, next, next+1)
	}
}
