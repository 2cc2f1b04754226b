package conformance

import (
	"bytes"
	"context"
	"testing"

	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// The tests in this file check "Commits through mailboxes" (PROTOCOL.md,
// "Private rooms (version 2)") from the outside: the foreign owner of
// privateowner_test.go makes a room the node joins as a plain member,
// and foreign 1:1 clients (client_test.go), contacts or strangers of the
// node, hand it commits as Payload.room_commit = RoomCommitDelivery{room_id,
// commit} inside their sessions. What the node does with each is read
// from its room (epoch, roster, history) once a later delivery that it
// must apply shows that it judged the earlier ones.

// deliveryPayload is Payload.room_commit for l.
func deliveryPayload(room []byte, sc *wirepb.SignedCommit) *wirepb.Payload {
	return &wirepb.Payload{Version: 1, Body: &wirepb.Payload_RoomCommit{RoomCommit: &wirepb.RoomCommitDelivery{RoomId: room, Commit: sc}}}
}

// deliver hands the node the commits, one frame each, in one write, and
// checks that every frame is acked OK (a room_commit that decodes is taken,
// whatever the room layer then makes of it).
func (c *client) deliver(room []byte, ls ...*link) {
	c.t.Helper()
	var frames []*wirepb.DMFrame
	for _, l := range ls {
		frames = append(frames, c.seal(newID(), deliveryPayload(room, l.sc)))
	}
	acks, err := c.exchange(frames...)
	if err != nil || len(acks) != len(frames) {
		c.t.Fatalf("%d acks for %d room_commit frames: %v", len(acks), len(frames), err)
	}
	for i, a := range acks {
		status(c.t, a, frames[i].GetMessage().Id, ok)
	}
}

// deliverer is a foreign 1:1 client with a session to the node; contact
// makes it one of the node's contacts, else it is a stranger.
func deliverer(t *testing.T, node *peertest.Running, contact bool) *client {
	t.Helper()
	c := newClient(t, node)
	if contact {
		if _, err := node.Chat().AddContact(context.Background(), c.id(), "d"+c.id()[len(c.id())-6:]); err != nil {
			t.Fatal(err)
		}
	}
	c.handshake(2)
	return c
}

// TestCommitDeliveryOwnerApplied checks "Commits through mailboxes", rule
// 3: "applies it ... only if its issuer is an owner in the receiver's
// current epoch and its epoch is after the receiver's: the successor of
// the current commit at once", whoever delivers it ("A room_commit may
// come from anyone with a session (a contact, a message request)"): an
// owner's commit adding a member, handed over by a stranger, then an
// owner's re-key by a contact, are each applied.
func TestCommitDeliveryOwnerApplied(t *testing.T) {
	node := startNode(t)
	o := newOwnedRoom(t, node, "conf")
	stranger := deliverer(t, node, false)
	bob := newIdent(t)
	stranger.deliver(o.room, o.extend(addMember(t, o.room, o.tip(), o.owner, bob)))
	info := o.waitEpoch(t, 3)
	if !hasMember(info.Members, bob.peerID(t).String()) {
		t.Fatalf("epoch 3 applied without the member it adds: %+v", info.Members)
	}
	contact := deliverer(t, node, true)
	contact.deliver(o.room, o.extend(rekey(t, o.room, o.tip(), o.owner)))
	o.waitEpoch(t, 4)
}

func hasMember(ms []apitype.RoomMember, id string) bool {
	for _, m := range ms {
		if m.PeerID == id {
			return true
		}
	}
	return false
}

var _ = bytes.Equal
