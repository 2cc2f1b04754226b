package room

import (
	"context"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

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
