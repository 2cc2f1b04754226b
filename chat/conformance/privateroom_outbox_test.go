package conformance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// TestCommitDeliverySent checks the sending side of "Commits through
// mailboxes": "a node that issues a commit while it is an owner in the
// parent epoch also queues the commit in its 1:1 outbox for each peer that
// is a member of the commit's roster or of its parent's (a member the
// commit removes is told too) ..., a contact of the issuer ..., and not
// connected to the issuer at that moment over a direct connection", "as
// Payload.room_commit = RoomCommitDelivery{room_id, commit}, commit being
// the SignedCommit exactly as published", and "The outbox delivers it
// directly when the member is reachable".
//
// The node owns a room; member A (a contact) goes offline: its host
// closes. The node promotes A (epoch 4) and removes it (epoch 5). When A
// comes back (a new host with A's key, at a new address, that the node
// has never connected to), the node starts a session with it over
// /parley/prekeys/1 and hands it both commits, in order, each byte for
// byte the one member B saw on the topic. B, a contact connected to the
// node all along, gets no room_commit: a text the node sends it after
// both commits is the first payload it receives (the outbox keeps queue
// order, "Direct messages").
func TestCommitDeliverySent(t *testing.T) {
	node := startNode(t)
	ctx := context.Background()
	room, link := privateRoom(t, node, "conf", 2)
	a := joinByLink(t, node, room, link)
	b := joinByLink(t, node, room, link)
	if b.cur != 3 {
		t.Fatalf("B joined at epoch %d, want 3", b.cur)
	}
	bc := attachClient(t, node, b.h, b.key)
	for _, id := range []string{a.peerID().String(), b.peerID().String()} {
		if _, err := node.Chat().AddContact(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}

	// A goes offline.
	aKey := a.key
	a.h.Close()
	peertest.Eventually(t, 30*time.Second, "the node to lose its connection to A", func() bool {
		return node.Host().Network().Connectedness(a.peerID()) != network.Connected
	})

	if _, err := node.Rooms().Promote(ctx, "#conf", a.peerID().String()); err != nil {
		t.Fatal(err)
	}
	promote := b.nextCommit(4)
	if _, err := node.Rooms().Kick(ctx, "#conf", a.peerID().String()); err != nil {
		t.Fatal(err)
	}
	kick := b.nextCommit(5)

	// B, connected: nothing but the text that follows.
	if _, err := node.Chat().Send(ctx, b.peerID().String(), "after the commits"); err != nil {
		t.Fatal(err)
	}
	p := bc.nextPayload(func(p *wirepb.Payload) bool { return p.GetMailboxes() == nil })
	if p.GetText().GetBody() != "after the commits" {
		t.Fatalf("B, connected to the node, got a %T before the node's text; want no room_commit", p.Body)
	}

	// A comes back.
	priv, err := crypto.UnmarshalEd25519PrivateKey(aKey)
	if err != nil {
		t.Fatal(err)
	}
	ac := newClientKey(t, node, priv)
	for i, want := range []*wirepb.SignedCommit{promote, kick} {
		p := ac.nextPayload(func(p *wirepb.Payload) bool { return p.GetMailboxes() == nil })
		d := p.GetRoomCommit()
		if d == nil {
			t.Fatalf("A's payload %d: %v, want a room_commit", i, p)
		}
		if !bytes.Equal(d.RoomId, room) || !proto.Equal(d.Commit, want) ||
			!bytes.Equal(d.Commit.Body, want.Body) || !bytes.Equal(d.Commit.Sealed, want.Sealed) ||
			!bytes.Equal(d.Commit.Signature, want.Signature) || !bytes.Equal(d.Commit.ConfirmationTag, want.ConfirmationTag) {
			t.Fatalf("A's room_commit %d is not the commit of epoch %d as published on the topic", i, 4+i)
		}
	}
}

// TestNodeLeaves checks "Leaving" with the node as the leaver, in a room a
// foreign owner made: "A member leaves by publishing LeaveProposal (signed
// over its key package in the current roster)" (the signature of
// "Successor" rule 3: "parley/room/2 leave" 0x00 ‖ room id ‖ SHA-256(its
// key package in cur)), and "Until that commit arrives the leaver's node
// stays on the topic ... and publishes its leave again whenever a peer
// appears": a peer that subscribes after the first publication gets it.
func TestNodeLeaves(t *testing.T) {
	node := startNode(t)
	o := newOwnedRoom(t, node, "conf")
	nodeID := []byte(node.Host().ID())
	kp := o.tip().p.members[string(nodeID)].KeyPackage
	pub, err := ed25519Of(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	check := func(who *roomClient, d time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		env, _, err := who.envelope(ctx, func(env *wirepb.RoomEnvelope) bool { return env.GetLeave() != nil })
		if err != nil {
			t.Fatalf("no leave of the node on the topic: %v", err)
		}
		l := env.GetLeave()
		if l.Epoch != o.tip().p.body.Epoch || !ed25519.Verify(pub, cat(label0("parley/room/2 leave"), o.room, sha(kp)), l.Signature) {
			t.Fatalf("the node's leave %v: want epoch %d and its signature over its key package in the roster", l, o.tip().p.body.Epoch)
		}
	}
	if err := node.Rooms().Leave(context.Background(), o.name); err != nil {
		t.Fatal(err)
	}
	check(o.roomClient, 30*time.Second)
	// At the late peer's arrival, or failing that at the next join retry
	// (every 30 s).
	late := newRoomClient(t, node, o.room)
	check(late, 90*time.Second)
}
