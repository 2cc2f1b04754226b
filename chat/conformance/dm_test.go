package conformance

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

const (
	ok        = wirepb.AckStatus_ACK_STATUS_OK
	duplicate = wirepb.AckStatus_ACK_STATUS_DUPLICATE
	rejected  = wirepb.AckStatus_ACK_STATUS_REJECTED
	retry     = wirepb.AckStatus_ACK_STATUS_RETRY_LATER
)

// PROTOCOL.md §X3DH, §PQXDH, §Direct messages: a client that fetched a
// bundle of either version starts a session with its first message (type
// 2 for X3DH, 3 for PQXDH); the node acks it OK after storing it, the text
// arrives, and (the client being a contact) a Receipt naming the text's id
// comes back inside the ratchet; the node's own replies decrypt in the
// same session.
func TestHandshake(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint32
		typ     byte
	}{{"X3DH", 1, 2}, {"PQXDH", 2, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			node := startNode(t)
			c := newClient(t, node)
			ev, cancel := node.Chat().Subscribe()
			defer cancel()
			if _, err := node.Chat().AddContact(context.Background(), c.id(), "client"); err != nil {
				t.Fatal(err)
			}
			c.handshake(tc.version)
			fr := c.text("hello from outside")
			if typ := fr.GetMessage().Envelope[1]; typ != tc.typ {
				t.Fatalf("first envelope type %d, want %d", typ, tc.typ)
			}
			acks, err := c.exchange(fr)
			if err != nil || len(acks) != 1 {
				t.Fatalf("acks %v, %v", acks, err)
			}
			status(t, acks[0], fr.GetMessage().Id, ok)
			id := hex.EncodeToString(fr.GetMessage().Id)
			got := waitEvent(t, ev, "the text", func(e apitype.Event) bool { return e.Type == "message" && e.Message.ID == id })
			if got.Message.Text != "hello from outside" || got.Message.Seq != 1 {
				t.Fatalf("node stored %+v", got.Message)
			}
			r := c.nextPayload(func(p *wirepb.Payload) bool { return p.GetReceipt() != nil })
			if ids := r.GetReceipt().Ids; len(ids) != 1 || !bytes.Equal(ids[0], fr.GetMessage().Id) {
				t.Fatalf("receipt ids %x", ids)
			}
			c.mu.Lock()
			pq := c.ch.PostQuantum()
			c.mu.Unlock()
			if pq != (tc.version == 2) {
				t.Fatalf("post-quantum = %v", pq)
			}
			// The node answers in the same session.
			if _, err := node.Chat().Send(context.Background(), "client", "hello from inside"); err != nil {
				t.Fatal(err)
			}
			p := c.nextPayload(func(p *wirepb.Payload) bool { return p.GetText() != nil })
			if p.GetText().Body != "hello from inside" || p.GetText().Seq != 1 {
				t.Fatalf("node's text %+v", p.GetText())
			}
		})
	}
}

// PROTOCOL.md §Direct messages: "A sender MUST use the frame id as the
// Text id" — the node's own texts carry Text.id equal to DMMessage.id, and
// its receipts name that id.
func TestTextIDIsFrameID(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	if _, err := node.Chat().AddContact(context.Background(), c.id(), "client"); err != nil {
		t.Fatal(err)
	}
	c.handshake(2)
	if acks, err := c.exchange(c.text("hi")); err != nil || len(acks) != 1 || acks[0].Status != ok {
		t.Fatalf("acks %v %v", acks, err)
	}
	m, err := node.Chat().Send(context.Background(), "client", "reply")
	if err != nil {
		t.Fatal(err)
	}
	for {
		in := c.next()
		if in.err != nil {
			t.Fatal(in.err)
		}
		if txt := in.payload.GetText(); txt != nil {
			if !bytes.Equal(txt.Id, in.frame.Id) || hex.EncodeToString(txt.Id) != m.ID {
				t.Fatalf("frame id %x, text id %x, message id %s", in.frame.Id, txt.Id, m.ID)
			}
			return
		}
	}
}

// PROTOCOL.md §Direct messages (statuses) and §Receiving step 3: a frame
// id seen before, in the batch or committed, is DUPLICATE without touching
// the ratchet; a frame that is not a valid DMMessage, or that does not
// decrypt, is REJECTED with a reason; acks come one per frame, in order.
func TestAckStatuses(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	c.handshake(2)
	first := c.text("one")
	second := c.text("two")
	short := msgFrame(make([]byte, 15), []byte{1, 1, 0})
	garbage := msgFrame(newID(), append([]byte{e2e.Version, 1}, make([]byte, 80)...))
	acks, err := c.exchange(first, first, short, garbage, second)
	if err != nil || len(acks) != 5 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], first.GetMessage().Id, ok)
	status(t, acks[1], first.GetMessage().Id, duplicate)
	status(t, acks[2], short.GetMessage().Id, rejected)
	status(t, acks[3], garbage.GetMessage().Id, rejected)
	status(t, acks[4], second.GetMessage().Id, ok)
	for _, a := range acks[2:4] {
		if a.Reason == "" || len(a.Reason) > wire.MaxReasonSize {
			t.Fatalf("REJECTED reason %q", a.Reason)
		}
	}
	// Committed before: DUPLICATE on a later stream too.
	acks, err = c.exchange(first)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], first.GetMessage().Id, duplicate)
	// The ratchet was not touched: the next message still decrypts.
	third := c.text("three")
	acks, err = c.exchange(third)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], third.GetMessage().Id, ok)
}

// PROTOCOL.md §Receiving step 4 (failure budget): "every frame that fails
// to authenticate costs its sender one token: 4 at once"; a sender
// without budget gets RETRY_LATER ("over budget") for the rest of the
// batch, without crypto, and its stream is closed after the acks.
func TestFailureBudget(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	var frames []*wirepb.DMFrame
	for range 6 {
		frames = append(frames, msgFrame(newID(), append([]byte{e2e.Version, 1}, make([]byte, 80)...)))
	}
	acks, err := c.exchange(frames...)
	if err != nil || len(acks) != 6 {
		t.Fatalf("%d acks, %v", len(acks), err)
	}
	for i, a := range acks {
		want := rejected
		if i >= 4 {
			want = retry
		}
		status(t, a, frames[i].GetMessage().Id, want)
	}
	if !strings.Contains(acks[5].Reason, "over budget") {
		t.Fatalf("RETRY_LATER reason %q", acks[5].Reason)
	}
	// §Receiving step 2: a peer whose failure budget is spent has its new
	// streams reset before a byte is read.
	late := msgFrame(newID(), []byte{e2e.Version, 1})
	if acks, err := c.exchange(late); err == nil || len(acks) != 0 {
		t.Fatalf("stream of a peer without budget: %v, %v", acks, err)
	}
}

// PROTOCOL.md §Payloads: "A payload of another version, or with no body,
// is refused: the frame is acked REJECTED with a reason naming the
// version". Positive control: a version 1 payload in the same batch is OK.
func TestPayloadVersion(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	c.handshake(2)
	good := c.text("fine")
	v2 := c.seal(newID(), &wirepb.Payload{Version: 2, Body: &wirepb.Payload_Text{Text: &wirepb.Text{Id: newID(), Body: "from the future", Seq: 2}}})
	empty := c.seal(newID(), &wirepb.Payload{Version: 1})
	after := c.text("still fine")
	acks, err := c.exchange(good, v2, empty, after)
	if err != nil || len(acks) != 4 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], good.GetMessage().Id, ok)
	status(t, acks[1], v2.GetMessage().Id, rejected)
	if !strings.Contains(acks[1].Reason, "version 2") {
		t.Fatalf("reason %q does not name the version", acks[1].Reason)
	}
	status(t, acks[2], empty.GetMessage().Id, rejected)
	status(t, acks[3], after.GetMessage().Id, ok)
}

// PROTOCOL.md §Direct messages: "A frame with no body, or an ack, from the
// stream's opener ends the stream: the receiver answers the message frames
// before it and closes the stream without answering it or anything after
// it."
func TestNonMessageFrameEndsStream(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	c.handshake(2)
	for _, bad := range []*wirepb.DMFrame{
		{},
		{Body: &wirepb.DMFrame_Ack{Ack: &wirepb.DMAck{Id: newID(), Status: ok}}},
	} {
		before, after := c.text("before"), c.text("after")
		acks, err := c.exchange(before, bad, after)
		if err != nil {
			t.Fatalf("stream ended with %v, want a clean close", err)
		}
		if len(acks) != 1 {
			t.Fatalf("%d acks, want 1 (the frame before)", len(acks))
		}
		status(t, acks[0], before.GetMessage().Id, ok)
		// Alone, it is answered by nothing.
		acks, err = c.exchange(bad)
		if err != nil || len(acks) != 0 {
			t.Fatalf("alone: %v, %v", acks, err)
		}
		// The unanswered frame was not taken: sent again, it is OK.
		acks, err = c.exchange(after)
		if err != nil || len(acks) != 1 {
			t.Fatalf("again: %v, %v", acks, err)
		}
		status(t, acks[0], after.GetMessage().Id, ok)
	}
}

// PROTOCOL.md §Transport (frame caps): a /parley/dm/1 frame is at most
// 96 KiB; a longer length prefix is refused and the stream reset before
// the body is read, while a frame at the cap is read and answered (here
// REJECTED: its envelope is over the 66 KiB envelope limit).
func TestFrameSizeLimit(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	frame := func(n int) ([]byte, []byte) {
		id := newID()
		// DMFrame{message: DMMessage{id, envelope}} of exactly n bytes.
		for env := n - 30; ; env++ {
			b, _ := proto.Marshal(msgFrame(id, make([]byte, env)))
			if len(b) == n {
				return append(uvarint(n), b...), id
			}
			if len(b) > n {
				t.Fatalf("cannot build a %d-byte frame", n)
			}
		}
	}
	at, id := frame(wire.MaxFrameSize)
	acks, err := c.exchangeRaw(at)
	if err != nil || len(acks) != 1 {
		t.Fatalf("frame at the cap: %v, %v", acks, err)
	}
	status(t, acks[0], id, rejected)
	over, _ := frame(wire.MaxFrameSize + 1)
	if acks, err := c.exchangeRaw(over); err == nil || len(acks) != 0 {
		t.Fatalf("frame over the cap: %v, %v", acks, err)
	}
	// A length prefix that is not minimally encoded is refused too.
	if acks, err := c.exchangeRaw([]byte{0x81, 0x00}); err == nil || len(acks) != 0 {
		t.Fatalf("non-minimal length prefix: %v, %v", acks, err)
	}
}

// PROTOCOL.md §Direct messages: "the receiver answers every frame with
// exactly one ack, in order"; a batch of 128 frames (the node's own batch
// size) gets 128 acks in the order of the frames.
func TestBatchOrder(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	if _, err := node.Chat().AddContact(context.Background(), c.id(), "client"); err != nil {
		t.Fatal(err) // a contact, so the stranger budget does not apply
	}
	c.handshake(2)
	var frames []*wirepb.DMFrame
	for i := range 128 {
		frames = append(frames, c.text("n"+itoa(uint32(i))))
	}
	acks, err := c.exchange(frames...)
	if err != nil || len(acks) != len(frames) {
		t.Fatalf("%d acks, %v", len(acks), err)
	}
	for i, a := range acks {
		status(t, a, frames[i].GetMessage().Id, ok)
	}
}

// PROTOCOL.md §Payloads (Receipt): "The receiver sends one Receipt per
// batch it commits, naming every text of that batch"; three texts written
// together get one receipt with three ids, in order.
func TestReceiptPerBatch(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	if _, err := node.Chat().AddContact(context.Background(), c.id(), "client"); err != nil {
		t.Fatal(err)
	}
	c.handshake(2)
	frames := []*wirepb.DMFrame{c.text("a"), c.text("b"), c.text("c")}
	acks, err := c.exchange(frames...)
	if err != nil || len(acks) != 3 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	r := c.nextPayload(func(p *wirepb.Payload) bool { return p.GetReceipt() != nil })
	ids := r.GetReceipt().Ids
	if len(ids) != 3 {
		t.Fatalf("receipt names %d ids, want 3", len(ids))
	}
	for i, id := range ids {
		if !bytes.Equal(id, frames[i].GetMessage().Id) {
			t.Fatalf("receipt id %d = %x", i, id)
		}
	}
}

// PROTOCOL.md §Contacts, message requests, blocks: a stranger's text is
// acked OK and stored as a request but gets no receipt; accepting the
// request queues the receipts.
func TestRequestGetsNoReceiptUntilAccepted(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	c.handshake(2)
	fr := c.text("hello stranger")
	acks, err := c.exchange(fr)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], fr.GetMessage().Id, ok)
	reqs, err := node.Chat().Requests(context.Background())
	if err != nil || len(reqs) != 1 {
		t.Fatalf("requests %v, %v", reqs, err)
	}
	select {
	case in := <-c.inbox:
		t.Fatalf("a stranger got a frame: %+v", in.payload)
	default:
	}
	if _, err := node.Chat().Accept(context.Background(), c.id(), "client"); err != nil {
		t.Fatal(err)
	}
	r := c.nextPayload(func(p *wirepb.Payload) bool { return p.GetReceipt() != nil })
	if ids := r.GetReceipt().Ids; len(ids) != 1 || !bytes.Equal(ids[0], fr.GetMessage().Id) {
		t.Fatalf("receipt ids %x", ids)
	}
}

// PROTOCOL.md §Receiving step 1: "A blocked peer's /parley/dm/1 (and
// /parley/prekeys/1) stream is reset before a byte is read".
func TestBlockedPeer(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	c.handshake(2)
	if _, err := node.Chat().Block(context.Background(), c.id()); err != nil {
		t.Fatal(err)
	}
	// The refusal reaches the client as a reset or, when the node's
	// closing of the blocked peer's connection wins the race, as the end
	// of the stream; either way nothing is acked and nothing is stored.
	if acks, err := c.exchange(c.text("let me in")); len(acks) != 0 {
		t.Fatalf("dm stream of a blocked peer: acks %v, %v", acks, err)
	} else {
		t.Logf("dm stream of a blocked peer ended with %v", err)
	}
	if reqs, err := node.Chat().Requests(context.Background()); err != nil || len(reqs) != 0 {
		t.Fatalf("a blocked peer's text became a request: %v, %v", reqs, err)
	}
	if resp, err := c.prekeys(2); err == nil {
		t.Fatalf("prekeys of a blocked peer: %v", resp)
	}
}
