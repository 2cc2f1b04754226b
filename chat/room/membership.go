package room

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// HandlePayload receives room payloads from the 1:1 sessions, inside the
// transaction that commits their frame. It only queues them (room_inbox);
// the inbox loop applies them once the frame has committed.
func (s *Service) HandlePayload(ctx context.Context, tx *sql.Tx, from peer.ID, p *wirepb.Payload) {
	switch p.Body.(type) {
	case *wirepb.Payload_RoomInvite, *wirepb.Payload_SenderKey, *wirepb.Payload_Roster:
	default:
		return
	}
	b, err := proto.Marshal(p)
	if err != nil {
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
			err = s.apply(ctx, from, &p)
		}
		if err != nil {
			s.log.Info("room payload refused", "from", it.from, "err", err)
		}
		s.db.Exec(ctx, nil, "DELETE FROM room_inbox WHERE n = ?", it.n)
	}
}

// apply handles one payload from a contact.
func (s *Service) apply(ctx context.Context, from peer.ID, p *wirepb.Payload) error {
	switch b := p.Body.(type) {
	case *wirepb.Payload_RoomInvite:
		return s.applyInvite(ctx, from, b.RoomInvite)
	case *wirepb.Payload_SenderKey:
		return s.applySenderKey(ctx, from, b.SenderKey)
	case *wirepb.Payload_Roster:
		return s.applyRosterUpdate(ctx, from, b.Roster)
	}
	return nil
}

// applyInvite handles a RoomInvite: an invitation into a room, or the
// secret and roster of a room's next epoch.
func (s *Service) applyInvite(ctx context.Context, from peer.ID, inv *wirepb.RoomInvite) error {
	issuer, roster, err := openRoster(inv.Roster)
	if err != nil {
		return err
	}
	id, err := idFromBytes(roster.RoomId)
	if err != nil {
		return err
	}
	if roster.Epoch == 1 && PrivateID(inv.RoomSecret) != id {
		return fmt.Errorf("%w: the secret does not derive the room id", ErrBadRoster)
	}
	e, err := newEpoch(id, inv.RoomSecret, inv.Roster)
	if err != nil {
		return err
	}
	if !e.admin(issuer) {
		return fmt.Errorf("%w: issuer is not an admin of the roster it signed", ErrBadRoster)
	}
	if e.roles[from] == 0 {
		return fmt.Errorf("%w: invited by %s, who is not a member", ErrBadRoster, from)
	}
	if e.roles[s.self()] == 0 {
		return fmt.Errorf("%w: we are not in the roster", ErrBadRoster)
	}
	r := s.room(id)
	if r != nil {
		s.mu.RLock()
		cur := r.current()
		s.mu.RUnlock()
		if cur != nil {
			if roster.Epoch <= cur.n {
				return nil // old or repeated
			}
			if err := checkSuccessor(cur, issuer, roster); err != nil {
				return err
			}
		}
	} else {
		r = &room{id: id, name: inv.Name, epochs: make(map[uint64]*epoch)}
	}
	return s.enterEpoch(ctx, r, e)
}

// enterEpoch makes e the current epoch of r: it stores the roster and
// secret, makes a fresh sending chain, queues its distribution to every
// other member, and (re)starts the room.
func (s *Service) enterEpoch(ctx context.Context, r *room, e *epoch) error {
	state, dist, err := newChain()
	if err != nil {
		return fmt.Errorf("room: new sender chain: %w", err)
	}
	var others []peer.ID
	for p := range e.roles {
		if p != s.self() {
			others = append(others, p)
		}
	}
	s.mu.RLock()
	_, known := s.rooms[r.id]
	s.mu.RUnlock()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if !known {
			name, err := freeName(ctx, tx, r.id, r.name)
			if err != nil {
				return err
			}
			r.name = name
		}
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO rooms(id, name, public, epoch, roster, joined_at) VALUES(?, ?, 0, ?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET epoch = excluded.epoch, roster = excluded.roster, state = 'joined'`,
			r.id[:], r.name, e.n, e.signed, s.now().UnixMilli()); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, "INSERT OR REPLACE INTO room_epochs(room, epoch, secret, roster) VALUES(?, ?, ?, ?)", r.id[:], e.n, e.secret, e.signed); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, "INSERT OR REPLACE INTO room_chains(room, epoch, state) VALUES(?, ?, ?)", r.id[:], e.n, state); err != nil {
			return err
		}
		for _, p := range others {
			if err := s.chat.SendPayload(ctx, tx, p, &wirepb.Payload{Body: &wirepb.Payload_SenderKey{SenderKey: &wirepb.SenderKey{
				RoomId: r.id[:], Epoch: e.n, Distribution: dist,
			}}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("room: enter epoch %d: %w", e.n, err)
	}
	for _, p := range others {
		s.chat.Kick(p)
	}
	s.mu.Lock()
	if r.epochs == nil {
		r.epochs = make(map[uint64]*epoch)
	}
	r.epochs[e.n] = e
	r.epoch = e.n
	s.rooms[r.id] = r
	err = s.startLocked(r)
	s.mu.Unlock()
	s.log.Info("room epoch", "room", r.id, "epoch", e.n, "members", len(e.roles))
	s.chat.Publish(apitype.Event{Type: "room", Time: s.now(), Contact: "#" + r.name})
	s.requestSync(r.id, "")
	return err
}

// freeName returns name, or name-2, name-3... if another room has it.
func freeName(ctx context.Context, tx *sql.Tx, id ID, name string) (string, error) {
	name = strings.TrimPrefix(strings.TrimSpace(name), "#")
	if name == "" || !utf8.ValidString(name) {
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

// applySenderKey stores a member's sender-key distribution. It is kept even
// when the epoch's roster has not arrived yet (the two travel on different
// sessions); messages are only shown once they pass the roster check.
func (s *Service) applySenderKey(ctx context.Context, from peer.ID, k *wirepb.SenderKey) error {
	id, err := idFromBytes(k.RoomId)
	if err != nil {
		return err
	}
	r := s.room(id)
	if r != nil {
		s.mu.RLock()
		cur := r.epoch
		s.mu.RUnlock()
		if k.Epoch < cur {
			return nil // stale
		}
	}
	state, err := newReceiver(k.Distribution)
	if err != nil {
		return fmt.Errorf("room: sender key from %s: %w", from, err)
	}
	s.cryptoMu.Lock()
	// Never replace a state: a replayed distribution must not rewind the
	// chain and make old messages decryptable twice.
	_, err = s.db.Exec(ctx, nil, "INSERT INTO room_senders(room, epoch, sender, state) VALUES(?, ?, ?, ?) ON CONFLICT DO NOTHING",
		id[:], k.Epoch, from.String(), state)
	s.cryptoMu.Unlock()
	if err != nil {
		return err
	}
	if r != nil {
		s.showWaiting(ctx, r, k.Epoch, from)
	}
	return nil
}

// applyRosterUpdate handles a RoomRosterUpdate: a member's announcement that
// it left (a roster it signed itself: the current one without it, at the
// next epoch), or the roster that removed us.
func (s *Service) applyRosterUpdate(ctx context.Context, from peer.ID, u *wirepb.RoomRosterUpdate) error {
	issuer, roster, err := openRoster(u.Roster)
	if err != nil {
		return err
	}
	id, err := idFromBytes(roster.RoomId)
	if err != nil {
		return err
	}
	r := s.room(id)
	if r == nil || r.public {
		return nil
	}
	s.mu.RLock()
	cur := r.current()
	s.mu.RUnlock()
	if cur == nil || roster.Epoch <= cur.n || issuer != from {
		return nil
	}
	inNew := false
	for _, m := range roster.Members {
		if peer.ID(m.PeerId) == s.self() {
			inNew = true
		}
	}
	if !inNew && cur.admin(issuer) {
		// We were removed.
		return s.forget(ctx, r, "removed")
	}
	// A leave announcement: the issuer is the leaver.
	if cur.roles[issuer] == 0 || !s.rotator(cur, issuer) {
		return nil
	}
	s.log.Info("member left; rotating room keys", "room", r.id, "member", issuer)
	_, err = s.changeRoster(ctx, r, func(members map[peer.ID]wirepb.Role) error {
		delete(members, issuer)
		return nil
	})
	return err
}

// rotator reports whether this node is the one that issues the next epoch
// after leaver left: the owner if it stays, else the remaining admin with
// the smallest peer ID.
func (s *Service) rotator(cur *epoch, leaver peer.ID) bool {
	var admins []peer.ID
	for p, role := range cur.roles {
		if p == leaver {
			continue
		}
		if role == wirepb.Role_ROLE_OWNER {
			return p == s.self()
		}
		if role == wirepb.Role_ROLE_ADMIN {
			admins = append(admins, p)
		}
	}
	sort.Slice(admins, func(i, j int) bool { return admins[i] < admins[j] })
	return len(admins) > 0 && admins[0] == s.self()
}

// forget marks a room left or removed and stops it. Its log and keys stay
// on disk (history), but no new key will ever reach it.
func (s *Service) forget(ctx context.Context, r *room, state string) error {
	if _, err := s.db.Exec(ctx, nil, "UPDATE rooms SET state = ?, name = name || '~' || lower(hex(randomblob(3))) WHERE id = ?", state, r.id[:]); err != nil {
		return err
	}
	s.mu.Lock()
	s.stopLocked(r)
	delete(s.rooms, r.id)
	s.mu.Unlock()
	s.log.Info("room "+state, "room", r.id)
	s.chat.Publish(apitype.Event{Type: "room", Time: s.now(), Contact: "#" + r.name})
	return nil
}

// Create makes a private room owned by this node.
func (s *Service) Create(ctx context.Context, name string) (Info, error) {
	if err := checkName(name); err != nil {
		return Info{}, err
	}
	if _, err := s.byName(name); err == nil {
		return Info{}, fmt.Errorf("%w: #%s", ErrExists, strings.TrimPrefix(name, "#"))
	}
	secret := make([]byte, wire.SecretSize)
	if _, err := rand.Read(secret); err != nil {
		return Info{}, err
	}
	id := PrivateID(secret)
	signed, err := s.sign(&wirepb.Roster{
		RoomId: id[:], Epoch: 1, IssuedAtMs: s.now().UnixMilli(), Issuer: []byte(s.self()),
		Members: []*wirepb.RosterMember{{PeerId: []byte(s.self()), Role: wirepb.Role_ROLE_OWNER}},
	})
	if err != nil {
		return Info{}, err
	}
	e, err := newEpoch(id, secret, signed)
	if err != nil {
		return Info{}, err
	}
	r := &room{id: id, name: strings.TrimPrefix(name, "#")}
	if err := s.enterEpoch(ctx, r, e); err != nil {
		return Info{}, err
	}
	return s.Info(ctx, r.name)
}

func checkName(name string) error {
	name = strings.TrimPrefix(name, "#")
	if name == "" || len(name) > wire.MaxNameSize || !utf8.ValidString(name) || strings.ContainsAny(name, " \t\n#~") {
		return fmt.Errorf("room: invalid room name %q: 1 to %d bytes, no spaces, '#' or '~'", name, wire.MaxNameSize)
	}
	return nil
}

func (s *Service) sign(r *wirepb.Roster) ([]byte, error) {
	key := s.host.Peerstore().PrivKey(s.self())
	if key == nil {
		return nil, errors.New("room: no identity key")
	}
	return signRoster(key, r)
}

// changeRoster issues the next epoch of r with the members edit leaves,
// and a fresh epoch secret; it sends both to every member of the new
// roster and enters the epoch itself. Only admins may call it.
func (s *Service) changeRoster(ctx context.Context, r *room, edit func(map[peer.ID]wirepb.Role) error) (*epoch, error) {
	if r.public {
		return nil, ErrPublic
	}
	s.mu.RLock()
	cur := r.current()
	s.mu.RUnlock()
	if cur == nil {
		return nil, ErrNotMember
	}
	if !cur.admin(s.self()) {
		return nil, ErrNotAdmin
	}
	members := make(map[peer.ID]wirepb.Role, len(cur.roles)+1)
	for p, role := range cur.roles {
		members[p] = role
	}
	if err := edit(members); err != nil {
		return nil, err
	}
	next := &wirepb.Roster{RoomId: r.id[:], Epoch: cur.n + 1, IssuedAtMs: s.now().UnixMilli(), Issuer: []byte(s.self())}
	for p, role := range members {
		next.Members = append(next.Members, &wirepb.RosterMember{PeerId: []byte(p), Role: role})
	}
	signed, err := s.sign(next)
	if err != nil {
		return nil, err
	}
	secret := make([]byte, wire.SecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	e, err := newEpoch(r.id, secret, signed)
	if err != nil {
		return nil, err
	}
	// The invites are queued before we enter the epoch: if we crash in
	// between, members still get the new keys.
	var to []peer.ID
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		for p := range e.roles {
			if p == s.self() {
				continue
			}
			to = append(to, p)
			if err := s.chat.SendPayload(ctx, tx, p, &wirepb.Payload{Body: &wirepb.Payload_RoomInvite{RoomInvite: &wirepb.RoomInvite{
				RoomSecret: secret, Name: r.name, Roster: signed,
			}}}); err != nil {
				return err
			}
		}
		// Members removed learn it (the roster only, no secret).
		for p := range cur.roles {
			if e.roles[p] == 0 && p != s.self() {
				to = append(to, p)
				if err := s.chat.SendPayload(ctx, tx, p, &wirepb.Payload{Body: &wirepb.Payload_Roster{Roster: &wirepb.RoomRosterUpdate{Roster: signed}}}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, p := range to {
		s.chat.Kick(p)
	}
	return e, s.enterEpoch(ctx, r, e)
}

// Invite adds a contact to a private room (admins only): a new epoch whose
// roster lists them, delivered to them as a RoomInvite.
func (s *Service) Invite(ctx context.Context, name, contact string) (Info, error) {
	r, err := s.byName(name)
	if err != nil {
		return Info{}, err
	}
	c, err := s.chat.Resolve(ctx, contact)
	if err != nil {
		return Info{}, err
	}
	_, err = s.changeRoster(ctx, r, func(m map[peer.ID]wirepb.Role) error {
		if m[c.ID] != 0 {
			return fmt.Errorf("room: %s is already a member of #%s", contact, r.name)
		}
		m[c.ID] = wirepb.Role_ROLE_MEMBER
		return nil
	})
	if err != nil {
		return Info{}, err
	}
	return s.Info(ctx, r.name)
}

// Kick removes a member from a private room (admins only) and rotates
// every key.
func (s *Service) Kick(ctx context.Context, name, member string) (Info, error) {
	r, err := s.byName(name)
	if err != nil {
		return Info{}, err
	}
	target, err := s.memberID(ctx, member)
	if err != nil {
		return Info{}, err
	}
	_, err = s.changeRoster(ctx, r, func(m map[peer.ID]wirepb.Role) error {
		if m[target] == 0 {
			return fmt.Errorf("room: %s is not a member of #%s", member, r.name)
		}
		if target == s.self() {
			return errors.New("room: use leave to leave a room")
		}
		delete(m, target)
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
	return peer.Decode(nameOrID)
}

// Leave leaves a room. For a private room the leaver announces it to the
// other members (a roster it signs, without itself); the owner, or else the
// admin with the smallest peer ID, then issues the next epoch. An admin
// leaving issues that epoch itself.
func (s *Service) Leave(ctx context.Context, name string) error {
	r, err := s.byName(name)
	if err != nil {
		return err
	}
	if !r.public {
		s.mu.RLock()
		cur := r.current()
		s.mu.RUnlock()
		if cur != nil && len(cur.roles) > 1 {
			if err := s.announceLeave(ctx, r, cur); err != nil {
				return err
			}
		}
	}
	return s.forget(ctx, r, "left")
}

func (s *Service) announceLeave(ctx context.Context, r *room, cur *epoch) error {
	if cur.admin(s.self()) {
		// Hand over: issue the next epoch without us ourselves, keeping an
		// owner if we were it (the next admin, else the oldest member).
		_, err := s.changeRoster(ctx, r, func(m map[peer.ID]wirepb.Role) error {
			wasOwner := m[s.self()] == wirepb.Role_ROLE_OWNER
			delete(m, s.self())
			if wasOwner {
				promote(m)
			}
			return nil
		})
		return err
	}
	next := &wirepb.Roster{RoomId: r.id[:], Epoch: cur.n + 1, IssuedAtMs: s.now().UnixMilli(), Issuer: []byte(s.self())}
	for p, role := range cur.roles {
		if p != s.self() {
			next.Members = append(next.Members, &wirepb.RosterMember{PeerId: []byte(p), Role: role})
		}
	}
	signed, err := s.sign(next)
	if err != nil {
		return err
	}
	var to []peer.ID
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		for p := range cur.roles {
			if p == s.self() {
				continue
			}
			to = append(to, p)
			if err := s.chat.SendPayload(ctx, tx, p, &wirepb.Payload{Body: &wirepb.Payload_Roster{Roster: &wirepb.RoomRosterUpdate{Roster: signed}}}); err != nil {
				return err
			}
		}
		return nil
	})
	for _, p := range to {
		s.chat.Kick(p)
	}
	return err
}

// promote makes an admin (else the member with the smallest peer ID) the
// owner.
func promote(m map[peer.ID]wirepb.Role) {
	var best peer.ID
	for p, role := range m {
		if best == "" || role > m[best] || (role == m[best] && p < best) {
			best = p
		}
	}
	if best != "" {
		m[best] = wirepb.Role_ROLE_OWNER
	}
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
	r := &room{id: id, name: name, public: true, epochs: map[uint64]*epoch{}}
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
	s.rooms[id] = r
	err = s.startLocked(r)
	s.mu.Unlock()
	if err != nil {
		return Info{}, err
	}
	return s.Info(ctx, r.name)
}
