package room

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// maxInboxPerSender bounds one sender's payloads waiting in room_inbox.
const maxInboxPerSender = 64

// HandlePayload receives room payloads from the 1:1 sessions, inside the
// transaction that commits their frame. It only queues them (room_inbox);
// the inbox loop applies them once the frame has committed. In rooms
// version 2, invitations (from contacts only) and commits (from anyone:
// deliver.go judges them) travel over 1:1 sessions; the version-1
// payloads (room secrets, sender keys, rosters) are dropped. At most
// maxInboxPerSender of one sender's wait at a time.
func (s *Service) HandlePayload(ctx context.Context, tx *sql.Tx, from peer.ID, p *wirepb.Payload) {
	switch p.Body.(type) {
	case *wirepb.Payload_RoomInvitation, *wirepb.Payload_RoomCommit:
	case *wirepb.Payload_RoomInvite, *wirepb.Payload_SenderKey, *wirepb.Payload_Roster:
		s.log.Debug("room payload of rooms version 1 dropped", "from", from)
		return
	default:
		return
	}
	b, err := proto.Marshal(p)
	if err != nil {
		return
	}
	var queued int
	if err := s.db.QueryRow(ctx, tx, "SELECT count(*) FROM room_inbox WHERE sender = ?", from.String()).Scan(&queued); err != nil || queued >= maxInboxPerSender {
		// The loop drains the queue within a second; a peer that outruns
		// it loses what it sends on top (its frames are still acked: the
		// payload was taken and judged, like a refused invitation).
		s.log.Info("room payload dropped: too many queued from its sender", "from", from, "queued", queued, "err", err)
		return
	}
	if _, err := s.db.Exec(ctx, tx, "INSERT INTO room_inbox(sender, payload, at) VALUES(?, ?, ?)", from.String(), b, s.now().UnixMilli()); err != nil {
		s.log.Warn("queue room payload", "from", from, "err", err)
		return
	}
	s.notifyInbox()
}

func (s *Service) notifyInbox() {
	select {
	case s.inbox <- struct{}{}:
	default:
	}
}

// inboxLoop applies queued payloads. A notification may come before the
// frame's transaction commits, so the loop also looks again shortly after
// each notification and once a second.
func (s *Service) inboxLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	again := time.NewTimer(time.Hour)
	defer again.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.inbox:
			again.Reset(100 * time.Millisecond)
		case <-again.C:
		case <-tick.C:
		}
		s.drainInbox(ctx)
	}
}

func (s *Service) drainInbox(ctx context.Context) {
	type item struct {
		n    int64
		from string
		b    []byte
	}
	rows, err := s.db.Query(ctx, nil, "SELECT n, sender, payload FROM room_inbox ORDER BY n LIMIT 256")
	if err != nil {
		return
	}
	var items []item
	for rows.Next() {
		var it item
		if rows.Scan(&it.n, &it.from, &it.b) == nil {
			items = append(items, it)
		}
	}
	rows.Close()
	for _, it := range items {
		from, err := peer.Decode(it.from)
		var p wirepb.Payload
		if err == nil {
			err = proto.Unmarshal(it.b, &p)
		}
		if err == nil {
			switch {
			case p.GetRoomInvitation() != nil:
				err = s.applyInvitation(ctx, from, p.GetRoomInvitation())
			case p.GetRoomCommit() != nil:
				err = s.applyDelivered(ctx, from, p.GetRoomCommit())
			}
		}
		if err != nil {
			s.log.Info("room payload refused", "from", it.from, "err", err)
		}
		s.db.Exec(ctx, nil, "DELETE FROM room_inbox WHERE n = ?", it.n)
	}
}

// freeName returns name, or name-2, name-3... if another room has it.
func freeName(ctx context.Context, tx *sql.Tx, id ID, name string) (string, error) {
	name = strings.TrimPrefix(strings.TrimSpace(name), "#")
	if name == "" || !utf8.ValidString(name) || checkName(name) != nil {
		name = id.String()[:8]
	}
	for i := 1; i < 1000; i++ {
		try := name
		if i > 1 {
			try = fmt.Sprintf("%s-%d", name, i)
		}
		var other []byte
		err := tx.QueryRowContext(ctx, "SELECT id FROM rooms WHERE name = ?", try).Scan(&other)
		if errors.Is(err, sql.ErrNoRows) || string(other) == string(id[:]) {
			return try, nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", ErrExists
}

// rekeyDue gives every private room whose current epoch is older than
// Config.RekeyEvery a fresh epoch, if this node is its rotator, and
// publishes a fresh key package of ours in every room where ours is older
// than half that: the next commit carries it, and the key that opened
// earlier commits is erased.
func (s *Service) rekeyDue(ctx context.Context) {
	s.prevEpochExpired(ctx)
	key, err := s.identity()
	if err != nil {
		return
	}
	for _, r := range s.roomList() {
		if r.public {
			continue
		}
		r.gmu.Lock()
		g := r.g
		if g == nil || g.cur() == nil {
			r.gmu.Unlock()
			continue
		}
		cur := g.st.Commit
		rekey := s.rotator(cur, "") && s.now().Sub(g.appliedAt) >= s.cfg.RekeyEvery
		var fresh *group.KeyPackage
		if m, ok := cur.Member(s.self()); ok && g.pendingKP == nil && s.now().Sub(m.KeyPackage.CreatedAt) >= s.keyPackageAge() {
			kp, priv, err := group.NewKeyPackage(key, s.now())
			if err == nil {
				priv.EraseInit() // an update is sealed to the encryption key only
				g.privs = append(g.privs, priv)
				g.pendingKP = kp
				if g.roleOf(s.self()).IsAdmin() {
					g.updates[s.self()] = kp
				}
				if err := s.db.Tx(ctx, func(tx *sql.Tx) error { return s.saveKeysLocked(ctx, tx, r) }); err != nil {
					s.reloadLocked(r)
				} else {
					fresh = kp
				}
			}
		}
		r.gmu.Unlock()
		if fresh != nil {
			if err := s.publishEnvelope(ctx, r, &wirepb.RoomEnvelope{Body: &wirepb.RoomEnvelope_KeyPackage{KeyPackage: fresh.Proto()}}); err != nil {
				s.log.Debug("room: publish key package", "room", r.id, "err", err)
			}
		}
		if rekey {
			s.propose(r, func(q *proposal) { q.rekey = true })
		}
	}
}

// forget marks a room left or removed and stops it. Its history stays on
// disk, readable; its keys are erased.
func (s *Service) forget(ctx context.Context, r *room, state, detail string) error {
	r.gmu.Lock()
	said := r.leaving // the line was written when we left
	r.gmu.Unlock()
	var shown []*apitype.Message
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		if !said {
			if shown, err = s.addLines(ctx, tx, r, []line{{s.self(), detail}}); err != nil {
				return err
			}
		}
		for _, q := range []string{"DELETE FROM room_groups WHERE room = ?", "DELETE FROM room_chain_states WHERE room = ?", "DELETE FROM room_keys WHERE room = ?", "DELETE FROM room_outbox WHERE room = ?"} {
			if _, err := s.db.Exec(ctx, tx, q, r.id[:]); err != nil {
				return err
			}
		}
		_, err = s.db.Exec(ctx, tx, "UPDATE rooms SET state = ?, detail = ?, name = name || '~' || lower(hex(randomblob(3))) WHERE id = ?", state, detail, r.id[:])
		return err
	})
	if err != nil {
		return err
	}
	s.publish(shown)
	r.gmu.Lock()
	if g := r.g; g != nil && g.st != nil {
		for _, e := range []*group.Epoch{g.st.Epoch, g.st.PrevEpoch} {
			if e != nil {
				e.Erase()
			}
		}
		g.st.Epoch, g.st.PrevEpoch = nil, nil
	}
	r.gmu.Unlock()
	s.mu.Lock()
	s.stopLocked(r)
	if s.rooms[r.id] == r {
		delete(s.rooms, r.id)
	}
	s.mu.Unlock()
	s.log.Info("room "+state, "room", r.id)
	s.chat.Publish(apitype.Event{Type: "room", Time: s.now(), Contact: "#" + r.name})
	return nil
}

// Create makes a private room owned by this node: epoch 1, with this node
// as its only member and owner.
func (s *Service) Create(ctx context.Context, name string) (Info, error) {
	if err := checkName(name); err != nil {
		return Info{}, err
	}
	if _, err := s.byName(name); err == nil {
		return Info{}, fmt.Errorf("%w: #%s", ErrExists, strings.TrimPrefix(name, "#"))
	}
	key, err := s.identity()
	if err != nil {
		return Info{}, err
	}
	now := s.now()
	kp, priv, err := group.NewKeyPackage(key, now)
	if err != nil {
		return Info{}, err
	}
	priv.EraseInit() // the genesis seals nothing to it
	gid, err := group.NewRoomID()
	if err != nil {
		return Info{}, err
	}
	c, e, err := group.Create(gid, key, kp, now)
	if err != nil {
		return Info{}, err
	}
	r := &room{id: ID(gid), name: strings.TrimPrefix(name, "#"), clock: newClock(s.now)}
	r.g = &groupState{st: &group.State{Commit: c, Epoch: e}, privs: []*group.KeyPackagePrivate{priv}, appliedAt: now, updates: map[peer.ID]*group.KeyPackage{}}
	lines := s.commitLines(ctx, nil, c, group.Applied)
	var shown []*apitype.Message
	r.gmu.Lock()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.db.Exec(ctx, tx, "INSERT INTO rooms(id, name, public, epoch, joined_at) VALUES(?, ?, 0, 1, ?)", r.id[:], r.name, now.UnixMilli()); err != nil {
			return fmt.Errorf("%w: #%s", ErrExists, r.name)
		}
		if err := s.saveGroupLocked(ctx, tx, r); err != nil {
			return err
		}
		if err := s.saveKeysLocked(ctx, tx, r); err != nil {
			return err
		}
		var err error
		shown, err = s.addLines(ctx, tx, r, lines)
		return err
	})
	r.gmu.Unlock()
	if err != nil {
		return Info{}, err
	}
	s.publish(shown)
	s.mu.Lock()
	s.rooms[r.id] = r
	err = s.startLocked(r)
	s.mu.Unlock()
	if err != nil {
		return Info{}, err
	}
	s.chat.Publish(apitype.Event{Type: "room", Time: s.now(), Contact: "#" + r.name})
	return s.Info(ctx, r.name)
}

func checkName(name string) error {
	name = strings.TrimPrefix(name, "#")
	if name == "" || len(name) > wire.MaxNameSize || !utf8.ValidString(name) || strings.ContainsAny(name, " \t\n#~") {
		return fmt.Errorf("room: invalid room name %q: 1 to %d bytes, no spaces, '#' or '~'", name, wire.MaxNameSize)
	}
	return nil
}

// Promote makes a member of a private room an admin (admins only).
func (s *Service) Promote(ctx context.Context, name, member string) (Info, error) {
	r, err := s.joined(name)
	if err != nil {
		return Info{}, err
	}
	target, err := s.memberID(ctx, member)
	if err != nil {
		return Info{}, err
	}
	err = s.change(ctx, r, func(cur *group.Commit, p *group.Proposal) error {
		m, ok := cur.Member(target)
		switch {
		case !ok:
			return fmt.Errorf("room: %s is not a member of #%s", member, r.name)
		case m.Role.IsAdmin():
			return fmt.Errorf("room: %s is already an admin of #%s", member, r.name)
		}
		p.Roles = append(p.Roles, group.RoleChange{ID: target, Role: group.RoleAdmin})
		return nil
	})
	if err != nil {
		return Info{}, err
	}
	return s.Info(ctx, r.name)
}

// Kick removes a member from a private room (admins; an admin or the owner
// only by the owner). The commit seals the next epoch's secret to everyone
// but them.
func (s *Service) Kick(ctx context.Context, name, member string) (Info, error) {
	r, err := s.joined(name)
	if err != nil {
		return Info{}, err
	}
	target, err := s.memberID(ctx, member)
	if err != nil {
		return Info{}, err
	}
	if target == s.self() {
		return Info{}, errors.New("room: use leave to leave a room")
	}
	err = s.change(ctx, r, func(cur *group.Commit, p *group.Proposal) error {
		m, ok := cur.Member(target)
		if !ok {
			return fmt.Errorf("room: %s is not a member of #%s", member, r.name)
		}
		if me, _ := cur.Member(s.self()); m.Role.IsAdmin() && me.Role != group.RoleOwner {
			return fmt.Errorf("%w: only the owner removes an admin", ErrNotAdmin)
		}
		p.Remove = append(p.Remove, target)
		return nil
	})
	if err != nil {
		return Info{}, err
	}
	return s.Info(ctx, r.name)
}

func (s *Service) memberID(ctx context.Context, nameOrID string) (peer.ID, error) {
	if c, err := s.chat.Resolve(ctx, nameOrID); err == nil {
		return c.ID, nil
	}
	p, err := peer.Decode(nameOrID)
	if err != nil {
		return "", fmt.Errorf("room: %q is neither a contact nor a peer ID", nameOrID)
	}
	return p, nil
}

// Leave leaves a room. In a private room a member publishes its signed
// leave, which the owner's node (else the admin with the smallest peer ID)
// commits; an admin commits its own leave, handing ownership on if it was
// the owner. The history stays readable either way.
func (s *Service) Leave(ctx context.Context, name string) error {
	r, err := s.byName(name)
	if err != nil {
		return err
	}
	if r.public {
		return s.forget(ctx, r, "left", "you left the room; the history stays readable")
	}
	r.gmu.Lock()
	g := r.g
	if g == nil || g.cur() == nil {
		j := r.join
		r.gmu.Unlock()
		// A join that waits: cancel it.
		if j != nil {
			s.db.Exec(ctx, nil, "DELETE FROM room_joins WHERE link = ?", j.link)
			s.db.Exec(ctx, nil, "DELETE FROM room_keys WHERE room = ?", r.id[:])
		}
		s.mu.Lock()
		s.stopLocked(r)
		delete(s.rooms, r.id)
		s.mu.Unlock()
		if j != nil {
			s.releaseIssuer(j)
		}
		return nil
	}
	cur := g.st.Commit
	me, _ := cur.Member(s.self())
	r.gmu.Unlock()
	key, err := s.identity()
	if err != nil {
		return err
	}
	prop, err := group.NewLeaveProposal(key, cur)
	if err != nil {
		return err
	}
	switch {
	case len(cur.Members) == 1:
	case me.Role.IsAdmin():
		err = s.change(ctx, r, func(cur *group.Commit, p *group.Proposal) error {
			l, err := group.ParseLeaveProposal(s.self(), cur, prop)
			if err != nil {
				// Our key package changed since: sign again.
				if prop, err = group.NewLeaveProposal(key, cur); err == nil {
					l, err = group.ParseLeaveProposal(s.self(), cur, prop)
				}
				if err != nil {
					return err
				}
			}
			p.Leave = append(p.Leave, l)
			if owners(cur) == 1 && me.Role == group.RoleOwner {
				if heir := successor(cur, s.self()); heir != "" {
					p.Roles = append(p.Roles, group.RoleChange{ID: heir, Role: group.RoleOwner})
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if s.room(r.id) != r {
			return nil // the commit removed us: forgotten already
		}
	default:
		// A member's leave is committed by an admin: until that commit
		// arrives, the room stays subscribed, read-only, and our signed
		// leave is published again whenever a peer appears.
		var shown []*apitype.Message
		err := s.db.Tx(ctx, func(tx *sql.Tx) error {
			var err error
			if shown, err = s.addLines(ctx, tx, r, []line{{s.self(), "you left the room; the history stays readable"}}); err != nil {
				return err
			}
			_, err = s.db.Exec(ctx, tx, "UPDATE rooms SET state = 'leaving' WHERE id = ?", r.id[:])
			return err
		})
		if err != nil {
			return err
		}
		r.gmu.Lock()
		r.leaving = true
		r.gmu.Unlock()
		s.publish(shown)
		s.publishLeave(ctx, r)
		s.chat.Publish(apitype.Event{Type: "room", Time: s.now(), Contact: "#" + r.name})
		return nil
	}
	return s.forget(ctx, r, "left", "you left the room; the history stays readable")
}

// publishLeave publishes our signed leave of a room we left, for an admin
// to commit.
func (s *Service) publishLeave(ctx context.Context, r *room) {
	key, err := s.identity()
	if err != nil {
		return
	}
	r.gmu.Lock()
	var prop *wirepb.LeaveProposal
	if r.leaving && r.g != nil && r.g.cur() != nil {
		prop, err = group.NewLeaveProposal(key, r.g.st.Commit)
	}
	r.gmu.Unlock()
	if prop == nil || err != nil {
		return
	}
	if err := s.publishEnvelope(ctx, r, &wirepb.RoomEnvelope{Body: &wirepb.RoomEnvelope_Leave{Leave: prop}}); err != nil {
		s.log.Debug("room: publish leave", "room", r.id, "err", err)
	}
}

// owners counts the owners of a roster.
func owners(c *group.Commit) int {
	n := 0
	for _, m := range c.Members {
		if m.Role == group.RoleOwner {
			n++
		}
	}
	return n
}

// successor is who becomes the owner when the owner leaves: an admin, else
// a member, the smallest peer ID among them.
func successor(c *group.Commit, leaver peer.ID) peer.ID {
	var best peer.ID
	var bestRole group.Role
	for _, m := range c.Members {
		if m.ID == leaver {
			continue
		}
		if best == "" || m.Role > bestRole || (m.Role == bestRole && m.ID < best) {
			best, bestRole = m.ID, m.Role
		}
	}
	return best
}

// JoinPublic joins (or creates, which is the same) the public room name.
func (s *Service) JoinPublic(ctx context.Context, name string) (Info, error) {
	if err := checkName(name); err != nil {
		return Info{}, err
	}
	name = strings.ToLower(strings.TrimPrefix(name, "#"))
	id := PublicID(name)
	if r := s.room(id); r != nil {
		return s.Info(ctx, r.name)
	}
	r := &room{id: id, name: name, public: true, clock: newClock(s.now)}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		n, err := freeName(ctx, tx, id, name)
		if err != nil {
			return err
		}
		r.name = n
		_, err = s.db.Exec(ctx, tx, `INSERT INTO rooms(id, name, public, joined_at) VALUES(?, ?, 1, ?)
			ON CONFLICT(id) DO UPDATE SET state = 'joined', name = excluded.name`, id[:], r.name, s.now().UnixMilli())
		return err
	})
	if err != nil {
		return Info{}, err
	}
	s.mu.Lock()
	if have := s.rooms[id]; have != nil {
		// Loaded by Run, or joined by a concurrent call, since the check
		// above: that one is started already.
		r = have
	}
	s.rooms[id] = r
	err = s.startLocked(r)
	s.mu.Unlock()
	if err != nil {
		return Info{}, err
	}
	return s.Info(ctx, r.name)
}
