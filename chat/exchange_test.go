package chat_test

import (
	"testing"

	"github.com/parley-im/parley/peer/peertest"
)

// TestExchangeHoldsConnection: a 1:1 exchange between contacts protects
// their connection from the connection manager on both sides (a user
// node trims all but a few); a stranger's message request does not make
// the recipient protect the stranger.
func TestExchangeHoldsConnection(t *testing.T) {
	alice, bob := pair(t)
	bev, cancel := bob.Chat().Subscribe()
	defer cancel()
	m := send(t, alice, "bob", "hello bob")
	waitFor(t, bev, "bob receives", received(m.ID))
	if !alice.Host().ConnManager().IsProtected(bob.Host().ID(), "") {
		t.Error("alice does not hold her connection to bob while delivering to him")
	}
	if !bob.Host().ConnManager().IsProtected(alice.Host().ID(), "") {
		t.Error("bob does not hold his connection to alice, a contact delivering to him")
	}

	carol := peertest.Start(t, peertest.Config(t, peertest.Home(t), alice.Addr()), nil)
	befriend(t, carol, bob, "bob") // bob does not know carol
	m = send(t, carol, "bob", "hello, stranger")
	waitFor(t, bev, "bob receives the request", received(m.ID))
	if !carol.Host().ConnManager().IsProtected(bob.Host().ID(), "") {
		t.Error("control: carol does not hold her connection to bob while delivering to him")
	}
	if bob.Host().ConnManager().IsProtected(carol.Host().ID(), "") {
		t.Error("bob holds the connection of a stranger who wrote to him")
	}
}
