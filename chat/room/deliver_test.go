package room_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// TestCommitThroughMailbox: bob is offline when alice (the admin) removes
// him, and alice goes offline right after; no member is online when bob
// comes back. The commit reaches bob through his mailbox, inside the 1:1
// session: bob learns that he was removed and stops being a member. Without
// the 1:1 path bob would stay "joined" until some member came online.
func TestCommitThroughMailbox(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 2)
	alice, bob := ms[0], ms[1]
	mb := peertest.Start(t, peertest.Config(t, peertest.Home(t), alice.Addr()), nil)
	if err := mb.Mailbox().Enable(ctx, true, 100_000); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Chat().AddContact(ctx, bob.Host().ID().String(), "bob"); err != nil {
		t.Fatal(err)
	}
	if err := bob.Mailbox().Use(ctx, []peer.ID{mb.Host().ID()}, false); err != nil {
		t.Fatal(err)
	}
	peertest.Eventually(t, 30*time.Second, "bob drains his mailbox", func() bool {
		return !bob.Mailbox().LastDrain().IsZero()
	})
	privateRoom(t, ms)
	peertest.Eventually(t, 30*time.Second, "alice learns bob's mailbox", func() bool {
		l, err := alice.Mailbox().ListOf(ctx, bob.Host().ID())
		return err == nil && len(l) == 1
	})
	stored := func() int {
		n, _, err := mb.Mailbox().Stored(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := stored()

	bob.Stop(t)
	if _, err := alice.Rooms().Kick(ctx, "#team", "m1"); err != nil {
		t.Fatal(err)
	}
	peertest.Eventually(t, 60*time.Second, "the commit reaches bob's mailbox", func() bool {
		alice.Chat().Kick(bob.Host().ID()) // skip the deliverer's backoff
		return stored() > before
	})
	alice.Stop(t)

	var ev <-chan apitype.Event
	bob2 := peertest.Start(t, peertest.Config(t, bob.Home, mb.Addr()), nil)
	ev, cancel := bob2.Chat().Subscribe()
	defer cancel()
	state := func() string {
		info, err := bob2.Rooms().Info(ctx, "#team")
		if err != nil {
			return err.Error()
		}
		return info.State
	}
	if state() != "removed" {
		(&member{Running: bob2, events: ev}).waitFor(t, "bob learns he was removed", func(apitype.Event) bool { return state() == "removed" })
	}
}

// TestDeliveredCommitChecked: carol, a plain member and bob's contact,
// hands bob over their 1:1 session a commit she signed herself (adding a
// member of her choosing), then one the admin signed (the positive
// control, relayed by carol as any contact may). bob applies the admin's
// and refuses hers: who delivers a commit lends it no authority.
func TestDeliveredCommitChecked(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 3)
	privateRoom(t, ms)
	alice, bob, carol := ms[0], ms[1], ms[2]
	befriend(t, carol, bob, "bob")
	befriend(t, bob, carol, "carol")
	id := roomID(t, alice, "#team")
	n, _, err := bob.Rooms().GroupEpoch("#team")
	if err != nil {
		t.Fatal(err)
	}

	stranger, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged := craftCommit(t, carol.Identity().PrivKey(), snapshot(t, carol, "#team").Commit(), stranger)
	honest, _, err := group.NewCommit(snapshot(t, alice, "#team"), alice.Identity().PrivKey(), group.Proposal{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []*wirepb.SignedCommit{forged, honest.Proto()} {
		p := &wirepb.Payload{Body: &wirepb.Payload_RoomCommit{RoomCommit: &wirepb.RoomCommitDelivery{RoomId: id[:], Commit: sc}}}
		if err := carol.Chat().SendPayload(ctx, nil, bob.Host().ID(), p); err != nil {
			t.Fatal(err)
		}
	}
	bob.waitEpoch(t, "#team", n+1)
	// The two arrived in order in one session and were applied in order:
	// the forged one was looked at first.
	peertest.Eventually(t, 30*time.Second, "bob's room inbox drained", func() bool {
		rows, err := bob.Rooms().StoredRows(ctx)
		return err == nil && rows["room_inbox"] == 0
	})
	got, h, err := bob.Rooms().GroupEpoch("#team")
	if err != nil || got != n+1 || h != honest.Hash() {
		t.Fatalf("bob at epoch %d (%x), %v; want %d, the admin's commit %x", got, h[:4], err, n+1, honest.Hash())
	}
	info, err := bob.Rooms().Info(ctx, "#team")
	if err != nil || len(info.Members) != 3 {
		t.Fatalf("bob's roster after the forged commit: %+v, %v", info.Members, err)
	}
}
