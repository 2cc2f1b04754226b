package conformance

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// notShown checks a refusal: publish puts the refused message on the
// topic and returns its msg_id; then honest, from the same host, publishes
// a message the node must show (the positive control) and returns its
// author and msg_id. Once the node shows the control, the refused message
// must be absent from the room's log.
func notShown(t *testing.T, c *roomClient, ev <-chan apitype.Event, author peer.ID, publish func() []byte, honest func() (peer.ID, []byte)) {
	t.Helper()
	refused := publish()
	who, control := honest()
	shown(t, ev, who, control)
	if got := logged(t, c.node, "#conf", author, refused); len(got) != 0 {
		t.Fatalf("refused message shown: %+v", got)
	}
}

// shownAll waits until the node shows every one of author's messages
// ids, in any order.
func shownAll(t *testing.T, ev <-chan apitype.Event, author peer.ID, ids ...[]byte) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[hex.EncodeToString(id)] = true
	}
	for len(want) > 0 {
		waitEvent(t, ev, fmt.Sprintf("%d messages shown", len(want)), func(e apitype.Event) bool {
			if e.Type == "message" && e.Message != nil && e.Message.From == author.String() && want[e.Message.ID] {
				delete(want, e.Message.ID)
				return true
			}
			return false
		})
	}
}

// showControl publishes a control message and waits until it is shown.
func showControl(t *testing.T, ev <-chan apitype.Event, control func() (peer.ID, []byte)) {
	t.Helper()
	who, id := control()
	shown(t, ev, who, id)
}

// publicSentinel puts the client's host on a public room's topic with the
// node: a message it publishes there after a refused private one is the
// control that the node processed what came before.
func (c *roomClient) publicSentinel(t *testing.T) func() (peer.ID, []byte) {
	t.Helper()
	id := publicRoom(t, c.node, "#sentinel")
	topic, _ := c.joinTopic(publicTopic(id))
	n := 0
	return func() (peer.ID, []byte) {
		n++
		m := publicText(id, hlcAt(time.Now(), 0), fmt.Sprintf("sentinel %d", n))
		if err := topic.Publish(context.Background(), marshalDet(t, m)); err != nil {
			t.Fatal(err)
		}
		return c.peerID(), m.MsgId
	}
}

// TestPrivateRoomRefusals checks "Messages", "Key schedule" (the hash
// ratchet) and "Validation of the topic" with a member's messages the node
// must not show, each followed by an honest one it shows: a wrong
// membership MAC; a generation used before (new msg_id, same key); a
// ciphertext whose AD names another msg_id; another member's message
// re-published under the client's name with the MAC recomputed; a
// generation more than 1000 past the chain head; an author not in the
// roster (with a MAC under the real membership key); an epoch_hash of
// another branch; an epoch newer than ours. Skipped generations open
// (within 1000). After two commits, a message of the epoch before the
// previous one is not shown, one of the previous epoch is (late messages,
// "Removal": the previous epoch is kept 10 minutes).
func TestPrivateRoomRefusals(t *testing.T) {
	node := startNode(t)
	room, link := privateRoom(t, node, "conf", 2)
	c := joinByLink(t, node, room, link)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	me := c.peerID()
	honest := func() (peer.ID, []byte) { return me, c.send(0, "honest").MsgId }
	// A message at the client's next generation, to spoil.
	next := func(text string) *wirepb.AppMessage {
		e := c.epochs[c.cur]
		g := c.sendGen[c.cur]
		c.sendGen[c.cur]++
		return sealApp(t, room, e, c.id, g, newID(), hlcAt(time.Now(), 0), text)
	}
	remac := func(m *wirepb.AppMessage, author []byte) {
		m.MembershipMac = mac(c.epochs[c.cur].keys.membership, macInput(room, m, author))
	}

	// Positive control first: an honest message is shown.
	showControl(t, ev, honest)

	t.Run("replayed generation", func(t *testing.T) {
		notShown(t, c.roomClient, ev, me, func() []byte {
			g := c.sendGen[c.cur] - 1 // the honest message's, key used
			m := sealApp(t, room, c.epochs[c.cur], c.id, g, newID(), hlcAt(time.Now(), 0), "replayed generation")
			c.publishApp(m)
			return m.MsgId
		}, honest)
	})
	t.Run("AD of another msg_id", func(t *testing.T) {
		notShown(t, c.roomClient, ev, me, func() []byte {
			m := next("AD of another msg_id")
			orig := m.MsgId
			m.MsgId = newID() // sealed under the AD of orig; MAC over the new id
			remac(m, c.id)
			c.publishApp(m)
			if bytes.Equal(orig, m.MsgId) {
				t.Fatal("same id")
			}
			return m.MsgId
		}, honest)
	})
	t.Run("copy of the node's message under the client's name", func(t *testing.T) {
		if _, err := node.Rooms().Send(context.Background(), "#conf", "the node's words"); err != nil {
			t.Fatal(err)
		}
		nm, _ := c.nextApp()
		notShown(t, c.roomClient, ev, me, func() []byte {
			m := proto.Clone(nm).(*wirepb.AppMessage)
			remac(m, c.id)
			c.publishApp(m)
			return m.MsgId
		}, honest)
	})
	t.Run("generation more than 1000 past the head", func(t *testing.T) {
		notShown(t, c.roomClient, ev, me, func() []byte {
			// Well past 1000 ahead: the control may overtake it on the
			// way and move the head by one.
			g := c.sendGen[c.cur] + 1100
			m := sealApp(t, room, c.epochs[c.cur], c.id, g, newID(), hlcAt(time.Now(), 0), "too far ahead")
			c.publishApp(m)
			return m.MsgId
		}, honest)
	})
	t.Run("skipped generations open", func(t *testing.T) {
		g := c.sendGen[c.cur]
		c.sendGen[c.cur] += 3
		var ids [][]byte
		for _, d := range []uint32{2, 0, 1} {
			m := sealApp(t, room, c.epochs[c.cur], c.id, g+d, newID(), hlcAt(time.Now(), 0), fmt.Sprintf("generation +%d", d))
			c.publishApp(m)
			ids = append(ids, m.MsgId)
		}
		shownAll(t, ev, me, ids...)
	})
	t.Run("another branch's epoch_hash", func(t *testing.T) {
		notShown(t, c.roomClient, ev, me, func() []byte {
			m := next("another branch")
			m.EpochHash = bytes.Repeat([]byte{0xee}, 8)
			remac(m, c.id)
			c.publishApp(m)
			return m.MsgId
		}, honest)
	})
	t.Run("newer epoch", func(t *testing.T) {
		notShown(t, c.roomClient, ev, me, func() []byte {
			m := next("from a newer epoch")
			m.Epoch++
			remac(m, c.id)
			c.publishApp(m)
			return m.MsgId
		}, honest)
	})
	// A REJECT costs the forwarder's score (−100, squared): one per host.
	t.Run("wrong MAC", func(t *testing.T) {
		notShown(t, c.roomClient, ev, me, func() []byte {
			m := next("wrong MAC")
			m.MembershipMac[0] ^= 1
			c.publishApp(m)
			return m.MsgId
		}, honest)
	})
	t.Run("author not in the roster", func(t *testing.T) {
		out := newRoomClient(t, node, room)
		out.epochs = c.epochs
		sentinel := out.publicSentinel(t)
		showControl(t, ev, sentinel) // the sentinel works
		notShown(t, out, ev, out.peerID(), func() []byte {
			// A valid MAC under the epoch's membership key, over the
			// outsider's own peer ID, sealed under its "chain".
			m := sealApp(t, room, c.epochs[c.cur], out.id, 0, newID(), hlcAt(time.Now(), 0), "not a member")
			out.publishApp(m)
			return m.MsgId
		}, sentinel)
		// The same message by the member is shown.
		m := sealApp(t, room, c.epochs[c.cur], c.id, c.sendGen[c.cur], newID(), hlcAt(time.Now(), 0), "not a member")
		c.sendGen[c.cur]++
		c.publishApp(m)
		shown(t, ev, me, m.MsgId)
	})

	t.Run("old epoch", func(t *testing.T) {
		// Epoch 3: the node promotes the client (ROLE); epoch 4: a second
		// client joins (ADD).
		e2 := c.cur
		if _, err := node.Rooms().Promote(context.Background(), "#conf", me.String()); err != nil {
			t.Fatal(err)
		}
		p := c.follow()
		if p.body.Changes[0].Kind != wirepb.ChangeKind_CHANGE_ROLE || p.members[string(c.id)].Role != wirepb.Role_ROLE_ADMIN {
			t.Fatalf("the promotion's commit: %v", p.body)
		}
		joinByLink(t, node, room, link)
		c.follow()
		if c.cur != e2+2 {
			t.Fatalf("at epoch %d, want %d", c.cur, e2+2)
		}
		// The epoch before the previous one: keys erased, not shown; the
		// previous epoch's late message is.
		notShown(t, c.roomClient, ev, me, func() []byte { return c.send(e2, "two epochs late").MsgId },
			func() (peer.ID, []byte) { return me, c.send(e2+1, "one epoch late").MsgId })
		showControl(t, ev, honest)
	})
}

// TestPrivateRoomRemoval checks "Removal" and "Successor" for a REMOVE:
// the node (owner) kicks the client; the commit of the next epoch drops
// it with a REMOVE by the issuer and seals it nothing (no entry opens
// with its keys); a message it then sends at its old epoch, with a valid
// MAC and the next generation of its chain, is not shown. As a removed
// member, it still gets on /parley/roomsync/2 the commits after its epoch
// up to the one that dropped it, and no message; a peer that never was a
// member gets "not a member".
func TestPrivateRoomRemoval(t *testing.T) {
	node := startNode(t)
	room, link := privateRoom(t, node, "conf", 1)
	c := joinByLink(t, node, room, link)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	sentinel := c.publicSentinel(t)
	me := c.peerID()
	shown(t, ev, me, c.send(0, "before the kick").MsgId)
	showControl(t, ev, sentinel)

	e := c.cur
	if _, err := node.Rooms().Kick(context.Background(), "#conf", me.String()); err != nil {
		t.Fatal(err)
	}
	p := c.follow()
	if _, in := p.members[string(c.id)]; in || c.cur != e {
		t.Fatalf("the kick's commit lists the client")
	}
	if len(p.body.Changes) != 1 || p.body.Changes[0].Kind != wirepb.ChangeKind_CHANGE_REMOVE ||
		!bytes.Equal(p.body.Changes[0].Subject, c.id) || !bytes.Equal(p.body.Changes[0].Actor, p.body.Issuer) {
		t.Fatalf("the kick's changes: %v", p.body.Changes)
	}
	for i, s := range p.sealed.Secrets {
		for _, info := range [][]byte{
			cat([]byte("parley/room/2 commit secret"), room, u64(p.body.Epoch)),
			cat([]byte("parley/room/2 welcome"), room, u64(p.body.Epoch)),
		} {
			if _, err := hpkeOpen(c.enc, s.Enc, info, p.ctx, s.Ciphertext); err == nil {
				t.Fatalf("sealed entry %d of the kick opens with the removed client's key", i)
			}
		}
	}
	notShown(t, c.roomClient, ev, me, func() []byte { return c.send(e, "after the kick").MsgId }, sentinel)

	// "/parley/roomsync/2", removed member: asking at epoch e, the commits
	// after e up to the one that dropped it, and nothing after.
	resp := c.fetchAsMember(e, e, 0, 0)
	if resp.Error != "" || len(resp.Messages) != 0 || len(resp.Commits) != 1 {
		t.Fatalf("removed member's fetch: error %q, %d commits, %d messages; want the kick only", resp.Error, len(resp.Commits), len(resp.Messages))
	}
	got, err := checkOnItsOwn(resp.Commits[0])
	if err != nil || !bytes.Equal(got.hash, p.hash) {
		t.Fatalf("removed member's fetch: %v; want the kick's commit", err)
	}
	stranger := newRoomClient(t, node, room)
	stranger.epochs = c.epochs
	if resp := stranger.fetchAsMember(e, e, 0, 0); resp.Error != "not a member" {
		t.Fatalf("a stranger's fetch: %q, want \"not a member\"", resp.Error)
	}
}

// TestPrivateRoomRejoin checks "Removal" and "Joining" for a member
// removed then re-added: it asks again under a new link like anyone else,
// with a fresh key package and consent; the ADD re-adds it; its message of
// the new epoch is shown, one of the epoch it was removed from is not; on
// /parley/roomsync/2 it gets only the commits and messages since it last
// joined.
func TestPrivateRoomRejoin(t *testing.T) {
	node := startNode(t)
	room, link := privateRoom(t, node, "conf", 1)
	c := joinByLink(t, node, room, link)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	ctx := context.Background()
	me := c.peerID()
	first := c.send(0, "before the kick")
	shown(t, ev, me, first.MsgId)
	e := c.cur
	if _, err := node.Rooms().Kick(ctx, "#conf", me.String()); err != nil {
		t.Fatal(err)
	}
	c.follow()
	l, err := node.Rooms().Link(ctx, "#conf", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	oldKP := c.kp
	c.join(t, l.Link, askOnStream)
	if c.cur != e+2 || bytes.Equal(c.kp, oldKP) {
		t.Fatalf("re-added at epoch %d (want %d), fresh key package %v", c.cur, e+2, !bytes.Equal(c.kp, oldKP))
	}
	back := c.send(0, "back again")
	shown(t, ev, me, back.MsgId)
	notShown(t, c.roomClient, ev, me, func() []byte { return c.send(e, "from the epoch I was removed from").MsgId },
		func() (peer.ID, []byte) { return me, c.send(0, "control").MsgId })

	resp := c.fetchAsMember(c.cur, 0, 0, 0)
	if resp.Error != "" || len(resp.Commits) != 1 {
		t.Fatalf("fetch after rejoining: error %q, %d commits; want the re-adding commit only", resp.Error, len(resp.Commits))
	}
	if p, err := checkOnItsOwn(resp.Commits[0]); err != nil || p.body.Epoch != c.cur {
		t.Fatalf("fetched commit: %v", err)
	}
	got := checkFetchedMessages(t, c.roomClient, resp.Messages, 0)
	if _, old := got[string(first.MsgId)]; old || len(got) != 2 {
		t.Fatalf("fetched %d messages (the one of the earlier membership: %v); want the two since the re-add", len(got), old)
	}
}
