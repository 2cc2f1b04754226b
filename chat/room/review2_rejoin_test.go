package room_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/peer/peertest"
)

// TestReview2KickedMemberRejoinsWithItsLink: bob joins with a single-use
// link; carol is then refused with it (control: uses are counted); alice
// revokes the link and kicks bob. Bob asks again with the same link (a
// fresh key package, a fresh proof: it holds the join secret). The
// issuer's admit() finds a room_admitted row for (token, bob) and skips the
// revoked / expired / used-up checks ("a repeated request takes no use"),
// so bob is added back: a kick lasts until the link expires (7 days by
// default), and revoking the link does not help.
func TestReview2KickedMemberRejoinsWithItsLink(t *testing.T) {
	room.SetTestConfig(t, func(_ host.Host, c *room.Config) { c.JoinRetry = 300 * time.Millisecond })
	ctx := context.Background()
	ms := start(t, 3)
	alice, bob, carol := ms[0], ms[1], ms[2]
	if _, err := alice.Rooms().Create(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	l, err := alice.Rooms().Link(ctx, "team", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := bob.Rooms().JoinLink(ctx, l.Link); err != nil || res.Status != "joined" {
		t.Fatalf("bob joins: %+v, %v", res, err)
	}
	// Control: the single use is taken.
	if res, err := carol.Rooms().JoinLink(ctx, l.Link); !errors.Is(err, room.ErrLinkRefused) {
		t.Fatalf("carol with a used-up link: %+v, %v; want ErrLinkRefused", res, err)
	}
	if err := alice.Rooms().Revoke(ctx, "team", l.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Rooms().Kick(ctx, "team", bob.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	peertest.Eventually(t, 30*time.Second, "bob to learn he was removed", func() bool {
		info, err := bob.Rooms().Info(ctx, "team")
		return err == nil && info.State == "removed"
	})
	res, err := bob.Rooms().JoinLink(ctx, l.Link)
	if !errors.Is(err, room.ErrLinkRefused) {
		info, _ := alice.Rooms().Info(ctx, "team")
		t.Fatalf("kicked bob re-joins with the revoked, used-up link: %+v, %v (alice's room has %d members); want ErrLinkRefused", res, err, len(info.Members))
	}
}
