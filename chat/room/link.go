package room

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// Link returns a parley://room/ link into a private room (admins only). It
// holds the current epoch's secret and our addresses: whoever holds it can
// ask us to be added, until the next roster change rotates the secret, which
// makes every earlier link void. Public rooms need no link: their name is
// enough.
func (s *Service) Link(ctx context.Context, name string) (Info, error) {
	r, err := s.byName(name)
	if err != nil {
		return Info{}, err
	}
	if r.public {
		return Info{}, fmt.Errorf("%w: join it with `parley room join '#%s'`", ErrPublic, r.name)
	}
	s.mu.RLock()
	e := r.current()
	s.mu.RUnlock()
	if e == nil || !e.admin(s.self()) {
		return Info{}, ErrNotAdmin
	}
	l := &wirepb.RoomLink{Version: wire.Version, RoomSecret: e.secret, Name: r.name, Inviter: []byte(s.self())}
	for _, a := range s.host.Addrs() {
		if len(l.Addrs) < wire.MaxAddrs {
			l.Addrs = append(l.Addrs, a.Bytes())
		}
	}
	link, err := wire.EncodeRoomLink(l)
	if err != nil {
		return Info{}, err
	}
	info, err := s.Info(ctx, name)
	info.Link = link
	return info, err
}

// JoinLink asks the inviter named in a parley://room/ link to add us: a
// /parley/roomsync/1 request whose proof is made with the link's secret.
// The inviter answers through the 1:1 session with a RoomInvite, which
// makes us a member; until then the room is not listed.
func (s *Service) JoinLink(ctx context.Context, link string) (Info, error) {
	l, err := wire.DecodeRoomLink(link)
	if err != nil {
		return Info{}, err
	}
	inviter, err := peer.IDFromBytes(l.Inviter)
	if err != nil {
		return Info{}, err
	}
	var addrs []ma.Multiaddr
	for _, b := range l.Addrs {
		if a, err := ma.NewMultiaddrBytes(b); err == nil {
			addrs = append(addrs, a)
		}
	}
	s.host.Peerstore().AddAddrs(inviter, addrs, peerstore.TempAddrTTL)
	if _, err := s.chat.Resolve(ctx, inviter.String()); err != nil {
		if _, err := s.chat.AddContact(ctx, inviter.String(), ""); err != nil {
			return Info{}, fmt.Errorf("room: add the inviter as a contact: %w", err)
		}
	}
	// A temporary view of the room with only the link's key, to make the
	// proof; it is never stored.
	var id ID
	probe := &room{id: id, public: false, epochs: map[uint64]*epoch{}}
	secret := l.RoomSecret
	// The room id is not in the link (an epoch secret after the first does
	// not derive it); the inviter recognises the proof under its current key
	// whatever room id we send, so we ask for every room the inviter holds
	// with that key: the id derived from the secret works for epoch 1, and
	// for later epochs the inviter tries its rooms.
	id = PrivateID(secret)
	probe.id = id
	probe.epochs[1] = &epoch{n: 1, secret: secret, macKey: membershipKey(secret, id)}
	probe.epoch = 1
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = s.syncPage(ctx, probe, inviter, 0)
	if err == nil {
		return Info{Name: "#" + l.Name}, nil
	}
	return Info{Name: "#" + l.Name}, fmt.Errorf("room: join request sent to %s: %w (the room appears once they add you)", inviter, err)
}

// joinRequest adds a peer that proved it holds our current link secret.
func (s *Service) joinRequest(r *room, p peer.ID) {
	s.mu.RLock()
	ctx := s.runCtx
	e := r.current()
	s.mu.RUnlock()
	if ctx == nil || e == nil || !e.admin(s.self()) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_, err := s.changeRoster(ctx, r, func(m map[peer.ID]wirepb.Role) error {
			if m[p] != 0 {
				return nil
			}
			m[p] = wirepb.Role_ROLE_MEMBER
			return nil
		})
		if err != nil {
			s.log.Info("room join by link", "room", r.id, "peer", p, "err", err)
		}
	}()
}
