package conformance

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// checkFetchedChain checks fetched commits as "/parley/roomsync/2" says a
// requester does: oldest first, each valid on its own (signature) and a
// valid successor of the one before, the first a successor of parent.
func checkFetchedChain(t *testing.T, parent *parsedCommit, commits [][]byte) []*parsedCommit {
	t.Helper()
	var out []*parsedCommit
	for i, raw := range commits {
		p, err := checkOnItsOwn(raw)
		if err != nil {
			t.Fatalf("fetched commit %d: %v", i, err)
		}
		if err := checkSuccessor(parent, p); err != nil {
			t.Fatalf("fetched commit %d (epoch %d): %v", i, p.body.Epoch, err)
		}
		out = append(out, p)
		parent = p
	}
	return out
}

// checkFetchedMessages checks fetched messages: each a stored gossipsub
// message whose signature verifies on the room's topic, holding a
// RoomEnvelope with an AppMessage the client opens (MAC, AD, chain), in
// ascending (hlc, author, msg_id) order, after afterHLC. It returns the
// texts by msg_id.
func checkFetchedMessages(t *testing.T, c *roomClient, msgs []*wirepb.SyncedMessage, afterHLC uint64) map[string]string {
	t.Helper()
	type key struct {
		hlc           uint64
		author, msgID []byte
	}
	var keys []key
	out := map[string]string{}
	for i, sm := range msgs {
		checkPubsubSig(t, privateTopic(c.room), sm.From, sm.Data, sm.Seqno, sm.Key, sm.Signature)
		env := c.checkEnvelope(sm.Data)
		m := env.GetApp()
		if m == nil {
			t.Fatalf("fetched message %d holds %T, not an app message", i, env.Body)
		}
		if m.Hlc <= afterHLC {
			t.Fatalf("fetched message %d: hlc %d not after %d", i, m.Hlc, afterHLC)
		}
		text, err := c.checkApp(sm.From, m)
		if err != nil {
			t.Fatalf("fetched message %d (epoch %d, generation %d): %v", i, m.Epoch, m.Generation, err)
		}
		out[string(m.MsgId)] = text
		keys = append(keys, key{m.Hlc, sm.From, m.MsgId})
	}
	if !slices.IsSortedFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.hlc, b.hlc), bytes.Compare(a.author, b.author), bytes.Compare(a.msgID, b.msgID))
	}) {
		t.Fatal("fetched messages are not in ascending (hlc, author, msg_id) order")
	}
	return out
}

// TestPrivateRoomFetch checks "/parley/roomsync/2" from a member: with a
// proof of its current epoch (or of the previous one) it gets the commits
// of the chain since it joined, after `commits_after`, each with a valid
// signature and parent hash back to the genesis it saw when it joined,
// and the stored messages of those epochs after `after_hlc` (both
// authors, every one opening), at most `limit` with `more` set; without a
// proof (`after_hlc` 2^64−1, 32 zero bytes) the commits only; with a
// wrong proof, "not a member".
func TestPrivateRoomFetch(t *testing.T) {
	node := startNode(t)
	room, link := privateRoom(t, node, "conf", 1)
	c := joinByLink(t, node, room, link)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	ctx := context.Background()

	texts := map[string]string{} // msg_id → text, every message of the room
	talk := func(round int) {
		for i := range 2 {
			text := fmt.Sprintf("node %d.%d", round, i)
			if _, err := node.Rooms().Send(ctx, "#conf", text); err != nil {
				t.Fatal(err)
			}
			m, _ := c.nextApp()
			texts[string(m.MsgId)] = text
			text = fmt.Sprintf("client %d.%d", round, i)
			m = c.send(0, text)
			shown(t, ev, c.peerID(), m.MsgId)
			texts[string(m.MsgId)] = text
		}
	}
	talk(2)
	if _, err := node.Rooms().Promote(ctx, "#conf", c.peerID().String()); err != nil {
		t.Fatal(err)
	}
	c.follow()
	talk(3)
	genesis := c.epochs[1].parsed(t)

	// Commits and messages since the client joined (epoch 2).
	resp := c.fetchAsMember(c.cur, 0, 0, 0)
	if resp.Error != "" || resp.More {
		t.Fatalf("fetch: error %q, more %v", resp.Error, resp.More)
	}
	chain := checkFetchedChain(t, genesis, resp.Commits)
	if len(chain) != 2 || chain[0].body.Epoch != 2 || chain[1].body.Epoch != 3 {
		t.Fatalf("fetched %d commits; want epochs 2 and 3 (since the client joined)", len(chain))
	}
	for _, p := range chain {
		if !bytes.Equal(p.hash, c.epochs[p.body.Epoch].hash) {
			t.Fatalf("fetched commit of epoch %d differs from the one on the topic", p.body.Epoch)
		}
	}
	got := checkFetchedMessages(t, c.roomClient, resp.Messages, 0)
	if len(got) != len(texts) {
		t.Fatalf("fetched %d messages, want %d", len(got), len(texts))
	}
	for id, text := range texts {
		if got[id] != text {
			t.Fatalf("fetched %q for %x, want %q", got[id], id, text)
		}
	}

	// Pages: limit, more, after_hlc. The cursor is an hlc, and two
	// authors may share one: the next page asks after the last hlc − 1
	// and drops what it holds.
	var last uint64
	seen := map[string]bool{}
	for page := 0; page < 10; page++ {
		resp := c.fetchAsMember(c.cur, c.cur, last, 3)
		if resp.Error != "" || len(resp.Commits) != 0 {
			t.Fatalf("page %d: error %q, %d commits after the current epoch", page, resp.Error, len(resp.Commits))
		}
		got := checkFetchedMessages(t, c.roomClient, resp.Messages, last)
		if len(got) > 3 || (resp.More && len(got) != 3) {
			t.Fatalf("page %d: %d messages with limit 3, more %v", page, len(got), resp.More)
		}
		for id := range got {
			seen[id] = true
		}
		if !resp.More {
			break
		}
		var env wirepb.RoomEnvelope
		unmarshalStrict(t, "RoomEnvelope", resp.Messages[len(resp.Messages)-1].Data, &env)
		last = env.GetApp().Hlc - 1
	}
	if len(seen) != len(texts) {
		t.Fatalf("paged through %d messages, want %d", len(seen), len(texts))
	}

	// commits_after: only the later commits.
	resp = c.fetchAsMember(c.cur, 2, hlcAt(time.Now().Add(time.Hour), 0), 0)
	if resp.Error != "" || len(resp.Commits) != 1 || len(checkFetchedChain(t, c.epochs[2].parsed(t), resp.Commits)) != 1 {
		t.Fatalf("commits after epoch 2: error %q, %d commits", resp.Error, len(resp.Commits))
	}
	// A proof of the previous epoch is accepted.
	if resp := c.fetchAsMember(c.cur-1, 0, 0, 1); resp.Error != "" || len(resp.Messages) != 1 {
		t.Fatalf("proof of the previous epoch: error %q, %d messages", resp.Error, len(resp.Messages))
	}
	// Member without a proof: the commits only.
	resp = c.fetch(&wirepb.RoomFetchRequest{Version: 2, RoomId: room, Epoch: 1, AfterHlc: ^uint64(0), Proof: make([]byte, 32)})
	if resp.Error != "" || len(resp.Messages) != 0 || len(checkFetchedChain(t, genesis, resp.Commits)) != 2 {
		t.Fatalf("member without a proof: error %q, %d commits, %d messages; want the commits only", resp.Error, len(resp.Commits), len(resp.Messages))
	}
	// A wrong proof (here: over other fields than those sent) is refused.
	req := &wirepb.RoomFetchRequest{Version: 2, RoomId: room, Epoch: c.cur, Limit: 5}
	req.Proof = c.syncProof(c.cur, &wirepb.RoomFetchRequest{Version: 2, RoomId: room, Epoch: c.cur, Limit: 6})
	if resp := c.fetch(req); resp.Error != "not a member" {
		t.Fatalf("wrong proof: %q, want \"not a member\"", resp.Error)
	}
	// An unknown room.
	req = &wirepb.RoomFetchRequest{Version: 2, RoomId: newID32(), Epoch: c.cur}
	req.Proof = c.syncProof(c.cur, req)
	if resp := c.fetch(req); resp.Error != "unknown room" {
		t.Fatalf("unknown room: %q", resp.Error)
	}
}

func newID32() []byte { return cat(newID(), newID()) }

// TestPrivateRoomFetchHighCursor checks "/parley/roomsync/2": `after_hlc`
// is a u64 (room2.proto), and the messages served are those with hlc >
// after_hlc: for a cursor of 2^63 or more (other than 2^64−1, which asks
// for commits only) there are none, and the commits are served as for any
// other cursor.
func TestPrivateRoomFetchHighCursor(t *testing.T) {
	node := startNode(t)
	room, link := privateRoom(t, node, "conf", 1)
	c := joinByLink(t, node, room, link)
	for _, after := range []uint64{1 << 63, ^uint64(0) - 1} {
		resp := c.fetchAsMember(c.cur, 0, after, 0)
		if resp.Error != "" || len(resp.Messages) != 0 || len(resp.Commits) != 1 {
			t.Errorf("after_hlc %d: error %q, %d commits, %d messages; want the commit of epoch %d and no message",
				after, resp.Error, len(resp.Commits), len(resp.Messages), c.cur)
		}
	}
}

// signedSynced makes a stored gossipsub message of the client on the
// room's topic, as StrictSign signs it.
func (c *roomClient) signedSynced(data []byte, seqno uint64) *wirepb.SyncedMessage {
	sm := &wirepb.SyncedMessage{From: c.id, Data: data, Seqno: u64(seqno)}
	var in []byte
	in = protowire.AppendTag(in, 1, protowire.BytesType)
	in = protowire.AppendBytes(in, sm.From)
	in = protowire.AppendTag(in, 2, protowire.BytesType)
	in = protowire.AppendBytes(in, sm.Data)
	in = protowire.AppendTag(in, 3, protowire.BytesType)
	in = protowire.AppendBytes(in, sm.Seqno)
	in = protowire.AppendTag(in, 4, protowire.BytesType)
	in = protowire.AppendString(in, privateTopic(c.room))
	sm.Signature = ed25519.Sign(c.key, append([]byte("libp2p-pubsub:"), in...))
	return sm
}

// TestPrivateRoomSyncRequester checks "/parley/roomsync/2" with the node
// as requester and the client as a member serving its log: the node's
// proof verifies under the epoch's sync key over both peer IDs; it takes
// a first page of 256 messages (`more` set) and asks for the next one so
// that a message sharing the last hlc of the page is not lost (the text:
// `after_hlc` = the last hlc − 1); every message served is stored.
func TestPrivateRoomSyncRequester(t *testing.T) {
	node := startNode(t)
	room, link := privateRoom(t, node, "conf", 1)
	c := joinByLink(t, node, room, link)
	e := c.epochs[c.cur]

	// 257 messages of the client, the last two at one hlc.
	base := hlcAt(time.Now().Add(-time.Minute), 0)
	var msgs []*wirepb.SyncedMessage
	var hlcs []uint64
	for i := range 257 {
		h := base + uint64(min(i, 255))
		m := sealApp(t, room, e, c.id, uint32(i), newID(), h, fmt.Sprintf("stored %d", i))
		msgs = append(msgs, c.signedSynced(marshalDet(t, &wirepb.RoomEnvelope{Version: 2, RoomId: room, Body: &wirepb.RoomEnvelope_App{App: m}}), uint64(i+1)))
		hlcs = append(hlcs, h)
	}
	reqs := make(chan *wirepb.RoomFetchRequest, 16)
	c.h.SetStreamHandler(protoRoomSync2, func(st network.Stream) {
		defer st.Close()
		var req wirepb.RoomFetchRequest
		if err := readFrameRaw(st, 4<<10, &req); err != nil {
			st.Reset()
			return
		}
		reqs <- &req
		resp := &wirepb.RoomFetchResponse{}
		in := cat(label0("parley/room/2 sync proof"), lp(req.RoomId), u64(req.Epoch), u64(req.CommitsAfter), u64(req.AfterHlc), u32(req.Limit), lp([]byte(node.Host().ID())), lp(c.id))
		switch {
		case req.Epoch != c.cur || !bytes.Equal(mac(e.keys.sync, in), req.Proof):
			resp.Error = "not a member"
		case req.AfterHlc != ^uint64(0):
			limit := int(req.Limit)
			if limit == 0 || limit > 256 {
				limit = 256
			}
			for i, m := range msgs {
				if hlcs[i] > req.AfterHlc {
					if len(resp.Messages) == limit {
						resp.More = true
						break
					}
					resp.Messages = append(resp.Messages, m)
				}
			}
		}
		writeFrameRaw(st, resp)
	})
	n, err := node.Rooms().Sync(context.Background(), "#conf", c.peerID())
	if err != nil {
		t.Fatal(err)
	}
	first := <-reqs
	if first.Version != 2 || !bytes.Equal(first.RoomId, room) || first.Epoch != c.cur || first.AfterHlc >= base {
		t.Fatalf("the node's first request %v", first)
	}
	var second *wirepb.RoomFetchRequest
	select {
	case second = <-reqs:
	default:
		t.Fatal("the node did not ask for the next page")
	}
	if second.AfterHlc >= hlcs[255] {
		t.Errorf("the next page is asked after hlc %d, the last hlc of the page: the message sharing it is lost", second.AfterHlc)
	}
	if n != 257 {
		t.Errorf("the node stored %d messages of 257", n)
	}
}
