package conformance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// The tests in this file check "Public rooms" and "Clocks, own messages,
// sending (both kinds, version 1)" of PROTOCOL.md (with the validation
// order of "Validation") as a foreign client sees them: a bare libp2p host
// runs its own gossipsub router (StrictSign, flood publishing, as "Rooms"
// says), joins the topic it derives from the room's name, publishes
// messages it builds by hand and reads what the node publishes.
//
// A refusal has no answer on the wire, so each one is observed through a
// sentinel: the same host publishes a valid message right after the
// refused one, and once the node shows the sentinel, the refused message
// must be absent from the room's log. Each refusal uses a fresh host,
// since every REJECT costs the forwarder score ("Validation": −100 per
// invalid message, squared) and two would take it below the node's
// publish threshold.

// A public room's values per "Public rooms".
func publicRoomID(name string) []byte {
	id := sha256.Sum256(append([]byte("parley/v1 public-room\x00"), strings.ToLower(name)...))
	return id[:]
}

func publicTopic(id []byte) string { return "parley/room/1/" + hex.EncodeToString(id) }

// hlcAt is "hlc = ms << 16 | counter" of "Clocks".
func hlcAt(t time.Time, counter uint16) uint64 {
	return uint64(t.UnixMilli())<<16 | uint64(counter)
}

// roomPeer is a foreign room client on one public room's topic.
type roomPeer struct {
	h     host.Host
	topic *pubsub.Topic
	sub   *pubsub.Subscription
}

// publicRoom makes the node join the public room name (as `parley room
// join #name` does) and returns the room's id as the text derives it.
func publicRoom(t *testing.T, node *peertest.Running, name string) []byte {
	t.Helper()
	info, err := node.Rooms().JoinPublic(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	id := publicRoomID(strings.TrimPrefix(name, "#"))
	if !info.Public || info.ID != hex.EncodeToString(id) || info.Topic != publicTopic(id) {
		t.Fatalf("the node joined %s as %+v; \"Public rooms\" gives id %x, topic %s", name, info, id, publicTopic(id))
	}
	return id
}

// joinTopic starts a bare host with its own gossipsub router (after
// setup, which may set stream handlers), connects it
// to the node and subscribes to the room's topic; it returns once the
// node is in the host's view of the topic (so a publication reaches it)
// and the host in the node's (so the node's publications reach the host). A message published before the mesh forms may reach
// nobody.
func joinTopic(t *testing.T, node *peertest.Running, id []byte, setup ...func(host.Host)) *roomPeer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(h)
	}
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(false),
		pubsub.WithMaxMessageSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(publicTopic(id))
	if err != nil {
		t.Fatal(err)
	}
	events, err := topic.EventHandler()
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sub.Cancel()
		events.Cancel()
		topic.Close()
		cancel()
		h.Close()
	})
	if err := h.Connect(ctx, node.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	for {
		ev, err := events.NextPeerEvent(wctx)
		if err != nil {
			t.Fatalf("the node never joined the host's view of %s: %v", publicTopic(id), err)
		}
		if ev.Type == pubsub.PeerJoin && ev.Peer == node.Host().ID() {
			break
		}
	}
	peertest.Eventually(t, 30*time.Second, "the node to see the host on the topic", func() bool {
		return slices.Contains(node.Rooms().PubSub().ListPeers(publicTopic(id)), h.ID())
	})
	return &roomPeer{h: h, topic: topic, sub: sub}
}

func (p *roomPeer) publish(t *testing.T, m *wirepb.RoomMessage) []byte {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p.publishRaw(t, data)
	return data
}

func (p *roomPeer) publishRaw(t *testing.T, data []byte) {
	t.Helper()
	if err := p.topic.Publish(context.Background(), data); err != nil {
		t.Fatal(err)
	}
}

// next returns the next message from the node on the topic (the host's
// own publications are skipped).
func (p *roomPeer) next(t *testing.T, node peer.ID) *pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		m, err := p.sub.Next(ctx)
		if err != nil {
			t.Fatalf("no message from the node on the topic: %v", err)
		}
		if m.GetFrom() == node {
			return m
		}
	}
}

func publicText(id []byte, hlc uint64, text string) *wirepb.RoomMessage {
	return &wirepb.RoomMessage{Version: 1, RoomId: id, Hlc: hlc, MsgId: newID(), Text: text}
}

// shown waits until the node shows author's message msgID in the room.
func shown(t *testing.T, ev <-chan apitype.Event, author peer.ID, msgID []byte) *apitype.Message {
	t.Helper()
	return waitEvent(t, ev, "the message shown", func(e apitype.Event) bool {
		return e.Type == "message" && e.Message != nil && e.Message.From == author.String() && e.Message.ID == hex.EncodeToString(msgID)
	}).Message
}

// roomLog returns the node's log of the room.
func roomLog(t *testing.T, node *peertest.Running, name string) []apitype.Message {
	t.Helper()
	ms, err := node.Chat().Log(context.Background(), name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// logged returns the entries of the room's log by author with id msgID.
func logged(t *testing.T, node *peertest.Running, name string, author peer.ID, msgID []byte) []apitype.Message {
	t.Helper()
	var out []apitype.Message
	for _, m := range roomLog(t, node, name) {
		if m.From == author.String() && m.ID == hex.EncodeToString(msgID) {
			out = append(out, m)
		}
	}
	return out
}

// TestPublicRoomReceive checks "Public rooms": a RoomMessage (version 1,
// text, epoch 0, no MAC, no ciphertext) published on
// "parley/room/1/" ‖ hex(SHA-256("parley/v1 public-room" 0x00 ‖
// lowercase(name))) under StrictSign is shown in the node's log with its
// text, under the gossipsub author, dated by the hlc's physical part.
func TestPublicRoomReceive(t *testing.T) {
	node := startNode(t)
	id := publicRoom(t, node, "#Conformance")
	p := joinTopic(t, node, id)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()

	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	m := publicText(id, hlcAt(at, 3), "hello from a foreign client")
	p.publish(t, m)
	got := shown(t, ev, p.h.ID(), m.MsgId)
	if got.Text != m.Text || !got.SentAt.Equal(at) || got.Outgoing || got.Conv != "#conformance" {
		t.Fatalf("shown as %+v; want %q from %s sent at %v", got, m.Text, p.h.ID(), at)
	}
	if n := len(logged(t, node, "#conformance", p.h.ID(), m.MsgId)); n != 1 {
		t.Fatalf("the log holds the message %d times", n)
	}
}

// TestPublicRoomSend checks what the node publishes, per "Public rooms"
// and "Clocks, own messages, sending": gossipsub `from` is the node, the
// signature verifies over "libp2p-pubsub:" ‖ Message{from, data, seqno,
// topic} (as "/parley/roomsync/1" writes it), and the data is a
// RoomMessage of at most 16 KiB with version 1, the room's id, epoch 0, a
// 16-byte msg_id, the text, no MAC and no ciphertext. Its hlc is
// max(now_ms << 16, last + 1), where last is the greatest hlc accepted in
// the room: after an accepted message dated two minutes ahead, exactly
// that message's hlc + 1.
func TestPublicRoomSend(t *testing.T) {
	node := startNode(t)
	id := publicRoom(t, node, "#conformance")
	p := joinTopic(t, node, id)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	ctx := context.Background()

	// Before anything was accepted: the node's clock is its wall clock.
	before := time.Now()
	sent, err := node.Rooms().Send(ctx, "#conformance", "hello from the node")
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	m := decodeNodeMessage(t, p.next(t, node.Host().ID()), id, "hello from the node")
	if hex.EncodeToString(m.MsgId) != sent.ID {
		t.Fatalf("published msg_id %x, the node's log says %s", m.MsgId, sent.ID)
	}
	if ms := int64(m.Hlc >> 16); ms < before.UnixMilli() || ms > after.UnixMilli() {
		t.Fatalf("hlc's physical part %d is not the node's now (%d..%d)", ms, before.UnixMilli(), after.UnixMilli())
	}

	// An accepted message two minutes ahead moves the room's clock.
	ahead := publicText(id, hlcAt(time.Now().Add(2*time.Minute), 7), "from two minutes ahead")
	p.publish(t, ahead)
	shown(t, ev, p.h.ID(), ahead.MsgId)
	if _, err := node.Rooms().Send(ctx, "#conformance", "after the clock moved"); err != nil {
		t.Fatal(err)
	}
	m = decodeNodeMessage(t, p.next(t, node.Host().ID()), id, "after the clock moved")
	if m.Hlc != ahead.Hlc+1 {
		t.Fatalf("hlc after accepting %d is %d, want last + 1", ahead.Hlc, m.Hlc)
	}
}

// decodeNodeMessage checks one gossipsub message of the node on a public
// room's topic and returns its RoomMessage.
func decodeNodeMessage(t *testing.T, msg *pubsub.Message, id []byte, text string) *wirepb.RoomMessage {
	t.Helper()
	pm := msg.Message
	if pm.GetTopic() != publicTopic(id) || len(pm.Seqno) != 8 || len(pm.Key) != 0 {
		t.Fatalf("gossipsub message: topic %q, seqno %d bytes, key %d bytes", pm.GetTopic(), len(pm.Seqno), len(pm.Key))
	}
	// StrictSign, checked by hand: the Ed25519 key in the peer ID signs
	// "libp2p-pubsub:" and the protobuf Message{from = 1, data = 2, seqno
	// = 3, topic = 4} (libp2p pubsub's rpc.proto).
	var in []byte
	in = protowire.AppendTag(in, 1, protowire.BytesType)
	in = protowire.AppendBytes(in, pm.From)
	in = protowire.AppendTag(in, 2, protowire.BytesType)
	in = protowire.AppendBytes(in, pm.Data)
	in = protowire.AppendTag(in, 3, protowire.BytesType)
	in = protowire.AppendBytes(in, pm.Seqno)
	in = protowire.AppendTag(in, 4, protowire.BytesType)
	in = protowire.AppendString(in, pm.GetTopic())
	from := pm.From
	if len(from) != 38 || !bytes.Equal(from[:6], []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}) {
		t.Fatalf("from %x is not an Ed25519 peer ID", from)
	}
	if !ed25519.Verify(ed25519.PublicKey(from[6:]), append([]byte("libp2p-pubsub:"), in...), pm.Signature) {
		t.Fatal("the node's gossipsub signature does not verify over \"libp2p-pubsub:\" ‖ Message{from, data, seqno, topic}")
	}

	if len(pm.Data) > 16<<10 {
		t.Fatalf("data of %d bytes, over 16 KiB", len(pm.Data))
	}
	var m wirepb.RoomMessage
	if err := proto.Unmarshal(pm.Data, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.ProtoReflect().GetUnknown()) != 0 {
		t.Fatal("unknown fields in the node's RoomMessage")
	}
	if m.Version != 1 || !bytes.Equal(m.RoomId, id) || m.Epoch != 0 || m.Hlc == 0 || len(m.MsgId) != 16 ||
		m.Text != text || len(m.MembershipMac) != 0 || len(m.Ciphertext) != 0 {
		t.Fatalf("the node published %v; \"Public rooms\" wants version 1, the room id, epoch 0, a 16-byte msg_id, the text %q, no MAC, no ciphertext", &m, text)
	}
	return &m
}

// TestPublicRoomRefusals checks each refusal of "Public rooms",
// "Validation" and "Clocks" with an effect a client can observe: the
// message is not shown, and a message refused for its clock does not move
// the node's clock (the node's next hlc stays below it).
func TestPublicRoomRefusals(t *testing.T) {
	node := startNode(t)
	id := publicRoom(t, node, "#refusals")
	other := publicRoomID("another room")
	now := time.Now()
	for _, c := range []struct {
		name string
		msg  func() *wirepb.RoomMessage
		raw  func(msgID []byte) []byte // instead of msg
	}{
		// "Clocks": hlc >> 16 ≤ now + 5 minutes, else refused; the clock
		// does not move (checked below).
		{name: "clock over 5 minutes ahead", msg: func() *wirepb.RoomMessage {
			return publicText(id, hlcAt(now.Add(6*time.Minute), 0), "from the future")
		}},
		// "Clocks, own messages, sending": live messages are at most 5
		// minutes behind.
		{name: "live clock over 5 minutes behind", msg: func() *wirepb.RoomMessage {
			return publicText(id, hlcAt(now.Add(-6*time.Minute), 0), "from the past")
		}},
		// "Public rooms": a RoomMessage ≤ 16 KiB.
		{name: "over 16 KiB", msg: func() *wirepb.RoomMessage {
			m := publicText(id, hlcAt(now, 0), "")
			m.Text = strings.Repeat("x", 16<<10+1-proto.Size(m)-3)
			if n := proto.Size(m); n != 16<<10+1 {
				t.Fatalf("built %d bytes", n)
			}
			return m
		}},
		// "Rooms": an unknown version is refused.
		{name: "version 2", msg: func() *wirepb.RoomMessage {
			m := publicText(id, hlcAt(now, 0), "version two")
			m.Version = 2
			return m
		}},
		{name: "version 0", msg: func() *wirepb.RoomMessage {
			m := publicText(id, hlcAt(now, 0), "version zero")
			m.Version = 0
			return m
		}},
		// "Public rooms": epoch 0, no membership_mac, no ciphertext, text
		// set.
		{name: "epoch 1", msg: func() *wirepb.RoomMessage {
			m := publicText(id, hlcAt(now, 0), "epoch one")
			m.Epoch = 1
			return m
		}},
		{name: "membership_mac set", msg: func() *wirepb.RoomMessage {
			m := publicText(id, hlcAt(now, 0), "with a mac")
			m.MembershipMac = make([]byte, 32)
			return m
		}},
		{name: "ciphertext set", msg: func() *wirepb.RoomMessage {
			m := publicText(id, hlcAt(now, 0), "")
			m.Ciphertext = make([]byte, 64)
			m.MembershipMac = make([]byte, 32)
			return m
		}},
		{name: "no text", msg: func() *wirepb.RoomMessage { return publicText(id, hlcAt(now, 0), "") }},
		// "Validation": room_id matches the topic.
		{name: "another room's id", msg: func() *wirepb.RoomMessage { return publicText(other, hlcAt(now, 0), "wrong room") }},
		// room.proto: hlc is never 0; msg_id is 16 bytes.
		{name: "hlc 0", msg: func() *wirepb.RoomMessage { return publicText(id, 0, "no clock") }},
		{name: "msg_id of 15 bytes", msg: func() *wirepb.RoomMessage {
			m := publicText(id, hlcAt(now, 0), "short id")
			m.MsgId = m.MsgId[:15]
			return m
		}},
		// "Public rooms": text is UTF-8.
		{name: "text not UTF-8", raw: func(msgID []byte) []byte {
			var b []byte
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, 1)
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendBytes(b, id)
			b = protowire.AppendTag(b, 4, protowire.VarintType)
			b = protowire.AppendVarint(b, hlcAt(now, 0))
			b = protowire.AppendTag(b, 5, protowire.BytesType)
			b = protowire.AppendBytes(b, msgID)
			b = protowire.AppendTag(b, 8, protowire.BytesType)
			return protowire.AppendBytes(b, []byte{'h', 'i', 0xff})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := joinTopic(t, node, id)
			ev, cancel := node.Chat().Subscribe()
			defer cancel()
			var (
				msgID []byte
				hlc   uint64
			)
			if c.raw != nil {
				msgID = newID()
				p.publishRaw(t, c.raw(msgID))
			} else {
				m := c.msg()
				msgID, hlc = m.MsgId, m.Hlc
				p.publish(t, m)
			}
			sentinel := publicText(id, hlcAt(time.Now(), 0), "sentinel after "+c.name)
			p.publish(t, sentinel)
			shown(t, ev, p.h.ID(), sentinel.MsgId)
			if got := logged(t, node, "#refusals", p.h.ID(), msgID); len(got) != 0 {
				t.Fatalf("refused message shown: %+v", got)
			}
			if hlc>>16 > uint64(time.Now().UnixMilli()) {
				// "Clocks": a refused message does not move the clock.
				if _, err := node.Rooms().Send(context.Background(), "#refusals", "clock check"); err != nil {
					t.Fatal(err)
				}
				m := decodeNodeMessage(t, p.next(t, node.Host().ID()), id, "clock check")
				if m.Hlc >= hlc {
					t.Fatalf("the node's next hlc %d is not below the refused %d: the refused message moved its clock", m.Hlc, hlc)
				}
			}
		})
	}
}

// TestPublicRoomTextLimit checks "Public rooms": `text` is 1 byte to 8 KiB
// of UTF-8 (room.proto: "at most 8 KiB"): 8192 bytes are shown, 8193
// bytes are refused.
func TestPublicRoomTextLimit(t *testing.T) {
	node := startNode(t)
	id := publicRoom(t, node, "#limits")
	ev, cancel := node.Chat().Subscribe()
	defer cancel()

	p := joinTopic(t, node, id)
	ok := publicText(id, hlcAt(time.Now(), 0), strings.Repeat("é", 4096))
	p.publish(t, ok)
	shown(t, ev, p.h.ID(), ok.MsgId)

	over := publicText(id, hlcAt(time.Now(), 0), strings.Repeat("x", 8<<10+1))
	p.publish(t, over)
	sentinel := publicText(id, hlcAt(time.Now(), 0), "sentinel")
	p.publish(t, sentinel)
	shown(t, ev, p.h.ID(), sentinel.MsgId)
	if got := logged(t, node, "#limits", p.h.ID(), over.MsgId); len(got) != 0 {
		t.Fatalf("a public-room text of 8193 bytes is shown; PROTOCOL.md \"Public rooms\" and room.proto say 1 byte to 8 KiB")
	}
}

// TestPublicRoomDedup checks "Public rooms": logs deduplicate on (room id,
// author, msg_id), never on msg_id alone. A copy of A's message re-signed
// by B is shown under B and does not suppress A's original, even when it
// arrives first; a second message of A with the same msg_id (other text,
// another gossipsub seqno) is dropped, the first kept.
func TestPublicRoomDedup(t *testing.T) {
	node := startNode(t)
	id := publicRoom(t, node, "#dedup")
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	a := joinTopic(t, node, id)
	b := joinTopic(t, node, id)

	orig := publicText(id, hlcAt(time.Now(), 0), "A's words")
	data, err := proto.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	b.publishRaw(t, data) // B's copy, first
	if got := shown(t, ev, b.h.ID(), orig.MsgId); got.Text != orig.Text {
		t.Fatalf("B's copy shown as %+v", got)
	}
	a.publishRaw(t, data) // the original, after
	if got := shown(t, ev, a.h.ID(), orig.MsgId); got.Text != orig.Text {
		t.Fatalf("A's original shown as %+v", got)
	}

	again := proto.Clone(orig).(*wirepb.RoomMessage)
	again.Text = "A's other words under the same id"
	again.Hlc = hlcAt(time.Now(), 1)
	a.publish(t, again)
	var rnd [4]byte
	rand.Read(rnd[:])
	sentinel := publicText(id, hlcAt(time.Now(), 2), "sentinel "+hex.EncodeToString(rnd[:]))
	a.publish(t, sentinel)
	shown(t, ev, a.h.ID(), sentinel.MsgId)

	if got := logged(t, node, "#dedup", a.h.ID(), orig.MsgId); len(got) != 1 || got[0].Text != orig.Text {
		t.Fatalf("A's messages with one msg_id in the log: %+v, want only the first", got)
	}
	if got := logged(t, node, "#dedup", b.h.ID(), orig.MsgId); len(got) != 1 || got[0].Text != orig.Text {
		t.Fatalf("B's copy in the log: %+v", got)
	}
}
