package room

import (
	"context"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// Internals for the tests of package room_test.
var (
	MembershipKey = membershipKey
	MAC           = mac
	Seal          = seal
	SenderKeyAD   = senderKeyAD
)

// SetTestPubsubOptions makes every Service created until the end of t add
// opts(host) to its gossipsub options.
func SetTestPubsubOptions(t testing.TB, opts func(host.Host) []pubsub.Option) {
	testPubsubOptions = opts
	t.Cleanup(func() { testPubsubOptions = nil })
}

// InviteAll adds peers to the private room name in a single epoch
// (benchmarks: n invites would make n epochs).
func (s *Service) InviteAll(ctx context.Context, name string, peers []peer.ID) error {
	r, err := s.byName(name)
	if err != nil {
		return err
	}
	_, err = s.changeRoster(ctx, r, func(m map[peer.ID]wirepb.Role) error {
		for _, p := range peers {
			m[p] = wirepb.Role_ROLE_MEMBER
		}
		return nil
	})
	return err
}

// KeySet is a copy of every sender-key state a node holds, for any room,
// epoch and sender: what a removed member keeps.
type KeySet struct {
	states []heldKey
}

type heldKey struct {
	room  ID
	epoch uint64
	state []byte
}

// KeySnapshot copies the node's sender-key states as they are now.
func (s *Service) KeySnapshot(ctx context.Context) (KeySet, error) {
	rows, err := s.db.SQL().QueryContext(ctx, "SELECT room, epoch, state FROM room_senders")
	if err != nil {
		return KeySet{}, err
	}
	defer rows.Close()
	var ks KeySet
	for rows.Next() {
		var (
			k    heldKey
			room []byte
		)
		if err := rows.Scan(&room, &k.epoch, &k.state); err != nil {
			return KeySet{}, err
		}
		copy(k.room[:], room)
		ks.states = append(ks.states, k)
	}
	return ks, rows.Err()
}

// MaxEpoch is the newest epoch the set holds a key of.
func (ks KeySet) MaxEpoch() uint64 {
	var n uint64
	for _, k := range ks.states {
		n = max(n, k.epoch)
	}
	return n
}

// Open reports whether any key of the set decrypts the room message data
// authored by author (trying each key under its own epoch and the
// message's).
func (ks KeySet) Open(data []byte, author peer.ID) (bool, error) {
	m, err := wire.DecodeRoomMessage(data)
	if err != nil {
		return false, err
	}
	for _, k := range ks.states {
		for _, ep := range []uint64{k.epoch, m.Epoch} {
			if _, _, err := open(k.state, m.Ciphertext, senderKeyAD(k.room, ep, []byte(author), m.MsgId, m.Hlc)); err == nil {
				return true, nil
			}
		}
	}
	return false, nil
}
