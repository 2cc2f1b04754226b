package conformance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

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

// sentinel is a contact of the node whose room invitations ("Joining":
// an invitation to a contact is held for the user's consent) show that
// the node's room layer has judged every room payload queued before.
type sentinel struct {
	*client
	node *peertest.Running
	room []byte
}

func newSentinel(t *testing.T, node *peertest.Running) *sentinel {
	t.Helper()
	return &sentinel{client: deliverer(t, node, true), node: node, room: newID32()}
}

// pass sends one invitation and waits until the node holds it.
func (s *sentinel) pass() {
	t := s.t
	t.Helper()
	tokID := newID()
	body := marshalDet(t, &wirepb.JoinToken{RoomId: s.room, TokenId: tokID, Issuer: []byte(s.h.ID()), ExpiresAtMs: time.Now().Add(time.Hour).UnixMilli(),
		Uses: 1, Invitee: []byte(s.node.Host().ID()), CommitHash: newID32(), Epoch: 1})
	tok := marshalDet(t, &wirepb.SignedJoinToken{Token: body, Signature: ed25519.Sign(s.key, cat(label0("parley/room/2 join token"), body))})
	inv := &wirepb.RoomInvitation{Version: 2, RoomId: s.room, Name: "sentinel", Token: tok, Addrs: [][]byte{s.h.Addrs()[0].Bytes()}, JoinSecret: newID32()}
	fr := s.seal(newID(), &wirepb.Payload{Version: 1, Body: &wirepb.Payload_RoomInvitation{RoomInvitation: inv}})
	acks, err := s.exchange(fr)
	if err != nil || len(acks) != 1 {
		t.Fatalf("sentinel: %v %v", acks, err)
	}
	status(t, acks[0], fr.GetMessage().Id, ok)
	want := hex.EncodeToString(tokID[:8])
	peertest.Eventually(t, 30*time.Second, "the sentinel invitation held", func() bool {
		invs, err := s.node.Rooms().Invites(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range invs {
			if i.ID == want {
				return true
			}
		}
		return false
	})
}

// deliveryRoom is a room the foreign owner made, the node a member at
// epoch 2, with admin (ROLE_ADMIN) and plain (ROLE_MEMBER) added by the
// owner's commit of epoch 3, delivered and applied.
type deliveryRoom struct {
	*ownedRoom
	admin, plain *ident
}

func newDeliveryRoom(t *testing.T, node *peertest.Running) *deliveryRoom {
	t.Helper()
	o := newOwnedRoom(t, node, "conf")
	d := &deliveryRoom{ownedRoom: o, admin: newIdent(t), plain: newIdent(t)}
	d.extend(d.add(t, o.tip(), wirepb.Role_ROLE_ADMIN, d.admin, wirepb.Role_ROLE_MEMBER, d.plain))
	deliverer(t, node, true).deliver(o.room, o.tip())
	o.waitEpoch(t, 3)
	o.serve(o.chain...)
	return d
}

// add is parent's roster plus each (role, identity) pair, added by the
// owner.
func (d *deliveryRoom) add(t *testing.T, parent *link, pairs ...any) *link {
	t.Helper()
	ms := stripConsent(parent.p.body.Members)
	var chs []*wirepb.Change
	for i := 0; i < len(pairs); i += 2 {
		role, id := pairs[i].(wirepb.Role), pairs[i+1].(*ident)
		ms = append(ms, member(id, role, id.consent(d.room)))
		chs = append(chs, &wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_ADD, Subject: id.id, Actor: d.owner.id, Role: role})
	}
	return seal(t, d.room, parent, d.owner, ms, chs...)
}

// stillMember checks that the node is in the room at epoch e with the
// roster of the owner's commit of e.
func (d *deliveryRoom) stillMember(t *testing.T, e uint64) {
	t.Helper()
	info := d.waitEpoch(t, e)
	var want []string
	for _, m := range d.chain[e-1].p.body.Members {
		p, err := peerIDOf(ownerOf(m.KeyPackage))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	if len(info.Members) != len(want) {
		t.Fatalf("the node's roster at epoch %d: %+v; the owner's commit lists %v", e, info.Members, want)
	}
	for _, w := range want {
		if !hasMember(info.Members, w) {
			t.Fatalf("the node's roster at epoch %d lacks %s: %+v", e, w, info.Members)
		}
	}
}

func peerIDOf(b []byte) (string, error) {
	p, err := peer.IDFromBytes(b)
	return p.String(), err
}

// TestCommitDeliveryNotOwner checks "Commits through mailboxes", rules 3
// and 4: a delivered commit is applied "only if its issuer is an owner in
// the receiver's current epoch"; "any other commit (an admin's, a rival,
// an older one)" is "a hint that the room moved on: it fetches the
// commits from members when one is reachable ... and applies what they
// serve". Each commit below would remove the node if applied: the next
// epoch by an admin (a valid successor on the topic), by a plain member,
// by a member the owner removed, and the removed admin's rival of its
// own removal. After each, the owner's next commit, delivered later, is
// applied, and the node is still in the owner's roster. The first hint
// makes the node fetch from a member (the owner's host).
func TestCommitDeliveryNotOwner(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	ousted := newIdent(t)
	d.extend(d.add(t, d.tip(), wirepb.Role_ROLE_ADMIN, ousted))
	d.extend(removeMember(t, d.room, d.tip(), d.owner, ousted.id))
	deliverer(t, node, true).deliver(d.room, d.chain[3], d.chain[4])
	d.stillMember(t, 5)
	d.serve(d.chain...)
	nodeID := []byte(node.Host().ID())
	stranger := deliverer(t, node, false)
	control := deliverer(t, node, true)
	drain(d.fetches)

	for i, tc := range []struct {
		name  string
		rogue func() *link
	}{
		{"an admin's next epoch", func() *link { return removeMember(t, d.room, d.tip(), d.admin, nodeID) }},
		{"a plain member's next epoch", func() *link { return rekey(t, d.room, d.tip(), d.plain) }},
		{"a removed admin's next epoch", func() *link { return removeMember(t, d.room, d.tip(), ousted, nodeID) }},
		{"a removed admin's commit on the epoch it kept", func() *link { return removeMember(t, d.room, d.chain[3], ousted, nodeID) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stranger.deliver(d.room, tc.rogue())
			if i == 0 {
				select {
				case <-d.fetches:
				case <-time.After(30 * time.Second):
					t.Fatal("the node did not fetch from a member after a hint of a newer epoch")
				}
			}
			control.deliver(d.room, d.extend(rekey(t, d.room, d.tip(), d.owner)))
			d.stillMember(t, d.tip().epoch())
		})
	}
}

func drain[T any](ch chan T) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// smallerHash makes commits with make until one's hash is below h.
func smallerHash(make func() *link, h []byte) *link {
	for {
		if l := make(); bytes.Compare(l.p.hash, h) < 0 {
			return l
		}
	}
}

// TestCommitDeliveryOldOrRival checks "Commits through mailboxes", rules 3
// and 4 for the owner's own commits: only a commit whose "epoch is after
// the receiver's" is applied; a rival of the current commit (an
// equivocation of the owner's that "Fork choice" would make win on the
// topic: the smaller commit hash) and a rival of the previous one are
// hints. Both would remove the node. The owner's next commit, delivered
// after them, is applied on the node's current commit.
func TestCommitDeliveryOldOrRival(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	d.extend(rekey(t, d.room, d.tip(), d.owner))
	deliverer(t, node, true).deliver(d.room, d.tip())
	d.stillMember(t, 4)
	nodeID := []byte(node.Host().ID())
	rival := smallerHash(func() *link { return removeMember(t, d.room, d.chain[2], d.owner, nodeID) }, d.tip().p.hash)
	older := removeMember(t, d.room, d.chain[1], d.owner, nodeID)
	deliverer(t, node, false).deliver(d.room, rival, older)
	deliverer(t, node, true).deliver(d.room, d.extend(rekey(t, d.room, d.tip(), d.owner)))
	d.stillMember(t, 5)
}

// TestCommitDeliveryHeld checks "Commits through mailboxes", rule 3: "a
// commit whose parent the receiver does not hold yet is kept (up to 8 per
// room, in memory) and applied when its parent is applied, by whatever
// path the parent comes, if its issuer is still an owner then". The
// parent comes by sync (served to the fetch a held commit prompts), on
// the topic, and by a later delivery (TestCommitDeliveryHeldEight); a held
// commit whose issuer, an owner when it was delivered, is only an admin
// in its parent is not applied. Each case has its own deliverer: every
// held commit costs the deliverer's and the issuer's budget
// (TestCommitDeliveryBudget).
func TestCommitDeliveryHeld(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)

	t.Run("parent by sync", func(t *testing.T) {
		parent := d.extend(rekey(t, d.room, d.tip(), d.owner))
		child := d.extend(rekey(t, d.room, parent, d.owner))
		d.serve(d.chain...)
		deliverer(t, node, false).deliver(d.room, child)
		d.stillMember(t, child.epoch())
	})
	t.Run("parent on the topic", func(t *testing.T) {
		d.serve(d.chain...) // not the parent
		parent := d.extend(rekey(t, d.room, d.tip(), d.owner))
		child := d.extend(rekey(t, d.room, parent, d.owner))
		deliverer(t, node, false).deliver(d.room, child)
		newSentinel(t, node).pass()
		if e := d.info(t).Epoch; e != parent.epoch()-1 {
			t.Fatalf("at epoch %d before the parent came, want %d", e, parent.epoch()-1)
		}
		d.publishEnv(&wirepb.RoomEnvelope{Version: 2, RoomId: d.room, Body: &wirepb.RoomEnvelope_Commit{Commit: parent.sc}})
		d.stillMember(t, child.epoch())
	})
	t.Run("issuer no longer an owner", func(t *testing.T) {
		by := deliverer(t, node, false)
		second := newIdent(t)
		d.extend(d.add(t, d.tip(), wirepb.Role_ROLE_OWNER, second))
		by.deliver(d.room, d.tip())
		d.stillMember(t, d.tip().epoch())
		// The owner makes the second owner an admin; the second owner's
		// commit on that epoch, which would remove the node (valid: an
		// admin removes a member), is held (its issuer an owner in the
		// node's current epoch), then its parent comes.
		ms := stripConsent(d.tip().p.body.Members)
		for _, m := range ms {
			if bytes.Equal(ownerOf(m.KeyPackage), second.id) {
				m.Role = wirepb.Role_ROLE_ADMIN
			}
		}
		demote := seal(t, d.room, d.tip(), d.owner, ms, &wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_ROLE, Subject: second.id, Actor: d.owner.id, Role: wirepb.Role_ROLE_ADMIN})
		late := removeMember(t, d.room, demote, second, []byte(node.Host().ID()))
		d.extend(demote)
		by.deliver(d.room, late)
		by.deliver(d.room, demote)
		newSentinel(t, node).pass()
		d.stillMember(t, demote.epoch())
		by.deliver(d.room, d.extend(rekey(t, d.room, d.tip(), d.owner)))
		d.stillMember(t, d.tip().epoch())
	})
}

// TestCommitDeliveryHeldEight checks "kept (up to 8 per room)" and
// "mailboxes may hand deposits over out of order": eight commits of the
// owner's chain delivered newest first, then their parent, are all
// applied.
func TestCommitDeliveryHeldEight(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	parent := d.extend(rekey(t, d.room, d.tip(), d.owner))
	var held []*link
	for range 8 {
		held = append([]*link{d.extend(rekey(t, d.room, d.tip(), d.owner))}, held...)
	}
	by := deliverer(t, node, false)
	by.deliver(d.room, held...)
	by.deliver(d.room, parent)
	d.stillMember(t, d.tip().epoch())
}

// TestCommitDeliveryHeldBound checks "kept (up to 8 per room, in
// memory)": nine commits of the owner's chain delivered, newest first,
// before their parent are not all kept: once the parent is applied and a
// later payload judged, the node is short of the ninth.
func TestCommitDeliveryHeldBound(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	parent := d.extend(rekey(t, d.room, d.tip(), d.owner))
	var held []*link
	for range 9 {
		held = append([]*link{d.extend(rekey(t, d.room, d.tip(), d.owner))}, held...)
	}
	stranger := deliverer(t, node, false)
	stranger.deliver(d.room, held...)
	stranger.deliver(d.room, parent)
	peertest.Eventually(t, 30*time.Second, "the parent applied", func() bool { return d.info(t).Epoch >= parent.epoch() })
	newSentinel(t, node).pass()
	e := d.info(t).Epoch
	t.Logf("nine held commits (epochs %d to %d), then their parent: the node reached epoch %d", parent.epoch()+1, d.tip().epoch(), e)
	if e >= d.tip().epoch() {
		t.Fatalf("the node reached epoch %d: it kept all nine commits delivered before their parent", e)
	}
}

// TestCommitDeliveryBudget checks "Commits through mailboxes", rule 1: the
// receiver "refuses it beyond the commit budget of "Validation of the
// topic" (10 at once, then one every 6 s), counted per deliverer and per
// claimed issuer, unless it claims to be the successor of the receiver's
// current commit". A refused commit is not even kept for its parent: the
// owner's commit of the epoch after next, handed over once the budget is
// spent, is not applied when its parent comes; handed over again (its
// parent held now), it is.
func TestCommitDeliveryBudget(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	sentinel := newSentinel(t, node)
	// junk is a commit that is not the node's successor: a genesis of the
	// room by issuer (an older epoch, a hint that prompts no fetch).
	junk := func(issuer *ident) *link {
		return seal(t, d.room, nil, issuer, []*wirepb.CommitMember{member(issuer, wirepb.Role_ROLE_OWNER, nil)},
			&wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_CREATE, Actor: issuer.id})
	}
	// spent: over budget, grandchild is dropped; its parent is applied
	// (a successor is always examined) and grandchild is not; delivered
	// again it is.
	spent := func(t *testing.T, by *client, grandchild, parent *link) {
		t.Helper()
		by.deliver(d.room, grandchild)
		by.deliver(d.room, parent)
		d.stillMember(t, parent.epoch())
		sentinel.pass()
		d.stillMember(t, parent.epoch())
		deliverer(t, node, false).deliver(d.room, grandchild)
		d.stillMember(t, grandchild.epoch())
	}

	t.Run("per deliverer", func(t *testing.T) {
		other := junk(newIdent(t))
		by := deliverer(t, node, false)
		var ls []*link
		for range 10 {
			ls = append(ls, other)
		}
		by.deliver(d.room, ls...)
		parent := d.extend(rekey(t, d.room, d.tip(), d.owner))
		spent(t, by, d.extend(rekey(t, d.room, parent, d.owner)), parent)
	})
	t.Run("per claimed issuer", func(t *testing.T) {
		old := junk(d.owner)
		a, b := deliverer(t, node, false), deliverer(t, node, false)
		a.deliver(d.room, old, old, old, old, old)
		b.deliver(d.room, old, old, old, old, old)
		parent := d.extend(rekey(t, d.room, d.tip(), d.owner))
		spent(t, a, d.extend(rekey(t, d.room, parent, d.owner)), parent)
	})
}

// TestCommitDeliveryQueueCap checks "At most 64 room payloads of one
// sender wait in the receiver's queue; more are dropped (their frames are
// still acked)": a contact hands over 64 room_commit payloads the node
// has no use for (within dm.proto's bounds, a body that is no commit)
// and then the owner's next commit, in one write; all 65 frames are acked
// OK, and the 65th is dropped: once a later payload is judged, the node is
// still at its epoch. Handed over again, the commit is applied.
//
// The cap bites only while the sender outruns the node's queue, so the 64
// must reach the node as one batch ("Direct messages": the frames already
// received): they are small and of one odd length, so that none of them
// ends where the node's 4 KiB reads do. A loaded machine can still split
// the write (the node then drains the first part before the rest is
// queued, and the 65th is rightly applied); such a try proves nothing
// either way, so the test tries again, up to three times. A node without
// the cap applies the 65th every time and fails.
func TestCommitDeliveryQueueCap(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	by := deliverer(t, node, true)
	sentinel := newSentinel(t, node)
	for try := 1; ; try++ {
		var frames []*wirepb.DMFrame
		for pad := 1; len(frames) == 0; pad++ {
			junk := deliveryPayload(d.room, &wirepb.SignedCommit{Body: make([]byte, pad), Signature: make([]byte, 64)})
			f := by.seal(newID(), junk)
			if n := proto.Size(f); (len(uvarint(n))+n)%2 == 1 {
				frames = append(frames, f)
				for range 63 {
					frames = append(frames, by.seal(newID(), junk))
				}
			}
		}
		next := d.extend(rekey(t, d.room, d.tip(), d.owner))
		last := by.seal(newID(), deliveryPayload(d.room, next.sc))
		acks, err := by.exchange(append(frames, last)...)
		if err != nil || len(acks) != 65 {
			t.Fatalf("%d acks for 65 frames: %v", len(acks), err)
		}
		for i, f := range append(frames, last) {
			status(t, acks[i], f.GetMessage().Id, ok)
		}
		sentinel.pass()
		if info := d.info(t); info.Epoch < next.epoch() {
			d.stillMember(t, next.epoch()-1)
			by.deliver(d.room, next)
			d.stillMember(t, next.epoch())
			return
		}
		if try == 3 {
			t.Fatalf("the 65th queued payload of one sender was applied in %d tries out of %d; at most 64 wait", try, try)
		}
		t.Logf("try %d: the node applied the 65th payload; its queue drained while the batch arrived split, trying again", try)
		d.stillMember(t, next.epoch())
	}
}

// forkAlerts counts the lines of the room's history that report a fork.
func forkAlerts(t *testing.T, node *peertest.Running, room string) int {
	t.Helper()
	log, err := node.Chat().Log(context.Background(), room, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range log {
		if strings.Contains(m.Text, "the room forked") {
			n++
		}
	}
	return n
}

// TestCommitDeliveryForkAlertOnce checks "Commits through mailboxes",
// rules 4 and 5: a delivered commit that forks the room (the owner's
// commit for the node's current epoch on a parent it never saw) is a hint
// and raises no alert by itself, however often it is delivered; once a
// member serves it (here after an admin's commit on top of it, a hint of
// a newer epoch, prompts a fetch), the fork is reported ("the room
// forked…"), and once only: delivered and served again, it adds no alert.
func TestCommitDeliveryForkAlertOnce(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	d.extend(rekey(t, d.room, d.tip(), d.owner))
	deliverer(t, node, true).deliver(d.room, d.tip())
	d.stillMember(t, 4)
	side := rekey(t, d.room, d.chain[1], d.owner) // epoch 3, never shown to the node
	fork := rekey(t, d.room, side, d.owner)       // epoch 4, the node's current one
	child := rekey(t, d.room, fork, d.admin)      // epoch 5, an admin's
	stranger := deliverer(t, node, false)
	sentinel := newSentinel(t, node)

	stranger.deliver(d.room, fork, fork, fork)
	sentinel.pass()
	if n := forkAlerts(t, node, d.name); n != 0 {
		t.Fatalf("a delivered fork raised %d alerts by itself; it is a hint", n)
	}
	drain(d.fetches)
	d.serve(append(d.chain[:3:3], fork, child)...)
	stranger.deliver(d.room, child)
	peertest.Eventually(t, 30*time.Second, "the fork served by a member reported", func() bool { return forkAlerts(t, node, d.name) > 0 })
	stranger.deliver(d.room, fork, child, fork, child)
	if _, err := node.Rooms().Sync(context.Background(), d.name, d.peerID()); err != nil {
		t.Logf("sync: %v", err)
	}
	sentinel.pass()
	if n := forkAlerts(t, node, d.name); n != 1 {
		t.Fatalf("one forking commit, delivered five times and served twice, raised %d alerts; want 1", n)
	}
	d.serve(d.chain...)
	deliverer(t, node, true).deliver(d.room, d.extend(rekey(t, d.room, d.tip(), d.owner)))
	d.stillMember(t, 5)
}

// TestCommitDeliveryUnknownRoom checks rule 1: the receiver "drops it if
// the room is not one it is in or joining". The owner's next commit,
// delivered under the id of a room the node is not in, is acked OK (the
// payload is within dm.proto's bounds) and not applied; under the room's
// id it is.
func TestCommitDeliveryUnknownRoom(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	by := deliverer(t, node, false)
	next := d.extend(rekey(t, d.room, d.tip(), d.owner))
	by.deliver(newID32(), next)
	newSentinel(t, node).pass()
	d.stillMember(t, next.epoch()-1)
	by.deliver(d.room, next)
	d.stillMember(t, next.epoch())
}

// TestCommitDeliveryRefused checks "Payloads" and "Direct messages" for
// room_commit: a RoomCommitDelivery out of the bounds of the .proto files
// (a room_id that is not 32 bytes, no commit, a commit without a body or
// with a signature that is not 64 bytes) is refused: its frame is acked
// REJECTED with a reason beginning "payload refused: ", it costs no
// failure budget (it authenticated: five of them, more than the 4 tokens
// of the budget, and the frame after them is still taken), and the
// session is kept: the owner's commit that follows in the same session is
// acked OK and applied.
func TestCommitDeliveryRefused(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	by := deliverer(t, node, false)
	next := d.extend(rekey(t, d.room, d.tip(), d.owner))
	shortSig := proto.Clone(next.sc).(*wirepb.SignedCommit)
	shortSig.Signature = shortSig.Signature[:63]
	noBody := proto.Clone(next.sc).(*wirepb.SignedCommit)
	noBody.Body = nil
	bad := []*wirepb.Payload{
		deliveryPayload(d.room[:31], next.sc),
		deliveryPayload(cat(d.room, []byte{0}), next.sc),
		deliveryPayload(d.room, nil),
		deliveryPayload(d.room, noBody),
		deliveryPayload(d.room, shortSig),
	}
	var frames []*wirepb.DMFrame
	for _, p := range bad {
		frames = append(frames, by.seal(newID(), p))
	}
	good := by.seal(newID(), deliveryPayload(d.room, next.sc))
	acks, err := by.exchange(append(frames, good)...)
	if err != nil || len(acks) != len(frames)+1 {
		t.Fatalf("%d acks for %d frames: %v", len(acks), len(frames)+1, err)
	}
	for i, f := range frames {
		status(t, acks[i], f.GetMessage().Id, rejected)
		if !strings.HasPrefix(acks[i].Reason, "payload refused: ") {
			t.Errorf("refused room_commit %d: reason %q, want the prefix \"payload refused: \"", i, acks[i].Reason)
		}
	}
	status(t, acks[len(frames)], good.GetMessage().Id, ok)
	d.stillMember(t, next.epoch())
}
