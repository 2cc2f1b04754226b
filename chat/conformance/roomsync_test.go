package conformance

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// The tests in this file check "/parley/roomsync/1" of PROTOCOL.md on a
// public room, from a bare host that is not on the room's topic (a public
// room's log is served to anyone who names it; no proof).

// syncRaw writes body as one frame on a fresh /parley/roomsync/1 stream
// and reads the one response.
func syncRaw(t *testing.T, h host.Host, node *peertest.Running, body []byte) (*wirepb.RoomSyncResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := h.NewStream(ctx, node.Host().ID(), wire.ProtocolRoomSync)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := st.Write(append(uvarint(len(body)), body...)); err != nil {
		return nil, err
	}
	var resp wirepb.RoomSyncResponse
	if err := wire.NewReader(st).ReadFrame(wire.MaxSyncResponse, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func syncReq(t *testing.T, h host.Host, node *peertest.Running, req *wirepb.RoomSyncRequest) *wirepb.RoomSyncResponse {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := syncRaw(t, h, node, b)
	if err != nil {
		t.Fatalf("sync request %v: %v", req, err)
	}
	return resp
}

// checkSynced checks a page per "/parley/roomsync/1": at most limit
// messages, ascending (hlc, msg_id), each after after_hlc, with a gossipsub
// signature that verifies over "libp2p-pubsub:" ‖ Message{from, data,
// seqno, topic} by the Ed25519 key of `from`, and data a valid public
// RoomMessage of the room. It returns the decoded messages.
func checkSynced(t *testing.T, id []byte, resp *wirepb.RoomSyncResponse, afterHLC uint64, limit int) []*wirepb.RoomMessage {
	t.Helper()
	if resp.Error != "" {
		t.Fatalf("sync refused: %q", resp.Error)
	}
	if len(resp.Messages) > limit {
		t.Fatalf("%d messages, over %d", len(resp.Messages), limit)
	}
	var out []*wirepb.RoomMessage
	for i, sm := range resp.Messages {
		var in []byte
		in = protowire.AppendTag(in, 1, protowire.BytesType)
		in = protowire.AppendBytes(in, sm.From)
		in = protowire.AppendTag(in, 2, protowire.BytesType)
		in = protowire.AppendBytes(in, sm.Data)
		in = protowire.AppendTag(in, 3, protowire.BytesType)
		in = protowire.AppendBytes(in, sm.Seqno)
		in = protowire.AppendTag(in, 4, protowire.BytesType)
		in = protowire.AppendString(in, publicTopic(id))
		if len(sm.From) != 38 || len(sm.Key) != 0 || len(sm.Seqno) != 8 ||
			!ed25519.Verify(ed25519.PublicKey(sm.From[6:]), append([]byte("libp2p-pubsub:"), in...), sm.Signature) {
			t.Fatalf("message %d: from %x, key %d bytes, seqno %d bytes: the gossipsub signature does not verify", i, sm.From, len(sm.Key), len(sm.Seqno))
		}
		var m wirepb.RoomMessage
		if err := proto.Unmarshal(sm.Data, &m); err != nil {
			t.Fatal(err)
		}
		if m.Version != 1 || !bytes.Equal(m.RoomId, id) || m.Text == "" || m.Hlc <= afterHLC {
			t.Fatalf("message %d: %v (after_hlc %d)", i, &m, afterHLC)
		}
		out = append(out, &m)
	}
	if !slices.IsSortedFunc(out, func(a, b *wirepb.RoomMessage) int {
		return cmp.Or(cmp.Compare(a.Hlc, b.Hlc), bytes.Compare(a.MsgId, b.MsgId))
	}) {
		t.Fatal("messages not in ascending (hlc, msg_id) order")
	}
	return out
}

// TestRoomSyncPages checks "/parley/roomsync/1": one request, one
// response of the room's log after `after_hlc`, ascending (hlc, msg_id),
// at most `limit` messages with `more` set when truncated, each as
// published (data, from, seqno, signature) so the requester re-verifies
// it; paging with `after_hlc` = the last hlc returns the rest.
func TestRoomSyncPages(t *testing.T) {
	node := startNode(t)
	id := publicRoom(t, node, "#history")
	p := joinTopic(t, node, id)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()

	published := map[string][]byte{} // msg_id → data
	base := time.Now().Add(-time.Minute)
	for i := range 3 {
		m := publicText(id, hlcAt(base.Add(time.Duration(i)*time.Second), 0), fmt.Sprintf("logged %d", i))
		published[string(m.MsgId)] = p.publish(t, m)
		shown(t, ev, p.h.ID(), m.MsgId)
	}
	if _, err := node.Rooms().Send(context.Background(), "#history", "the node's own"); err != nil {
		t.Fatal(err)
	}
	own := p.next(t, node.Host().ID())
	published[string(decodeNodeMessage(t, own, id, "the node's own").MsgId)] = own.Data

	reader := bareHost(t, node)
	resp := syncReq(t, reader, node, &wirepb.RoomSyncRequest{Version: 1, RoomId: id, Limit: 3})
	first := checkSynced(t, id, resp, 0, 3)
	if len(first) != 3 || !resp.More {
		t.Fatalf("limit 3 of 4: %d messages, more %v", len(first), resp.More)
	}
	after := first[len(first)-1].Hlc
	resp = syncReq(t, reader, node, &wirepb.RoomSyncRequest{Version: 1, RoomId: id, AfterHlc: after})
	rest := checkSynced(t, id, resp, after, wire.MaxSyncMessages)
	if len(rest) != 1 || resp.More {
		t.Fatalf("the rest: %d messages, more %v; want 1, false", len(rest), resp.More)
	}
	all := append(first, rest...)
	for _, m := range all {
		data, ok := published[string(m.MsgId)]
		b, _ := proto.Marshal(m)
		if !ok || !bytes.Equal(data, b) {
			t.Fatalf("served %v, which was not published as such", m)
		}
		delete(published, string(m.MsgId))
	}
	if len(published) != 0 {
		t.Fatalf("%d published messages not served", len(published))
	}
}

// TestRoomSyncLimit checks "/parley/roomsync/1": at most 256 messages per
// response, whatever `limit` asks (0 is the responder's default), with
// `more` set. The node's own messages skip the rate limit ("Clocks, own
// messages, sending"), so it logs 257 at once.
func TestRoomSyncLimit(t *testing.T) {
	node := startNode(t)
	id := publicRoom(t, node, "#many")
	ctx := context.Background()
	for i := range wire.MaxSyncMessages + 1 {
		if _, err := node.Rooms().Send(ctx, "#many", fmt.Sprintf("message %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	reader := bareHost(t, node)
	for _, limit := range []uint32{0, 257, 1000} {
		resp := syncReq(t, reader, node, &wirepb.RoomSyncRequest{Version: 1, RoomId: id, Limit: limit})
		if got := checkSynced(t, id, resp, 0, 256); len(got) != 256 || !resp.More {
			t.Fatalf("limit %d: %d messages, more %v; want 256, true", limit, len(got), resp.More)
		}
	}
}

// TestRoomSyncRefusals checks the refusals of "/parley/roomsync/1" and
// room.proto: a request frame over 4 KiB is refused before its body is
// read (the stream is reset, "Transport": framing) while one of exactly
// 4 KiB is answered; an unknown version and an unknown room are answered
// with `error` and no messages.
func TestRoomSyncRefusals(t *testing.T) {
	node := startNode(t)
	id := publicRoom(t, node, "#refusing")
	if _, err := node.Rooms().Send(context.Background(), "#refusing", "something to serve"); err != nil {
		t.Fatal(err)
	}
	reader := bareHost(t, node)

	padded := func(n int) []byte {
		b, _ := proto.Marshal(&wirepb.RoomSyncRequest{Version: 1, RoomId: id})
		// An unknown field pads the request to exactly n bytes; a reader
		// skips unknown fields.
		pad := n - len(b) - 3
		b = protowire.AppendTag(b, 15, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(pad))
		return append(b, make([]byte, pad)...)
	}
	at := padded(wire.MaxSyncRequest)
	if len(at) != 4096 {
		t.Fatalf("padded request is %d bytes", len(at))
	}
	resp, err := syncRaw(t, reader, node, at)
	if err != nil {
		t.Fatalf("4096-byte request: %v", err)
	}
	if got := checkSynced(t, id, resp, 0, 256); len(got) != 1 {
		t.Fatalf("4096-byte request: %d messages", len(got))
	}
	if resp, err := syncRaw(t, reader, node, padded(wire.MaxSyncRequest+1)); err == nil {
		t.Fatalf("4097-byte request answered: %v", resp)
	}

	for _, c := range []struct {
		name string
		req  *wirepb.RoomSyncRequest
	}{
		{"version 2", &wirepb.RoomSyncRequest{Version: 2, RoomId: id}},
		{"version 0", &wirepb.RoomSyncRequest{Version: 0, RoomId: id}},
		{"a room the node is not in", &wirepb.RoomSyncRequest{Version: 1, RoomId: publicRoomID("elsewhere")}},
	} {
		resp := syncReq(t, reader, node, c.req)
		if resp.Error == "" || len(resp.Messages) != 0 || resp.More {
			t.Errorf("%s: answered %d messages, error %q; want an error and nothing else", c.name, len(resp.Messages), resp.Error)
		}
	}
}

// TestRoomSyncVersionError checks the opening of PROTOCOL.md ("a peer that
// sees an unknown version refuses it with an error that says so") and
// room.proto's RoomSyncResponse.error ("unsupported version, ..."): the
// error answering a RoomSyncRequest of version 2 names the version.
func TestRoomSyncVersionError(t *testing.T) {
	node := startNode(t)
	id := publicRoom(t, node, "#versions")
	resp := syncReq(t, bareHost(t, node), node, &wirepb.RoomSyncRequest{Version: 2, RoomId: id})
	if resp.Error == "" {
		t.Fatal("version 2 answered without an error")
	}
	if !strings.Contains(resp.Error, "version") {
		t.Fatalf("a /parley/roomsync/1 request of version 2 is answered %q, which does not say the version is unsupported", resp.Error)
	}
}

// signedSynced is a message of author as a gossipsub router would have
// stored it: StrictSign over "libp2p-pubsub:" ‖ Message{from, data, seqno,
// topic}.
func signedSynced(t *testing.T, author ed25519.PrivateKey, topic string, seqno uint64, m *wirepb.RoomMessage) *wirepb.SyncedMessage {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	from := ed25519PeerID(author.Public().(ed25519.PublicKey))
	sq := u64(seqno)
	var in []byte
	in = protowire.AppendTag(in, 1, protowire.BytesType)
	in = protowire.AppendBytes(in, from)
	in = protowire.AppendTag(in, 2, protowire.BytesType)
	in = protowire.AppendBytes(in, data)
	in = protowire.AppendTag(in, 3, protowire.BytesType)
	in = protowire.AppendBytes(in, sq)
	in = protowire.AppendTag(in, 4, protowire.BytesType)
	in = protowire.AppendString(in, topic)
	return &wirepb.SyncedMessage{From: from, Data: data, Seqno: sq, Signature: ed25519.Sign(author, append([]byte("libp2p-pubsub:"), in...))}
}

// TestRoomSyncRequester checks the node as a /parley/roomsync/1
// requester ("/parley/roomsync/1": sync runs when a peer joins the topic;
// the cursor is never beyond now; requesters re-verify each gossipsub
// signature and run the validator, clock bound ahead included): a peer
// joining the topic is asked for the room's history with a valid request,
// and of what it serves, a message by a third author with a good
// signature is shown, one whose signature fails and one dated 6 minutes
// ahead are not. The node's sync jobs run one at a time, so the request
// it sends a second peer that joins afterwards marks the end of the first
// sync.
func TestRoomSyncRequester(t *testing.T) {
	node := startNode(t)
	id := publicRoom(t, node, "#pull")
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	_, author, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	topic := publicTopic(id)
	badSig := signedSynced(t, author, topic, 1, publicText(id, hlcAt(now.Add(-3*time.Second), 0), "forged"))
	badSig.Signature[0] ^= 1
	good := signedSynced(t, author, topic, 2, publicText(id, hlcAt(now.Add(-2*time.Second), 0), "relayed history"))
	ahead := signedSynced(t, author, topic, 3, publicText(id, hlcAt(now.Add(6*time.Minute), 0), "from the future"))

	serve := func(requests chan<- *wirepb.RoomSyncRequest, msgs ...*wirepb.SyncedMessage) func(host.Host) {
		return func(h host.Host) {
			h.SetStreamHandler(wire.ProtocolRoomSync, func(st network.Stream) {
				defer st.Close()
				st.SetDeadline(time.Now().Add(20 * time.Second))
				var req wirepb.RoomSyncRequest
				if err := wire.ReadFrame(st, wire.MaxSyncRequest, &req); err != nil {
					st.Reset()
					return
				}
				select {
				case requests <- &req:
				default:
				}
				wire.WriteFrame(st, &wirepb.RoomSyncResponse{Messages: msgs})
			})
		}
	}
	first, second := make(chan *wirepb.RoomSyncRequest, 1), make(chan *wirepb.RoomSyncRequest, 1)
	joinTopic(t, node, id, serve(first, badSig, good, ahead))
	var req *wirepb.RoomSyncRequest
	select {
	case req = <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not ask a peer that joined the topic for the history")
	}
	if req.Version != 1 || !bytes.Equal(req.RoomId, id) || req.AfterHlc > hlcAt(time.Now(), 0xffff) || len(req.Proof) != 0 || req.Limit > 256 {
		t.Fatalf("the node asked %v: want version 1, the room, after_hlc not beyond now, no proof, limit ≤ 256", req)
	}
	if got := shown(t, ev, peer.ID(good.From), mustDecode(t, good).MsgId); got.Text != "relayed history" {
		t.Fatalf("shown as %+v", got)
	}
	joinTopic(t, node, id, serve(second))
	select {
	case <-second:
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not ask the second peer for the history")
	}
	for _, m := range []*wirepb.SyncedMessage{badSig, ahead} {
		if got := logged(t, node, "#pull", peer.ID(m.From), mustDecode(t, m).MsgId); len(got) != 0 {
			t.Fatalf("a synced message the text refuses is shown: %+v", got)
		}
	}
}

func mustDecode(t *testing.T, m *wirepb.SyncedMessage) *wirepb.RoomMessage {
	t.Helper()
	var rm wirepb.RoomMessage
	if err := proto.Unmarshal(m.Data, &rm); err != nil {
		t.Fatal(err)
	}
	return &rm
}
