package conformance

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// The tests in this file check "Fork choice" and "Own messages" with the
// node as a member of a room the foreign owner made (privateowner_test.go,
// with the admin and the plain member of newDeliveryRoom): an admin's
// commit reaches the node first, the owner's rival for the same slot
// second; the owner's wins (rule 2), so the node heals onto it, and what
// the node did on the losing branch it does again on the winning one.

// publishCommit puts l on the room's topic from the owner's host.
func (d *deliveryRoom) publishCommit(l *link) {
	d.publishEnv(&wirepb.RoomEnvelope{Version: 2, RoomId: d.room, Body: &wirepb.RoomEnvelope_Commit{Commit: l.sc}})
}

// nodeApp waits for the node's application message msgID sealed at
// epoch l (its epoch and epoch_hash) and opens it with l's keys.
func (d *deliveryRoom) nodeApp(t *testing.T, l *link, msgID []byte) (*wirepb.AppMessage, string) {
	t.Helper()
	e := l.epochState()
	d.epochs[l.epoch()] = e
	for {
		m, _ := d.nextApp()
		if !bytes.Equal(m.MsgId, msgID) || m.Epoch != l.epoch() || !bytes.Equal(m.EpochHash, l.p.hash[:8]) {
			continue
		}
		text, err := d.checkApp([]byte(d.node.Host().ID()), m)
		if err != nil {
			t.Fatalf("the node's message sealed at epoch %d: %v", l.epoch(), err)
		}
		return m, text
	}
}

// TestForkHealResendsMessages checks "Fork choice" (epoch n, parent =
// hash(prev), c beats cur: follow c, "fork healed") and "Own messages":
// the node follows the admin's REKEY of epoch 4 and sends a message
// sealed under it; the owner's REKEY for the same slot comes next and
// wins by rule 2 (owner over admin); the node publishes its message again
// with the same msg_id, sealed at the winning commit's epoch (its
// epoch_hash, MAC and sender chain), and what it sends next is sealed
// there too.
func TestForkHealResendsMessages(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	ctx := context.Background()
	l3 := d.tip()

	lost := rekey(t, d.room, l3, d.admin)
	d.publishCommit(lost)
	d.waitEpoch(t, 4)
	const text = "on the branch that loses"
	sent, err := node.Rooms().Send(ctx, d.name, text)
	if err != nil {
		t.Fatal(err)
	}
	id, err := hex.DecodeString(sent.ID)
	if err != nil {
		t.Fatal(err)
	}
	first, got := d.nodeApp(t, lost, id)
	if got != text {
		t.Fatalf("the node's message at the admin's epoch: %q, want %q", got, text)
	}

	won := d.extend(rekey(t, d.room, l3, d.owner))
	d.serve(d.chain...)
	d.publishCommit(won)
	again, got := d.nodeApp(t, won, id)
	if got != text {
		t.Fatalf("the message published again at the winning epoch: %q, want %q", got, text)
	}
	if again.Hlc <= first.Hlc {
		t.Errorf("the message published again carries hlc %d, not after the first sealing's %d", again.Hlc, first.Hlc)
	}
	if info := d.waitEpoch(t, 4); info.State != "joined" {
		t.Fatalf("the node's room after the heal: %+v", info)
	}

	// Control: what the node sends next is sealed at the winning commit.
	const next = "after the heal"
	sent, err = node.Rooms().Send(ctx, d.name, next)
	if err != nil {
		t.Fatal(err)
	}
	id, _ = hex.DecodeString(sent.ID)
	if _, got := d.nodeApp(t, won, id); got != next {
		t.Fatalf("the node's message after the heal: %q, want %q", got, next)
	}
}

// TestForkHealRemakesKick checks "Own messages" ("an admin whose commit
// lost re-makes its kicks and role changes on top of the winner") and
// "Fork choice" ("The admin whose commit lost re-makes its change on top
// of the winner"): the owner promotes the node to admin (epoch 4); the
// node kicks the plain member (its REMOVE commit of epoch 5); the owner's
// REKEY for the same slot wins by rule 2; the node heals onto it and
// publishes a commit of epoch 6 on top of the owner's that removes the
// plain member again, a valid successor ("Successor") with the node as
// issuer and actor.
func TestForkHealRemakesKick(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	ctx := context.Background()
	nodeID := []byte(node.Host().ID())
	l3 := d.tip()

	ms := stripConsent(l3.p.body.Members)
	for _, m := range ms {
		if bytes.Equal(ownerOf(m.KeyPackage), nodeID) {
			m.Role = wirepb.Role_ROLE_ADMIN
		}
	}
	l4 := d.extend(seal(t, d.room, l3, d.owner, ms, &wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_ROLE, Subject: nodeID, Actor: d.owner.id, Role: wirepb.Role_ROLE_ADMIN}))
	d.serve(d.chain...)
	d.publishCommit(l4)
	d.waitEpoch(t, 4)

	plain := d.plain.peerID(t)
	if _, err := node.Rooms().Kick(ctx, d.name, plain.String()); err != nil {
		t.Fatal(err)
	}
	kick := d.nodeCommit(t, l4, 5)
	if !removes(kick, d.plain.id, nodeID) {
		t.Fatalf("the node's kick: %v", kick.body.Changes)
	}

	won := d.extend(rekey(t, d.room, l4, d.owner))
	d.serve(d.chain...)
	d.publishCommit(won)
	remade := d.nodeCommit(t, won, 6)
	if !removes(remade, d.plain.id, nodeID) {
		t.Fatalf("the node's commit on top of the winner does not remove the plain member again: %v", remade.body.Changes)
	}
	d.waitEpoch(t, 6)
	if hasMember(d.info(t).Members, plain.String()) {
		t.Fatal("the plain member is still in the node's roster")
	}
}

// nodeCommit waits for the node's commit of epoch e on the topic and
// checks it as a successor of parent, issued by the node.
func (d *deliveryRoom) nodeCommit(t *testing.T, parent *link, e uint64) *parsedCommit {
	t.Helper()
	p, err := checkSigned(d.nextCommit(e))
	if err != nil {
		t.Fatalf("the node's commit of epoch %d: %v", e, err)
	}
	if err := checkSuccessor(parent.p, p); err != nil {
		t.Fatalf("the node's commit of epoch %d is no valid successor of the owner's: %v", e, err)
	}
	if !bytes.Equal(p.body.Issuer, []byte(d.node.Host().ID())) {
		t.Fatalf("the commit of epoch %d is issued by %x, not the node", e, p.body.Issuer)
	}
	return p
}

// removes reports whether p removes subject with actor as the actor.
func removes(p *parsedCommit, subject, actor []byte) bool {
	for _, ch := range p.body.Changes {
		if ch.Kind == wirepb.ChangeKind_CHANGE_REMOVE && bytes.Equal(ch.Subject, subject) && bytes.Equal(ch.Actor, actor) {
			return p.members[string(subject)] == nil
		}
	}
	return false
}

// TestForkHealByChild checks "Fork choice" rule 3 and the row "epoch
// n+1, parent = hash(r)": two admins commit for epoch 5 at once; the node
// follows the one the tie-break (rule 4) prefers, sends a message under
// it, and keeps the other as its rival r; a child of r (the owner's REKEY
// of epoch 6 on top of it) arrives; r with a child beats the childless
// current commit, so the node follows r and then its child ("fork
// healed"), and publishes its message again sealed at epoch 6 ("Own
// messages").
func TestForkHealByChild(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	ctx := context.Background()
	second := newIdent(t)
	l4 := d.extend(d.add(t, d.tip(), wirepb.Role_ROLE_ADMIN, second))
	d.serve(d.chain...)
	d.publishCommit(l4)
	d.waitEpoch(t, 4)

	// Rule 4: the smaller SHA-256("parley/room/2 fork" 0x00 ‖ parent ‖
	// issuer) wins between two admins.
	win, lose := d.admin, second
	if bytes.Compare(sha(label0("parley/room/2 fork"), l4.p.hash, win.id), sha(label0("parley/room/2 fork"), l4.p.hash, lose.id)) > 0 {
		win, lose = lose, win
	}
	cur, r := rekey(t, d.room, l4, win), rekey(t, d.room, l4, lose)
	d.publishCommit(cur)
	d.waitEpoch(t, 4+1)
	const text = "under the commit that loses by a child"
	sent, err := node.Rooms().Send(ctx, d.name, text)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := hex.DecodeString(sent.ID)
	if _, got := d.nodeApp(t, cur, id); got != text {
		t.Fatalf("the node's message under the first commit: %q", got)
	}
	// r loses by rule 4 (ignored, kept as the rival); then its child.
	d.publishCommit(r)
	d.extend(r)
	child := d.extend(rekey(t, d.room, r, d.owner))
	d.serve(d.chain...)
	d.publishCommit(child)
	d.waitEpoch(t, 6)
	if _, got := d.nodeApp(t, child, id); got != text {
		t.Fatalf("the message published again at epoch 6: %q, want %q", got, text)
	}
}

// TestForkEquivocation checks "Fork choice": "Two different commits by
// one issuer for one slot are an equivocation: reported as an event
// everywhere; between them the smaller commit hash wins." The owner's
// REKEY of epoch 4 reaches the node, then the owner's other REKEY for the
// same slot, with a smaller hash: the node reports it in the room's
// history and follows the second one (its next message is sealed there).
func TestForkEquivocation(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	l3 := d.tip()
	first := rekey(t, d.room, l3, d.owner)
	d.publishCommit(first)
	d.waitEpoch(t, 4)
	second := d.extend(smallerHash(func() *link { return rekey(t, d.room, l3, d.owner) }, first.p.hash))
	d.serve(d.chain...)
	d.publishCommit(second)
	peertest.Eventually(t, 30*time.Second, "the equivocation reported in the room's history", func() bool {
		log, err := node.Chat().Log(context.Background(), d.name, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range log {
			if strings.Contains(m.Text, "issued two different changes for epoch 4") {
				return true
			}
		}
		return false
	})
	sent, err := node.Rooms().Send(context.Background(), d.name, "after the equivocation")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := hex.DecodeString(sent.ID)
	d.nodeApp(t, second, id)
}
