package room_test

import (
	"context"
	"encoding/hex"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// TestReview2StrangerFakeWelcomes: dave holds alice's link while alice is
// offline, so he asks through the topic; mallory, a stranger on the topic,
// reads his join request (key package and consent) and publishes commits
// of a room of her own making (same room id, she is its owner) that add
// dave. checkJoining starts a takeWelcome goroutine for every commit that
// names dave, before checking that its issuer is the token's: each one
// opens the HPKE secret and fetches the chain over /parley/roomsync/2 from
// the commit's members (mallory), with a 30 s budget, and CheckWelcome
// only then refuses it. The messages are IGNOREd, so mallory's score never
// drops: unbounded goroutines and streams on a joining node, for free.
//
// Control: dave never takes mallory's welcome (CheckWelcome holds).
func TestReview2StrangerFakeWelcomes(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 3)
	alice, dave, mallory := ms[0], ms[1], ms[2]
	if _, err := alice.Rooms().Create(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	l, err := alice.Rooms().Link(ctx, "team", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := wire.DecodeRoomInvitation(l.Link)
	if err != nil {
		t.Fatal(err)
	}
	alice.Stop(t)
	var rid group.RoomID
	copy(rid[:], inv.RoomId)
	topic, err := mallory.Rooms().PubSub().Join("parley/room/2/" + hex.EncodeToString(inv.RoomId))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int32
	mallory.Host().SetStreamHandler(room.ProtocolRoomSync2, func(st network.Stream) {
		fetches.Add(1)
		time.Sleep(5 * time.Second) // hold the joiner's stream
		st.Reset()
	})
	if err := dave.Host().Connect(ctx, mallory.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	go dave.Rooms().JoinLink(ctx, l.Link)

	// Dave's join request, on the topic.
	var req *wirepb.JoinRequest
	rctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	for req == nil {
		msg, err := sub.Next(rctx)
		if err != nil {
			t.Fatal("no join request on the topic: ", err)
		}
		env := new(wirepb.RoomEnvelope)
		if proto.Unmarshal(msg.Data, env) == nil && env.GetJoinRequest() != nil {
			req = env.GetJoinRequest()
		}
	}
	kp, err := group.ParseKeyPackage(req.KeyPackage)
	if err != nil {
		t.Fatal(err)
	}
	key := mallory.Host().Peerstore().PrivKey(mallory.Host().ID())
	mkp, _, err := group.NewKeyPackage(key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, e1, err := group.Create(rid, key, mkp, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// A joining node that reaches the room only through the mesh polls a
	// few topic peers for its welcome (bounded: one short request each per
	// retry); that is the baseline over a window, without fake welcomes.
	base0 := fetches.Load()
	time.Sleep(3 * time.Second)
	baseline := fetches.Load() - base0
	const n = 30
	for i := 0; i < n; i++ {
		c, _, err := group.NewCommit(e1, key, group.Proposal{Add: []group.Addition{{KeyPackage: kp, Consent: req.Consent}}}, time.Now().Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := proto.Marshal(&wirepb.RoomEnvelope{Version: group.Version, RoomId: rid[:], Body: &wirepb.RoomEnvelope_Commit{Commit: c.Proto()}})
		if err := topic.Publish(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	if info, err := dave.Rooms().Info(ctx, "team"); err == nil && info.State == "joined" {
		t.Fatalf("control: dave took a stranger's welcome: %+v", info)
	}
	got := fetches.Load() - base0 - baseline
	t.Logf("%d fake welcomes: %d fetches to the stranger in a 3 s window, against %d in the 3 s before them (polling)", n, got, baseline)
	if got > baseline+1 {
		t.Fatalf("a stranger's welcomes (issuer is not the token's) cost %d chain fetches beyond the %d of polling; want none", got-baseline, baseline)
	}
	_ = peertest.Eventually
}
