package room_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// TestIngestBatchStoresEachMessageAlone: one batch (one transaction) holds
// honest messages of bob and, among them, a copy of a message alice logged
// already (other bytes under the same author and id), the same message
// twice, and a record that breaks a constraint of the log (no seqno). The
// batch stores and shows exactly the honest messages, once each: no bad
// record rolls back or drops the others, and none is stored because it
// shared their transaction.
func TestIngestBatchStoresEachMessageAlone(t *testing.T) {
	ctx := context.Background()
	ms := start(t, 2)
	privateRoom(t, ms)
	alice, bob := ms[0], ms[1]
	send(t, bob, "#team", "zero")
	alice.waitTexts(t, "#team", "zero")

	// Bob's chains as they are: sealing with the copy makes what bob's node
	// would publish next, without publishing it.
	e, err := bob.Rooms().EpochSnapshot("#team")
	if err != nil {
		t.Fatal(err)
	}
	room, err := bob.Rooms().RoomID("#team")
	if err != nil {
		t.Fatal(err)
	}
	author := bob.Rooms().Author()
	hlc := wire.PackHLC(time.Now().UnixMilli(), 0)
	seal := func(msgID []byte, text string) *wirepb.SyncedMessage {
		t.Helper()
		hlc++
		am, err := e.Seal(author, msgID, hlc, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		data, err := proto.Marshal(&wirepb.RoomEnvelope{Version: group.Version, RoomId: room[:], Body: &wirepb.RoomEnvelope_App{App: am}})
		if err != nil {
			t.Fatal(err)
		}
		return &wirepb.SyncedMessage{From: []byte(author), Data: data, Seqno: make([]byte, 8), Signature: make([]byte, 64)}
	}
	newID := func() []byte {
		id := make([]byte, wire.IDSize)
		rand.Read(id)
		return id
	}
	log, err := alice.Chat().Log(ctx, "#team", 0)
	if err != nil || len(log) == 0 {
		t.Fatalf("alice's log: %v, %v", log, err)
	}
	zeroID, err := hex.DecodeString(log[len(log)-1].ID)
	if err != nil {
		t.Fatal(err)
	}
	zeroBefore, err := alice.Rooms().LoggedApp("#team", author, zeroID)
	if err != nil {
		t.Fatal(err)
	}

	oneID, twoID, noSeqnoID := newID(), newID(), newID()
	one := seal(oneID, "one")
	copyOfZero := seal(zeroID, "not zero")
	two := seal(twoID, "two")
	noSeqno := seal(noSeqnoID, "no seqno")
	noSeqno.Seqno = nil
	three := seal(newID(), "three")
	if err := alice.Rooms().Ingest(ctx, "#team", one, copyOfZero, two, noSeqno, two, three); err != nil {
		t.Fatalf("ingest: %v", err)
	}

	log, err = alice.Chat().Log(ctx, "#team", 0)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, m := range log {
		count[m.Text]++
	}
	for _, text := range []string{"zero", "one", "two", "three"} {
		if count[text] != 1 {
			t.Errorf("%q shown %d times, want once (log %v)", text, count[text], count)
		}
	}
	for _, text := range []string{"not zero", "no seqno"} {
		if count[text] != 0 {
			t.Errorf("%q shown", text)
		}
	}
	zeroAfter, err := alice.Rooms().LoggedApp("#team", author, zeroID)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(zeroBefore, zeroAfter) {
		t.Error("a copy under a logged message's author and id replaced it in the log")
	}
	if _, err := alice.Rooms().LoggedApp("#team", author, noSeqnoID); err == nil {
		t.Error("a record without a seqno was logged")
	}
	for _, id := range [][]byte{oneID, twoID} {
		if _, err := alice.Rooms().LoggedApp("#team", author, id); err != nil {
			t.Errorf("honest message %x not logged: %v", id[:4], err)
		}
	}
}
