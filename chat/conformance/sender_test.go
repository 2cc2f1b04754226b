package conformance

import (
	"bytes"
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// The node as a sender, seen by a client that serves /parley/dm/1 and
// /parley/prekeys/1.

func contactSession(t *testing.T, c *client) {
	t.Helper()
	c.handshake(2)
	fr := c.text("hello")
	acks, err := c.exchange(fr)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], fr.GetMessage().Id, ok)
	// The receipt of that text.
	c.nextPayload(func(p *wirepb.Payload) bool { return p.GetReceipt() != nil })
}

// ackOnce makes the client answer the node's next frame with answer(frame)
// (then OK again) and returns a channel that receives that frame.
func (c *client) ackOnce(answer func(*wirepb.DMMessage) *wirepb.DMAck) <-chan *wirepb.DMMessage {
	got := make(chan *wirepb.DMMessage, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ack = func(m *wirepb.DMMessage) *wirepb.DMAck {
		c.mu.Lock() // serveDM calls it with c.mu released
		c.ack = nil
		c.mu.Unlock()
		got <- m
		return answer(m)
	}
	return got
}

// PROTOCOL.md §Direct messages: "A sender that reads an ack whose id is not
// the id of the frame it answers treats it as a protocol error: it resets
// the stream, keeps the frame and sends it again later". The message is
// not marked sent by the bad ack; the honest ack that follows the retry
// marks it sent.
func TestMismatchedAckIsProtocolError(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	if _, err := node.Chat().AddContact(context.Background(), c.id(), "client"); err != nil {
		t.Fatal(err)
	}
	contactSession(t, c)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	lied := c.ackOnce(func(m *wirepb.DMMessage) *wirepb.DMAck { return &wirepb.DMAck{Id: newID(), Status: ok} })
	m, err := node.Chat().Send(context.Background(), "client", "are you there")
	if err != nil {
		t.Fatal(err)
	}
	first := <-lied
	if hex.EncodeToString(first.Id) != m.ID {
		t.Fatalf("first attempt carried frame %x, message %s", first.Id, m.ID)
	}
	if got, _ := node.Chat().Log(context.Background(), "client", 0); got[len(got)-1].State != apitype.StatePending {
		t.Fatalf("after a mismatched ack the message is %s, want pending", got[len(got)-1].State)
	}
	// The retry: "the exact bytes of the first attempt". The client took
	// the first attempt, so it answers DUPLICATE, which the node treats
	// as OK.
	var retried *wirepb.DMMessage
	for retried == nil {
		select {
		case in := <-c.inbox:
			if in.dup && bytes.Equal(in.frame.Id, first.Id) {
				retried = in.frame
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no retry")
		}
	}
	if !bytes.Equal(retried.Envelope, first.Envelope) {
		t.Fatal("the retry is not the same bytes as the first attempt")
	}
	waitEvent(t, ev, "sent", func(e apitype.Event) bool {
		return e.Message != nil && e.Message.ID == m.ID && e.Message.State == apitype.StateSent
	})
}

// PROTOCOL.md §Direct messages (reset) and §Payloads: after a reset the
// frames still waiting are sent again under the new session, with their
// frame ids, before the ResetNotice, which is queued last; and "seq
// continues across sessions".
func TestResetOrderAndSequence(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	if _, err := node.Chat().AddContact(context.Background(), c.id(), "client"); err != nil {
		t.Fatal(err)
	}
	contactSession(t, c)
	ctx := context.Background()
	if _, err := node.Chat().Send(ctx, "client", "one"); err != nil {
		t.Fatal(err)
	}
	if p := c.nextPayload(func(p *wirepb.Payload) bool { return p.GetText() != nil }); p.GetText().Seq != 1 {
		t.Fatalf("first text seq %d", p.GetText().Seq)
	}
	// The client holds the next message back: RETRY_LATER.
	held := make(chan []byte, 16)
	c.mu.Lock()
	c.ack = func(m *wirepb.DMMessage) *wirepb.DMAck {
		held <- m.Id
		return &wirepb.DMAck{Id: m.Id, Status: retry, Reason: "busy"}
	}
	c.mu.Unlock()
	m, err := node.Chat().Send(ctx, "client", "two")
	if err != nil {
		t.Fatal(err)
	}
	<-held
	c.mu.Lock()
	c.ack = nil
	c.mu.Unlock()
	if err := node.Chat().Reset(ctx, "client"); err != nil {
		t.Fatal(err)
	}
	for {
		in := c.next()
		if in.err != nil {
			t.Fatalf("frame after the reset: %v", in.err)
		}
		if txt := in.payload.GetText(); txt != nil {
			if hex.EncodeToString(in.frame.Id) != m.ID || !bytes.Equal(txt.Id, in.frame.Id) {
				t.Fatalf("re-sent text has frame id %x, want %s", in.frame.Id, m.ID)
			}
			if !e2e.IsPrekeyEnvelope(in.frame.Envelope) {
				t.Fatal("the text after a reset is not a prekey message of the new session")
			}
			if txt.Seq != 2 {
				t.Fatalf("seq after the reset = %d, want 2 (seq continues across sessions)", txt.Seq)
			}
			break
		}
		if in.payload.GetReset_() != nil {
			t.Fatal("the ResetNotice came before the waiting text")
		}
	}
	c.nextPayload(func(p *wirepb.Payload) bool { return p.GetReset_() != nil })
}

// PROTOCOL.md §Payloads: "Receipt{ids}: the texts with these ids are
// committed by the recipient (state delivered at the sender)"; a Receipt
// names 1 to 256 ids ("at most 256 ids per Receipt"), more is refused.
func TestReceiptMarksDelivered(t *testing.T) {
	ctx := context.Background()
	node := startNode(t)
	c := newClient(t, node)
	if _, err := node.Chat().AddContact(ctx, c.id(), "client"); err != nil {
		t.Fatal(err)
	}
	contactSession(t, c)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	m, err := node.Chat().Send(ctx, "client", "did you get this")
	if err != nil {
		t.Fatal(err)
	}
	p := c.nextPayload(func(p *wirepb.Payload) bool { return p.GetText() != nil })
	tooMany := make([][]byte, 257)
	for i := range tooMany {
		tooMany[i] = newID()
	}
	over := c.seal(newID(), &wirepb.Payload{Version: 1, Body: &wirepb.Payload_Receipt{Receipt: &wirepb.Receipt{Ids: tooMany}}})
	good := c.seal(newID(), &wirepb.Payload{Version: 1, Body: &wirepb.Payload_Receipt{Receipt: &wirepb.Receipt{Ids: [][]byte{p.GetText().Id}}}})
	acks, err := c.exchange(over, good)
	if err != nil || len(acks) != 2 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], over.GetMessage().Id, rejected)
	status(t, acks[1], good.GetMessage().Id, ok)
	waitEvent(t, ev, "delivered", func(e apitype.Event) bool {
		return e.Message != nil && e.Message.ID == m.ID && e.Message.State == apitype.StateDelivered
	})
}

// PROTOCOL.md §Direct messages (statuses) and §Payloads: a REJECTED ack
// whose reason begins "payload refused: " means the frame authenticated
// and only its payload was refused; the sender drops that frame (state
// refused) and never sends it again. Control: the next message goes out
// and is acked OK; the refused frame never comes back before it (the
// outbox keeps order, so a resend would).
func TestRefusedPayloadDropped(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	if _, err := node.Chat().AddContact(context.Background(), c.id(), "client"); err != nil {
		t.Fatal(err)
	}
	contactSession(t, c)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	refused := c.ackOnce(func(m *wirepb.DMMessage) *wirepb.DMAck {
		return &wirepb.DMAck{Id: m.Id, Status: rejected, Reason: "payload refused: wire: Text body too long for this test"}
	})
	m, err := node.Chat().Send(context.Background(), "client", "refuse me")
	if err != nil {
		t.Fatal(err)
	}
	first := (<-refused).Id
	if hex.EncodeToString(first) != m.ID {
		t.Fatalf("refused frame %x, message %s", first, m.ID)
	}
	waitEvent(t, ev, "the message marked refused", func(e apitype.Event) bool {
		return e.Message != nil && e.Message.ID == m.ID && e.Message.State == apitype.StateRefused
	})
	next, err := node.Chat().Send(context.Background(), "client", "take me")
	if err != nil {
		t.Fatal(err)
	}
	for {
		var in inbound
		select {
		case in = <-c.inbox:
		case <-time.After(30 * time.Second):
			t.Fatal("the next message never came")
		}
		if bytes.Equal(in.frame.Id, first) {
			t.Fatal("the refused frame was sent again")
		}
		if hex.EncodeToString(in.frame.Id) != next.ID {
			continue
		}
		if in.err != nil || in.payload.GetText().GetBody() != "take me" {
			t.Fatalf("next message: %v, %v", in.payload, in.err)
		}
		break
	}
	waitEvent(t, ev, "the next message sent", func(e apitype.Event) bool {
		return e.Message != nil && e.Message.ID == next.ID && e.Message.State == apitype.StateSent
	})
}
