package room_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// TestJoinLinkUses: a link for two joins admits bob and carol (the
// control: each answer is "joined") and not dave, who is told the link is
// refused; a revoked link admits nobody; the admin's list counts the uses.
func TestJoinLinkUses(t *testing.T) {
	room.SetTestConfig(t, func(_ host.Host, c *room.Config) { c.JoinRetry = 300 * time.Millisecond })
	ctx := context.Background()
	ms := start(t, 5)
	alice, bob, carol, dave, erin := ms[0], ms[1], ms[2], ms[3], ms[4]
	if _, err := alice.Rooms().Create(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	two, err := alice.Rooms().Link(ctx, "team", 2, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := alice.Rooms().Link(ctx, "team", 5, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Rooms().Revoke(ctx, "team", revoked.Token); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{bob, carol} {
		res, err := m.Rooms().JoinLink(ctx, two.Link)
		if err != nil || res.Status != "joined" || res.Room.Name != "#team" {
			t.Fatalf("join: %+v, %v", res, err)
		}
	}
	for _, m := range []*member{dave, erin} {
		link := two.Link
		if m == erin {
			link = revoked.Link
		}
		res, err := m.Rooms().JoinLink(ctx, link)
		if !errors.Is(err, room.ErrLinkRefused) {
			t.Fatalf("join with a used-up or revoked link: %+v, %v; want ErrLinkRefused", res, err)
		}
		if rooms, _ := m.Rooms().Rooms(ctx); len(rooms) != 0 {
			t.Errorf("rooms of a refused joiner: %+v", rooms)
		}
	}
	links, err := alice.Rooms().Links(ctx, "team")
	if err != nil || len(links) != 2 {
		t.Fatalf("links: %+v, %v", links, err)
	}
	for _, l := range links {
		switch l.Token {
		case two.Token:
			if l.Used != 2 || l.Uses != 2 {
				t.Errorf("the two-use link: %+v", l)
			}
		case revoked.Token:
			if !l.Revoked || l.Used != 0 {
				t.Errorf("the revoked link: %+v", l)
			}
		}
	}
	info, err := alice.Rooms().Info(ctx, "team")
	if err != nil || len(info.Members) != 3 {
		t.Fatalf("alice's room: %+v, %v", info, err)
	}
	// A link made at a later epoch (its secret no longer derives the room
	// id) admits one, then is refused.
	later, err := alice.Rooms().Link(ctx, "team", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := dave.Rooms().JoinLink(ctx, later.Link); err != nil || res.Status != "joined" {
		t.Fatalf("join by a link of epoch %d: %+v, %v", info.Epoch, res, err)
	}
	if _, err := erin.Rooms().JoinLink(ctx, later.Link); !errors.Is(err, room.ErrLinkRefused) {
		t.Fatalf("a used-up link of a later epoch: %v, want ErrLinkRefused", err)
	}
	send(t, carol, "#team", "carol joined by link")
	bob.waitTexts(t, "#team", "carol joined by link")
}

// TestJoinLinkAdminOffline: bob joins by link while the admin is offline:
// the answer is "waiting" (never an error), the join survives bob's
// restart, and completes once the admin is back.
func TestJoinLinkAdminOffline(t *testing.T) {
	room.SetTestConfig(t, func(_ host.Host, c *room.Config) { c.JoinRetry = 300 * time.Millisecond })
	ctx := context.Background()
	ms := start(t, 3)
	boot, alice, bob := ms[0], ms[1], ms[2]
	if _, err := alice.Rooms().Create(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	l, err := alice.Rooms().Link(ctx, "team", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	aliceHome := alice.Home
	alice.Stop(t)
	res, err := bob.Rooms().JoinLink(ctx, l.Link)
	if err != nil || res.Status != "waiting" || res.Detail == "" {
		t.Fatalf("join while the admin is offline: %+v, %v", res, err)
	}
	bobHome := bob.Home
	bob.Stop(t)
	bob = restart(t, bobHome, boot.Addr())
	alice = restart(t, aliceHome, boot.Addr())
	bob.waitEpoch(t, "team", 2)
	rooms, err := bob.Rooms().Rooms(ctx)
	if err != nil || len(rooms) != 1 || rooms[0].State != "joined" {
		t.Fatalf("bob's rooms after the admin came back: %+v, %v", rooms, err)
	}
	send(t, bob, "#team", "bob is in")
	alice.waitTexts(t, "#team", "bob is in")
}

// TestMembershipHistory: joins and removals are lines in every member's
// history; the removed member is told, keeps its history read-only, and
// cannot send.
func TestMembershipHistory(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 3)
	privateRoom(t, ms)
	alice, bob, carol := ms[0], ms[1], ms[2]
	send(t, carol, "#team", "carol before")
	bob.waitTexts(t, "#team", "carol before")
	if _, err := alice.Rooms().Kick(ctx, "#team", "m2"); err != nil {
		t.Fatal(err)
	}
	bob.waitEpoch(t, "team", 4)
	peertest.Eventually(t, 30*time.Second, "carol told she was removed", func() bool {
		rooms, _ := carol.Rooms().Rooms(ctx)
		return len(rooms) == 1 && rooms[0].State == "removed"
	})
	rooms, _ := carol.Rooms().Rooms(ctx)
	if !strings.Contains(rooms[0].Detail, "removed by") {
		t.Errorf("carol's detail: %q", rooms[0].Detail)
	}
	if _, err := carol.Rooms().Send(ctx, "#team", "carol after"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("carol sends after her removal: %v", err)
	}
	log, err := carol.Chat().Log(ctx, "#team", 0)
	if err != nil {
		t.Fatalf("carol's history: %v", err)
	}
	if !hasLine(log, "carol before") || !hasLine(log, "you were removed by") {
		t.Errorf("carol's history: %+v", log)
	}
	for _, m := range []*member{alice, bob} {
		log, err := m.Chat().Log(ctx, "#team", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !hasLine(log, "is no longer a member") || !hasLine(log, "joined (added by") {
			t.Errorf("%s's history lacks the membership lines: %+v", m.Host().ID().ShortString(), log)
		}
	}
}

func hasLine(log []apitype.Message, text string) bool {
	for _, m := range log {
		if strings.Contains(m.Text, text) {
			return true
		}
	}
	return false
}

// TestPromoteAndKickedAdminsLinks: the owner promotes bob to admin; bob's
// link admits dave (the control); once bob is kicked, his other link
// admits nobody: carol keeps waiting.
func TestPromoteAndKickedAdminsLinks(t *testing.T) {
	room.SetTestConfig(t, func(_ host.Host, c *room.Config) { c.JoinRetry = 300 * time.Millisecond })
	ctx := context.Background()
	ms := start(t, 4)
	alice, bob, carol, dave := ms[0], ms[1], ms[2], ms[3]
	privateRoom(t, ms[:2])
	info, err := alice.Rooms().Promote(ctx, "#team", "m1")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range info.Members {
		if m.PeerID == bob.Host().ID().String() && m.Role != "admin" {
			t.Fatalf("bob is %s after the promotion", m.Role)
		}
	}
	if _, err := alice.Rooms().Promote(ctx, "#team", "m1"); err == nil {
		t.Error("promoting an admin again succeeded")
	}
	bob.waitEpoch(t, "team", 3)
	if info, _ := bob.Rooms().Info(ctx, "#team"); info.Role != "admin" {
		t.Fatalf("bob's role: %q", info.Role)
	}
	first, err := bob.Rooms().Link(ctx, "#team", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := dave.Rooms().JoinLink(ctx, first.Link); err != nil || res.Status != "joined" {
		t.Fatalf("control: dave joins by bob's link: %+v, %v", res, err)
	}
	alice.waitEpoch(t, "team", 4)
	second, err := bob.Rooms().Link(ctx, "#team", 5, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Rooms().Kick(ctx, "#team", "m1"); err != nil {
		t.Fatal(err)
	}
	peertest.Eventually(t, 30*time.Second, "bob removed", func() bool {
		rooms, _ := bob.Rooms().Rooms(ctx)
		return len(rooms) == 1 && rooms[0].State == "removed"
	})
	// The kicked admin's node answers that it holds no such token any
	// more; any other member's node would refuse the join too (the token's
	// issuer is no admin in the current commit).
	res, err := carol.Rooms().JoinLink(ctx, second.Link)
	if !errors.Is(err, room.ErrLinkRefused) {
		t.Fatalf("carol with a kicked admin's link: %+v, %v; want ErrLinkRefused", res, err)
	}
	if info, _ := alice.Rooms().Info(ctx, "#team"); len(info.Members) != 2 {
		t.Errorf("alice's roster: %+v", info.Members)
	}
}

// TestScheduledRekey: with a re-key age of two seconds, the owner's node
// gives the room fresh epochs by itself; members keep talking, and the
// history says the keys were rotated.
func TestScheduledRekey(t *testing.T) {
	room.SetTestConfig(t, func(_ host.Host, c *room.Config) { c.RekeyEvery = 2 * time.Second })
	ctx := context.Background()
	ms := start(t, 2)
	privateRoom(t, ms)
	alice, bob := ms[0], ms[1]
	info, err := bob.Rooms().Info(ctx, "#team")
	if err != nil {
		t.Fatal(err)
	}
	bob.waitEpoch(t, "team", info.Epoch+1)
	send(t, bob, "#team", "after a re-key")
	alice.waitTexts(t, "#team", "after a re-key")
	log, err := bob.Chat().Log(ctx, "#team", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(log, "room keys rotated") {
		t.Errorf("bob's history has no re-key line: %+v", log)
	}
}

// TestKickAndLeaveWhileOffline: carol is kicked while her node is down and
// learns it when it starts again; bob leaves while the owner's node is
// down, and the owner removes him from the roster when it is back.
func TestKickAndLeaveWhileOffline(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 4)
	boot := ms[0]
	privateRoom(t, ms[1:])
	alice, bob, carol := ms[1], ms[2], ms[3]

	carolHome := carol.Home
	carol.Stop(t)
	if _, err := alice.Rooms().Kick(ctx, "#team", "m2"); err != nil {
		t.Fatal(err)
	}
	bob.waitEpoch(t, "team", 4)
	carol = restart(t, carolHome, boot.Addr())
	peertest.Eventually(t, 60*time.Second, "carol to learn she was removed", func() bool {
		rooms, _ := carol.Rooms().Rooms(ctx)
		return len(rooms) == 1 && rooms[0].State == "removed"
	})

	aliceHome := alice.Home
	alice.Stop(t)
	if err := bob.Rooms().Leave(ctx, "#team"); err != nil {
		t.Fatalf("leave while the owner is offline: %v", err)
	}
	if rooms, _ := bob.Rooms().Rooms(ctx); len(rooms) != 1 || rooms[0].State != "left" {
		t.Fatalf("bob's rooms after leaving: %+v", rooms)
	}
	alice = restart(t, aliceHome, boot.Addr())
	alice.waitEpoch(t, "team", 5)
	info, err := alice.Rooms().Info(ctx, "#team")
	if err != nil || len(info.Members) != 1 {
		t.Fatalf("alice's room after bob left: %+v, %v", info, err)
	}
}

// TestJoinLinkBatch: four peers join by one four-use link at once; all are
// admitted, in fewer roster changes than joiners when their requests
// arrive together (logged: timing decides the batches).
func TestJoinLinkBatch(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 5)
	alice := ms[0]
	if _, err := alice.Rooms().Create(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	l, err := alice.Rooms().Link(ctx, "team", 4, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for _, m := range ms[1:] {
		go func() {
			res, err := m.Rooms().JoinLink(ctx, l.Link)
			if err == nil && res.Status != "joined" {
				err = fmt.Errorf("join: %+v", res)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	info, err := alice.Rooms().Info(ctx, "team")
	if err != nil || len(info.Members) != 5 {
		t.Fatalf("alice's room: %+v, %v", info, err)
	}
	t.Logf("4 joiners admitted in %d roster changes", info.Epoch-1)
}

// TestWelcomeChainPaged: a joiner checks its welcome against the chain
// from its token's commit, fetched from a member; a room that grew by
// many joins has a chain longer than one response (512 KiB: about 60
// joins of a 100-member room), so the joiner fetches it page by page.
// Here a page holds one commit: dave's link is of epoch 1 and his welcome
// comes at epoch 4, after bob's and carol's joins; he joins (fails
// without paging: the first page alone does not reach the welcome's
// parent, and dave waits for ever). Control: bob's and carol's joins,
// through one page each, in the same room.
func TestWelcomeChainPaged(t *testing.T) {
	room.SetChainPageBytes(t, 1)
	room.SetTestConfig(t, func(_ host.Host, c *room.Config) { c.JoinRetry = 300 * time.Millisecond })
	ctx := context.Background()
	ms := start(t, 4)
	alice, bob, carol, dave := ms[0], ms[1], ms[2], ms[3]
	if _, err := alice.Rooms().Create(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	old, err := alice.Rooms().Link(ctx, "team", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{bob, carol} {
		l, err := alice.Rooms().Link(ctx, "team", 1, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := m.Rooms().JoinLink(ctx, l.Link); err != nil || res.Status != "joined" {
			t.Fatalf("control: join through a chain of one page: %+v, %v", res, err)
		}
	}
	res, err := dave.Rooms().JoinLink(ctx, old.Link)
	if err != nil || res.Status != "joined" {
		t.Fatalf("join through a chain of three pages: %+v, %v", res, err)
	}
	if res.Room.Epoch < 4 {
		t.Errorf("dave's first epoch %d, want the one after carol's join (4)", res.Room.Epoch)
	}
	send(t, dave, "#team", "dave read the whole chain")
	bob.waitTexts(t, "#team", "dave read the whole chain")
}
