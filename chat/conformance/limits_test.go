package conformance

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// PROTOCOL.md §Receiving step 4 (stranger budget): "every frame from a
// stranger costs one token: 32 at once"; beyond, RETRY_LATER ("over
// budget") without crypto. Honest frames, so only this budget applies.
func TestStrangerBudget(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	c.handshake(2)
	var frames []*wirepb.DMFrame
	for i := range 40 {
		frames = append(frames, c.text("hello "+itoa(uint32(i))))
	}
	acks, err := c.exchange(frames...)
	if err != nil || len(acks) != 40 {
		t.Fatalf("%d acks, %v", len(acks), err)
	}
	okN := 0
	for okN < len(acks) && acks[okN].Status == ok {
		okN++
	}
	// A token comes back every second: a slow machine may get one or two
	// more through, never fewer.
	if okN < 32 || okN > 34 {
		t.Fatalf("%d frames OK before the budget ran out, want 32", okN)
	}
	for i, a := range acks[okN:] {
		status(t, a, frames[okN+i].GetMessage().Id, retry)
		if !strings.Contains(a.Reason, "over budget") {
			t.Fatalf("reason %q", a.Reason)
		}
	}
	// A contact has no frame budget: the same frames, sent again after
	// the node adds the client, are accepted.
	if _, err := node.Chat().AddContact(context.Background(), c.id(), "client"); err != nil {
		t.Fatal(err)
	}
	acks, err = c.exchange(frames[okN:]...)
	if err != nil || len(acks) != len(frames)-okN {
		t.Fatalf("%d acks, %v", len(acks), err)
	}
	for i, a := range acks {
		status(t, a, frames[okN+i].GetMessage().Id, ok)
	}
}

// PROTOCOL.md §Receiving step 2: "at most 4 dm streams of one peer are
// served at once"; a fifth is reset before a byte is read.
func TestStreamsPerPeer(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	if _, err := node.Chat().AddContact(context.Background(), c.id(), "client"); err != nil {
		t.Fatal(err)
	}
	c.handshake(2)
	// Four streams, each with one exchange done: their handlers are
	// running, waiting for the next frame.
	for range 4 {
		st, err := c.h.NewStream(context.Background(), c.node, wire.ProtocolDM)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		st.SetDeadline(time.Now().Add(30 * time.Second))
		fr := c.text("open")
		if err := wire.WriteFrame(st, fr); err != nil {
			t.Fatal(err)
		}
		var ack wirepb.DMFrame
		if err := wire.NewReader(st).ReadFrame(wire.MaxFrameSize, &ack); err != nil {
			t.Fatal(err)
		}
		status(t, ack.GetAck(), fr.GetMessage().Id, ok)
	}
	fifth := c.text("fifth")
	if acks, err := c.exchange(fifth); err == nil || len(acks) != 0 {
		t.Fatalf("fifth stream: %v, %v", acks, err)
	}
}

// PROTOCOL.md §Payloads: "body is non-empty UTF-8, at most 32 KiB (32768
// bytes)"; a text over it (or empty) is refused with
// REJECTED, one at the limit is stored.
func TestTextBodyLimit(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	c.handshake(2)
	textOf := func(body string) *wirepb.DMFrame {
		c.seq++
		id := newID()
		return c.seal(id, &wirepb.Payload{Version: 1, Body: &wirepb.Payload_Text{Text: &wirepb.Text{
			Id: id, Body: body, SentAtMs: time.Now().UnixMilli(), Seq: c.seq}}})
	}
	at := textOf(strings.Repeat("a", wire.MaxTextSize))
	over := textOf(strings.Repeat("a", wire.MaxTextSize+1))
	empty := textOf("")
	acks, err := c.exchange(at, over, empty)
	if err != nil || len(acks) != 3 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], at.GetMessage().Id, ok)
	status(t, acks[1], over.GetMessage().Id, rejected)
	status(t, acks[2], empty.GetMessage().Id, rejected)
}

// PROTOCOL.md §Payloads: "seq numbers the sender's texts to this peer from
// 1 without gaps ... The receiver shows a missing number as a gap": texts
// 1, 2 and 5 arrive; the third shows 2 missing.
func TestSequenceGap(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	if _, err := node.Chat().AddContact(context.Background(), c.id(), "client"); err != nil {
		t.Fatal(err)
	}
	c.handshake(2)
	one, two := c.text("one"), c.text("two")
	c.seq += 2 // texts 3 and 4 are lost
	five := c.text("five")
	acks, err := c.exchange(one, two, five)
	if err != nil || len(acks) != 3 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	log, err := node.Chat().Log(context.Background(), "client", 0)
	if err != nil || len(log) != 3 {
		t.Fatalf("log %v, %v", log, err)
	}
	if log[0].Gap != 0 || log[1].Gap != 0 || log[2].Gap != 2 || log[2].Seq != 5 {
		t.Fatalf("gaps %d %d %d (seq %d), want 0 0 2", log[0].Gap, log[1].Gap, log[2].Gap, log[2].Seq)
	}
}

// TestGapFilled checks "Gaps" (Mailboxes): a missing text "shows up as a
// gap ... once later messages arrive; when the sender comes online it
// still has the frame in its outbox and delivers it directly, which fills
// the gap": texts 1 and 3 arrive (3 shows 1 missing), then text 2; the log
// then shows no gap.
func TestGapFilled(t *testing.T) {
	ctx := context.Background()
	node := startNode(t)
	c := newClient(t, node)
	if _, err := node.Chat().AddContact(ctx, c.id(), "client"); err != nil {
		t.Fatal(err)
	}
	c.handshake(2)
	one, two, three := c.text("one"), c.text("two"), c.text("three")
	for _, fr := range [][]*wirepb.DMFrame{{one, three}, {two}} {
		if acks, err := c.exchange(fr...); err != nil || len(acks) != len(fr) {
			t.Fatalf("acks %v, %v", acks, err)
		}
		log, err := node.Chat().Log(ctx, "client", 0)
		if err != nil {
			t.Fatal(err)
		}
		gaps := 0
		for _, m := range log {
			gaps += m.Gap
		}
		if want := map[bool]int{true: 1, false: 0}[len(fr) == 2]; gaps != want {
			t.Fatalf("after %d texts: %d missing shown, want %d (%+v)", len(log), gaps, want, log)
		}
	}
}
