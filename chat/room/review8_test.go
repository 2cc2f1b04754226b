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
)

// TestReview8StaleWelcomeAtPageBoundary: takeWelcome stops paging once the
// last epoch it took reaches the welcome's parent (last >= c.Epoch-1), so
// when a page ends exactly at the parent it never sees the commit the room
// took for the welcome's epoch, and CheckWelcome's "beat the room's commit
// for the same parent" (Wins) is skipped. Bob, an admin, makes dave's link
// at epoch 4; alice (owner) commits epoch 5 (X: promote carol). Bob answers
// dave's join with W, a welcome for epoch 5 on epoch 4 (a rival that loses
// to X: owner beats admin), published so that alice and carol keep it as
// their rival (dave is then "in their rival" and they serve him). With a
// page of one commit, dave's first page from alice is [epoch 4] with more
// set, he stops, and takes W: a branch the room never took.
// Control ("onepage": the default page size): the page holds epoch 4, X
// and W; W loses to X and dave refuses it.
func TestReview8StaleWelcomeAtPageBoundary(t *testing.T) {
	for _, paged := range []bool{true, false} {
		name := "onepage"
		if paged {
			name = "paged"
		}
		t.Run(name, func(t *testing.T) {
			if paged {
				room.SetChainPageBytes(t, 1)
			}
			room.SetTestConfig(t, func(_ host.Host, c *room.Config) { c.JoinRetry = 300 * time.Millisecond })
			ctx := context.Background()
			ms := start(t, 4)
			alice, bob, carol, dave := ms[0], ms[1], ms[2], ms[3]
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
			// The room moves on: the owner's commit for epoch 5.
			if _, err := alice.Rooms().Promote(ctx, "team", carol.Host().ID().String()); err != nil {
				t.Fatal(err)
			}
			for _, m := range ms[:3] {
				m.waitEpoch(t, "team", 5)
			}
			_, x, _ := alice.Rooms().GroupEpoch("team")
			id, err := alice.Rooms().RoomID("team")
			if err != nil {
				t.Fatal(err)
			}

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
						return
					}
					mu.Lock()
					welcome = c
					mu.Unlock()
					if err := bob.Rooms().PublishRaw(ctx, "#team", commitEnvelope(t, group.RoomID(id), c.Proto())); err != nil {
						t.Error(err)
					}
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
			if err == nil && res.Status != "joined" {
				// Give the welcome poll a few rounds.
				for i := 0; i < 40; i++ {
					if _, _, err := dave.Rooms().GroupEpoch("team"); err == nil {
						break
					}
					time.Sleep(250 * time.Millisecond)
				}
			}
			n, h, err := dave.Rooms().GroupEpoch("team")
			if err == nil && h != x {
				t.Errorf("dave took bob's welcome for epoch %d (%x), a branch the room never took (the room's epoch 5 is %x)", n, h[:8], x[:8])
			}
		})
	}
}
