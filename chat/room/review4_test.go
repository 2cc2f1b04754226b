package room_test

// Review of "chat/room: commits also travel 1:1, and so through mailboxes,
// to offline contacts" (deliver.go). Each attack has a control in the same
// setup.

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// forgeAt is a commit of the given epoch and parent, signed by key, with
// base's roster, a lone REKEY change and random sealed secrets and tag:
// valid on its own (sizes, fields, signature), placeable nowhere.
func forgeAt(t *testing.T, key crypto.PrivKey, base *group.Commit, epoch uint64, parent []byte) *wirepb.SignedCommit {
	t.Helper()
	issuer, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var body wirepb.CommitBody
	if err := proto.Unmarshal(base.Proto().Body, &body); err != nil {
		t.Fatal(err)
	}
	body.Epoch = epoch
	body.Parent = parent
	body.Issuer = []byte(issuer)
	body.IssuedAtMs = time.Now().UnixMilli()
	for _, m := range body.Members {
		m.Consent = nil
	}
	body.Changes = []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_REKEY, Actor: []byte(issuer)}}
	return signForged(t, key, &body)
}

// deliver hands sc to `to` inside from's 1:1 session, as Payload.room_commit.
func deliver(t *testing.T, from, to *member, id group.RoomID, sc *wirepb.SignedCommit) {
	t.Helper()
	p := &wirepb.Payload{Body: &wirepb.Payload_RoomCommit{RoomCommit: &wirepb.RoomCommitDelivery{RoomId: id[:], Commit: sc}}}
	if err := from.Chat().SendPayload(context.Background(), nil, to.Host().ID(), p); err != nil {
		t.Fatal(err)
	}
}

// inboxDrained waits until m's room inbox is empty.
func inboxDrained(t *testing.T, m *member) {
	t.Helper()
	peertest.Eventually(t, 60*time.Second, "the room inbox drained", func() bool {
		rows, err := m.Rooms().StoredRows(context.Background())
		return err == nil && rows["room_inbox"] == 0
	})
}

// forkLines counts the fork alerts in m's history of #team.
func forkLines(t *testing.T, m *member) int {
	t.Helper()
	log, err := m.Chat().Log(context.Background(), "#team", 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, msg := range log {
		if strings.Contains(msg.Text, "the room forked") {
			n++
		}
	}
	return n
}

// kickedAdmin sets up alice (owner), bob (member) and carol, an admin that
// alice then kicks (epoch 5). bob and carol are contacts both ways, so
// carol keeps a 1:1 session with bob. bob's state: cur = the kick (5),
// prev = 4, where carol is an admin: every commit carol signs passes
// State.Apply's authority check (admin in Prev) until the next commit.
func kickedAdmin(t *testing.T) (alice, bob, carol *member, snap *group.Epoch, id group.RoomID) {
	t.Helper()
	ctx := context.Background()
	ms := start(t, 3)
	alice, bob, carol = ms[0], ms[1], ms[2]
	privateRoom(t, ms)
	befriend(t, carol, bob, "bob")
	befriend(t, bob, carol, "carol")
	if _, err := alice.Rooms().Promote(ctx, "team", carol.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		m.waitEpoch(t, "team", 4)
	}
	waitMeshed(t, ms, "team")
	snap = snapshot(t, carol, "team")
	id = roomID(t, alice, "#team")
	if _, err := alice.Rooms().Kick(ctx, "team", carol.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	bob.waitEpoch(t, "team", 5)
	peertest.Eventually(t, 30*time.Second, "carol removed", func() bool {
		info, err := carol.Rooms().Info(ctx, "team")
		return err == nil && info.State == "removed"
	})
	return alice, bob, carol, snap, id
}

// TestReview4DeliveredCommitsSkipCommitRate: the topic validator
// (checkCommit) looks at a commit that is not the successor of our current
// one only within the author's commit budget (10 at once, one per 6 s):
// such commits cost a signature check, may raise a fork alert or start a
// fetch from members. applyDelivered applies no budget at all. carol, an
// admin kicked by alice (bob's prev epoch still lists her as admin), signs
// commits that bob cannot place: epoch 5 on a parent that is not bob's
// prev (ErrFork: a "the room forked" alert line each) and epoch 7 on an
// unknown parent (ErrUnknownParent: a fetch from members each).
//
// Control: the same commits published by carol on the topic are bounded by
// the budget (at most ~10 alerts/fetches for 2k commits); old commits that
// carol kept and replays 1:1 change nothing (stale/duplicate, no alert).
// Attack: over the 1:1 session (and so through a mailbox, or from any
// stranger: the deliverer need not be their signer) every one of them
// costs bob an alert line in the room's history and a fetch to alice.
func TestReview4DeliveredCommitsSkipCommitRate(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol, snap, id := kickedAdmin(t)
	key := carol.Identity().PrivKey()
	n0, h0 := groupEpoch(t, bob, "team")
	if n0 != 5 {
		t.Fatalf("bob at epoch %d, want 5", n0)
	}

	// Count bob's fetches from alice.
	var fetches atomic.Int64
	alice.Host().SetStreamHandler(room.ProtocolRoomSync2, func(st network.Stream) {
		if st.Conn().RemotePeer() == bob.Host().ID() {
			fetches.Add(1)
		}
		st.Reset()
	})

	// Control 1: carol replays, 1:1, every commit she kept: stale or
	// duplicates, bob does not move and raises nothing.
	rows, err := carol.DB().SQL().Query("SELECT data FROM room_commits WHERE room = ? ORDER BY epoch", id[:])
	if err != nil {
		t.Fatal(err)
	}
	var kept [][]byte
	for rows.Next() {
		var b []byte
		if rows.Scan(&b) == nil {
			kept = append(kept, b)
		}
	}
	rows.Close()
	if len(kept) < 4 {
		t.Fatalf("carol kept %d commits", len(kept))
	}
	for _, b := range kept {
		c, err := group.ParseCommit(b)
		if err != nil {
			t.Fatal(err)
		}
		deliver(t, carol, bob, id, c.Proto())
	}
	inboxDrained(t, bob)
	if n, h := groupEpoch(t, bob, "team"); n != n0 || h != h0 || forkLines(t, bob) != 0 {
		t.Fatalf("control: kept commits replayed moved bob to %d (%x) or raised %d alerts", n, h[:4], forkLines(t, bob))
	}

	const k = 30
	forks := func() []*wirepb.SignedCommit {
		var out []*wirepb.SignedCommit
		for i := 0; i < k; i++ {
			out = append(out, forgeAt(t, key, snap.Commit(), 5, random(32)))
		}
		return out
	}
	unknown := func() []*wirepb.SignedCommit {
		var out []*wirepb.SignedCommit
		for i := 0; i < k; i++ {
			out = append(out, forgeAt(t, key, snap.Commit(), 7, random(32)))
		}
		return out
	}

	// Control 2: on the topic, the budget holds.
	topicName := bob.roomTopic(t, "team")
	var topic *pubsub.Topic
	peertest.Eventually(t, 10*time.Second, "carol's node to let go of the topic", func() bool {
		var err error
		topic, err = carol.Rooms().PubSub().Join(topicName)
		return err == nil
	})
	peertest.Eventually(t, 30*time.Second, "carol's topic peers", func() bool {
		for _, p := range topic.ListPeers() {
			if p == bob.Host().ID() {
				return true
			}
		}
		return false
	})
	time.Sleep(2 * time.Second) // mesh
	f0 := fetches.Load()
	for _, sc := range append(forks(), unknown()...) {
		if err := topic.Publish(ctx, commitEnvelope(t, id, sc)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(4 * time.Second)
	topicAlerts, topicFetches := forkLines(t, bob), fetches.Load()-f0
	t.Logf("topic: %d commits -> %d fork alerts, %d fetches", 2*k, topicAlerts, topicFetches)
	if topicAlerts+int(topicFetches) > 12 {
		t.Fatalf("control: the topic's commit budget let %d alerts and %d fetches through", topicAlerts, topicFetches)
	}

	// Attack: the same over carol's 1:1 session with bob.
	f1 := fetches.Load()
	for _, sc := range append(forks(), unknown()...) {
		deliver(t, carol, bob, id, sc)
	}
	inboxDrained(t, bob)
	time.Sleep(3 * time.Second)
	alerts, fetched := forkLines(t, bob)-topicAlerts, fetches.Load()-f1
	t.Logf("1:1: %d commits -> %d fork alerts, %d fetches", 2*k, alerts, fetched)
	if n, h := groupEpoch(t, bob, "team"); n != n0 || h != h0 {
		t.Fatalf("bob left the kick: %d (%x)", n, h[:4])
	}
	if alerts > 10 || fetched > 10 {
		t.Errorf("a kicked admin's commits delivered 1:1 bypass the commit budget: %d fork alerts in bob's history and %d fetches to alice for %d commits (the topic allowed %d)",
			alerts, fetched, 2*k, topicAlerts+int(topicFetches))
	}
}

// TestReview4DeliveredOutOfOrder: two commits that arrive 1:1 out of
// order (a mailbox operator reorders deposits, or the frames reach bob
// through two mailboxes) while no member holds them: the child arrives
// first, its parent is unknown, bob starts a fetch that finds nothing, and
// drops it for good (the inbox row is deleted). The parent then applies,
// and bob stays one epoch behind until someone online serves the child,
// exactly the situation the mailbox path is for.
//
// Control: the same child delivered again once the parent is applied is
// taken at once.
func TestReview4DeliveredOutOfOrder(t *testing.T) {
	ms := start(t, 3)
	privateRoom(t, ms)
	alice, bob, carol := ms[0], ms[1], ms[2]
	befriend(t, carol, bob, "bob")
	befriend(t, bob, carol, "carol")
	id := roomID(t, alice, "#team")
	n, _ := groupEpoch(t, bob, "team")
	key := alice.Identity().PrivKey()
	// Two commits by the admin that no online member holds (alice's node
	// never saw them: as if alice issued them and went offline).
	c1, e1, err := group.NewCommit(snapshot(t, alice, "#team"), key, group.Proposal{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c2, _, err := group.NewCommit(e1, key, group.Proposal{}, time.Now().Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, carol, bob, id, c2.Proto())
	deliver(t, carol, bob, id, c1.Proto())
	// c2 is held until c1 applies, then applied after it.
	bob.waitEpoch(t, "team", n+2)
	inboxDrained(t, bob)
	got, h := groupEpoch(t, bob, "team")
	if got != n+2 || h != c2.Hash() {
		t.Errorf("bob got both commits of the admin, child first, and stays at epoch %d (%x); want %d (%x): the child was dropped", got, h[:4], n+2, c2.Hash())
	}
	// Control: delivered again, in order, it applies.
	deliver(t, carol, bob, id, c2.Proto())
	bob.waitEpoch(t, "team", n+2)
	if got, h := groupEpoch(t, bob, "team"); got != n+2 || h != c2.Hash() {
		t.Fatalf("control: bob at %d (%x)", got, h[:4])
	}
}

// TestReview4RefusedPayloadResent: PROTOCOL.md 1.4's change log says a 1.3
// node "refuses the payload (acked REJECTED, "body is not set"), the
// sender does not resend it". The sender's node (chat/direct.go readAcks)
// answers every REJECTED by dropping its session and re-encrypting every
// unacknowledged frame, the refused one included, and retries forever:
// each commit queued for a 1.3 contact resets the session again and
// again (a prekey message, a one-time prekey spent, each time).
//
// bob stands for a 1.3 node here: alice sends him a Payload whose only
// body is a field his build does not know (what field 10 is to 1.3), and
// bob refuses it with "body is not set" exactly as a 1.3 node would.
//
// Control: a payload bob takes (a room_commit for a room he is not in) is
// acked once and leaves the outbox.
func TestReview4RefusedPayloadResent(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 2)
	alice, bob := ms[0], ms[1]
	befriend(t, alice, bob, "bob")
	befriend(t, bob, alice, "alice")
	peertest.Eventually(t, 30*time.Second, "alice's outbox empty", func() bool { return alice.Chat().OutboxDepth(ctx) == 0 })

	// Control.
	var rid group.RoomID
	copy(rid[:], random(32))
	kp, _, err := group.NewKeyPackage(alice.Identity().PrivKey(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	genesis, _, err := group.Create(rid, alice.Identity().PrivKey(), kp, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r0 := alice.Chat().Stats().Rejected
	if err := alice.Chat().SendPayload(ctx, nil, bob.Host().ID(), &wirepb.Payload{Body: &wirepb.Payload_RoomCommit{RoomCommit: &wirepb.RoomCommitDelivery{RoomId: rid[:], Commit: genesis.Proto()}}}); err != nil {
		t.Fatal(err)
	}
	peertest.Eventually(t, 30*time.Second, "the control payload acked", func() bool { return alice.Chat().OutboxDepth(ctx) == 0 })
	if r := alice.Chat().Stats().Rejected - r0; r != 0 {
		t.Fatalf("control: %d rejections", r)
	}

	// What a 1.3 node sees of a room_commit: a Payload with no body it
	// knows. (Field 15 stands for field 10, which this build knows.)
	p := &wirepb.Payload{Version: 1}
	p.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 15, protowire.BytesType), random(200)))
	if err := alice.Chat().SendPayload(ctx, nil, bob.Host().ID(), p); err != nil {
		t.Fatal(err)
	}
	peertest.Eventually(t, 30*time.Second, "bob refuses it", func() bool { return alice.Chat().Stats().Rejected > r0 })
	peertest.Eventually(t, 30*time.Second, "the refused payload leaves alice's outbox", func() bool { return alice.Chat().OutboxDepth(ctx) == 0 })
	rejected, depth := alice.Chat().Stats().Rejected-r0, alice.Chat().OutboxDepth(ctx)
	t.Logf("the refused payload was rejected %d times, alice's outbox holds %d frames", rejected, depth)
	if rejected > 1 || depth != 0 {
		t.Errorf("a payload bob refuses (as a 1.3 node refuses room_commit) is sent again and again: rejected %d times, still in the outbox (%d frames); each rejection resets the session", rejected, depth)
	}
}

// TestReview4KickedAdminCapturesOfflineMember: bob is offline when the
// owner alice kicks carol, an admin (epoch 5). carol kept epoch 4, where
// she was an admin, and signs two commits of her own on it (X5, X6),
// which she queues 1:1 for bob. Nobody but carol is online when bob comes
// back: her frames reach him first (directly here; through his mailbox
// just as well, and carol need not even be online then). bob applies X5
// (carol is an admin in his current epoch 4) and X6. When alice's kick R5
// arrives (her 1:1 delivery of it, or sync), R5 beats X5 by ousting but
// two epochs are built on X5: bob reports a fork and stays on carol's
// branch, cut off from the room, with carol as its admin. This is the
// "Fork choice" residual, but before 1.4 carol had to be online with bob
// and be picked for his sync; the 1:1 path lets a removed admin reach
// every offline member who is its contact, at leisure, through mailboxes.
//
// Control: dave, online at the kick, refuses the same two commits.
func TestReview4KickedAdminCapturesOfflineMember(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 4)
	alice, bob, carol, dave := ms[0], ms[1], ms[2], ms[3]
	privateRoom(t, ms)
	for i, m := range []*member{bob, dave} {
		befriend(t, carol, m, []string{"bob", "dave"}[i])
		befriend(t, m, carol, "carol")
	}
	if _, err := alice.Rooms().Promote(ctx, "team", carol.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		m.waitEpoch(t, "team", 5)
	}
	snap := snapshot(t, carol, "team")
	n := snap.Number()
	id := roomID(t, alice, "#team")
	key := carol.Identity().PrivKey()

	bob.Stop(t)
	if _, err := alice.Rooms().Kick(ctx, "team", carol.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	dave.waitEpoch(t, "team", n+1)
	_, kick := groupEpoch(t, alice, "team")

	x5, e5, err := group.NewCommit(snap, key, group.Proposal{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	x6, _, err := group.NewCommit(e5, key, group.Proposal{}, time.Now().Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}

	// Control: dave already holds the kick.
	deliver(t, carol, dave, id, x5.Proto())
	deliver(t, carol, dave, id, x6.Proto())
	peertest.Eventually(t, 30*time.Second, "carol's frames acked by dave", func() bool { return carol.Chat().OutboxDepth(ctx) == 0 })
	inboxDrained(t, dave)
	if got, h := groupEpoch(t, dave, "team"); got != n+1 || h != kick {
		t.Fatalf("control: dave left the kick for %d (%x)", got, h[:4])
	}

	// Attack: bob comes back while only carol is online.
	alice.Stop(t)
	dave.Stop(t)
	deliver(t, carol, bob, id, x5.Proto())
	deliver(t, carol, bob, id, x6.Proto())
	bob2 := restart(t, bob.Home, carol.Addr())
	peertest.Eventually(t, 60*time.Second, "carol's frames acked by bob", func() bool {
		carol.Chat().Kick(bob2.Host().ID())
		return carol.Chat().OutboxDepth(ctx) == 0
	})
	inboxDrained(t, bob2)
	if got, h := groupEpoch(t, bob2, "team"); got != n {
		t.Errorf("a removed admin's commits, delivered 1:1 to a member offline at its removal, moved that member onto the removed admin's branch (epoch %d, %x)", got, h[:4])
	}
	// alice comes back: her kick reaches bob, who follows it.
	alice2 := restart(t, alice.Home, bob2.Addr())
	peertest.Eventually(t, 60*time.Second, "bob follows the owner's kick", func() bool {
		alice2.Chat().Kick(bob2.Host().ID())
		got, h := groupEpoch(t, bob2, "team")
		return got == n+1 && h == kick
	})
	if forkLines(t, bob2) != 0 {
		t.Errorf("bob reported a fork: %d lines", forkLines(t, bob2))
	}
}

// TestReview4ForkAlertReplayedByStranger: the deliverer of a commit need
// not be a contact nor a member, and nothing remembers a commit that was
// refused: one commit a kicked admin signed once (ErrFork at bob), handed
// to eve, a stranger to bob, raises a new "the room forked" alert in bob's
// history each time eve delivers it again (each delivery is a fresh 1:1
// frame; within the stranger budget of 32 frames at once per peer ID).
//
// Control: a commit eve signs herself (no admin anywhere) raises nothing.
func TestReview4ForkAlertReplayedByStranger(t *testing.T) {
	alice, bob, carol, snap, id := kickedAdmin(t)
	eve := restart(t, peertest.Home(t), alice.Addr())
	befriend(t, eve, bob, "bob") // eve's side only: bob never heard of eve
	fork := forgeAt(t, carol.Identity().PrivKey(), snap.Commit(), 5, random(32))

	own := forgeAt(t, eve.Identity().PrivKey(), snap.Commit(), 5, random(32))
	deliver(t, eve, bob, id, own)
	deliver(t, eve, bob, id, own)
	peertest.Eventually(t, 30*time.Second, "eve's frames acked", func() bool { return eve.Chat().OutboxDepth(context.Background()) == 0 })
	inboxDrained(t, bob)
	if n := forkLines(t, bob); n != 0 {
		t.Fatalf("control: eve's own commit raised %d alerts", n)
	}

	const k = 8
	for i := 0; i < k; i++ {
		deliver(t, eve, bob, id, fork)
	}
	peertest.Eventually(t, 30*time.Second, "eve's frames acked", func() bool { return eve.Chat().OutboxDepth(context.Background()) == 0 })
	inboxDrained(t, bob)
	got := forkLines(t, bob)
	t.Logf("one commit delivered %d times by a stranger: %d fork alerts", k, got)
	if got > 1 {
		t.Errorf("one kicked admin's commit, replayed by a stranger, raised %d fork alerts in bob's history", got)
	}
}

// TestReview4InboxBacklog measures (logs only) how the room inbox and the
// history grow when a contact delivers many commits that each cost an
// alert: room_inbox has no cap, and every refused-but-alerting commit
// writes a history line.
func TestReview4InboxBacklog(t *testing.T) {
	_, bob, carol, snap, id := kickedAdmin(t)
	fork := forgeAt(t, carol.Identity().PrivKey(), snap.Commit(), 5, random(32))
	const k = 600
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var n int64
			if bob.DB().SQL().QueryRow("SELECT count(*) FROM room_inbox").Scan(&n) == nil && n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	start := time.Now()
	for i := 0; i < k; i++ {
		deliver(t, carol, bob, id, fork)
	}
	peertest.Eventually(t, 120*time.Second, "carol's frames acked", func() bool { return carol.Chat().OutboxDepth(context.Background()) == 0 })
	inboxDrained(t, bob)
	close(stop)
	<-done
	t.Logf("%d deliveries of one commit in %v: room_inbox peak %d rows, %d fork alerts in bob's history", k, time.Since(start).Round(time.Millisecond), peak.Load(), forkLines(t, bob))
}

// TestReview4KickedAdminRemovesOfflineMember: as in
// TestReview4KickedAdminCapturesOfflineMember, bob is offline when alice
// kicks carol, an admin. carol signs, on her kept epoch 4, one commit X5
// that removes bob and queues it 1:1 for him. bob comes back with only
// carol online, applies X5 (carol is an admin in his epoch 4): "removed",
// room forgotten, keys erased. alice's kick R5, which beats X5 by the
// fork rule, arrives next and finds no room: bob is out for good (until
// re-invited), and his history says carol removed him. One epoch suffices:
// a Removed outcome is acted on at once and never healed.
//
// Control: dave, online at the kick, gets the same kind of commit (one
// removing dave) and stays in alice's room.
func TestReview4KickedAdminRemovesOfflineMember(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 4)
	alice, bob, carol, dave := ms[0], ms[1], ms[2], ms[3]
	privateRoom(t, ms)
	for i, m := range []*member{bob, dave} {
		befriend(t, carol, m, []string{"bob", "dave"}[i])
		befriend(t, m, carol, "carol")
	}
	if _, err := alice.Rooms().Promote(ctx, "team", carol.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		m.waitEpoch(t, "team", 5)
	}
	snap := snapshot(t, carol, "team")
	n := snap.Number()
	id := roomID(t, alice, "#team")
	key := carol.Identity().PrivKey()
	bobID, daveID := bob.Host().ID(), dave.Host().ID()

	bob.Stop(t)
	if _, err := alice.Rooms().Kick(ctx, "team", carol.Host().ID().String()); err != nil {
		t.Fatal(err)
	}
	dave.waitEpoch(t, "team", n+1)
	_, kick := groupEpoch(t, alice, "team")

	outBob, _, err := group.NewCommit(snap, key, group.Proposal{Remove: []peer.ID{bobID}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	outDave, _, err := group.NewCommit(snap, key, group.Proposal{Remove: []peer.ID{daveID}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	// Control: dave holds the kick; carol's commit removing him loses.
	deliver(t, carol, dave, id, outDave.Proto())
	peertest.Eventually(t, 30*time.Second, "carol's frame acked by dave", func() bool { return carol.Chat().OutboxDepth(ctx) == 0 })
	inboxDrained(t, dave)
	if info, err := dave.Rooms().Info(ctx, "team"); err != nil || info.State != "joined" {
		t.Fatalf("control: dave's room after carol's commit: %+v, %v", info, err)
	}
	if _, h := groupEpoch(t, dave, "team"); h != kick {
		t.Fatalf("control: dave left the kick")
	}

	// Attack.
	alice.Stop(t)
	dave.Stop(t)
	deliver(t, carol, bob, id, outBob.Proto())
	bob2 := restart(t, bob.Home, carol.Addr())
	state := func() string {
		info, err := bob2.Rooms().Info(ctx, "team")
		if err != nil {
			return err.Error()
		}
		return info.State
	}
	peertest.Eventually(t, 60*time.Second, "carol's commit reaches bob", func() bool {
		carol.Chat().Kick(bobID)
		return carol.Chat().OutboxDepth(ctx) == 0
	})
	inboxDrained(t, bob2)
	alice2 := restart(t, alice.Home, bob2.Addr())
	peertest.Eventually(t, 60*time.Second, "alice's frames to bob acked", func() bool {
		alice2.Chat().Kick(bobID)
		return alice2.Chat().OutboxDepth(ctx) == 0
	})
	inboxDrained(t, bob2) // every delivered commit was judged
	info, _ := bob2.Rooms().Info(ctx, "team")
	t.Logf("bob's room after carol's commit and then alice's kick: %q (%s)", info.State, info.Detail)
	if state() == "removed" {
		t.Errorf("a kicked admin's commit delivered 1:1 removed bob (offline at the kick) from the room for good; alice's winning kick cannot undo it")
	}
}
