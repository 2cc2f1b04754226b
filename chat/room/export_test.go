package room

import (
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
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
