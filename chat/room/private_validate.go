package room

import (
	"context"
	"database/sql"
	"errors"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// privateValidator returns the topic validator of a private room (version
// 2): docs/PROTOCOL.md, "Validation of the topic". Commits are applied
// here, before the message is forwarded, so that what follows them on the
// topic is judged by the new epoch; everything else only reads the state.
func (s *Service) privateValidator(r *room) pubsub.ValidatorEx {
	return func(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if msg.Local || (from == s.self() && msg.GetFrom() == s.self()) {
			return pubsub.ValidationAccept
		}
		v := s.checkPrivate(r, msg.GetFrom(), msg.Data, true)
		if v.result == pubsub.ValidationAccept && v.app != nil && !s.rate.Allow(msg.GetFrom(), s.now()) {
			v.verdict = authorFault("author over its rate limit")
		}
		if v.authorOnly && from != msg.GetFrom() {
			v.verdict = ignore(v.reason + " (relayed)")
		}
		if v.result != pubsub.ValidationAccept {
			s.log.Debug("room message refused", "room", r.id, "author", msg.GetFrom(), "via", from, "reason", v.reason)
		} else if v.app != nil {
			// The room's reader stores it as decoded here.
			msg.ValidatorData = v.app
		}
		return v.result
	}
}

// privateVerdict is a verdict on a private room's envelope; app is set
// for an application message (rate-limited, logged).
type privateVerdict struct {
	verdict
	app *wirepb.AppMessage
}

// checkPrivate checks the data of a message on a private room's topic, by
// author. live is false for messages that come by sync (history may be
// old; it is never from the future). A commit that checks out is applied.
func (s *Service) checkPrivate(r *room, author peer.ID, data []byte, live bool) privateVerdict {
	env, err := group.ParseEnvelope(group.RoomID(r.id), data)
	if err != nil {
		return privateVerdict{verdict: reject("malformed: " + err.Error())}
	}
	r.gmu.Lock()
	joining := r.g == nil || r.g.cur() == nil
	r.gmu.Unlock()
	if joining {
		return privateVerdict{verdict: s.checkJoining(r, env)}
	}
	switch b := env.Body.(type) {
	case *wirepb.RoomEnvelope_App:
		return privateVerdict{verdict: s.checkApp(r, author, b.App, live), app: b.App}
	case *wirepb.RoomEnvelope_Commit:
		return privateVerdict{verdict: s.checkCommit(r, author, b.Commit)}
	case *wirepb.RoomEnvelope_KeyPackage:
		return privateVerdict{verdict: s.checkKeyPackage(r, author, b.KeyPackage)}
	case *wirepb.RoomEnvelope_JoinRequest:
		return privateVerdict{verdict: s.checkJoinRequest(r, author, b.JoinRequest)}
	case *wirepb.RoomEnvelope_Leave:
		return privateVerdict{verdict: s.checkLeave(r, author, b.Leave)}
	}
	return privateVerdict{verdict: reject("no body")}
}

// checkApp checks an application message: an epoch we hold keys for, an
// author in its roster and still in ours, the membership MAC, the clock
// bounds, not already logged.
func (s *Service) checkApp(r *room, author peer.ID, m *wirepb.AppMessage, live bool) verdict {
	ms, _ := wire.UnpackHLC(m.GetHlc())
	now := s.now().UnixMilli()
	if ms > now+MaxSkew.Milliseconds() {
		return reject("hlc ahead of our clock by more than the allowed skew")
	}
	if live && ms < now-MaxSkew.Milliseconds() {
		return reject("hlc behind our clock by more than the allowed skew")
	}
	r.gmu.Lock()
	g := r.g
	e := g.epochFor(m)
	curN := g.st.Commit.Epoch
	var err error
	if e != nil {
		err = e.VerifyMAC(author, m)
	}
	_, stillMember := g.st.Commit.Member(author)
	r.gmu.Unlock()
	switch {
	case e == nil && m.GetEpoch() > curN:
		// An unauthenticated claim of a newer epoch: fetch commits from
		// members (rate-limited), never from its sender.
		s.newerEpochClaimed(r)
		return ignore("epoch newer than ours")
	case e == nil:
		return ignore("epoch we hold no keys for")
	case errors.Is(err, group.ErrWrongEpoch):
		return ignore("another branch of the epoch")
	case errors.Is(err, group.ErrNotMember):
		return reject("author not in the epoch's roster")
	case err != nil:
		return reject("bad membership MAC")
	case !stillMember:
		// A removed member still holds the keys of its old epochs: its
		// messages are refused once we know it was removed, live or
		// synced (a lagging member may have accepted and serve them).
		return authorFault("author removed from the room")
	}
	if r.logIdx.mayHold(author, m.GetMsgId()) && s.logged(r.id, author, m.GetMsgId()) {
		return ignore("already in the log")
	}
	return accept
}

// checkCommit checks a commit and applies it. A commit by someone who is an
// admin in none of the commits we hold is refused whatever it claims; one
// whose parent we do not hold makes us fetch the chain from members.
func (s *Service) checkCommit(r *room, author peer.ID, sc *wirepb.SignedCommit) verdict {
	if !s.nextCommit(r, sc) && !s.commitRate.Allow(peer.ID("commit/"+author), s.now()) {
		// Commits cost every member a signature check and HPKE work. The
		// successor of our current commit is always looked at (a
		// non-admin's is refused and costs its forwarder score); rivals,
		// stale ones and those of unknown parents only within a budget.
		return ignore("author over its commit rate")
	}
	c, err := group.CommitFromProto(sc)
	if err != nil {
		return reject("invalid commit: " + err.Error())
	}
	s.mu.RLock()
	ctx := s.runCtx
	s.mu.RUnlock()
	if ctx == nil {
		return ignore("not running")
	}
	r.gmu.Lock()
	if r.g == nil || r.g.cur() == nil {
		r.gmu.Unlock()
		return ignore("not a member")
	}
	out, err := s.applyCommitLocked(ctx, r, c)
	r.gmu.Unlock()
	switch {
	case errors.Is(err, group.ErrUnknownParent):
		s.fetchCommits(r, "")
		return ignore("commit on a parent we do not hold")
	case errors.Is(err, group.ErrFork):
		s.log.Warn("room: fork deeper than one epoch", "room", r.id, "epoch", c.Epoch, "issuer", c.Issuer)
		s.reportFork(r, c)
		return ignore("fork")
	case err != nil:
		return reject("commit refused: " + err.Error())
	}
	switch out {
	case group.Applied, group.Healed, group.Removed:
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.afterApply(ctx, r, c, out) }()
		return accept
	case group.Lost:
		// Forwarded only if it is now our best rival (a child of it may
		// still make it win) and its issuer was not ousted by the commit
		// that beat it (a kicked admin's rivals can never win).
		r.gmu.Lock()
		best := r.g.st.Rival != nil && r.g.st.Rival.Hash() == c.Hash()
		m, ok := r.g.st.Commit.Member(c.Issuer)
		r.gmu.Unlock()
		if best && ok && m.Role.IsAdmin() {
			return accept
		}
		return ignore("losing commit")
	case group.Equivocation:
		return accept // every member must see it to report it
	case group.Stale:
		return ignore("stale commit")
	}
	return ignore("duplicate commit")
}

// checkKeyPackage keeps a member's fresh key package for our next commit.
func (s *Service) checkKeyPackage(r *room, author peer.ID, skp *wirepb.SignedKeyPackage) verdict {
	kp, err := group.KeyPackageFromProto(skp)
	if err != nil {
		return reject("invalid key package")
	}
	if kp.Owner != author {
		return reject("key package of another peer")
	}
	if kp.CreatedAt.After(s.now().Add(MaxSkew)) {
		return reject("key package from the future")
	}
	r.gmu.Lock()
	defer r.gmu.Unlock()
	m, ok := r.g.st.Commit.Member(author)
	if !ok {
		return reject("key package of a non-member")
	}
	if !kp.CreatedAt.After(m.KeyPackage.CreatedAt) {
		return ignore("key package not newer than the roster's")
	}
	if have := r.g.updates[author]; have == nil || kp.CreatedAt.After(have.CreatedAt) {
		r.g.updates[author] = kp
	}
	return accept
}

// checkJoinRequest checks a join request against our current commit and,
// when we issued its token, admits the joiner (VerifyJoinProof with the
// join secret only the issuer holds).
func (s *Service) checkJoinRequest(r *room, author peer.ID, req *wirepb.JoinRequest) verdict {
	tok, kp, err := group.ParseJoinRequest(author, req)
	if err != nil {
		return reject("invalid join request: " + err.Error())
	}
	r.gmu.Lock()
	cur := r.g.st.Commit
	r.gmu.Unlock()
	if tok.Room != group.RoomID(r.id) {
		return reject("join request for another room")
	}
	if err := tok.Check(cur, author, s.now()); err != nil {
		// Expired, or its issuer lost its role, or another invitee: the
		// joiner may not know yet. Not forwarded, not penalised.
		return ignore("join token: " + err.Error())
	}
	if _, member := cur.Member(author); member {
		if tok.Issuer == s.self() {
			// It missed its welcome (published before its subscription
			// reached the mesh): publish the commit that added it again.
			s.resendWelcome(r, author)
		}
		return ignore("already a member")
	}
	if tok.Issuer == s.self() {
		s.admit(r, author, tok, kp, req)
	}
	return accept
}

// checkLeave checks a member's request to leave; the node whose turn it is
// commits it.
func (s *Service) checkLeave(r *room, author peer.ID, p *wirepb.LeaveProposal) verdict {
	r.gmu.Lock()
	cur := r.g.st.Commit
	r.gmu.Unlock()
	l, err := group.ParseLeaveProposal(author, cur, p)
	if errors.Is(err, group.ErrNotMember) {
		return ignore("leave of a non-member")
	}
	if err != nil {
		return reject("invalid leave: " + err.Error())
	}
	if s.rotator(cur, author) {
		s.propose(r, func(q *proposal) { q.leave = append(q.leave, l) })
	}
	return accept
}

// checkJoining judges what reaches a room we asked to join: nothing is
// forwarded (we cannot judge it), and a commit that adds us is taken as
// our welcome once the chain it follows checks out.
func (s *Service) checkJoining(r *room, env *wirepb.RoomEnvelope) verdict {
	b, ok := env.Body.(*wirepb.RoomEnvelope_Commit)
	if !ok {
		return ignore("not a member yet")
	}
	r.gmu.Lock()
	j := r.join
	r.gmu.Unlock()
	if j == nil {
		return ignore("not a member yet")
	}
	// Only a commit by our token's issuer after the token's epoch can be
	// our welcome; anything else costs no work (not even a signature
	// check: anyone may publish on the topic).
	if b.Commit == nil || !s.welcomeCandidate(b.Commit, j) {
		return ignore("not a member yet")
	}
	c, err := group.CommitFromProto(b.Commit)
	if err != nil {
		return reject("invalid commit")
	}
	if c.Issuer == j.token.Issuer && c.Epoch > j.token.Epoch && c.Welcomes(s.self()) && j.welcoming.CompareAndSwap(false, true) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer j.welcoming.Store(false)
			s.takeWelcome(r, c)
		}()
	}
	return ignore("not a member yet")
}

// nextCommit reports, without verifying any signature, whether a signed
// commit claims to be the successor of our current commit.
func (s *Service) nextCommit(r *room, sc *wirepb.SignedCommit) bool {
	var body wirepb.CommitBody
	if proto.Unmarshal(sc.GetBody(), &body) != nil {
		return false
	}
	return s.successorBody(r, &body)
}

// successorBody is nextCommit for a decoded commit body.
func (s *Service) successorBody(r *room, body *wirepb.CommitBody) bool {
	r.gmu.Lock()
	defer r.gmu.Unlock()
	if r.g == nil || r.g.st.Commit == nil {
		return false
	}
	h := r.g.st.Commit.Hash()
	return body.GetEpoch() == r.g.st.Commit.Epoch+1 && string(body.GetParent()) == string(h[:])
}

// welcomeCandidate reports, without verifying any signature, whether a
// signed commit names our token's issuer as its issuer.
func (s *Service) welcomeCandidate(sc *wirepb.SignedCommit, j *pendingJoin) bool {
	var body wirepb.CommitBody
	if proto.Unmarshal(sc.GetBody(), &body) != nil {
		return false
	}
	return string(body.GetIssuer()) == string(j.token.Issuer) && body.GetEpoch() > j.token.Epoch
}

// newerEpochClaimed fetches commits from members, at most once per
// newerEpochFetchEvery per room.
func (s *Service) newerEpochClaimed(r *room) {
	r.gmu.Lock()
	due := s.now().Sub(r.g.lastFetch) >= newerEpochFetchEvery
	if due {
		r.g.lastFetch = s.now()
	}
	r.gmu.Unlock()
	if due {
		s.fetchCommits(r, "")
	}
}

// rotator reports whether this node commits the leave of leaver (or a
// scheduled re-key, with leaver ""): the owner if it stays, else the
// remaining admin with the smallest peer ID.
func (s *Service) rotator(cur *group.Commit, leaver peer.ID) bool {
	var admins []peer.ID
	for _, m := range cur.Members {
		if m.ID == leaver {
			continue
		}
		if m.Role == group.RoleOwner {
			return m.ID == s.self()
		}
		if m.Role == group.RoleAdmin {
			admins = append(admins, m.ID)
		}
	}
	if len(admins) == 0 {
		return false
	}
	least := admins[0]
	for _, a := range admins[1:] {
		if a < least {
			least = a
		}
	}
	return least == s.self()
}

// prevEpochExpired erases the previous epoch's keys of every room once
// prevEpochKept has passed since the current one applied.
func (s *Service) prevEpochExpired(ctx context.Context) {
	for _, r := range s.roomList() {
		if r.public {
			continue
		}
		r.gmu.Lock()
		if g := r.g; g != nil && g.st.PrevEpoch != nil && s.now().Sub(g.appliedAt) > prevEpochKept {
			h := g.st.PrevEpoch.Commit().Hash()
			g.st.PrevEpoch.Erase()
			g.st.PrevEpoch = nil
			err := s.db.Tx(ctx, func(tx *sql.Tx) error {
				if _, err := s.db.Exec(ctx, tx, "UPDATE room_groups SET prev_epoch = NULL WHERE room = ?", r.id[:]); err != nil {
					return err
				}
				_, err := s.db.Exec(ctx, tx, "DELETE FROM room_chain_states WHERE room = ? AND epoch_hash = ?", r.id[:], h[:])
				return err
			})
			if err != nil {
				s.reloadLocked(r)
			}
		}
		r.gmu.Unlock()
	}
}

// keyPackageAge is how old our key package in a room may get before we
// publish a fresh one for the next commit (post-compromise security: a
// stolen encryption key stops opening commits once it is replaced).
func (s *Service) keyPackageAge() time.Duration { return s.cfg.RekeyEvery / 2 }

// resendWelcome publishes again the commit that added p (at most once per
// newerEpochFetchEvery per member).
func (s *Service) resendWelcome(r *room, p peer.ID) {
	if !s.welcomeRate.Allow(p, s.now()) {
		return
	}
	s.mu.RLock()
	ctx := s.runCtx
	s.mu.RUnlock()
	if ctx == nil {
		return
	}
	r.gmu.Lock()
	cur := r.g.st.Commit
	r.gmu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		since := s.memberSince(ctx, r.id, cur, p)
		for _, c := range s.chain(ctx, r.id, cur, since-1, 1024) {
			if c.Epoch == since && c.Welcomes(p) {
				if err := s.publishEnvelope(ctx, r, &wirepb.RoomEnvelope{Body: &wirepb.RoomEnvelope_Commit{Commit: c.Proto()}}); err != nil {
					s.log.Debug("room: publish a welcome again", "room", r.id, "member", p, "err", err)
				}
				return
			}
		}
	}()
}
