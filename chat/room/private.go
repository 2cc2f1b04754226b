package room

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// Private rooms speak version 2 (docs/PROTOCOL.md, "Rooms version 2"):
// chat/room/group is the state machine; this file runs it on the room's
// topic and stores it. Everything about a private room's group state is
// guarded by room.gmu, which is held across the transaction that persists
// a change (an applied commit, a sealed or opened message), so that what
// is in memory never runs ahead of what is on disk for long: a failed
// transaction reloads the state from disk.

// prevEpochKept is how long the previous epoch's keys stay usable for late
// messages once the next epoch applies.
const prevEpochKept = 10 * time.Minute

// newerEpochFetchEvery bounds the commit fetches a claim of a newer epoch
// (an unauthenticated app message) may trigger, per room.
const newerEpochFetchEvery = 30 * time.Second

// group is the version-2 state of a private room. Its fields are guarded
// by room.gmu.
type groupState struct {
	st        *group.State
	privs     []*group.KeyPackagePrivate
	appliedAt time.Time // local time the current commit was applied
	lastFetch time.Time // last commit fetch on a newer-epoch claim
	// updates are fresh key packages members published, which the next
	// commit this node issues carries (admins only).
	updates map[peer.ID]*group.KeyPackage
	// pendingKP is the key package we published and no commit carries yet.
	pendingKP *group.KeyPackage
	// held are owners' commits delivered 1:1 whose parent we did not hold
	// yet (deliver.go), tried again after each commit we apply; at most
	// maxHeld, the oldest dropped first.
	held []*group.Commit
	// forks are the commits a fork was reported for (reportFork): one
	// alert per commit, however often it is replayed.
	forks map[group.Hash]bool
}

// cur returns the current epoch, or nil (removed, or not loaded).
func (g *groupState) cur() *group.Epoch {
	if g == nil || g.st == nil {
		return nil
	}
	return g.st.Epoch
}

// epochFor returns the epoch of ours numbered like m's: the current or the
// previous one. Whether m is of our branch of it (epoch_hash) and by a
// member is VerifyMAC's to say.
func (g *groupState) epochFor(m *wirepb.AppMessage) *group.Epoch {
	for _, e := range []*group.Epoch{g.st.Epoch, g.st.PrevEpoch} {
		if e != nil && e.Number() == m.GetEpoch() {
			return e
		}
	}
	return nil
}

// roleOf returns p's role in the current commit (0 if not a member).
func (g *groupState) roleOf(p peer.ID) group.Role {
	if g == nil || g.st == nil || g.st.Commit == nil {
		return 0
	}
	m, ok := g.st.Commit.Member(p)
	if !ok {
		return 0
	}
	return m.Role
}

// identity returns the node's identity key.
func (s *Service) identity() (crypto.PrivKey, error) {
	key := s.host.Peerstore().PrivKey(s.self())
	if key == nil {
		return nil, errors.New("room: no identity key")
	}
	return key, nil
}

// loadGroup reads a private room's group state from disk.
func (s *Service) loadGroup(ctx context.Context, r *room) error {
	var (
		cur, prev, rival []byte
		curE, prevE      []byte
		applied          int64
	)
	err := s.db.QueryRow(ctx, nil, "SELECT cur, prev, rival, cur_epoch, prev_epoch, applied_at FROM room_groups WHERE room = ?", r.id[:]).
		Scan(&cur, &prev, &rival, &curE, &prevE, &applied)
	if err != nil {
		return fmt.Errorf("room %s: load group state: %w", r.name, err)
	}
	g := &groupState{st: new(group.State), appliedAt: time.UnixMilli(applied), updates: map[peer.ID]*group.KeyPackage{}}
	commit := func(hash []byte) (*group.Commit, error) {
		if len(hash) == 0 {
			return nil, nil
		}
		var data []byte
		if err := s.db.QueryRow(ctx, nil, "SELECT data FROM room_commits WHERE room = ? AND hash = ?", r.id[:], hash).Scan(&data); err != nil {
			return nil, fmt.Errorf("commit %x: %w", hash[:8], err)
		}
		return group.ParseCommit(data)
	}
	epoch := func(b []byte) (*group.Epoch, error) {
		if len(b) == 0 {
			return nil, nil
		}
		return group.UnmarshalEpoch(b)
	}
	if g.st.Commit, err = commit(cur); err == nil {
		if g.st.Prev, err = commit(prev); err == nil {
			if g.st.Rival, err = commit(rival); err == nil {
				if g.st.Epoch, err = epoch(curE); err == nil {
					g.st.PrevEpoch, err = epoch(prevE)
				}
				if err == nil {
					err = s.restoreChains(ctx, r.id, g.st.Epoch)
				}
				if err == nil {
					err = s.restoreChains(ctx, r.id, g.st.PrevEpoch)
				}
			}
		}
	}
	if err != nil {
		return fmt.Errorf("room %s: load group state: %w", r.name, err)
	}
	if g.st.Commit == nil {
		return fmt.Errorf("room %s: load group state: no current commit", r.name)
	}
	if g.privs, err = s.loadKeys(ctx, r.id); err != nil {
		return err
	}
	r.g = g
	return nil
}

// loadKeys reads the private halves of our key packages of a room.
func (s *Service) loadKeys(ctx context.Context, id ID) ([]*group.KeyPackagePrivate, error) {
	rows, err := s.db.Query(ctx, nil, "SELECT priv FROM room_keys WHERE room = ? ORDER BY created", id[:])
	if err != nil {
		return nil, fmt.Errorf("room: load keys: %w", err)
	}
	defer rows.Close()
	var out []*group.KeyPackagePrivate
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		p, err := group.UnmarshalKeyPackagePrivate(b)
		if err != nil {
			return nil, fmt.Errorf("room: stored key: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// saveGroupLocked writes a private room's group state in tx. r.gmu is held.
func (s *Service) saveGroupLocked(ctx context.Context, tx *sql.Tx, r *room) error {
	g := r.g
	hash := func(c *group.Commit) []byte {
		if c == nil {
			return nil
		}
		h := c.Hash()
		return h[:]
	}
	epoch := func(e *group.Epoch) ([]byte, error) {
		if e == nil {
			return nil, nil
		}
		return e.MarshalBinary()
	}
	for _, c := range []*group.Commit{g.st.Commit, g.st.Prev, g.st.Rival} {
		if err := s.storeCommit(ctx, tx, r.id, c); err != nil {
			return err
		}
	}
	curE, err := epoch(g.st.Epoch)
	if err != nil {
		return err
	}
	prevE, err := epoch(g.st.PrevEpoch)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, tx, `INSERT INTO room_groups(room, cur, prev, rival, cur_epoch, prev_epoch, applied_at) VALUES(?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(room) DO UPDATE SET cur = excluded.cur, prev = excluded.prev, rival = excluded.rival,
		cur_epoch = excluded.cur_epoch, prev_epoch = excluded.prev_epoch, applied_at = excluded.applied_at`,
		r.id[:], hash(g.st.Commit), hash(g.st.Prev), hash(g.st.Rival), curE, prevE, g.appliedAt.UnixMilli())
	if err != nil {
		return err
	}
	// The full epochs hold every chain now.
	if _, err := s.db.Exec(ctx, tx, "DELETE FROM room_chain_states WHERE room = ?", r.id[:]); err != nil {
		return err
	}
	if g.st.Commit != nil {
		if _, err = s.db.Exec(ctx, tx, "UPDATE rooms SET epoch = ? WHERE id = ?", g.st.Commit.Epoch, r.id[:]); err != nil {
			return err
		}
		// Of the epochs from the previous one on, only the commits we
		// hold (current, previous, best rival) are kept: a rival that lost
		// its place is dropped, so a flood of them stores nothing.
		from := g.st.Commit.Epoch
		if g.st.Prev != nil {
			from = g.st.Prev.Epoch
		}
		_, err = s.db.Exec(ctx, tx, "DELETE FROM room_commits WHERE room = ? AND epoch >= ? AND hash NOT IN (?, ?, ?)",
			r.id[:], from, hash(g.st.Commit), nonNil(hash(g.st.Prev)), nonNil(hash(g.st.Rival)))
	}
	return err
}

// nonNil returns b, or an empty (never matching) hash for nil.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// saveChainsLocked writes the chain states of authors in epoch e (after a
// message was sealed or opened): a few dozen bytes each, where the whole
// epoch holds the roster's key packages. The full epoch is written when
// the group state changes (saveGroupLocked), which drops these rows.
// r.gmu is held.
func (s *Service) saveChainsLocked(ctx context.Context, tx *sql.Tx, r *room, e *group.Epoch, authors ...peer.ID) error {
	h := e.Commit().Hash()
	for _, a := range authors {
		b, err := e.MarshalChain(a)
		if err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, "INSERT OR REPLACE INTO room_chain_states(room, epoch_hash, author, state) VALUES(?, ?, ?, ?)",
			r.id[:], h[:], a.String(), b); err != nil {
			return err
		}
	}
	return nil
}

// restoreChains applies the chain states saved after an epoch's full state.
func (s *Service) restoreChains(ctx context.Context, id ID, e *group.Epoch) error {
	if e == nil {
		return nil
	}
	h := e.Commit().Hash()
	rows, err := s.db.Query(ctx, nil, "SELECT state FROM room_chain_states WHERE room = ? AND epoch_hash = ?", id[:], h[:])
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return err
		}
		if err := e.RestoreChain(b); err != nil {
			return fmt.Errorf("stored chain state: %w", err)
		}
	}
	return rows.Err()
}

// storeCommit keeps a commit of a room's chain (served to members who
// fetch it, and checked against when an older commit arrives).
func (s *Service) storeCommit(ctx context.Context, tx *sql.Tx, id ID, c *group.Commit) error {
	if c == nil {
		return nil
	}
	h := c.Hash()
	_, err := s.db.Exec(ctx, tx, "INSERT INTO room_commits(room, epoch, hash, data) VALUES(?, ?, ?, ?) ON CONFLICT DO NOTHING",
		id[:], c.Epoch, h[:], c.Marshal())
	return err
}

// saveKeysLocked replaces the stored private halves of our key packages of
// a room by r.g.privs, dropping those no commit we hold needs any more.
func (s *Service) saveKeysLocked(ctx context.Context, tx *sql.Tx, r *room) error {
	g := r.g
	keep := g.privs[:0]
	for _, p := range g.privs {
		if s.keyNeeded(g, p) {
			keep = append(keep, p)
		}
	}
	g.privs = keep
	if _, err := s.db.Exec(ctx, tx, "DELETE FROM room_keys WHERE room = ?", r.id[:]); err != nil {
		return err
	}
	for i, p := range g.privs {
		b, err := p.MarshalBinary()
		if err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, "INSERT INTO room_keys(room, pub, priv, created) VALUES(?, ?, ?, ?)", r.id[:], p.PublicKey, b, i); err != nil {
			return err
		}
	}
	return nil
}

// keyNeeded reports whether a private key of ours may still open a commit:
// it is the key of our key package in the current, previous or rival
// commit, or of the package we published that no commit carries yet.
func (s *Service) keyNeeded(g *groupState, p *group.KeyPackagePrivate) bool {
	if g.pendingKP != nil && string(g.pendingKP.PublicKey) == string(p.PublicKey) {
		return true
	}
	for _, c := range []*group.Commit{g.st.Commit, g.st.Prev, g.st.Rival} {
		if c == nil {
			continue
		}
		if m, ok := c.Member(s.self()); ok && string(m.KeyPackage.PublicKey) == string(p.PublicKey) {
			return true
		}
	}
	return false
}

// reloadLocked re-reads a room's group state after a transaction that was
// to persist a change failed: memory never keeps what disk does not hold.
func (s *Service) reloadLocked(r *room) {
	if err := s.loadGroup(context.Background(), r); err != nil {
		s.log.Error("room: reload group state", "room", r.id, "err", err)
	}
}

// applyCommit runs one commit through the room's state machine and, when
// it changed anything, stores the state and the history lines. It returns
// the outcome. r.gmu is held.
func (s *Service) applyCommitLocked(ctx context.Context, r *room, c *group.Commit) (group.Outcome, error) {
	g := r.g
	before := g.st.Commit
	out, err := g.st.Apply(c, s.self(), g.privs)
	if err != nil {
		return out, err
	}
	if (out == group.Healed || out == group.Removed) && group.Equivocates(c, before) {
		// The equivocation's other commit won: we switched to it, a heal
		// (or our removal) like any other, history lines and afterApply
		// included, and reported.
		s.equivocated(ctx, r, c)
	}
	switch out {
	case group.Duplicate, group.Stale:
		return out, nil
	case group.Lost:
		if g.st.Rival == nil || g.st.Rival.Hash() != c.Hash() {
			return out, nil // not even our best rival: not kept
		}
		return out, s.db.Tx(ctx, func(tx *sql.Tx) error { return s.saveGroupLocked(ctx, tx, r) })
	case group.Equivocation:
		s.equivocated(ctx, r, c)
		return out, s.db.Tx(ctx, func(tx *sql.Tx) error { return s.saveGroupLocked(ctx, tx, r) })
	}
	g.appliedAt = s.now()
	if g.pendingKP != nil {
		if m, ok := g.st.Commit.Member(s.self()); ok && m.KeyPackage.Equal(g.pendingKP) {
			g.pendingKP = nil
		}
	}
	// Updates the commit carried are done with.
	for _, ch := range g.st.Commit.Changes {
		if ch.Kind == group.ChangeUpdate {
			delete(g.updates, ch.Subject)
		}
	}
	lines := s.commitLines(ctx, before, g.st.Commit, out)
	var shown []*apitype.Message
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.saveGroupLocked(ctx, tx, r); err != nil {
			return err
		}
		if err := s.saveKeysLocked(ctx, tx, r); err != nil {
			return err
		}
		// A member removed or gone is no longer admitted by the tokens
		// that let it in: it asks again like anyone else.
		for _, ch := range g.st.Commit.Changes {
			if ch.Kind == group.ChangeRemove || ch.Kind == group.ChangeLeave {
				if _, err := s.db.Exec(ctx, tx, "DELETE FROM room_admitted WHERE joiner = ? AND token IN (SELECT token FROM room_links WHERE room = ?)", ch.Subject.String(), r.id[:]); err != nil {
					return err
				}
			}
		}
		var err error
		shown, err = s.addLines(ctx, tx, r, lines)
		return err
	})
	if err != nil {
		s.reloadLocked(r)
		return out, err
	}
	s.publish(shown)
	s.log.Info("room epoch", "room", r.id, "epoch", g.st.Commit.Epoch, "outcome", out, "members", len(g.st.Commit.Members))
	return out, nil
}

// equivocated reports that c's issuer signed two commits for c's epoch.
// r.gmu is held.
func (s *Service) equivocated(ctx context.Context, r *room, c *group.Commit) {
	s.log.Warn("room: an admin issued two commits for one epoch", "room", r.id, "issuer", c.Issuer, "epoch", c.Epoch)
	s.alertLocked(ctx, r, c.Issuer, fmt.Sprintf("%s issued two different changes for epoch %d; the room follows one of them everywhere", s.who(ctx, c.Issuer), c.Epoch))
}

// afterApply does what an applied commit asks of the node outside r.gmu:
// leave a room we were removed from, re-send messages of a branch that
// lost, and tell the user.
func (s *Service) afterApply(ctx context.Context, r *room, c *group.Commit, out group.Outcome) {
	switch out {
	case group.Removed:
		by := c.Issuer
		for _, ch := range c.Changes {
			if ch.Subject == s.self() {
				by = ch.Actor
			}
		}
		state, detail := "removed", fmt.Sprintf("you were removed by %s at epoch %d; the history stays readable", s.who(ctx, by), c.Epoch)
		if by == s.self() {
			state, detail = "left", "you left the room; the history stays readable"
		}
		if err := s.forget(ctx, r, state, detail); err != nil {
			s.log.Warn("room: forget", "room", r.id, "err", err)
		}
		return
	case group.Healed:
		s.resendBranch(ctx, r)
		s.remakeLost(r)
	case group.Applied:
	default:
		return
	}
	s.chat.Publish(apitype.Event{Type: "room", Time: s.now(), Contact: "#" + r.name})
	s.requestSync(r.id, "")
	// Our own changes queued while another commit raced in.
	s.kickCommitter(r)
	// A delivered commit that waited for this one.
	s.retryHeld(ctx, r)
}

// commitLines says what a commit changed, for the room's history.
func (s *Service) commitLines(ctx context.Context, before, c *group.Commit, out group.Outcome) []line {
	if out == group.Removed {
		return nil // forget says it
	}
	var lines []line
	for _, ch := range c.Changes {
		who := s.who(ctx, ch.Subject)
		by := s.who(ctx, ch.Actor)
		switch ch.Kind {
		case group.ChangeCreate:
			lines = append(lines, line{ch.Actor, by + " created the room"})
		case group.ChangeAdd:
			if ch.Subject == s.self() {
				lines = append(lines, line{ch.Actor, "you joined (added by " + by + ")"})
			} else {
				lines = append(lines, line{ch.Actor, who + " joined (added by " + by + ")"})
			}
		case group.ChangeRemove:
			lines = append(lines, line{ch.Actor, who + " is no longer a member (removed by " + by + ")"})
		case group.ChangeLeave:
			lines = append(lines, line{ch.Actor, who + " is no longer a member (left)"})
		case group.ChangeRole:
			lines = append(lines, line{ch.Actor, fmt.Sprintf("%s is now %s (by %s)", who, ch.Role, by)})
		case group.ChangeRekey:
			lines = append(lines, line{ch.Actor, "room keys rotated (by " + by + ")"})
		}
	}
	if len(lines) == 0 && c.Epoch > 1 {
		// Only key package updates: every member's keys are fresh.
		lines = append(lines, line{c.Issuer, "room keys rotated (by " + s.who(ctx, c.Issuer) + ")"})
	}
	if out == group.Healed && before != nil {
		lines = append(lines, line{c.Issuer, fmt.Sprintf("two admins changed the room at once; the room follows %s's change", s.who(ctx, c.Issuer))})
	}
	return lines
}

// Proposed changes wait in the room's queue; one committer goroutine per
// room turns everything queued into one commit, so that changes arriving
// together (joins from a link) share an epoch and no two commits of this
// node ever share a parent.
type proposal struct {
	add   []group.Addition
	adds  map[peer.ID]bool // who add holds (a repeated request queues nothing)
	leave []group.Leave
	// user changes: each waits for its commit and gets its error.
	edits []edit
	rekey bool
}

// edit is a change a user asked for, applied to the proposal at commit
// time against the current roster.
type edit struct {
	apply func(cur *group.Commit, p *group.Proposal) error
	done  chan error
}

// propose queues a change and makes sure the committer runs.
func (s *Service) propose(r *room, f func(q *proposal)) {
	s.mu.Lock()
	if r.queue == nil {
		r.queue = &proposal{adds: map[peer.ID]bool{}}
	}
	f(r.queue)
	s.mu.Unlock()
	s.kickCommitter(r)
}

// kickCommitter starts the room's committer if changes wait and none runs.
func (s *Service) kickCommitter(r *room) {
	s.mu.Lock()
	ctx := s.runCtx
	if r.queue == nil || r.committing || ctx == nil {
		s.mu.Unlock()
		return
	}
	r.committing = true
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			s.mu.Lock()
			q := r.queue
			r.queue = nil
			if q == nil {
				r.committing = false
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			s.commitQueued(ctx, r, q)
		}
	}()
}

// commitQueued issues one commit with everything in q.
func (s *Service) commitQueued(ctx context.Context, r *room, q *proposal) {
	finish := func(err error) {
		for _, e := range q.edits {
			e.done <- err
		}
	}
	key, err := s.identity()
	if err != nil {
		finish(err)
		return
	}
	r.gmu.Lock()
	g := r.g
	if g == nil || g.cur() == nil {
		r.gmu.Unlock()
		finish(ErrNotMember)
		return
	}
	if !g.roleOf(s.self()).IsAdmin() {
		r.gmu.Unlock()
		finish(ErrNotAdmin)
		return
	}
	cur := g.st.Commit
	var p group.Proposal
	var errs []error
	for _, a := range q.add {
		if _, ok := cur.Member(a.KeyPackage.Owner); !ok {
			p.Add = append(p.Add, a)
		}
	}
	for _, l := range q.leave {
		if _, ok := cur.Member(l.Member); ok {
			p.Leave = append(p.Leave, l)
		}
	}
	for _, e := range q.edits {
		errs = append(errs, e.apply(cur, &p))
	}
	for id, kp := range g.updates {
		if m, ok := cur.Member(id); ok && kp.CreatedAt.After(m.KeyPackage.CreatedAt) && !leaving(p, id) {
			p.Update = append(p.Update, kp)
		}
	}
	sort.Slice(p.Update, func(i, j int) bool { return p.Update[i].Owner < p.Update[j].Owner })
	empty := len(p.Add) == 0 && len(p.Leave) == 0 && len(p.Remove) == 0 && len(p.Roles) == 0 && len(p.Update) == 0
	if empty && !q.rekey {
		r.gmu.Unlock()
		for i, e := range q.edits {
			e.done <- errs[i]
		}
		return
	}
	c, _, err := group.NewCommit(g.cur(), key, p, s.now())
	var out group.Outcome
	if err == nil {
		out, err = s.applyCommitLocked(ctx, r, c)
	}
	r.gmu.Unlock()
	if err == nil && out != group.Applied && out != group.Removed {
		err = fmt.Errorf("room: own commit %v", out)
	}
	if err == nil {
		err = s.publishEnvelope(ctx, r, &wirepb.RoomEnvelope{Body: &wirepb.RoomEnvelope_Commit{Commit: c.Proto()}})
		if err != nil {
			// Stored and applied: members fetch it from us by sync.
			s.log.Info("room: publish commit", "room", r.id, "err", err)
			err = nil
		}
		s.deliverCommit(ctx, r, cur, c)
		s.afterApply(ctx, r, c, out)
	}
	for i, e := range q.edits {
		if errs[i] != nil {
			e.done <- errs[i]
		} else {
			e.done <- err
		}
	}
	if err != nil {
		s.log.Info("room: commit", "room", r.id, "err", err)
	}
}

// leaving reports whether p already changes id (removes it, or sets its
// role): its key package update waits for a later commit, since one
// commit changes each subject at most once.
func leaving(p group.Proposal, id peer.ID) bool {
	for _, rc := range p.Roles {
		if rc.ID == id {
			return true
		}
	}
	for _, l := range p.Leave {
		if l.Member == id {
			return true
		}
	}
	for _, x := range p.Remove {
		if x == id {
			return true
		}
	}
	return false
}

// change asks the committer for one user change and waits for its commit.
func (s *Service) change(ctx context.Context, r *room, apply func(cur *group.Commit, p *group.Proposal) error) error {
	if r.public {
		return ErrPublic
	}
	done := make(chan error, 1)
	s.propose(r, func(q *proposal) { q.edits = append(q.edits, edit{apply, done}) })
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publishEnvelope publishes a room envelope of ours (commit, key package,
// join request, leave) on the room's topic.
func (s *Service) publishEnvelope(ctx context.Context, r *room, env *wirepb.RoomEnvelope) error {
	env.Version = group.Version
	env.RoomId = r.id[:]
	data, err := proto.Marshal(env)
	if err != nil {
		return err
	}
	return s.publishData(ctx, r, data)
}

// publishData publishes data on the room's topic, signed by the node.
func (s *Service) publishData(ctx context.Context, r *room, data []byte) error {
	s.mu.RLock()
	topic := r.topic
	s.mu.RUnlock()
	if topic == nil {
		return fmt.Errorf("room: #%s is not running", r.name)
	}
	return topic.Publish(ctx, data)
}

// alert adds a warning line to a room's history (a fork, an equivocation).
func (s *Service) alert(r *room, actor peer.ID, text string) {
	s.alertLocked(context.Background(), r, actor, text)
}

// alertLocked is alert; it needs no lock, and may run under r.gmu.
func (s *Service) alertLocked(ctx context.Context, r *room, actor peer.ID, text string) {
	var shown []*apitype.Message
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		shown, err = s.addLines(ctx, tx, r, []line{{actor, text}})
		return err
	})
	if err != nil {
		s.log.Warn("room: alert", "room", r.id, "err", err)
		return
	}
	s.publish(shown)
}

// resendBranch publishes again, at our current epoch, our messages sealed
// under the commit that lost a fork: members on the winning branch ignored
// them (another branch's epoch_hash). They go back to the outbox as they
// were; republish seals them again at the current epoch (reseal).
func (s *Service) resendBranch(ctx context.Context, r *room) {
	r.gmu.Lock()
	g := r.g
	if g.cur() == nil {
		r.gmu.Unlock()
		return
	}
	lostC := g.st.Displaced // the commit our branch started with, which lost
	r.gmu.Unlock()
	if lostC == nil {
		return
	}
	lostH := lostC.Hash()
	from := lostC.Epoch
	rows, err := s.db.Query(ctx, nil, "SELECT msg_id, data FROM room_log WHERE room = ? AND sender = ? AND epoch >= ?", r.id[:], s.self().String(), from)
	if err != nil {
		return
	}
	type lost struct{ id, data []byte }
	var resend []lost
	for rows.Next() {
		var l lost
		if rows.Scan(&l.id, &l.data) != nil {
			continue
		}
		env, err := group.ParseEnvelope(group.RoomID(r.id), l.data)
		if err != nil || env.GetApp() == nil {
			continue
		}
		// Only what was sealed under the losing commit: a message of the
		// shared parent epoch reached everyone, and re-sealing it would show
		// it to members the winning commit added.
		eh := env.GetApp().GetEpochHash()
		if env.GetApp().GetEpoch() == lostC.Epoch && len(eh) > 0 && len(eh) <= len(lostH) && string(eh) == string(lostH[:len(eh)]) {
			resend = append(resend, l)
		}
	}
	rows.Close()
	for _, l := range resend {
		if _, err := s.db.Exec(ctx, nil, "INSERT OR IGNORE INTO room_outbox(room, msg_id, data, at) VALUES(?, ?, ?, ?)", r.id[:], l.id, l.data, s.now().UnixMilli()); err != nil {
			s.log.Info("room: re-send a message of a branch that lost", "room", r.id, "err", err)
		}
	}
	if len(resend) > 0 {
		s.log.Info("room: re-sending messages of a branch that lost", "room", r.id, "messages", len(resend))
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.republish(ctx, r) }()
	}
}

// remakeLost re-makes, on top of the commit that won, the changes of our
// own commit that lost the fork (docs/PROTOCOL.md, "Fork choice"): a kick
// or a role change the user was told is done stays done. Adds and leaves
// need no remaking: their joiner and leaver ask again until a commit
// carries them.
func (s *Service) remakeLost(r *room) {
	r.gmu.Lock()
	lost := r.g.st.Displaced
	r.gmu.Unlock()
	if lost == nil || lost.Issuer != s.self() {
		return
	}
	var changes []group.Change
	for _, ch := range lost.Changes {
		if ch.Kind == group.ChangeRemove || ch.Kind == group.ChangeRole {
			changes = append(changes, ch)
		}
	}
	if len(changes) == 0 {
		return
	}
	s.log.Info("room: our commit lost a fork; re-making its changes", "room", r.id, "changes", len(changes))
	s.propose(r, func(q *proposal) {
		q.edits = append(q.edits, edit{done: make(chan error, 1), apply: func(cur *group.Commit, p *group.Proposal) error {
			for _, ch := range changes {
				m, ok := cur.Member(ch.Subject)
				switch {
				case !ok:
				case ch.Kind == group.ChangeRemove && !leaving(*p, ch.Subject):
					p.Remove = append(p.Remove, ch.Subject)
				case ch.Kind == group.ChangeRole && m.Role != ch.Role:
					p.Roles = append(p.Roles, group.RoleChange{ID: ch.Subject, Role: ch.Role})
				}
			}
			return nil
		}})
	})
}
