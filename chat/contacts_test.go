package chat_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// stranger starts a node that knows target (it added target as "target")
// but that target has never heard of.
func stranger(t *testing.T, target *peertest.Running) *peertest.Running {
	t.Helper()
	s := peertest.Start(t, peertest.Config(t, peertest.Home(t), target.Addr()), nil)
	befriend(t, s, target, "target")
	return s
}

// relationRows counts what bob's database holds about p.
func relationRows(t *testing.T, bob *peertest.Running, p peer.ID) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"contacts", "requests", "e2e_channels", "seen_frames", "blocked"} {
		var n int
		if err := bob.DB().QueryRow(context.Background(), nil, "SELECT count(*) FROM "+table+" WHERE peer_id = ?", p.String()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

// TestFailedFramesCreateNothing: frames from a stranger that fail to
// authenticate (a forged prekey message, a message for no session) leave
// no contact, request, session or frame record, and give the stranger
// nothing a contact has. Positive control: a stranger whose first message
// authenticates becomes a message request, readable, still not a contact.
func TestFailedFramesCreateNothing(t *testing.T) {
	alice, bob := pair(t)
	evil := attacker(t, bob)
	acks, err := exchange(t, evil, bob.Host().ID(), []*wirepb.DMMessage{
		{Id: frameID(), Envelope: garbage(2, 400)},
		{Id: frameID(), Envelope: garbage(1, 120)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acks {
		if a.GetStatus() != wirepb.AckStatus_ACK_STATUS_REJECTED {
			t.Fatalf("forged frame acked %v", a)
		}
	}
	ctx := context.Background()
	for table, n := range relationRows(t, bob, evil.ID()) {
		if n != 0 {
			t.Errorf("%d %s rows for a peer whose frames all failed", n, table)
		}
	}
	if bob.Chat().IsContact(evil.ID()) || bob.Chat().ContactName(ctx, evil.ID()) != "" {
		t.Error("a peer whose frames all failed is a contact")
	}
	if rs, _ := bob.Chat().Requests(ctx); len(rs) != 0 {
		t.Errorf("requests after forged frames: %+v", rs)
	}

	// Positive control.
	carol := stranger(t, bob)
	bev, cancel := bob.Chat().Subscribe()
	defer cancel()
	m := send(t, carol, "target", "hello, we have not met")
	ev := waitFor(t, bev, "carol's request", func(ev apitype.Event) bool { return ev.Type == "request" })
	if ev.PeerID != carol.Host().ID().String() {
		t.Fatalf("request event from %s", ev.PeerID)
	}
	ev = waitFor(t, bev, "carol's message", received(m.ID))
	if !ev.Request || ev.Message.FromName != "" {
		t.Fatalf("request message event = %+v", ev)
	}
	rows := relationRows(t, bob, carol.Host().ID())
	if rows["requests"] != 1 || rows["contacts"] != 0 {
		t.Fatalf("rows for an authenticated stranger: %v", rows)
	}
	if bob.Chat().IsContact(carol.Host().ID()) || bob.Chat().ContactName(ctx, carol.Host().ID()) != "" {
		t.Fatal("a message request has a contact's privileges")
	}
	if !bob.Chat().IsContact(alice.Host().ID()) {
		t.Fatal("IsContact(alice) = false")
	}
	ms, err := bob.Chat().Log(ctx, carol.Host().ID().String(), 0)
	if err != nil || len(ms) != 1 || ms[0].Text != "hello, we have not met" {
		t.Fatalf("request not readable: %v %+v", err, ms)
	}
	cs, _ := bob.Chat().Contacts(ctx)
	if len(cs) != 1 || cs[0].Name != "alice" {
		t.Fatalf("contacts = %+v", cs)
	}
}

// TestMessageRequestLifecycle: a request cannot be written to, is
// accepted under a chosen name, renamed, muted, removed (a later message
// is a request again), and another is declined (its messages go).
func TestMessageRequestLifecycle(t *testing.T) {
	_, bob := pair(t)
	carol := stranger(t, bob)
	ctx := context.Background()
	cid := carol.Host().ID()
	bev, cancel := bob.Chat().Subscribe()
	defer cancel()
	m := send(t, carol, "target", "hi bob")
	waitFor(t, bev, "carol's message", received(m.ID))

	if _, err := bob.Chat().Send(ctx, cid.String(), "who are you?"); !errors.Is(err, chat.ErrUnknownContact) {
		t.Fatalf("send to a request: %v", err)
	}
	rs, err := bob.Chat().Requests(ctx)
	if err != nil || len(rs) != 1 || rs[0].PeerID != cid.String() || rs[0].Messages != 1 || rs[0].Last != "hi bob" {
		t.Fatalf("requests = %+v, %v", rs, err)
	}
	cev, cancel2 := carol.Chat().Subscribe()
	defer cancel2()
	if _, err := bob.Chat().Accept(ctx, rs[0].Handle, "carol"); err != nil {
		t.Fatal(err)
	}
	if !bob.Chat().IsContact(cid) {
		t.Fatal("accepted request is not a contact")
	}
	if rs, _ := bob.Chat().Requests(ctx); len(rs) != 0 {
		t.Fatalf("requests after accept: %+v", rs)
	}
	// The receipt withheld from the request arrives once it is accepted.
	waitFor(t, cev, "the receipt after accept", delivered(m.ID))
	reply := send(t, bob, "carol", "nice to meet you")
	waitFor(t, cev, "bob's reply", received(reply.ID))

	if _, err := bob.Chat().RenameContact(ctx, "carol", "caroline"); err != nil {
		t.Fatal(err)
	}
	if c, err := bob.Chat().Resolve(ctx, "caroline"); err != nil || c.ID != cid {
		t.Fatalf("resolve caroline: %v %v", c.ID, err)
	}
	if _, err := bob.Chat().Resolve(ctx, "carol"); !errors.Is(err, chat.ErrUnknownContact) {
		t.Fatalf("old name still resolves: %v", err)
	}
	if _, err := bob.Chat().Mute(ctx, "caroline", true); err != nil {
		t.Fatal(err)
	}
	m = send(t, carol, "target", "muted?")
	if ev := waitFor(t, bev, "muted message", received(m.ID)); !ev.Muted || ev.Request {
		t.Fatalf("muted message event = %+v", ev)
	}

	if _, err := bob.Chat().RemoveContact(ctx, "caroline"); err != nil {
		t.Fatal(err)
	}
	if bob.Chat().IsContact(cid) {
		t.Fatal("removed contact is still one")
	}
	// carol's session with bob is gone on bob's side: her next message
	// restarts it and arrives as a request again.
	m = send(t, carol, "target", "still there?")
	waitFor(t, bev, "a request again", func(ev apitype.Event) bool { return ev.Type == "request" && ev.PeerID == cid.String() })
	waitFor(t, bev, "the message after removal", received(m.ID))

	if _, err := bob.Chat().Decline(ctx, cid.String()); err != nil {
		t.Fatal(err)
	}
	if rs, _ := bob.Chat().Requests(ctx); len(rs) != 0 {
		t.Fatalf("requests after decline: %+v", rs)
	}
	if _, err := bob.Chat().Log(ctx, cid.String(), 0); !errors.Is(err, chat.ErrUnknownContact) {
		t.Fatalf("declined request still readable: %v", err)
	}
}

// TestBlockedPeerIsRefusedBeforeCrypto: after block, a peer's dm stream
// is reset before any frame is read (no ack at all), its messages are not
// stored, and unblocking lets it write again (as a request). Positive
// control: the same frame before the block gets a REJECTED ack, and alice
// is served throughout.
func TestBlockedPeerIsRefusedBeforeCrypto(t *testing.T) {
	alice, bob := pair(t)
	ctx := context.Background()
	evil := attacker(t, bob)
	frame := func() []*wirepb.DMMessage {
		return []*wirepb.DMMessage{{Id: frameID(), Envelope: garbage(1, 120)}}
	}
	acks, err := exchange(t, evil, bob.Host().ID(), frame())
	if err != nil || len(acks) != 1 || acks[0].GetStatus() != wirepb.AckStatus_ACK_STATUS_REJECTED {
		t.Fatalf("before block: %v %v", acks, err)
	}
	if _, err := bob.Chat().Block(ctx, evil.ID().String()); err != nil {
		t.Fatal(err)
	}
	if err := evil.Connect(ctx, bob.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	acks, err = exchange(t, evil, bob.Host().ID(), frame())
	if err == nil || len(acks) != 0 {
		t.Fatalf("blocked peer got %d acks (err %v)", len(acks), err)
	}

	// A contact blocked: its messages are refused; unblocked, it writes
	// again as a request (a block ends the contact).
	if _, err := bob.Chat().Block(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if bob.Chat().IsContact(alice.Host().ID()) || !bob.Chat().IsBlocked(alice.Host().ID()) {
		t.Fatal("blocked alice is still a contact")
	}
	m := send(t, alice, "bob", "let me in")
	if ms, _ := bob.Chat().Log(ctx, alice.Host().ID().String(), 0); len(ms) != 0 {
		t.Fatalf("blocked peer's message stored: %+v", ms)
	}
	bev, cancel := bob.Chat().Subscribe()
	defer cancel()
	if _, err := bob.Chat().Unblock(ctx, alice.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	alice.Chat().Kick(bob.Host().ID())
	waitFor(t, bev, "alice's message after unblock", received(m.ID))
	if bob.Chat().IsContact(alice.Host().ID()) {
		t.Fatal("an unblocked peer became a contact by writing")
	}
}

// TestNamesNeverShadowPeerIDs: a name that is a peer ID, a link that
// suggests another peer's handle or a name already taken are refused
// (the last with a free suggestion); peer IDs resolve to their own peer.
// Positive control: a free suggested name is taken as is.
func TestNamesNeverShadowPeerIDs(t *testing.T) {
	alice, bob := pair(t)
	ctx := context.Background()
	mallory := peertest.Start(t, peertest.Config(t, peertest.Home(t), alice.Addr()), nil)
	bobID := bob.Host().ID()
	mid := mallory.Host().ID().String()

	if _, err := alice.Chat().AddContact(ctx, mid, bobID.String()); err == nil || !strings.Contains(err.Error(), "peer ID") {
		t.Fatalf("a peer ID as a name: %v", err)
	}
	handle := "peer-" + bobID.String()[len(bobID.String())-6:]
	if err := mallory.Chat().SetName(ctx, handle); err != nil {
		t.Fatal(err)
	}
	inv, err := mallory.Chat().Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Chat().AddContact(ctx, inv.Link, ""); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("a link squatting bob's handle: %v", err)
	}
	if err := mallory.Chat().SetName(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	inv, _ = mallory.Chat().Invite(ctx)
	if _, err := alice.Chat().AddContact(ctx, inv.Link, ""); !errors.Is(err, chat.ErrNameTaken) || !strings.Contains(err.Error(), "--name bob-2") {
		t.Fatalf("a link suggesting a taken name: %v", err)
	}
	if _, err := alice.Chat().AddContact(ctx, mid, "\x1b[2Jbob"); err == nil {
		t.Fatal("a name with an escape sequence was accepted")
	}
	for _, q := range []string{bobID.String(), "bob"} {
		if c, err := alice.Chat().Resolve(ctx, q); err != nil || c.ID != bobID {
			t.Fatalf("resolve %s: %v %v", q, c.ID, err)
		}
	}
	// Positive control.
	if err := mallory.Chat().SetName(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	inv, _ = mallory.Chat().Invite(ctx)
	c, err := alice.Chat().AddContact(ctx, inv.Link, "")
	if err != nil || c.Name != "mallory" {
		t.Fatalf("free suggested name: %+v %v", c, err)
	}
	// The link's name never renames an existing contact.
	mallory.Chat().SetName(ctx, "eve")
	inv, _ = mallory.Chat().Invite(ctx)
	if c, err := alice.Chat().AddContact(ctx, inv.Link, ""); err != nil || c.Name != "mallory" {
		t.Fatalf("re-adding renamed the contact: %+v %v", c, err)
	}
}

// TestForgedFramesStayWithinBudget: a contact with a real session sends a
// 256-frame batch of forged frames. Only the peer's failure budget of them
// reach the crypto; the rest are answered RETRY_LATER without it, the
// stream is closed, a new stream is refused until the budget refills, and
// alice is served meanwhile. Positive control: the peer's honest frame
// before the flood is accepted.
func TestForgedFramesStayWithinBudget(t *testing.T) {
	alice, bob := pair(t)
	ctx := context.Background()
	mal := newRawPeer(t, bob)
	if _, err := bob.Chat().AddContact(ctx, mal.ID().String(), "mal"); err != nil {
		t.Fatal(err)
	}
	acks, err := exchange(t, mal, mal.to, []*wirepb.DMMessage{mal.honest(t, "hello")})
	if err != nil || acks[0].GetStatus() != wirepb.AckStatus_ACK_STATUS_OK {
		t.Fatalf("honest frame: %v %v", acks, err)
	}
	flood := make([]*wirepb.DMMessage, 256)
	for i := range flood {
		flood[i] = forged()
	}
	acks, err = exchange(t, mal, mal.to, flood)
	if err != nil {
		t.Fatalf("flood: %d acks, %v", len(acks), err)
	}
	rejected, later := 0, 0
	for _, a := range acks {
		switch a.GetStatus() {
		case wirepb.AckStatus_ACK_STATUS_REJECTED:
			rejected++
		case wirepb.AckStatus_ACK_STATUS_RETRY_LATER:
			later++
		}
	}
	if rejected > 20 || rejected+later != len(flood) {
		t.Fatalf("of %d forged frames, %d reached the crypto (rejected), %d were deferred", len(flood), rejected, later)
	}
	if acks, err := exchange(t, mal, mal.to, []*wirepb.DMMessage{forged()}); err == nil || len(acks) != 0 {
		t.Fatalf("a peer over budget got a new stream served: %v %v", acks, err)
	}
	aev, cancel := alice.Chat().Subscribe()
	defer cancel()
	m := send(t, alice, "bob", "are you alive?")
	waitFor(t, aev, "alice's delivery during the flood", delivered(m.ID))
}
