package room_test

import (
	"context"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// countCommits is how many rows of room_commits m holds.
func countCommits(t *testing.T, m *member) int {
	t.Helper()
	var n int
	if err := m.DB().SQL().QueryRow("SELECT count(*) FROM room_commits").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReview2KickedAdminFloodsRivalCommits: bob, an admin, is kicked by
// the owner alice (epoch 5). Bob kept epoch 4 (its init secret), where he
// was an admin, so every commit he signs for epoch 5 on parent 4 passes
// State.Apply's authority check (admin in Prev) and CheckSuccessor, then
// loses to alice's ousting commit: outcome Lost. applyCommitLocked stores
// every Lost commit in room_commits (not only the best rival), and the
// validator ACCEPTs it, so gossip forwards it to every member. A removed
// admin thus makes every member store, and forward, an unbounded number
// of commits (each up to 512 KiB) for as long as the room stays at the
// epoch that removed him (24 h with the default re-key).
//
// Control: alice's commit stays current everywhere (the fork rule holds).
func TestReview2KickedAdminFloodsRivalCommits(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 3)
	alice, bob, carol := ms[0], ms[1], ms[2]
	privateRoom(t, ms)
	if _, err := alice.Rooms().Promote(ctx, "team", bob.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		m.waitEpoch(t, "team", 4)
	}
	waitMeshed(t, ms, "team")
	snap, err := bob.Rooms().EpochSnapshot("team")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := bob.Rooms().RoomID("team")
	topicName := bob.roomTopic(t, "team")
	if _, err := alice.Rooms().Kick(ctx, "team", bob.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	carol.waitEpoch(t, "team", 5)
	peertest.Eventually(t, 30*time.Second, "bob removed", func() bool {
		info, err := bob.Rooms().Info(ctx, "team")
		return err == nil && info.State == "removed"
	})
	_, want, _ := alice.Rooms().GroupEpoch("team")
	beforeA, beforeC := countCommits(t, alice), countCommits(t, carol)

	// Bob, removed, is back on the topic with his own pubsub.
	// His node closes its own handle of the topic in the background once
	// it forgets the room: join it once that is done.
	var topic *pubsub.Topic
	peertest.Eventually(t, 10*time.Second, "bob's node to let go of the topic", func() bool {
		var err error
		topic, err = bob.Rooms().PubSub().Join(topicName)
		return err == nil
	})
	peertest.Eventually(t, 30*time.Second, "bob's topic peers", func() bool { return len(topic.ListPeers()) > 0 })
	time.Sleep(2 * time.Second) // mesh
	key := bob.Host().Peerstore().PrivKey(bob.Host().ID())
	const k = 300
	for i := 0; i < k; i++ {
		c, _, err := group.NewCommit(snap, key, group.Proposal{}, time.Now().Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := proto.Marshal(&wirepb.RoomEnvelope{Version: group.Version, RoomId: id[:], Body: &wirepb.RoomEnvelope_Commit{Commit: c.Proto()}})
		if err := topic.Publish(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	for _, m := range []*member{alice, carol} {
		_, h, err := m.Rooms().GroupEpoch("team")
		if err != nil || h != want {
			t.Fatalf("control: %s left alice's commit: %x, %v", m.Host().ID(), h[:4], err)
		}
	}
	gotA, gotC := countCommits(t, alice)-beforeA, countCommits(t, carol)-beforeC
	t.Logf("rival commits by the kicked admin stored: alice %d, carol %d (of %d published)", gotA, gotC, k)
	if gotA > 1 || gotC > 1 {
		t.Errorf("members stored %d and %d commits of a removed admin; want at most one (the best rival)", gotA, gotC)
	}

	// The flood also crowds the real chain out of /parley/roomsync/2: the
	// responder serves at most 256 commits after commits_after, ordered by
	// (epoch, hash), so a member at epoch 4 asking for what follows never
	// gets epoch 6.
	if _, err := alice.Rooms().Promote(ctx, "team", carol.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	carol.waitEpoch(t, "team", 6)
	got := fetchCommits(t, carol, alice, id[:], 4)
	var top uint64
	for _, b := range got {
		if c, err := group.ParseCommit(b); err == nil && c.Epoch > top {
			top = c.Epoch
		}
	}
	t.Logf("a fetch of the commits after epoch 4 returns %d commits, the newest of epoch %d", len(got), top)
	if top < 6 {
		t.Errorf("a lagging member cannot fetch epoch 6 any more: the removed admin's rivals fill the response")
	}
}

// fetchCommits asks p, as m (a member of p's roster), for the commits after
// epoch after, commits only (no proof).
func fetchCommits(t *testing.T, m, p *member, id []byte, after uint64) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := m.Host().NewStream(ctx, p.Host().ID(), room.ProtocolRoomSync2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	req := &wirepb.RoomFetchRequest{Version: group.Version, RoomId: id, CommitsAfter: after, AfterHlc: ^uint64(0), Proof: make([]byte, 32)}
	if err := wire.WriteFrame(st, req); err != nil {
		t.Fatal(err)
	}
	st.CloseWrite()
	resp := new(wirepb.RoomFetchResponse)
	if err := wire.ReadFrame(st, 1<<20, resp); err != nil {
		t.Fatal(err)
	}
	if resp.Error != "" {
		t.Fatalf("fetch: %s", resp.Error)
	}
	return resp.Commits
}
