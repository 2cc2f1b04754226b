package room_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
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
	"github.com/libp2p/go-msgio"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// tracer records what one node's gossipsub router saw, and its scores.
type tracer struct {
	mu        sync.Mutex
	recv      map[string]bool     // msgKey of every message received in an RPC
	validated map[peer.ID]int     // messages entering validation, by forwarder
	dups      map[peer.ID]int     // duplicates dropped, by forwarder
	verdict   map[string]string   // msgKey -> reject reason, or "delivered"
	pruned    map[peer.ID]bool    // peers pruned from a mesh
	scores    map[peer.ID]float64 // latest score snapshot
	lowest    map[peer.ID]float64 // lowest score seen: scores decay back once a flood stops
}

var _ pubsub.RawTracer = (*tracer)(nil)

func newTracer() *tracer {
	return &tracer{recv: map[string]bool{}, validated: map[peer.ID]int{}, dups: map[peer.ID]int{}, verdict: map[string]string{}, pruned: map[peer.ID]bool{}, scores: map[peer.ID]float64{}, lowest: map[peer.ID]float64{}}
}

func msgKey(m *pb.Message) string {
	return string(m.GetFrom()) + "/" + hex.EncodeToString(m.GetSeqno())
}

func (tr *tracer) RecvRPC(rpc *pubsub.RPC) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, m := range rpc.GetPublish() {
		tr.recv[msgKey(m)] = true
	}
}

func (tr *tracer) ValidateMessage(m *pubsub.Message) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.validated[m.ReceivedFrom]++
}

func (tr *tracer) DeliverMessage(m *pubsub.Message) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.verdict[msgKey(m.Message)] = "delivered"
}

func (tr *tracer) RejectMessage(m *pubsub.Message, reason string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.verdict[msgKey(m.Message)] = reason
}

func (tr *tracer) DuplicateMessage(m *pubsub.Message) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.dups[m.ReceivedFrom]++
}

func (tr *tracer) Prune(p peer.ID, topic string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.pruned[p] = true
}

func (tr *tracer) inspect(scores map[peer.ID]float64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.scores = scores
	for p, s := range scores {
		if low, ok := tr.lowest[p]; !ok || s < low {
			tr.lowest[p] = s
		}
	}
}

func (tr *tracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (tr *tracer) OnClosedOutboundStream(peer.ID)                       {}
func (tr *tracer) Join(string)                                          {}
func (tr *tracer) Leave(string)                                         {}
func (tr *tracer) Graft(peer.ID, string)                                {}
func (tr *tracer) ThrottlePeer(peer.ID)                                 {}
func (tr *tracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (tr *tracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (tr *tracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (tr *tracer) UndeliverableMessage(*pubsub.Message)                 {}

// traceNodes gives every node started afterwards in t a tracer.
func traceNodes(t *testing.T) map[peer.ID]*tracer {
	tracers := map[peer.ID]*tracer{}
	room.SetTestPubsubOptions(t, func(h host.Host) []pubsub.Option {
		tr := newTracer()
		tracers[h.ID()] = tr
		return []pubsub.Option{pubsub.WithRawTracer(tr), pubsub.WithPeerScoreInspect(tr.inspect, 50*time.Millisecond)}
	})
	return tracers
}

// attacker is a raw libp2p host that speaks gossipsub by hand, so that it
// can send anything: it is connected to one member only and cannot be
// dialled (it does not listen).
type attacker struct {
	t     *testing.T
	h     host.Host
	key   crypto.PrivKey
	topic string
	out   msgio.WriteCloser
	seq   uint64

	mu     sync.Mutex
	got    []*pb.Message // messages the member sent us
	pruned bool          // the member pruned us from its mesh
}

const meshsub = protocol.ID("/meshsub/1.1.0")

func newAttacker(t *testing.T, key crypto.PrivKey, to *member, topic string) *attacker {
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(key), libp2p.NoListenAddrs, libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	a := &attacker{t: t, h: h, key: key, topic: topic, seq: uint64(time.Now().UnixNano())}
	h.SetStreamHandler(meshsub, a.read)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, to.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(ctx, to.Host().ID(), meshsub)
	if err != nil {
		t.Fatal(err)
	}
	a.out = msgio.NewVarintWriter(s)
	a.send(&pb.RPC{Subscriptions: []*pb.RPC_SubOpts{{Subscribe: proto.Bool(true), Topicid: proto.String(topic)}}})
	peertest.Eventually(t, 10*time.Second, "the member to see the attacker on the topic", func() bool {
		for _, p := range to.Rooms().PubSub().ListPeers(topic) {
			if p == h.ID() {
				return true
			}
		}
		return false
	})
	a.send(&pb.RPC{Control: &pb.ControlMessage{Graft: []*pb.ControlGraft{{TopicID: proto.String(topic)}}}})
	return a
}

// read records what the member sends us.
func (a *attacker) read(s network.Stream) {
	r := msgio.NewVarintReaderSize(s, 1<<20)
	for {
		b, err := r.ReadMsg()
		if err != nil {
			s.Reset()
			return
		}
		var rpc pb.RPC
		if proto.Unmarshal(b, &rpc) != nil {
			continue
		}
		a.mu.Lock()
		a.got = append(a.got, rpc.Publish...)
		for _, p := range rpc.GetControl().GetPrune() {
			if p.GetTopicID() == a.topic {
				a.pruned = true
			}
		}
		a.mu.Unlock()
	}
}

func (a *attacker) send(rpc *pb.RPC) {
	b, err := proto.Marshal(rpc)
	if err != nil {
		a.t.Fatal(err)
	}
	if err := a.out.WriteMsg(b); err != nil {
		a.t.Logf("attacker write: %v", err) // the member may have reset us
	}
}

// signed returns a message with data, authored by from and signed by key
// (a forgery when key is not from's).
func (a *attacker) signed(from peer.ID, key crypto.PrivKey, data []byte) *pb.Message {
	a.seq++
	m := &pb.Message{From: []byte(from), Data: data, Seqno: binary.BigEndian.AppendUint64(nil, a.seq), Topic: proto.String(a.topic)}
	b, err := proto.Marshal(m)
	if err != nil {
		a.t.Fatal(err)
	}
	if m.Signature, err = key.Sign(append([]byte(pubsub.SignPrefix), b...)); err != nil {
		a.t.Fatal(err)
	}
	return m
}

// own returns a message signed by the attacker itself.
func (a *attacker) own(data []byte) *pb.Message { return a.signed(a.h.ID(), a.key, data) }

func (a *attacker) publish(ms ...*pb.Message) { a.send(&pb.RPC{Publish: ms}) }

// Crafting version-2 room messages, as a member (or a former member) who
// keeps a copy of its epoch (Service.EpochSnapshot) can.

// snapshot copies m's current epoch of room name: its keys and ratchets.
func snapshot(t *testing.T, m *member, name string) *group.Epoch {
	t.Helper()
	e, err := m.Rooms().EpochSnapshot(name)
	if err != nil {
		t.Fatalf("snapshot of %s: %v", name, err)
	}
	return e
}

// envelope serializes a room envelope of room id holding app.
func envelope(t *testing.T, id group.RoomID, app *wirepb.AppMessage) []byte {
	t.Helper()
	b, err := proto.Marshal(&wirepb.RoomEnvelope{Version: group.Version, RoomId: id[:], Body: &wirepb.RoomEnvelope_App{App: app}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sealAt seals text as author's next message of epoch e, dated at, with
// msgID (random if nil).
func sealAt(t *testing.T, e *group.Epoch, author peer.ID, text string, at time.Time, msgID []byte) *wirepb.AppMessage {
	t.Helper()
	if msgID == nil {
		msgID = random(group.IDSize)
	}
	am, err := e.Seal(author, msgID, hlcAt(at), []byte(text))
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return am
}

// sealed is sealAt dated now, as envelope bytes.
func sealed(t *testing.T, e *group.Epoch, author peer.ID, text string) []byte {
	t.Helper()
	return envelope(t, e.Room(), sealAt(t, e, author, text, time.Now(), nil))
}

func hlcAt(at time.Time) uint64 { return uint64(at.UnixMilli()) << 16 }

// membershipKey returns the membership key of e, as its stored state
// holds it.
func membershipKey(t *testing.T, e *group.Epoch) []byte {
	t.Helper()
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var st wirepb.EpochState
	if err := proto.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.MembershipKey
}

// remac sets m's membership MAC for author under key.
func remac(m *wirepb.AppMessage, id group.RoomID, author peer.ID, key []byte) {
	h := hmac.New(sha256.New, key)
	h.Write(group.MACInput(id, author, m))
	m.MembershipMac = h.Sum(nil)
}

// unsealable is an app message of epoch n (branch hash) by author whose
// ciphertext is random and whose MAC is made with key (random if nil).
func unsealable(t *testing.T, id group.RoomID, n uint64, hash group.Hash, author peer.ID, key []byte) []byte {
	t.Helper()
	m := &wirepb.AppMessage{Epoch: n, EpochHash: hash[:group.EpochHashSize], Hlc: hlcAt(time.Now()), MsgId: random(group.IDSize), Ciphertext: random(64)}
	if key == nil {
		key = random(32)
	}
	remac(m, id, author, key)
	return envelope(t, id, m)
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// roomID returns the id of m's room name.
func roomID(t *testing.T, m *member, name string) group.RoomID {
	t.Helper()
	id, err := m.Rooms().RoomID(name)
	if err != nil {
		t.Fatal(err)
	}
	return group.RoomID(id)
}

// groupEpoch returns m's epoch number and commit hash of room name.
func groupEpoch(t *testing.T, m *member, name string) (uint64, group.Hash) {
	t.Helper()
	n, h, err := m.Rooms().GroupEpoch(name)
	if err != nil {
		t.Fatalf("epoch of %s: %v", name, err)
	}
	return n, h
}

// collect drains a subscription to m's events until the test ends.
func collect(t *testing.T, m *member) func() []apitype.Event {
	ch, cancel := m.Chat().Subscribe()
	var (
		mu  sync.Mutex
		evs []apitype.Event
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			mu.Lock()
			evs = append(evs, ev)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() []apitype.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]apitype.Event(nil), evs...)
	}
}

// messages returns a copy of what the member has sent the attacker so far.
func (a *attacker) messages() []*pb.Message {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*pb.Message(nil), a.got...)
}

// TestAdversarialPeer: a kicked member (holding a copy of its last epoch:
// keys, ratchets, identity), a stranger and a forger, each a raw
// gossipsub host connected to alice only, send a replay, stale-epoch
// messages with a valid MAC, bad MACs, a current-epoch message MACed with
// the old key, a non-member's message, garbage, an oversized envelope, an
// unsigned and a forged message, then flood at 100 times the rate limit,
// while bob and carol talk (the control: every one of their messages
// reaches every honest member). Nothing the attackers send reaches a log
// or an event stream; bob and carol never receive it (alice does not
// forward it); alice graylists and prunes all three.
func TestAdversarialPeer(t *testing.T) {
	tracers := traceNodes(t)
	ctx := context.Background()
	ms := start(t, 4)
	privateRoom(t, ms)
	alice, bob, carol, dave := ms[0], ms[1], ms[2], ms[3]
	honest := ms[:3]
	id := roomID(t, alice, "#team")
	topic := alice.roomTopic(t, "#team")

	// dave speaks at epoch 4, so that everyone holds his chain, and is
	// then kicked; he keeps his identity and a copy of epoch 4.
	send(t, dave, "#team", "dave before the kick")
	for _, m := range honest {
		m.waitTexts(t, "#team", "dave before the kick")
	}
	old := snapshot(t, dave, "#team")
	oldMAC := membershipKey(t, old)
	daveKey := dave.Identity().PrivKey()
	if _, err := alice.Rooms().Kick(ctx, "#team", "m3"); err != nil {
		t.Fatal(err)
	}
	for _, m := range honest {
		m.waitEpoch(t, "team", 5)
	}
	dave.Stop(t)
	n, cur := groupEpoch(t, alice, "#team")
	if n != 5 {
		t.Fatalf("alice at epoch %d after the kick, want 5", n)
	}
	waitMeshed(t, honest, "#team")

	events := map[*member]func() []apitype.Event{}
	for _, m := range honest {
		events[m] = collect(t, m)
	}
	var legit []string
	talk := func(step string) {
		for _, m := range []*member{bob, carol} {
			text := fmt.Sprintf("%s from %s", step, m.Host().ID().ShortString())
			legit = append(legit, text)
			send(t, m, "#team", text)
		}
	}

	kicked := newAttacker(t, daveKey, alice, topic)
	strangerKey, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stranger := newAttacker(t, strangerKey, alice, topic)
	forgerKey, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forger := newAttacker(t, forgerKey, alice, topic)
	attackers := []*attacker{kicked, stranger, forger}
	before := map[*member]map[peer.ID]int{}
	for _, m := range []*member{bob, carol} {
		tr := tracers[m.Host().ID()]
		tr.mu.Lock()
		before[m] = map[peer.ID]int{}
		for _, a := range attackers {
			before[m][a.h.ID()] = tr.validated[a.h.ID()]
		}
		tr.mu.Unlock()
	}

	// A valid message of bob's, as alice forwards it to the attackers.
	talk("before")
	var captured *pb.Message
	peertest.Eventually(t, 10*time.Second, "an attacker to receive bob's message", func() bool {
		for _, a := range attackers {
			for _, m := range a.messages() {
				if peer.ID(m.From) == bob.Host().ID() {
					captured = m
				}
			}
		}
		return captured != nil
	})

	type attack struct {
		name string
		by   *attacker
		msg  *pb.Message
	}
	var crafted []attack
	hit := func(name string, by *attacker, m *pb.Message) {
		crafted = append(crafted, attack{name, by, m})
		by.publish(m)
		talk(name)
	}
	// Each attacker sends at most four messages that cost it score (the
	// fourth takes it below the graylist threshold), so that each of these
	// reaches alice's validator.
	dv := kicked.h.ID()
	hit("replay", kicked, captured)
	hit("stale epoch, valid MAC and ciphertext", kicked, kicked.own(sealed(t, old, dv, "dave after the kick")))
	badMAC := sealAt(t, old, dv, "bad MAC", time.Now(), nil)
	badMAC.MembershipMac[0] ^= 1
	hit("bad membership MAC", kicked, kicked.own(envelope(t, id, badMAC)))
	hit("current epoch, old MAC key", kicked, kicked.own(unsealable(t, id, 5, cur, dv, oldMAC)))
	// A stranger, never a member.
	hit("not a member", stranger, stranger.own(unsealable(t, id, 5, cur, stranger.h.ID(), nil)))
	hit("garbage", stranger, stranger.own(random(300)))
	big := &wirepb.AppMessage{Epoch: 5, EpochHash: cur[:group.EpochHashSize], Hlc: hlcAt(time.Now()), MsgId: random(group.IDSize), Ciphertext: random(group.MaxEnvelopeSize + 1024)}
	remac(big, id, stranger.h.ID(), random(32))
	hit("oversized", stranger, stranger.own(envelope(t, id, big)))
	hit("unsigned", stranger, &pb.Message{Data: random(100), Topic: proto.String(topic)})
	// A forger, claiming to be bob.
	forge := func() *pb.Message {
		return forger.signed(bob.Host().ID(), forgerKey, unsealable(t, id, 5, cur, bob.Host().ID(), nil))
	}
	hit("forged signature", forger, forge())

	// Flood: each attacker at 100 times the rate limit (20/s) for a
	// second, while bob and carol keep talking.
	sent := 0
	for tick := 0; tick < 50; tick++ {
		for _, a := range attackers {
			var batch []*pb.Message
			for i := 0; i < 40; i++ {
				var m *pb.Message
				switch a {
				case kicked:
					m = a.own(sealed(t, old, dv, "flood"))
				case stranger:
					m = a.own(unsealable(t, id, 5, cur, a.h.ID(), nil))
				default:
					m = forge()
				}
				crafted = append(crafted, attack{"flood", a, m})
				batch = append(batch, m)
			}
			a.publish(batch...)
			sent += len(batch)
		}
		if tick%10 == 0 {
			talk(fmt.Sprintf("flood %d", tick))
		}
		time.Sleep(20 * time.Millisecond)
	}
	talk("after")

	flooded := time.Now()
	for _, m := range honest {
		m.waitTexts(t, "#team", legit...)
	}
	t.Logf("%d legitimate messages everywhere %v after the flood", len(legit), time.Since(flooded))

	// alice graylists the attackers and prunes them from her mesh. The
	// lowest score is what counts: scores decay back once the flood stops.
	atA := tracers[alice.Host().ID()]
	graylisted := func() bool {
		atA.mu.Lock()
		defer atA.mu.Unlock()
		for _, a := range attackers {
			if s, ok := atA.lowest[a.h.ID()]; !ok || s >= room.GraylistThreshold || !atA.pruned[a.h.ID()] {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(20 * time.Second); !graylisted(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			atA.mu.Lock()
			for _, a := range attackers {
				t.Logf("attacker %s: lowest score %v, pruned %v", a.h.ID().ShortString(), atA.lowest[a.h.ID()], atA.pruned[a.h.ID()])
			}
			atA.mu.Unlock()
			t.Fatal("timed out waiting for alice to graylist and prune the attackers")
		}
	}
	atA.mu.Lock()
	for _, a := range attackers {
		t.Logf("attacker %s: lowest score at alice %.0f, %d of %d messages validated", a.h.ID().ShortString(), atA.lowest[a.h.ID()], atA.validated[a.h.ID()], sent/len(attackers))
		// Once graylisted, its RPCs are dropped unread; only the first
		// flood RPC (40 messages) is queued before the verdicts land.
		if n := atA.validated[a.h.ID()]; n > 60 {
			t.Errorf("alice validated %d messages of a graylisted attacker", n)
		}
	}
	if atA.dups[kicked.h.ID()] == 0 {
		t.Error("alice did not drop the replay as a duplicate")
	}
	for _, c := range crafted {
		v := atA.verdict[msgKey(c.msg)]
		if c.name != "flood" {
			t.Logf("%-40s alice: %s", c.name, v)
		}
		switch {
		case c.name == "replay":
		case v == "delivered":
			t.Errorf("alice accepted the %s message", c.name)
		case v == "" && c.name != "flood":
			t.Errorf("the %s message never reached alice's validator", c.name)
		}
	}
	atA.mu.Unlock()

	// bob and carol never receive anything the attackers made.
	for _, m := range []*member{bob, carol} {
		tr := tracers[m.Host().ID()]
		tr.mu.Lock()
		for _, c := range crafted {
			if c.name != "replay" && tr.recv[msgKey(c.msg)] {
				t.Errorf("%s received the %s message", m.Host().ID().ShortString(), c.name)
			}
		}
		for _, a := range attackers {
			if tr.validated[a.h.ID()] > before[m][a.h.ID()] {
				t.Errorf("%s validated messages from an attacker", m.Host().ID().ShortString())
			}
		}
		tr.mu.Unlock()
		for _, a := range attackers {
			if m.Host().Network().Connectedness(a.h.ID()) == network.Connected {
				t.Errorf("%s is connected to an attacker", m.Host().ID().ShortString())
			}
		}
	}

	// Nothing from the attackers in any log, table or event stream.
	bad := map[string]bool{kicked.h.ID().String(): true, stranger.h.ID().String(): true, forger.h.ID().String(): true}
	for _, m := range honest {
		who := m.Host().ID().ShortString()
		log, err := m.Chat().Log(ctx, "#team", 0)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, msg := range log {
			key := msg.From + "/" + msg.ID
			if seen[key] {
				t.Errorf("%s: message %s twice in the log", who, key)
			}
			seen[key] = true
			if bad[msg.From] && msg.Text != "dave before the kick" && msg.State != room.StateSystem {
				t.Errorf("%s: attacker's message in the log: %q", who, msg.Text)
			}
		}
		var rows int
		m.DB().SQL().QueryRow("SELECT count(*) FROM room_log WHERE room = ? AND sender IN (?, ?, ?)", id[:], kicked.h.ID().String(), stranger.h.ID().String(), forger.h.ID().String()).Scan(&rows)
		if rows != 1 { // dave's message from before the kick
			t.Errorf("%s: %d attacker rows in room_log, want 1", who, rows)
		}
		for _, ev := range events[m]() {
			if ev.Message != nil && bad[ev.Message.From] {
				t.Errorf("%s: attacker's message in the event stream: %q", who, ev.Message.Text)
			}
		}
	}
}
