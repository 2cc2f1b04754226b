package room_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// trim does what a user node's connection manager does to the
// connections past their grace period once it holds too many: it closes
// those of every peer nothing protects. Gossipsub protects the peers of
// a room's mesh too, but an admin meshes with at most 12 of its joiners
// (at N=100, 99 join through one link): trim drops the mesh's protections
// first, so that only the join's own remain.
func trim(m *member) {
	h, ps := m.Host(), m.Rooms().PubSub()
	cm := h.ConnManager()
	for _, topic := range ps.GetTopics() {
		for _, p := range h.Network().Peers() {
			cm.Unprotect(p, "pubsub:"+topic)
		}
	}
	for _, p := range h.Network().Peers() {
		if !cm.IsProtected(p, "") {
			h.Network().ClosePeer(p)
		}
	}
}

func connected(a, b *member) bool {
	return a.Host().Network().Connectedness(b.Host().ID()) == network.Connected
}

// TestPendingJoinSurvivesTrim: while bob waits to join (alice admitted
// him, but the member who must confirm alice's chain, carol, is away),
// both alice and bob keep the connection between them when their
// connection managers trim; the control is dave, connected to both and in
// no room, whose connections the same trims close. Once bob is in, he
// lets the connection go at once, and alice a few seconds after his last
// request.
func TestPendingJoinSurvivesTrim(t *testing.T) {
	room.SetTestConfig(t, func(_ host.Host, c *room.Config) { c.JoinRetry = 300 * time.Millisecond })
	ctx := context.Background()
	ms := start(t, 4)
	alice, carol, bob, dave := ms[0], ms[1], ms[2], ms[3]
	if _, err := alice.Rooms().Create(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	l, err := alice.Rooms().Link(ctx, "team", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := carol.Rooms().JoinLink(ctx, l.Link); err != nil || res.Status != "joined" {
		t.Fatalf("carol's join: %+v, %v", res, err)
	}
	// A link issued with carol in the room: alice's chain alone no
	// longer admits its joiner.
	if l, err = alice.Rooms().Link(ctx, "team", 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	carolHome := carol.Home
	carol.Stop(t)

	// Bob asks; alice admits him (her roster lists him) but his join
	// waits for a member other than alice to confirm the chain.
	jctx, cancel := context.WithTimeout(ctx, time.Second)
	res, err := bob.Rooms().JoinLink(jctx, l.Link)
	cancel()
	if err != nil || res.Status != "waiting" {
		t.Fatalf("bob's join: %+v, %v; want waiting", res, err)
	}
	alice.waitFor(t, "alice's commit adding bob", func(apitype.Event) bool {
		info, err := alice.Rooms().Info(ctx, "team")
		return err == nil && len(info.Members) == 3
	})
	for _, m := range []*member{alice, bob} {
		if err := m.Host().Connect(ctx, dave.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	if !connected(alice, bob) {
		t.Fatal("bob is not connected to alice while he waits")
	}
	trim(alice)
	trim(bob)
	if connected(alice, dave) || connected(bob, dave) {
		t.Fatal("control: trimming left dave connected")
	}
	if !connected(alice, bob) || !connected(bob, alice) {
		t.Fatal("trimming closed the connection of a pending join")
	}
	if info, _ := bob.Rooms().Info(ctx, "team"); info.State == "joined" {
		t.Fatal("bob joined without carol")
	}

	// Carol is back: bob's join completes, and the connection is trimmed
	// like any other.
	carol = &member{Running: peertest.Start(t, peertest.Config(t, carolHome, alice.Addr()), nil)}
	ev, cancelEv := bob.Chat().Subscribe()
	defer cancelEv()
	bob.events = ev
	bob.waitFor(t, "bob's join", func(apitype.Event) bool {
		info, err := bob.Rooms().Info(ctx, "team")
		return err == nil && (info.State == "" || info.State == "joined") && len(info.Members) == 3
	})
	peertest.Eventually(t, 30*time.Second, "alice and bob to let the connection go", func() bool {
		trim(bob)
		trim(alice)
		return !connected(alice, bob) && !connected(bob, alice)
	})
}
