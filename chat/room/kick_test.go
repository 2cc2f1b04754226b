package room_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// TestKickRotatesKeys: carol keeps a copy of her epoch (keys and ratchets)
// and the private halves of her key packages, and a raw host stays
// subscribed to the room's topic. After her kick the others keep talking;
// the raw subscriber receives their messages and the kick's commit, yet
// carol's copy opens none of the messages (it does open a message of her
// own epoch: the control), her keys do not open the commit, and nothing
// reaches her log.
func TestKickRotatesKeys(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 3)
	privateRoom(t, ms)
	alice, bob, carol := ms[0], ms[1], ms[2]
	id := roomID(t, alice, "#team")
	topic := carol.roomTopic(t, "#team")
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	listener := newAttacker(t, key, alice, topic)
	// Everything carol holds before the last message of her epoch.
	kept := snapshot(t, carol, "#team")
	var privs []*group.KeyPackagePrivate
	rows, err := carol.DB().SQL().Query("SELECT priv FROM room_keys WHERE room = ?", id[:])
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		p, err := group.UnmarshalKeyPackagePrivate(b)
		if err != nil {
			t.Fatal(err)
		}
		privs = append(privs, p)
	}
	rows.Close()
	if len(privs) == 0 {
		t.Fatal("carol stores no key package private key")
	}

	send(t, alice, "#team", "before the kick")
	carol.waitTexts(t, "#team", "before the kick")
	if _, err := alice.Rooms().Kick(ctx, "#team", "m2"); err != nil {
		t.Fatal(err)
	}
	alice.waitEpoch(t, "team", 4)
	bob.waitEpoch(t, "team", 4)
	var after []string
	for i := 0; i < 5; i++ {
		text := fmt.Sprintf("after the kick %d", i)
		after = append(after, text)
		send(t, alice, "#team", text)
	}
	bob.waitTexts(t, "#team", after...)

	// The raw subscriber got the new traffic: the test is not vacuous.
	peertest.Eventually(t, 20*time.Second, "the raw subscriber to receive the kick and the messages after it", func() bool {
		apps, commits := 0, 0
		for _, m := range listener.messages() {
			env, err := group.ParseEnvelope(id, m.Data)
			switch {
			case err != nil:
			case env.GetApp().GetEpoch() >= 4:
				apps++
			case env.GetCommit() != nil:
				commits++
			}
		}
		return apps >= len(after) && commits > 0
	})
	control := false
	for _, m := range listener.messages() {
		env, err := group.ParseEnvelope(id, m.Data)
		if err != nil {
			continue
		}
		if sc := env.GetCommit(); sc != nil {
			c, err := group.CommitFromProto(sc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := kept.Next(c, carol.Host().ID(), privs); err == nil {
				t.Fatalf("carol's keys open the commit of epoch %d that removed her", c.Epoch)
			}
			continue
		}
		app := env.GetApp()
		if app == nil {
			continue
		}
		pt, err := kept.Open(peer.ID(m.From), app)
		switch {
		case app.GetEpoch() < 4 && err == nil && string(pt) == "before the kick":
			control = true
		case app.GetEpoch() >= 4 && err == nil:
			t.Fatalf("carol's kept epoch %d opens a message of epoch %d: %q", kept.Number(), app.GetEpoch(), pt)
		}
	}
	if !control {
		t.Fatal("positive control failed: carol's copy did not open the message of her epoch")
	}
	log, _ := carol.Chat().Log(ctx, "#"+hex.EncodeToString(id[:]), 0)
	for _, m := range log {
		for _, a := range after {
			if m.Text == a {
				t.Fatalf("the kicked member read %q", a)
			}
		}
	}
}

// signedRecord is data as a gossipsub message on topic by the holder of
// key, in the form room logs keep and sync serves.
func signedRecord(t *testing.T, key crypto.PrivKey, topic string, data []byte) *wirepb.SyncedMessage {
	t.Helper()
	from, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	m := &pb.Message{From: []byte(from), Data: data, Seqno: random(8), Topic: &topic}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := key.Sign(append([]byte(pubsub.SignPrefix), b...))
	if err != nil {
		t.Fatal(err)
	}
	return &wirepb.SyncedMessage{From: m.From, Data: data, Seqno: m.Seqno, Signature: sig}
}

// logRecord stores rec in m's log of room id as if m had accepted it live.
func logRecord(t *testing.T, m *member, id group.RoomID, rec *wirepb.SyncedMessage) {
	t.Helper()
	env, err := group.ParseEnvelope(id, rec.Data)
	if err != nil {
		t.Fatal(err)
	}
	app := env.GetApp()
	if _, err := m.DB().SQL().Exec(`INSERT INTO room_log(room, msg_id, hlc, epoch, sender, data, seqno, signature, status) VALUES(?, ?, ?, ?, ?, ?, ?, ?, 1)`,
		id[:], app.MsgId, app.Hlc, app.Epoch, peer.ID(rec.From).String(), rec.Data, rec.Seqno, rec.Signature); err != nil {
		t.Fatal(err)
	}
}

// TestRemovedMemberThroughLaggingMember: dave, kicked at epoch 3, keeps a
// copy of epoch 3 and posts with it through peers that have not applied
// his removal: live, relayed by a peer on the topic, and through sync,
// from bob's log, where his post sits as if bob had accepted it while
// lagging. alice, up to date, shows neither; posts of bob's at epoch 3
// relayed and served the same way are shown (the control).
func TestRemovedMemberThroughLaggingMember(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 3)
	privateRoom(t, ms)
	alice, bob, dave := ms[0], ms[1], ms[2]
	id := roomID(t, alice, "#team")
	topic := alice.roomTopic(t, "#team")
	send(t, dave, "#team", "dave before the kick")
	alice.waitTexts(t, "#team", "dave before the kick")
	daveEpoch, bobEpoch := snapshot(t, dave, "#team"), snapshot(t, bob, "#team")
	daveKey, bobKey := dave.Identity().PrivKey(), bob.Identity().PrivKey()
	if _, err := alice.Rooms().Kick(ctx, "#team", "m2"); err != nil {
		t.Fatal(err)
	}
	alice.waitEpoch(t, "team", 4)
	bob.waitEpoch(t, "team", 4)
	dave.Stop(t)

	// Live: a peer on the topic relays both, dave's first.
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	relay := newAttacker(t, key, alice, topic)
	relay.publish(
		relay.signed(dave.Host().ID(), daveKey, sealed(t, daveEpoch, dave.Host().ID(), "dave after the kick, live")),
		relay.signed(bob.Host().ID(), bobKey, sealed(t, bobEpoch, bob.Host().ID(), "bob while lagging, live")),
	)
	alice.waitTexts(t, "#team", "bob while lagging, live")

	// Synced: bob's log holds both; alice syncs from him.
	logRecord(t, bob, id, signedRecord(t, daveKey, topic, sealed(t, daveEpoch, dave.Host().ID(), "dave after the kick, synced")))
	logRecord(t, bob, id, signedRecord(t, bobKey, topic, sealed(t, bobEpoch, bob.Host().ID(), "bob while lagging, synced")))
	if _, err := alice.Rooms().Sync(ctx, "#team", bob.Host().ID()); err != nil {
		t.Fatal(err)
	}
	alice.waitTexts(t, "#team", "bob while lagging, synced")

	for _, text := range []string{"dave after the kick, live", "dave after the kick, synced"} {
		if hasText(t, alice, "#team", text, "") {
			t.Errorf("alice shows the removed member's post %q", text)
		}
	}
	var rows int
	alice.DB().SQL().QueryRow("SELECT count(*) FROM room_log WHERE room = ? AND sender = ?", id[:], dave.Host().ID().String()).Scan(&rows)
	if rows != 1 { // his post from before the kick
		t.Errorf("alice logged %d rows of dave's, want 1", rows)
	}
}

func hasText(t *testing.T, m *member, conv, text, from string) bool {
	t.Helper()
	log, err := m.Chat().Log(context.Background(), conv, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range log {
		if msg.Text == text && (from == "" || msg.From == from) {
			return true
		}
	}
	return false
}
