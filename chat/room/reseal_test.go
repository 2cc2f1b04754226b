package room_test

import (
	"context"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/peer/peertest"
)

// TestPendingResealedAtNewEpoch: alice writes while bob and carol are
// offline (the message waits: nobody is on the topic), then the room moves
// two epochs on (alice promotes bob and removes carol) before bob is back.
// The pending message, sealed at an epoch bob no longer holds keys for
// once he follows the room, would be ignored: it is sealed again at the
// current one and reaches him. Control: a message alice sends after bob
// is back.
func TestPendingResealedAtNewEpoch(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 4)
	boot := ms[0]
	privateRoom(t, ms[1:])
	alice, bob, carol := ms[1], ms[2], ms[3]
	bobHome := bob.Home
	bob.Stop(t)
	carol.Stop(t)
	peertest.Eventually(t, 30*time.Second, "alice alone on the topic", func() bool {
		info, err := alice.Rooms().Info(ctx, "#team")
		return err == nil && info.Peers == 0
	})
	msg, err := alice.Rooms().Send(ctx, "#team", "while bob was away")
	if err != nil || msg.State != "pending" {
		t.Fatalf("send while alone: %+v, %v; want pending", msg, err)
	}
	before, _, err := alice.Rooms().GroupEpoch("#team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Rooms().Promote(ctx, "#team", "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Rooms().Kick(ctx, "#team", "m2"); err != nil {
		t.Fatal(err)
	}
	if after, _, _ := alice.Rooms().GroupEpoch("#team"); after != before+2 {
		t.Fatalf("alice's epoch %d after the changes, want %d", after, before+2)
	}
	bob = restart(t, bobHome, boot.Addr())
	bob.waitEpoch(t, "team", before+2)
	send(t, alice, "#team", "after bob is back")
	bob.waitTexts(t, "#team", "while bob was away", "after bob is back")
}

// TestChainsAcrossRestart: the sender chains stored after each message
// (not the whole epoch) carry a node across a restart: bob, restarted,
// sends at the next generation of his chain (alice opens it: a reused
// generation would be refused as a used key) and opens alice's next
// messages. Control: the messages before the restart.
func TestChainsAcrossRestart(t *testing.T) {
	ms := start(t, 3)
	boot := ms[0]
	privateRoom(t, ms[1:])
	alice, bob := ms[1], ms[2]
	a1, err := alice.Rooms().Send(context.Background(), "#team", "a1")
	if err != nil {
		t.Fatal(err)
	}
	send(t, alice, "#team", "a2")
	send(t, bob, "#team", "b1")
	bob.waitTexts(t, "#team", "a1", "a2")
	alice.waitTexts(t, "#team", "b1")
	bobHome := bob.Home
	bob.Stop(t)
	bob = restart(t, bobHome, boot.Addr())
	// The keys bob used to read alice's messages stay erased across the
	// restart: his stored chain of alice's is past them (a stale one would
	// open a1 again).
	id, _ := hex.DecodeString(a1.ID)
	app, err := bob.Rooms().LoggedApp("#team", alice.Host().ID(), id)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := bob.Rooms().EpochSnapshot("#team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snap.Open(alice.Host().ID(), app); !errors.Is(err, group.ErrKeyUsed) {
		t.Fatalf("bob's restored epoch opens alice's a1 again: %v; want ErrKeyUsed", err)
	}
	waitMeshed(t, []*member{alice, bob}, "#team")
	send(t, bob, "#team", "b2 after the restart")
	send(t, alice, "#team", "a3 after the restart")
	alice.waitTexts(t, "#team", "b2 after the restart")
	bob.waitTexts(t, "#team", "a3 after the restart")
}
