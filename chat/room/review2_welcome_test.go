package room_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// TestReview2KickedAdminWelcomesIntoItsBranch: bob, an admin, makes a link
// at epoch 4, then the owner alice kicks him (epoch 5). Dave uses the link.
// Bob's node, now malicious, answers dave's join request, makes a welcome
// for epoch 5 on epoch 4 (which bob still holds) and serves, on
// /parley/roomsync/2, the chain [epoch 4 commit] that leaves out alice's
// removal. docs/PROTOCOL.md says this fails ("the room's chain holds the
// owner's commit that removed it, which beats its rival"), but takeWelcome
// fetches the chain from fetchPeers(r, welcome), which includes the
// welcome's issuer, and the honest members (alice, carol) refuse to serve
// dave at all (he is in none of their rosters: serveRemoval answers "not a
// member"). So the only chain dave ever gets is bob's, CheckWelcome passes,
// and dave "joins" a room where only the kicked admin reads him.
//
// Control: before the kick, erin joins with bob's other link (the honest
// path works).
func TestReview2KickedAdminWelcomesIntoItsBranch(t *testing.T) {
	room.SetTestConfig(t, func(_ host.Host, c *room.Config) { c.JoinRetry = 300 * time.Millisecond })
	ctx := context.Background()
	ms := start(t, 5)
	alice, bob, carol, dave, erin := ms[0], ms[1], ms[2], ms[3], ms[4]
	privateRoom(t, ms[:3])
	if _, err := alice.Rooms().Promote(ctx, "team", bob.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:3] {
		m.waitEpoch(t, "team", 4)
	}
	forDave, err := bob.Rooms().Link(ctx, "team", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := bob.Rooms().EpochSnapshot("team")
	if err != nil {
		t.Fatal(err)
	}
	// Control: bob's links work while he is an admin.
	forErin, err := bob.Rooms().Link(ctx, "team", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := erin.Rooms().JoinLink(ctx, forErin.Link); err != nil || res.Status != "joined" {
		t.Fatalf("control: erin joins with bob's link: %+v, %v", res, err)
	}
	alice.waitEpoch(t, "team", 5)
	// The snapshot was of epoch 4; erin's add made epoch 5 and alice's kick
	// makes 6. Bob's rival is for epoch 5 on 4 as well: either way, a
	// branch the room did not take.
	if _, err := alice.Rooms().Kick(ctx, "team", bob.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	peertest.Eventually(t, 30*time.Second, "bob removed", func() bool {
		info, err := bob.Rooms().Info(ctx, "team")
		return err == nil && info.State == "removed"
	})

	// Bob turns malicious.
	key := bob.Host().Peerstore().PrivKey(bob.Host().ID())
	var mu sync.Mutex
	var welcome *group.Commit
	bob.Host().SetStreamHandler(protocol.ID("/parley/roomjoin/2"), func(st network.Stream) {
		defer st.Close()
		req := new(wirepb.JoinRequest)
		if err := wire.ReadFrame(st, 4<<10, req); err != nil {
			return
		}
		kp, err := group.ParseKeyPackage(req.KeyPackage)
		if err == nil {
			c, _, err := group.NewCommit(snap, key, group.Proposal{Add: []group.Addition{{KeyPackage: kp, Consent: req.Consent}}}, time.Now())
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			welcome = c
			mu.Unlock()
		}
		wire.WriteFrame(st, &wirepb.JoinAnswer{})
	})
	bob.Host().SetStreamHandler(room.ProtocolRoomSync2, func(st network.Stream) {
		defer st.Close()
		req := new(wirepb.RoomFetchRequest)
		if err := wire.ReadFrame(st, 4<<10, req); err != nil {
			return
		}
		mu.Lock()
		resp := &wirepb.RoomFetchResponse{Commits: [][]byte{snap.Commit().Marshal()}}
		if welcome != nil {
			resp.Commits = append(resp.Commits, welcome.Marshal())
		}
		mu.Unlock()
		wire.WriteFrame(st, resp)
	})

	res, err := dave.Rooms().JoinLink(ctx, forDave.Link)
	t.Logf("dave's join: status %q, epoch %d, members %d, err %v", res.Status, res.Room.Epoch, len(res.Room.Members), err)
	if err == nil && res.Status == "joined" {
		t.Fatalf("dave took a kicked admin's welcome into a branch the room never took (epoch %d, members %+v)", res.Room.Epoch, res.Room.Members)
	}
	_ = carol
}
