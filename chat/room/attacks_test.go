package room_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// historyServer is a stranger's host that serves /parley/roomsync/1
// (public rooms) with whatever messages it is given, each signed with its
// own key.
type historyServer struct {
	h   host.Host
	key crypto.PrivKey
	seq uint64

	mu    sync.Mutex
	serve []*wirepb.SyncedMessage
}

func newHistoryServer(t *testing.T) *historyServer {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	hs := &historyServer{h: h, key: key, seq: uint64(time.Now().UnixNano())}
	h.SetStreamHandler(room.ProtocolRoomSync, func(st network.Stream) {
		defer st.Close()
		var req wirepb.RoomSyncRequest
		if err := wire.ReadFrame(st, wire.MaxSyncRequest, &req); err != nil {
			st.Reset()
			return
		}
		hs.mu.Lock()
		resp := &wirepb.RoomSyncResponse{Messages: hs.serve}
		hs.mu.Unlock()
		wire.WriteFrame(st, resp)
	})
	return hs
}

// add serves data on topic as a message signed by the server.
func (hs *historyServer) add(t *testing.T, topic string, data []byte) {
	t.Helper()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.seq++
	m := &pb.Message{From: []byte(hs.h.ID()), Data: data, Seqno: binary.BigEndian.AppendUint64(nil, hs.seq), Topic: &topic}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := hs.key.Sign(append([]byte(pubsub.SignPrefix), b...))
	if err != nil {
		t.Fatal(err)
	}
	hs.serve = append(hs.serve, &wirepb.SyncedMessage{From: m.From, Data: data, Seqno: m.Seqno, Signature: sig})
}

// syncTo connects m to the server and syncs room name from it.
func (hs *historyServer) syncTo(t *testing.T, m *member, name string) {
	t.Helper()
	ctx := context.Background()
	if err := m.Host().Connect(ctx, peer.AddrInfo{ID: hs.h.ID(), Addrs: hs.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Rooms().Sync(ctx, name, hs.h.ID()); err != nil {
		t.Fatalf("sync %s from the stranger: %v", name, err)
	}
}

func publicMessage(t *testing.T, name, text string, at time.Time, msgID []byte) []byte {
	t.Helper()
	id := room.PublicID(name)
	if msgID == nil {
		msgID = random(wire.IDSize)
	}
	b, err := proto.Marshal(&wirepb.RoomMessage{Version: wire.Version, RoomId: id[:], Hlc: wire.PackHLC(at.UnixMilli(), 0), MsgId: msgID, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sentNow fails t unless msg is dated within a minute of now.
func sentNow(t *testing.T, who string, msg apitype.Message) {
	t.Helper()
	if d := time.Since(msg.SentAt).Abs(); d > time.Minute {
		t.Errorf("%s: %q is dated %v, %v from now: the clock moved", who, msg.Text, msg.SentAt, d)
	}
}

func sentAt(t *testing.T, m *member, conv, text string) apitype.Message {
	t.Helper()
	log, err := m.Chat().Log(context.Background(), conv, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range log {
		if msg.Text == text {
			return msg
		}
	}
	t.Fatalf("%q not in the log", text)
	return apitype.Message{}
}

// TestClockPoisoning: messages dated ten years ahead reach alice in a
// public room (through sync from a stranger, and live from a stranger on
// the topic) and in a private room (live from carol, a member, and
// through sync from her). Each is refused, while a message dated now sent
// the same way right after it is accepted (the control). alice's clock
// does not move: she keeps sending in both rooms, dated now. A poisoned
// value already in the database (from a version without the bound) is
// ignored at start: her messages carry the real time and her sync cursor
// stays at now, so she still receives what was sent while she was away.
func TestClockPoisoning(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 3)
	alice, bob, carol := ms[0], ms[1], ms[2]
	privateRoom(t, ms)
	for _, m := range ms {
		if _, err := m.Rooms().JoinPublic(ctx, "#pub"); err != nil {
			t.Fatal(err)
		}
	}
	ahead := time.Now().AddDate(10, 0, 0)

	// Public, through sync.
	pubTopic := room.PublicID("pub").Topic()
	stranger := newHistoryServer(t)
	stranger.add(t, pubTopic, publicMessage(t, "pub", "dated now", time.Now(), nil))
	stranger.add(t, pubTopic, publicMessage(t, "pub", "dated ten years ahead", ahead, nil))
	stranger.syncTo(t, alice, "#pub")
	if !hasText(t, alice, "#pub", "dated now", stranger.h.ID().String()) {
		t.Fatal("control: the stranger's message dated now was not accepted through sync")
	}

	// Public, live.
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	live := newAttacker(t, key, alice, pubTopic)
	live.publish(live.own(publicMessage(t, "pub", "live, ten years ahead", ahead, nil)), live.own(publicMessage(t, "pub", "live, dated now", time.Now(), nil)))
	alice.waitTexts(t, "#pub", "live, dated now")

	// Private, live: carol publishes with her own keys.
	id := roomID(t, alice, "#team")
	ce := snapshot(t, carol, "#team")
	cid := carol.Host().ID()
	for _, am := range []*wirepb.AppMessage{sealAt(t, ce, cid, "private live, ten years ahead", ahead, nil), sealAt(t, ce, cid, "private live, dated now", time.Now(), nil)} {
		if err := carol.Rooms().PublishRaw(ctx, "#team", envelope(t, id, am)); err != nil {
			t.Fatal(err)
		}
	}
	alice.waitTexts(t, "#team", "private live, dated now")
	bob.waitTexts(t, "#team", "private live, dated now")

	// Private, through sync: carol serves two more of hers.
	teamTopic := alice.roomTopic(t, "#team")
	extra := []*wirepb.SyncedMessage{
		signedRecord(t, carol.Identity().PrivKey(), teamTopic, envelope(t, id, sealAt(t, ce, cid, "private synced, ten years ahead", ahead, nil))),
		signedRecord(t, carol.Identity().PrivKey(), teamTopic, envelope(t, id, sealAt(t, ce, cid, "private synced, dated now", time.Now(), nil))),
	}
	carol.Rooms().ServeAlso(func() []*wirepb.SyncedMessage { return extra })
	if _, err := alice.Rooms().Sync(ctx, "#team", cid); err != nil {
		t.Fatal(err)
	}
	if !hasText(t, alice, "#team", "private synced, dated now", cid.String()) {
		t.Fatal("control: carol's message dated now was not accepted through sync")
	}

	for _, c := range []struct{ conv, text string }{
		{"#pub", "dated ten years ahead"}, {"#pub", "live, ten years ahead"},
		{"#team", "private live, ten years ahead"}, {"#team", "private synced, ten years ahead"},
	} {
		for _, m := range []*member{alice, bob} {
			if hasText(t, m, c.conv, c.text, "") {
				t.Errorf("%s accepted %q", m.Host().ID().ShortString(), c.text)
			}
		}
	}
	for _, conv := range []string{"#team", "#pub"} {
		msg, err := alice.Rooms().Send(ctx, conv, "alice after the poison")
		if err != nil {
			t.Fatalf("alice cannot send in %s after the poison: %v", conv, err)
		}
		sentNow(t, "alice", msg)
		bob.waitTexts(t, conv, "alice after the poison")
		sentNow(t, "bob's copy", sentAt(t, bob, conv, "alice after the poison"))
	}

	// A database poisoned before the bound existed.
	info, err := alice.Rooms().Info(ctx, "#team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.DB().SQL().Exec(`INSERT INTO room_log(room, msg_id, hlc, epoch, sender, data, seqno, signature, status)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, 1)`, id[:], random(16), hlcAt(ahead), info.Epoch, alice.Host().ID().String(), []byte("poison"), []byte{1}, []byte{1}); err != nil {
		t.Fatal(err)
	}
	home := alice.Home
	alice.Stop(t)
	send(t, bob, "#team", "bob while alice was away")
	alice = restart(t, home, bob.Addr())
	alice.waitTexts(t, "#team", "bob while alice was away")
	var msg apitype.Message
	peertest.Eventually(t, 10*time.Second, "alice's rooms to run", func() bool {
		msg, err = alice.Rooms().Send(ctx, "#team", "alice after the restart")
		return err == nil
	})
	sentNow(t, "alice after the restart", msg)
	bob.waitTexts(t, "#team", "alice after the restart")
	sentNow(t, "bob's copy", sentAt(t, bob, "#team", "alice after the restart"))
}

// firstNode applies edit to the Config of the first node started after it.
func firstNode(t *testing.T, edit func(*room.Config)) {
	var once atomic.Bool
	var first peer.ID
	var mu sync.Mutex
	room.SetTestConfig(t, func(h host.Host, c *room.Config) {
		mu.Lock()
		defer mu.Unlock()
		if once.CompareAndSwap(false, true) {
			first = h.ID()
		}
		if h.ID() == first {
			edit(c)
		}
	})
}

// TestOwnMessagesNotLimited: a node whose rate limit allows others a
// burst of 3 sends 12 messages at once; its own validator must not refuse
// them, and the other member (with the default limits: the control that
// limits apply to others) receives all 12.
func TestOwnMessagesNotLimited(t *testing.T) {
	firstNode(t, func(c *room.Config) { c.RateBurst, c.RateEvery = 3, time.Hour })
	ms := start(t, 2)
	privateRoom(t, ms)
	waitMeshed(t, ms, "#team")
	var texts []string
	for i := range 12 {
		text := fmt.Sprintf("burst %d", i)
		texts = append(texts, text)
		msg, err := ms[0].Rooms().Send(context.Background(), "#team", text)
		if err != nil || msg.State != apitype.StateSent {
			t.Fatalf("send %q: %+v, %v", text, msg, err)
		}
	}
	ms[1].waitTexts(t, "#team", texts...)
}

func stateOf(t *testing.T, m *member, conv, text string) string {
	t.Helper()
	log, err := m.Chat().Log(context.Background(), conv, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range log {
		if msg.Text == text {
			return msg.State
		}
	}
	return ""
}

// waitTextsWithin is waitTexts with a deadline shorter than the minute
// after which every node syncs and republishes anyway.
func (m *member) waitTextsWithin(t *testing.T, d time.Duration, conv string, want ...string) {
	t.Helper()
	done := make(chan struct{})
	timer := time.AfterFunc(d, func() {
		select {
		case <-done:
		default:
			t.Errorf("%v passed before %s received %q", d, m.Host().ID().ShortString(), want)
		}
	})
	defer timer.Stop()
	m.waitTexts(t, conv, want...)
	close(done)
}

// TestSendPendingRepublished: a message sent while no peer is on the
// room's topic waits and is delivered as soon as a peer appears; a
// message whose publication fails (as when the node crashes between
// storing and publishing) stays pending, and is published when the node
// starts again; a message sent normally (the control) is sent at once.
// Each is delivered within 20 seconds, well before the minute after which
// every node syncs and republishes anyway.
func TestSendPendingRepublished(t *testing.T) {
	var fail atomic.Bool
	firstNode(t, func(c *room.Config) {
		room.SetBeforePublish(c, func() error {
			if fail.Load() {
				return errors.New("crashed before publishing")
			}
			return nil
		})
	})
	ctx := context.Background()
	ms := start(t, 2)
	alice, bob := ms[0], ms[1]
	privateRoom(t, ms)
	waitMeshed(t, ms, "#team")
	msg, err := alice.Rooms().Send(ctx, "#team", "the control")
	if err != nil || msg.State != apitype.StateSent {
		t.Fatalf("control: %+v, %v", msg, err)
	}
	bob.waitTextsWithin(t, 20*time.Second, "#team", "the control")

	// Nobody on the topic.
	topic := alice.roomTopic(t, "#team")
	bobHome := bob.Home
	bob.Stop(t)
	peertest.Eventually(t, 20*time.Second, "alice to see nobody on the topic", func() bool {
		return len(alice.Rooms().PubSub().ListPeers(topic)) == 0
	})
	msg, err = alice.Rooms().Send(ctx, "#team", "sent while alone")
	if err != nil || msg.State != apitype.StatePending {
		t.Fatalf("send while alone: %+v, %v; want a pending message and no error", msg, err)
	}
	bob = restart(t, bobHome, alice.Addr())
	bob.waitTextsWithin(t, 20*time.Second, "#team", "sent while alone")
	peertest.Eventually(t, 10*time.Second, "the message sent while alone marked sent", func() bool {
		return stateOf(t, alice, "#team", "sent while alone") == apitype.StateSent
	})

	// A crash between storing and publishing.
	waitMeshed(t, []*member{alice, bob}, "#team")
	fail.Store(true)
	msg, err = alice.Rooms().Send(ctx, "#team", "lost in the crash")
	if err == nil || msg.State != apitype.StatePending {
		t.Fatalf("failed publication: %+v, %v; want a pending message and an error", msg, err)
	}
	if state := stateOf(t, alice, "#team", "lost in the crash"); state != apitype.StatePending {
		t.Fatalf("stored as %q, want pending", state)
	}
	fail.Store(false)
	home := alice.Home
	alice.Stop(t)
	alice = restart(t, home, bob.Addr())
	bob.waitTextsWithin(t, 20*time.Second, "#team", "lost in the crash")
	peertest.Eventually(t, 10*time.Second, "the message marked sent", func() bool {
		return stateOf(t, alice, "#team", "lost in the crash") == apitype.StateSent
	})
}

// TestMessageIDSquatting: in a public room a stranger copies bob's
// message (same msg id) under its own signature and serves it to carol
// before anyone serves her bob's original: the copy shows under the
// stranger's name only, and bob's original still reaches carol under
// bob's. A direct message stored with the same id cannot suppress it
// either. In a private room bob, a member, re-publishes alice's message
// (her msg id and ciphertext, MACed under his name) and, for another of
// hers, his own words under her msg id, both before her originals reach
// carol: the first is shown nowhere (it does not decrypt under bob's
// chain), the second under bob only, and both originals under alice.
func TestMessageIDSquatting(t *testing.T) {
	ctx := context.Background()
	t.Run("public", func(t *testing.T) {
		ms := start(t, 2)
		alice, bob := ms[0], ms[1]
		for _, m := range ms {
			if _, err := m.Rooms().JoinPublic(ctx, "#pub"); err != nil {
				t.Fatal(err)
			}
		}
		waitMeshed(t, ms, "#pub")
		send(t, bob, "#pub", "bob's words")
		alice.waitTexts(t, "#pub", "bob's words")
		var data []byte
		if err := alice.DB().SQL().QueryRow("SELECT data FROM room_log WHERE sender = ?", bob.Host().ID().String()).Scan(&data); err != nil {
			t.Fatal(err)
		}
		orig, err := wire.DecodeRoomMessage(data)
		if err != nil {
			t.Fatal(err)
		}
		// carol: alone, joins the room, and hears from the stranger first.
		carol := &member{Running: peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)}
		ev, cancel := carol.Chat().Subscribe()
		t.Cleanup(cancel)
		carol.events = ev
		if _, err := carol.Rooms().JoinPublic(ctx, "#pub"); err != nil {
			t.Fatal(err)
		}
		if _, err := carol.DB().SQL().Exec(`INSERT INTO messages(id, conv, sender, outgoing, body, sent_at, received_at, state)
			VALUES(?, ?, ?, 0, 'a direct message', 0, 0, 'received')`, orig.MsgId, bob.Host().ID().String(), bob.Host().ID().String()); err != nil {
			t.Fatal(err)
		}
		stranger := newHistoryServer(t)
		stranger.add(t, room.PublicID("pub").Topic(), data)
		stranger.syncTo(t, carol, "#pub")
		if !hasText(t, carol, "#pub", "bob's words", stranger.h.ID().String()) {
			t.Fatal("control: the stranger's copy is not in carol's log under the stranger's name")
		}
		if err := carol.Host().Connect(ctx, alice.AddrInfo()); err != nil {
			t.Fatal(err)
		}
		if _, err := carol.Rooms().Sync(ctx, "#pub", alice.Host().ID()); err != nil {
			t.Fatal(err)
		}
		if !hasText(t, carol, "#pub", "bob's words", bob.Host().ID().String()) {
			t.Fatal("bob's original message was suppressed by the stranger's copy")
		}
	})
	t.Run("private", func(t *testing.T) {
		ms := start(t, 3)
		privateRoom(t, ms)
		alice, bob, carol := ms[0], ms[1], ms[2]
		id := roomID(t, alice, "#team")
		ae, be := snapshot(t, alice, "#team"), snapshot(t, bob, "#team")
		aid, bid := alice.Host().ID(), bob.Host().ID()
		orig1 := sealAt(t, ae, aid, "alice's first words", time.Now(), nil)
		orig2 := sealAt(t, ae, aid, "alice's second words", time.Now(), nil)
		copied := proto.CloneOf(orig1)
		remac(copied, id, bid, membershipKey(t, be))
		squat := sealAt(t, be, bid, "bob's words under alice's id", time.Now(), orig2.MsgId)
		for _, am := range []*wirepb.AppMessage{copied, squat} {
			if err := bob.Rooms().PublishRaw(ctx, "#team", envelope(t, id, am)); err != nil {
				t.Fatal(err)
			}
		}
		carol.waitTexts(t, "#team", "bob's words under alice's id")
		peertest.Eventually(t, 20*time.Second, "carol to log bob's copy", func() bool {
			var n int
			carol.DB().SQL().QueryRow("SELECT count(*) FROM room_log WHERE room = ? AND sender = ? AND msg_id = ?", id[:], bid.String(), orig1.MsgId).Scan(&n)
			return n == 1
		})
		for _, am := range []*wirepb.AppMessage{orig1, orig2} {
			if err := alice.Rooms().PublishRaw(ctx, "#team", envelope(t, id, am)); err != nil {
				t.Fatal(err)
			}
		}
		carol.waitTexts(t, "#team", "alice's first words", "alice's second words")
		for _, c := range []struct{ text, from string }{
			{"alice's first words", aid.String()}, {"alice's second words", aid.String()}, {"bob's words under alice's id", bid.String()},
		} {
			if !hasText(t, carol, "#team", c.text, c.from) {
				t.Errorf("carol does not show %q under its author", c.text)
			}
		}
		log, _ := carol.Chat().Log(ctx, "#team", 0)
		for _, msg := range log {
			if msg.From == bid.String() && msg.Text != "bob's words under alice's id" && msg.State != room.StateSystem {
				t.Errorf("carol shows %q under bob", msg.Text)
			}
		}
	})
}

// drained waits until every payload from queued to m has been delivered
// and applied.
func drained(t *testing.T, from, to *member) {
	t.Helper()
	peertest.Eventually(t, 60*time.Second, "payloads delivered and applied", func() bool {
		var out, in int
		from.DB().SQL().QueryRow("SELECT count(*) FROM outbox WHERE peer_id = ?", to.Host().ID().String()).Scan(&out)
		to.DB().SQL().QueryRow("SELECT count(*) FROM room_inbox").Scan(&in)
		return out == 0 && in == 0
	})
}

// TestRoomInviteConsent: an invitation from a stranger is dropped; one
// from a contact waits for consent (the control), is listed, and joins on
// accept; a contact may have at most 4 invitations waiting; decline drops
// one.
func TestRoomInviteConsent(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 3)
	alice, bob, mallory := ms[0], ms[1], ms[2]
	befriend(t, alice, bob, "bob")
	befriend(t, bob, alice, "alice")
	befriend(t, mallory, bob, "bob")
	if _, err := mallory.Rooms().Create(ctx, "lure"); err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.Rooms().Invite(ctx, "lure", "bob"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		name := fmt.Sprintf("team%d", i)
		if _, err := alice.Rooms().Create(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Rooms().Invite(ctx, name, "bob"); err != nil {
			t.Fatal(err)
		}
	}
	drained(t, mallory, bob)
	drained(t, alice, bob)
	invs, err := bob.Rooms().Invites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) != 4 {
		t.Fatalf("bob holds %d invitations, want 4 (alice's, capped): %+v", len(invs), invs)
	}
	for _, inv := range invs {
		if inv.From != alice.Host().ID().String() || inv.FromName != "alice" {
			t.Errorf("invitation from %s (%q)", inv.From, inv.FromName)
		}
	}
	if rooms, _ := bob.Rooms().Rooms(ctx); len(rooms) != 0 {
		t.Fatalf("bob is in rooms he did not accept: %+v", rooms)
	}
	res, err := bob.Rooms().AcceptInvite(ctx, invs[0].ID)
	if err != nil || res.Status != "joined" || res.Room.Name != invs[0].Room {
		t.Fatalf("accept: %+v, %v", res, err)
	}
	if err := bob.Rooms().DeclineInvite(ctx, invs[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := bob.Rooms().DeclineInvite(ctx, invs[1].ID); !errors.Is(err, room.ErrNoInvite) {
		t.Errorf("declining twice: %v, want ErrNoInvite", err)
	}
	if invs, _ := bob.Rooms().Invites(ctx); len(invs) != 2 {
		t.Errorf("%d invitations left, want 2", len(invs))
	}
	send(t, bob, invs[0].Room, "bob accepted")
	alice.waitTexts(t, invs[0].Room, "bob accepted")
}

// craftCommit is a commit of epoch n+1 on parent, signed by key whoever
// that is (valid on its own: sizes, fields, signature), adding joiner with
// its key package and consent. Its sealed secrets and confirmation tag
// are random: only an admin could make real ones, and a receiver must
// refuse it for its issuer before looking at them.
func craftCommit(t *testing.T, key crypto.PrivKey, parent *group.Commit, joinerKey crypto.PrivKey) *wirepb.SignedCommit {
	t.Helper()
	issuer, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	joiner, err := peer.IDFromPrivateKey(joinerKey)
	if err != nil {
		t.Fatal(err)
	}
	var body wirepb.CommitBody
	if err := proto.Unmarshal(parent.Proto().Body, &body); err != nil {
		t.Fatal(err)
	}
	kp, _, err := group.NewKeyPackage(joinerKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kph := sha256.Sum256(kp.Marshal())
	consent, err := joinerKey.Sign(append(append([]byte("parley/room/2 join consent\x00"), parent.Room[:]...), kph[:]...))
	if err != nil {
		t.Fatal(err)
	}
	h := parent.Hash()
	body.Epoch = parent.Epoch + 1
	body.Parent = h[:]
	body.Issuer = []byte(issuer)
	body.IssuedAtMs = time.Now().UnixMilli()
	body.Members = append(body.Members, &wirepb.CommitMember{Role: wirepb.Role(group.RoleMember), KeyPackage: kp.Marshal(), Consent: consent})
	for _, m := range body.Members {
		m.Consent = nil
	}
	body.Members[len(body.Members)-1].Consent = consent
	body.Changes = []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_ADD, Subject: []byte(joiner), Actor: []byte(issuer), Role: wirepb.Role(group.RoleMember)}}
	return signForged(t, key, &body)
}

// signForged signs body as a commit with random sealed secrets (one per
// member) and a random confirmation tag, and checks it is valid on its
// own (sizes, fields, signature): only its place in a chain can refuse it.
func signForged(t *testing.T, key crypto.PrivKey, body *wirepb.CommitBody) *wirepb.SignedCommit {
	t.Helper()
	var secrets wirepb.SealedSecrets
	for range body.Members {
		secrets.Secrets = append(secrets.Secrets, &wirepb.SealedSecret{Enc: random(32), Ciphertext: random(48)})
	}
	bb, err := proto.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := proto.Marshal(&secrets)
	if err != nil {
		t.Fatal(err)
	}
	tag := random(32)
	sh := sha256.Sum256(sb)
	in := binary.BigEndian.AppendUint32([]byte("parley/room/2 commit\x00"), uint32(len(bb)))
	in = append(append(append(in, bb...), sh[:]...), tag...)
	sig, err := key.Sign(in)
	if err != nil {
		t.Fatal(err)
	}
	sc := &wirepb.SignedCommit{Body: bb, Sealed: sb, Signature: sig, ConfirmationTag: tag}
	if _, err := group.CommitFromProto(sc); err != nil {
		t.Fatalf("the forged commit is not valid on its own: %v", err)
	}
	return sc
}

func commitEnvelope(t *testing.T, id group.RoomID, sc *wirepb.SignedCommit) []byte {
	t.Helper()
	b, err := proto.Marshal(&wirepb.RoomEnvelope{Version: group.Version, RoomId: id[:], Body: &wirepb.RoomEnvelope_Commit{Commit: sc}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// invitation is a link carrying tok and secret, naming issuer's addresses.
func invitation(t *testing.T, tok *group.JoinToken, secret []byte, issuer *member) string {
	t.Helper()
	inv := &wirepb.RoomInvitation{Version: wire.RoomInvitationVersion, RoomId: tok.Room[:], Name: "team", Token: tok.Marshal(), JoinSecret: secret}
	for _, a := range issuer.Host().Addrs() {
		inv.Addrs = append(inv.Addrs, a.Bytes())
	}
	link, err := wire.EncodeRoomInvitation(inv)
	if err != nil {
		t.Fatal(err)
	}
	return link
}

// rejectedFrom waits until tr has rejected a message authored by p.
func rejectedFrom(t *testing.T, tr *tracer, p peer.ID) {
	t.Helper()
	peertest.Eventually(t, 20*time.Second, "a message of "+p.ShortString()+" rejected", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for k, v := range tr.verdict {
			if v != "delivered" && len(k) > len(p) && k[:len(p)] == string(p) {
				return true
			}
		}
		return false
	})
}

// TestMemberCannotAdd: bob, a plain member, cannot let anyone in. His node
// refuses to make a link or an invitation; a join token he signs by hand
// is refused by his own node when mallory asks, and ignored by alice when
// a stranger presents it on the topic; a commit he signs by hand adding a
// stranger is refused by alice and carol. The control: a link of alice's
// admits mallory, and every member ends on alice's commit.
func TestMemberCannotAdd(t *testing.T) {
	tracers := traceNodes(t)
	ctx := context.Background()
	ms := start(t, 4)
	alice, bob, carol, mallory := ms[0], ms[1], ms[2], ms[3]
	privateRoom(t, ms[:3])
	befriend(t, bob, mallory, "mallory")
	befriend(t, mallory, bob, "bob")
	id := roomID(t, alice, "#team")

	if _, err := bob.Rooms().Link(ctx, "#team", 1, 0); !errors.Is(err, room.ErrNotAdmin) {
		t.Errorf("bob's link: %v, want ErrNotAdmin", err)
	}
	if _, err := bob.Rooms().Invite(ctx, "#team", "mallory"); !errors.Is(err, room.ErrNotAdmin) {
		t.Errorf("bob's invitation: %v, want ErrNotAdmin", err)
	}

	// A token bob signs himself.
	be := snapshot(t, bob, "#team")
	tok, err := group.NewJoinToken(bob.Identity().PrivKey(), be.Commit(), 5, time.Now().Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.Rooms().JoinLink(ctx, invitation(t, tok, tok.Secret, bob)); !errors.Is(err, room.ErrLinkRefused) {
		t.Errorf("mallory joining with bob's token: %v, want ErrLinkRefused", err)
	}
	strangerKey, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stranger := newAttacker(t, strangerKey, alice, alice.roomTopic(t, "#team"))
	kp, _, err := group.NewKeyPackage(strangerKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, err := group.NewJoinRequest(strangerKey, tok, tok.Secret, kp)
	if err != nil {
		t.Fatal(err)
	}
	jr, err := proto.Marshal(&wirepb.RoomEnvelope{Version: group.Version, RoomId: id[:], Body: &wirepb.RoomEnvelope_JoinRequest{JoinRequest: req}})
	if err != nil {
		t.Fatal(err)
	}
	joinMsg := stranger.own(jr)
	stranger.publish(joinMsg)

	// A commit bob signs himself.
	if err := bob.Rooms().PublishRaw(ctx, "#team", commitEnvelope(t, id, craftCommit(t, bob.Identity().PrivKey(), be.Commit(), strangerKey))); err != nil {
		t.Fatal(err)
	}
	rejectedFrom(t, tracers[alice.Host().ID()], bob.Host().ID())
	rejectedFrom(t, tracers[carol.Host().ID()], bob.Host().ID())
	peertest.Eventually(t, 20*time.Second, "alice to judge the stranger's join request", func() bool {
		tr := tracers[alice.Host().ID()]
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.verdict[msgKey(joinMsg)] != ""
	})
	if v := tracers[alice.Host().ID()].verdict[msgKey(joinMsg)]; v == "delivered" {
		t.Errorf("alice accepted a join request under bob's token")
	}

	// The control.
	l, err := alice.Rooms().Link(ctx, "#team", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := mallory.Rooms().JoinLink(ctx, l.Link); err != nil || res.Status != "joined" {
		t.Fatalf("control: mallory joining with alice's link: %+v, %v", res, err)
	}
	for _, m := range ms {
		m.waitEpoch(t, "team", 4)
	}
	n, h := groupEpoch(t, alice, "#team")
	for _, m := range ms {
		mn, mh := groupEpoch(t, m, "#team")
		if mn != n || mh != h {
			t.Errorf("%s at epoch %d %x, alice at %d %x", m.Host().ID().ShortString(), mn, mh[:4], n, h[:4])
		}
		info, err := m.Rooms().Info(ctx, "#team")
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Members) != 4 {
			t.Errorf("%s lists %d members, want 4", m.Host().ID().ShortString(), len(info.Members))
		}
		for _, mem := range info.Members {
			if mem.PeerID == stranger.h.ID().String() {
				t.Errorf("%s lists the stranger as a member", m.Host().ID().ShortString())
			}
		}
	}
}

// converged waits until every member in ms is at the same epoch and
// commit hash, and returns them.
func converged(t *testing.T, ms []*member, name string) (uint64, group.Hash) {
	t.Helper()
	var n uint64
	var h group.Hash
	peertest.Eventually(t, 30*time.Second, "the members to agree on one commit", func() bool {
		for i, m := range ms {
			mn, mh, err := m.Rooms().GroupEpoch(name)
			if err != nil {
				return false
			}
			if i == 0 {
				n, h = mn, mh
			} else if mn != n || mh != h {
				return false
			}
		}
		return true
	})
	return n, h
}

// raceChanges makes a room of ms (alice, bob, carol, dave and more),
// makes bob an admin, then has alice promote carol while bob kicks dave, at
// the same moment; both calls must succeed.
func raceChanges(t *testing.T, ms []*member) {
	t.Helper()
	ctx := context.Background()
	privateRoom(t, ms)
	alice, bob, dave := ms[0], ms[1], ms[3]
	if _, err := alice.Rooms().Promote(ctx, "#team", "m1"); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		m.waitEpoch(t, "team", uint64(len(ms)+1))
	}
	var wg sync.WaitGroup
	var promoteErr, kickErr error
	wg.Add(2)
	go func() { defer wg.Done(); _, promoteErr = alice.Rooms().Promote(ctx, "#team", "m2") }()
	go func() { defer wg.Done(); _, kickErr = bob.Rooms().Kick(ctx, "#team", dave.Host().ID().String()) }()
	wg.Wait()
	if promoteErr != nil || kickErr != nil {
		t.Fatalf("alice's promotion: %v; bob's kick: %v", promoteErr, kickErr)
	}
}

// TestConcurrentChangesNotLost: after alice's promotion of carol and bob's
// kick of dave raced (raceChanges), both changes hold once the room
// settles: each call reported success.
func TestConcurrentChangesNotLost(t *testing.T) {
	ms := start(t, 5)
	raceChanges(t, ms)
	n, h := settled(t, ms)
	t.Logf("both changes hold at epoch %d %x", n, h[:4])
}

// settled waits until both changes of raceChanges hold (the admin whose
// commit lost re-makes its change on top of the winner: a commit,
// announced by a room event) and the members that stay agree on one
// commit, and returns it.
func settled(t *testing.T, ms []*member) (uint64, group.Hash) {
	t.Helper()
	ctx := context.Background()
	alice, bob, carol, dave, erin := ms[0], ms[1], ms[2], ms[3], ms[4]
	converged(t, []*member{alice, bob, carol, erin}, "#team")
	lost := func() []string {
		info, err := alice.Rooms().Info(ctx, "#team")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, mem := range info.Members {
			switch {
			case mem.PeerID == dave.Host().ID().String():
				out = append(out, "bob's kick of dave")
			case mem.PeerID == carol.Host().ID().String() && mem.Role != "admin":
				out = append(out, "alice's promotion of carol")
			}
		}
		return out
	}
	if len(lost()) > 0 {
		alice.waitFor(t, "both changes in the room", func(ev apitype.Event) bool { return ev.Type == "room" && len(lost()) == 0 })
	}
	return converged(t, []*member{alice, bob, carol, erin}, "#team")
}

// TestConcurrentRosterChanges: alice (the owner) and bob (an admin) change
// the room at the same moment, through their nodes (raceChanges), and then
// with two commits for one slot delivered in opposite orders on two sides
// of the room, while erin, a plain member, publishes a commit of her own
// for the same slot. Every member converges on one epoch and commit hash
// each time, the owner's commit wins the second race, erin's is refused,
// and the room keeps working on the winner (the control).
func TestConcurrentRosterChanges(t *testing.T) {
	tracers := traceNodes(t)
	ctx := context.Background()
	ms := start(t, 5)
	alice, bob, carol, erin := ms[0], ms[1], ms[2], ms[4]

	// Through the nodes, at once.
	raceChanges(t, ms)
	stay := []*member{alice, bob, carol, erin}
	n, _ := settled(t, ms)
	t.Logf("after the changes through the nodes: epoch %d", n)

	// Two commits for slot n+1, in opposite orders, and erin's.
	id := roomID(t, alice, "#team")
	topic := alice.roomTopic(t, "#team")
	ca, _, err := group.NewCommit(snapshot(t, alice, "#team"), alice.Identity().PrivKey(), group.Proposal{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cb, _, err := group.NewCommit(snapshot(t, bob, "#team"), bob.Identity().PrivKey(), group.Proposal{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	relayKeys := make([]crypto.PrivKey, 2)
	for i := range relayKeys {
		if relayKeys[i], _, err = crypto.GenerateEd25519Key(rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	west := newAttacker(t, relayKeys[0], alice, topic)
	east := newAttacker(t, relayKeys[1], carol, topic)
	east.publish(east.own(commitEnvelope(t, id, cb.Proto())))
	west.publish(west.own(commitEnvelope(t, id, ca.Proto())))
	east.publish(east.own(commitEnvelope(t, id, ca.Proto())))
	west.publish(west.own(commitEnvelope(t, id, cb.Proto())))
	ee := snapshot(t, erin, "#team")
	if err := erin.Rooms().PublishRaw(ctx, "#team", commitEnvelope(t, id, craftCommit(t, erin.Identity().PrivKey(), ee.Commit(), relayKeys[0]))); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{alice, bob, carol} {
		rejectedFrom(t, tracers[m.Host().ID()], erin.Host().ID())
	}
	n2, h2 := converged(t, stay, "#team")
	if wantH := ca.Hash(); n2 != n+1 || h2 != wantH {
		t.Errorf("members agree on epoch %d %x; want %d and alice's commit %x (the owner's wins)", n2, h2[:4], n+1, wantH[:4])
	}
	// The room still works on the winner.
	send(t, bob, "#team", "bob on the winning branch")
	for _, m := range []*member{alice, carol, erin} {
		m.waitTexts(t, "#team", "bob on the winning branch")
	}
}

// TestStrangerStoresNothing: a stranger cannot make a node store anything
// for a room the stranger is not in. On the topic of alice's room it
// publishes join requests (under a token of its own, and under alice's
// real token without its join secret), its key package, a commit adding
// itself and a leave; it asks alice and carol (who is in no room) directly
// to admit it and to serve it the room. Nothing changes in any node's
// tables, alice's token keeps its use, and the room keeps working (the
// control: a message of alice's reaches bob).
func TestStrangerStoresNothing(t *testing.T) {
	tracers := traceNodes(t)
	ctx := context.Background()
	ms := start(t, 3)
	alice, bob, carol := ms[0], ms[1], ms[2]
	privateRoom(t, ms[:2])
	id := roomID(t, alice, "#team")
	topic := alice.roomTopic(t, "#team")
	l, err := alice.Rooms().Link(ctx, "#team", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := wire.DecodeRoomInvitation(l.Link)
	if err != nil {
		t.Fatal(err)
	}
	aliceTok, err := group.ParseJoinToken(inv.Token)
	if err != nil {
		t.Fatal(err)
	}
	cur := snapshot(t, alice, "#team").Commit()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ownTok, err := group.NewJoinToken(key, cur, 1, time.Now().Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	joinReq := func(tok *group.JoinToken, secret []byte) *wirepb.JoinRequest {
		kp, _, err := group.NewKeyPackage(key, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		req, err := group.NewJoinRequest(key, tok, secret, kp)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	before := map[*member]map[string]int{}
	for _, m := range ms {
		rows, err := m.Rooms().StoredRows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before[m] = rows
	}

	s := newAttacker(t, key, alice, topic)
	kp, _, err := group.NewKeyPackage(key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var sent []*pb.Message
	for _, env := range []*wirepb.RoomEnvelope{
		{Body: &wirepb.RoomEnvelope_JoinRequest{JoinRequest: joinReq(ownTok, ownTok.Secret)}},
		{Body: &wirepb.RoomEnvelope_JoinRequest{JoinRequest: joinReq(aliceTok, random(32))}},
		{Body: &wirepb.RoomEnvelope_KeyPackage{KeyPackage: kp.Proto()}},
		{Body: &wirepb.RoomEnvelope_Commit{Commit: craftCommit(t, key, cur, key)}},
		{Body: &wirepb.RoomEnvelope_Leave{Leave: &wirepb.LeaveProposal{Epoch: cur.Epoch, Signature: random(64)}}},
	} {
		env.Version, env.RoomId = group.Version, id[:]
		b, err := proto.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, s.own(b))
	}
	s.publish(sent...)
	peertest.Eventually(t, 20*time.Second, "alice to judge the stranger's messages", func() bool {
		tr := tracers[alice.Host().ID()]
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, m := range sent {
			if tr.verdict[msgKey(m)] == "" {
				return false
			}
		}
		return true
	})

	// Straight to the nodes.
	if err := s.h.Connect(ctx, carol.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	ask := func(to *member, pid protocol.ID, req, resp proto.Message) {
		t.Helper()
		st, err := s.h.NewStream(ctx, to.Host().ID(), pid)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := wire.WriteFrame(st, req); err != nil {
			t.Fatal(err)
		}
		st.CloseWrite()
		if err := wire.ReadFrame(st, 1<<20, resp); err != nil {
			t.Fatalf("%s of %s: %v", pid, to.Host().ID().ShortString(), err)
		}
	}
	for _, c := range []struct {
		to   *member
		req  *wirepb.JoinRequest
		want string
	}{
		{alice, joinReq(aliceTok, random(32)), "bad proof"},
		{alice, joinReq(ownTok, ownTok.Secret), "unknown token"},
		{carol, joinReq(aliceTok, inv.JoinSecret), "unknown token"},
	} {
		var a wirepb.JoinAnswer
		ask(c.to, room.ProtocolRoomJoin, c.req, &a)
		if a.Error != c.want {
			t.Errorf("join request to %s: answer %q, want %q", c.to.Host().ID().ShortString(), a.Error, c.want)
		}
	}
	for _, to := range []*member{alice, carol} {
		var resp wirepb.RoomFetchResponse
		ask(to, room.ProtocolRoomSync2, &wirepb.RoomFetchRequest{Version: group.Version, RoomId: id[:], Epoch: cur.Epoch, Proof: random(32)}, &resp)
		if resp.Error == "" || len(resp.Commits) > 0 || len(resp.Messages) > 0 {
			t.Errorf("%s served a stranger: %d commits, %d messages, error %q", to.Host().ID().ShortString(), len(resp.Commits), len(resp.Messages), resp.Error)
		}
	}

	send(t, alice, "#team", "the control")
	bob.waitTexts(t, "#team", "the control")
	for _, m := range ms {
		after, err := m.Rooms().StoredRows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range room.StoredTables {
			if table == "room_log" {
				continue // the control
			}
			if after[table] != before[m][table] {
				t.Errorf("%s: %s has %d rows, %d before the stranger", m.Host().ID().ShortString(), table, after[table], before[m][table])
			}
		}
		var n int
		m.DB().SQL().QueryRow("SELECT count(*) FROM room_log WHERE sender = ?", s.h.ID().String()).Scan(&n)
		if n != 0 {
			t.Errorf("%s logged %d messages of the stranger", m.Host().ID().ShortString(), n)
		}
	}
	var used int
	alice.DB().SQL().QueryRow("SELECT used FROM room_links WHERE token = ?", aliceTok.ID[:]).Scan(&used)
	if used != 0 {
		t.Errorf("alice's token lost %d uses to a stranger without its join secret", used)
	}
}
