package room_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	rooms "github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/peer/peertest"
)

// TestKickRotatesKeys: after carol is kicked she still holds every old key
// and her node stays connected, and a raw host stays subscribed to the
// room's topic. The others keep talking; the raw subscriber receives their
// new messages, yet none of carol's keys (any room, any epoch, any sender)
// opens any of them, and none reaches carol's log.
func TestKickRotatesKeys(t *testing.T) {
	ms := start(t, 3)
	privateRoom(t, ms)
	alice, bob, carol := ms[0], ms[1], ms[2]
	topic := carol.roomTopic(t, "#team")
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	listener := newAttacker(t, key, alice, topic)
	// Every key carol holds before the last message of her epoch: the
	// positive control below shows these keys do open that message.
	before, err := carol.Rooms().KeySnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	send(t, alice, "#team", "before the kick")
	carol.waitTexts(t, "#team", "before the kick")
	if _, err := alice.Rooms().Kick(context.Background(), "#team", "m2"); err != nil {
		t.Fatal(err)
	}
	alice.waitEpoch(t, "team", 4)
	bob.waitEpoch(t, "team", 4)
	var after []string
	for i := 0; i < 5; i++ {
		text := fmt.Sprintf("after the kick %d", i)
		after = append(after, text)
		send(t, alice, "#team", text)
	}
	bob.waitTexts(t, "#team", after...)

	// The raw subscriber got the new traffic: the test is not vacuous.
	var newMsgs int
	peertest.Eventually(t, 20*time.Second, "the raw subscriber to receive post-kick messages", func() bool {
		newMsgs = 0
		for _, m := range listener.messages() {
			if rm, err := wire.DecodeRoomMessage(m.Data); err == nil && rm.Epoch >= 4 {
				newMsgs++
			}
		}
		return newMsgs >= len(after)
	})
	kept, err := carol.Rooms().KeySnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	control := false
	for _, m := range listener.messages() {
		rm, err := wire.DecodeRoomMessage(m.Data)
		if err != nil {
			continue
		}
		if rm.Epoch < 4 {
			if ok, _ := before.Open(m.Data, peer.ID(m.From)); ok {
				control = true
			}
			continue
		}
		for _, ks := range []rooms.KeySet{before, kept} {
			if ok, err := ks.Open(m.Data, peer.ID(m.From)); err != nil || ok {
				t.Fatalf("a key the kicked member kept opens a message of epoch %d (err %v)", rm.Epoch, err)
			}
			if ks.MaxEpoch() >= rm.Epoch {
				t.Fatalf("the kicked member holds keys of epoch %d, as new as the message's %d", ks.MaxEpoch(), rm.Epoch)
			}
		}
	}
	if !control {
		t.Fatal("positive control failed: carol's own keys did not open the message of her epoch")
	}
	log, _ := carol.Chat().Log(context.Background(), "#"+topic[len(topic)-64:], 0)
	for _, m := range log {
		for _, a := range after {
			if m.Text == a {
				t.Fatalf("kicked member read %q", a)
			}
		}
	}
}
