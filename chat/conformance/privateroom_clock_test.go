package conformance

import (
	"bytes"
	"context"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// The tests in this file check "Clocks" of "Private rooms (version 2)"
// (and "Clocks, own messages, sending (both kinds)", which it refers to)
// from the outside: the bound on a member's hlc, live and synced, what
// moves the node's clock, the bound on a key package's created_at_ms,
// and the clock seeded from the log when the node starts again.

// nodeHLC makes the node send in #conf and returns the hlc of its
// message as the client reads it on the topic.
func nodeHLC(t *testing.T, node *peertest.Running, c *roomClient, text string) uint64 {
	t.Helper()
	sent, err := node.Rooms().Send(context.Background(), "#conf", text)
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, _ := c.nextApp()
		if hex.EncodeToString(m.MsgId) != sent.ID {
			continue
		}
		if got, err := c.openApp([]byte(node.Host().ID()), m); err != nil || got != text {
			t.Fatalf("the node's message: %q, %v; want %q", got, err, text)
		}
		return m.Hlc
	}
}

// TestPrivateRoomClock checks "Clocks": a member's message whose hlc is
// more than 5 minutes ahead of the node's clock is refused and does not
// move the clock (the node's next hlc stays below it); a live one more
// than 5 minutes behind is refused ("Clocks, own messages, sending");
// one 4 minutes ahead is shown and moves the clock (the node's next hlc
// is above it: last is the greatest hlc accepted in the room). Through
// /parley/roomsync/2 ("live or synced") a message over 5 minutes ahead is
// refused beside one dated now, and one over 5 minutes behind is taken
// (history may be old). Each refusal is shown by a later control.
func TestPrivateRoomClock(t *testing.T) {
	node := startNode(t)
	room, link := privateRoom(t, node, "conf", 2)
	c := joinByLink(t, node, room, link)
	// A REJECT costs the forwarder's score (−100, squared): two from one
	// host would put it below the publish threshold, and the node would
	// stop publishing to it. The second refusal comes from a second
	// member.
	c2 := joinByLink(t, node, room, link)
	c.follow()
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	// dated seals m's next message with an hlc at the given time, off the
	// client's own clock.
	dated := func(m *joinedClient, at time.Time, text string) *wirepb.AppMessage {
		g := m.sendGen[m.cur]
		m.sendGen[m.cur]++
		return sealApp(t, room, m.epochs[m.cur], m.id, g, newID(), hlcAt(at, 0), text)
	}
	honestOf := func(m *joinedClient) func() (peer.ID, []byte) {
		return func() (peer.ID, []byte) { return m.peerID(), m.send(0, "honest").MsgId }
	}
	me, honest := c.peerID(), honestOf(c)
	showControl(t, ev, honest)
	showControl(t, ev, honestOf(c2))

	t.Run("over 5 minutes ahead", func(t *testing.T) {
		var refused uint64
		notShown(t, c.roomClient, ev, me, func() []byte {
			m := dated(c, time.Now().Add(6*time.Minute), "from the future")
			refused = m.Hlc
			c.publishApp(m)
			return m.MsgId
		}, honest)
		if h := nodeHLC(t, node, c.roomClient, "after the refused future"); h >= refused {
			t.Fatalf("the node's next hlc %d is not below the refused %d: the refused message moved its clock", h, refused)
		}
	})
	t.Run("live, over 5 minutes behind", func(t *testing.T) {
		notShown(t, c2.roomClient, ev, c2.peerID(), func() []byte {
			m := dated(c2, time.Now().Add(-6*time.Minute), "from the past")
			c2.publishApp(m)
			return m.MsgId
		}, honestOf(c2))
	})
	t.Run("4 minutes ahead", func(t *testing.T) {
		m := dated(c, time.Now().Add(4*time.Minute), "a little ahead")
		c.publishApp(m)
		shown(t, ev, me, m.MsgId)
		if h := nodeHLC(t, node, c.roomClient, "after the accepted future"); h <= m.Hlc {
			t.Fatalf("the node's next hlc %d is not above the accepted %d: max(now_ms << 16, last + 1)", h, m.Hlc)
		}
	})
	t.Run("synced", func(t *testing.T) {
		ahead := dated(c, time.Now().Add(6*time.Minute), "synced from the future")
		old := dated(c, time.Now().Add(-time.Hour), "synced from an hour ago")
		now := dated(c, time.Now(), "synced now")
		var served []*wirepb.SyncedMessage
		for i, m := range []*wirepb.AppMessage{old, now, ahead} {
			served = append(served, c.signedSynced(marshalDet(t, &wirepb.RoomEnvelope{Version: 2, RoomId: room, Body: &wirepb.RoomEnvelope_App{App: m}}), uint64(1000+i)))
		}
		c.h.SetStreamHandler(protoRoomSync2, func(st network.Stream) {
			defer st.Close()
			var req wirepb.RoomFetchRequest
			if err := readFrameRaw(st, 4<<10, &req); err != nil {
				st.Reset()
				return
			}
			resp := &wirepb.RoomFetchResponse{}
			if req.AfterHlc != ^uint64(0) {
				resp.Messages = served
			}
			writeFrameRaw(st, resp)
		})
		defer c.h.RemoveStreamHandler(protoRoomSync2)
		n, err := node.Rooms().Sync(context.Background(), "#conf", me)
		if err != nil {
			t.Fatal(err)
		}
		if len(logged(t, node, "#conf", me, now.MsgId)) != 1 || len(logged(t, node, "#conf", me, old.MsgId)) != 1 {
			t.Fatalf("the synced messages dated now and an hour ago are not in the log (%d stored)", n)
		}
		if got := logged(t, node, "#conf", me, ahead.MsgId); len(got) != 0 || n != 2 {
			t.Fatalf("%d stored; the synced message over 5 minutes ahead is in the log: %+v", n, got)
		}
	})
}

// TestPrivateRoomKeyPackageClock checks "Validation of the topic" for a
// key_package: its created_at_ms at most 5 minutes ahead of our clock,
// else IGNORE. The client publishes a fresh key package dated 4 minutes
// ahead, then one dated 6 minutes ahead; the node (the owner, which keeps
// the newest package of each member for its next commit) puts the first
// in its next commit as the client's UPDATE: the second was ignored.
func TestPrivateRoomKeyPackageClock(t *testing.T) {
	node := startNode(t)
	room, link := privateRoom(t, node, "conf", 2)
	c := joinByLink(t, node, room, link)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	publish := func(kp []byte) {
		var skp wirepb.SignedKeyPackage
		unmarshalStrict(t, "key package", kp, &skp)
		c.publishEnv(&wirepb.RoomEnvelope{Version: 2, RoomId: room, Body: &wirepb.RoomEnvelope_KeyPackage{KeyPackage: &skp}})
	}
	oldEnc := c.enc
	publish(c.newKeyPackage(time.Now().Add(4 * time.Minute)))
	within := c.kp
	publish(c.newKeyPackageKeepAt(time.Now().Add(6 * time.Minute)))
	showControl(t, ev, func() (peer.ID, []byte) { return c.peerID(), c.send(0, "after my key packages").MsgId })

	joinByLink(t, node, room, link)
	p := c.follow()
	if !bytes.Equal(c.kp, within) {
		t.Fatal("the client's package changed")
	}
	c.checkUpdated(t, p, oldEnc)
}

// newKeyPackageKeepAt makes a key package dated created without replacing
// the client's keys.
func (c *roomClient) newKeyPackageKeepAt(created time.Time) []byte {
	enc, init, kp := c.enc, c.init, c.kp
	out := c.newKeyPackage(created)
	c.enc, c.init, c.kp = enc, init, kp
	return out
}

// TestPrivateRoomClockSeededAtStart checks "Clocks": "When a node starts,
// it seeds each room's clock from the stored log, ignoring values beyond
// now + 5 minutes." A member's message dated 4 minutes ahead is accepted
// and one dated 6 minutes ahead refused; the node stops and starts again
// on the same home; its first message after the restart carries an hlc
// above the accepted one (the clock was seeded from the log, not from the
// wall clock alone) and below the refused one.
func TestPrivateRoomClockSeededAtStart(t *testing.T) {
	cfg := peertest.Config(t, peertest.Home(t))
	node := peertest.Start(t, cfg, nil)
	room, link := privateRoom(t, node, "conf", 1)
	c := joinByLink(t, node, room, link)
	ev, cancel := node.Chat().Subscribe()
	me := c.peerID()
	g := c.sendGen[c.cur]
	c.sendGen[c.cur] += 2
	accepted := sealApp(t, room, c.epochs[c.cur], c.id, g, newID(), hlcAt(time.Now().Add(4*time.Minute), 0), "a little ahead")
	refused := sealApp(t, room, c.epochs[c.cur], c.id, g+1, newID(), hlcAt(time.Now().Add(6*time.Minute), 0), "too far ahead")
	c.publishApp(refused)
	c.publishApp(accepted)
	shown(t, ev, me, accepted.MsgId)
	cancel()
	if got := logged(t, node, "#conf", me, refused.MsgId); len(got) != 0 {
		t.Fatalf("the message 6 minutes ahead is in the log: %+v", got)
	}

	node.Stop(t)
	node = peertest.Start(t, cfg, nil)
	c.node = node
	c.rejoin()
	h := nodeHLC(t, node, c.roomClient, "after the restart")
	if h <= accepted.Hlc {
		t.Fatalf("the node's first hlc after the restart %d is not above %d, the greatest in its log: the clock was not seeded from the log", h, accepted.Hlc)
	}
	if h >= refused.Hlc {
		t.Fatalf("the node's first hlc after the restart %d is not below the refused %d", h, refused.Hlc)
	}
}

// rejoin connects the client to its node again (after a restart, at a
// new address) and waits until each sees the other on the room's topic.
func (c *roomClient) rejoin() {
	t := c.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.h.Connect(ctx, c.node.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	name := privateTopic(c.room)
	peertest.Eventually(t, 30*time.Second, "the restarted node and the client on "+name, func() bool {
		return slices.Contains(c.topic.ListPeers(), c.node.Host().ID()) &&
			slices.Contains(c.node.Rooms().PubSub().ListPeers(name), c.h.ID())
	})
}

// TestCommitKeyPackageDate checks "Successor" rule 3 and "Sizes" ("key
// package created_at_ms: at most 5 minutes after the issued_at_ms of the
// commit that lists it first") with the node as a plain member of a room
// the foreign owner made: the owner's commit of epoch 4 that adds a
// joiner whose package is dated 6 minutes after the commit, and one that
// carries a member's UPDATE dated so, are refused (each from its own
// host, a REJECT costing that host's score, each followed by a control
// from that host); the owner's commit for the same slot with both
// packages dated 4 minutes after it is applied, and the node seals its
// next message there.
func TestCommitKeyPackageDate(t *testing.T) {
	node := startNode(t)
	d := newDeliveryRoom(t, node)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	l3 := d.tip()
	// withPlain is l3's roster with the plain member's package replaced by
	// one dated at, plus joiner (if any) added; the changes say so.
	withPlain := func(at time.Time, joiner *ident) ([]*wirepb.CommitMember, []*wirepb.Change) {
		fresh := identAt(t, d.plain.key, at)
		ms := stripConsent(l3.p.body.Members)
		var chs []*wirepb.Change
		if !at.IsZero() {
			for _, m := range ms {
				if bytes.Equal(ownerOf(m.KeyPackage), d.plain.id) {
					m.KeyPackage = fresh.kp
				}
			}
			chs = append(chs, &wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_UPDATE, Subject: d.plain.id, Actor: d.plain.id})
		}
		if joiner != nil {
			ms = append(ms, member(joiner, wirepb.Role_ROLE_MEMBER, joiner.consent(d.room)))
			chs = append(chs, &wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_ADD, Subject: joiner.id, Actor: d.owner.id, Role: wirepb.Role_ROLE_MEMBER})
		}
		return ms, chs
	}
	late := time.Now().Add(6 * time.Minute)
	lateJoiner := identAt(t, newIdent(t).key, late)
	for _, c := range []struct {
		name string
		bad  func() *link
	}{
		{"ADD of a package dated 6 minutes after the commit", func() *link {
			ms, chs := withPlain(time.Time{}, lateJoiner)
			return sealWith(t, false, d.room, l3, d.owner, ms, chs...)
		}},
		{"UPDATE to a package dated 6 minutes after the commit", func() *link {
			ms, chs := withPlain(late, nil)
			return sealWith(t, false, d.room, l3, d.owner, ms, chs...)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := c.bad()
			if err := checkSuccessor(l3.p, bad.p); err == nil {
				t.Fatal("the commit made is a valid successor")
			}
			h := newRoomClient(t, node, d.room)
			sentinel := h.publicSentinel(t)
			h.publishEnv(&wirepb.RoomEnvelope{Version: 2, RoomId: d.room, Body: &wirepb.RoomEnvelope_Commit{Commit: bad.sc}})
			showControl(t, ev, sentinel)
			if info := d.info(t); info.Epoch != 3 {
				t.Fatalf("the node moved to epoch %d on the refused commit", info.Epoch)
			}
		})
	}

	joiner := identAt(t, newIdent(t).key, time.Now().Add(4*time.Minute))
	ms, chs := withPlain(time.Now().Add(4*time.Minute), joiner)
	good := d.extend(seal(t, d.room, l3, d.owner, ms, chs...))
	d.serve(d.chain...)
	d.publishCommit(good)
	d.stillMember(t, 4)
	sent, err := node.Rooms().Send(context.Background(), d.name, "on the commit applied")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := hex.DecodeString(sent.ID)
	d.nodeApp(t, good, id)
}
