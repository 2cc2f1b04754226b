package conformance

import (
	"context"
	"strings"
	"testing"

	"github.com/parley-im/parley/chat/e2e"
)

// PROTOCOL.md §E2E: message encoding: "u8 version = 1 — any other value:
// ErrUnknownVersion"; the frame is REJECTED with a reason naming it, and
// (§Receiving step 5) "A batch in which nothing authenticates commits
// nothing and leaves no trace": a stranger whose frames all fail is no
// message request.
func TestEnvelopeVersion(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	c.handshake(2)
	fr := c.text("hello")
	env := append([]byte(nil), fr.GetMessage().Envelope...)
	env[0] = 2
	bad := msgFrame(newID(), env)
	acks, err := c.exchange(bad)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], bad.GetMessage().Id, rejected)
	if !strings.Contains(acks[0].Reason, "unknown version") {
		t.Fatalf("reason %q does not name the version", acks[0].Reason)
	}
	if reqs, err := node.Chat().Requests(context.Background()); err != nil || len(reqs) != 0 {
		t.Fatalf("a stranger whose frames all failed left a trace: %v, %v", reqs, err)
	}
	// Positive control: the honest envelope is accepted and makes a request.
	acks, err = c.exchange(fr)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], fr.GetMessage().Id, ok)
	if reqs, err := node.Chat().Requests(context.Background()); err != nil || len(reqs) != 1 {
		t.Fatalf("requests %v, %v", reqs, err)
	}
}

// PROTOCOL.md §X3DH: "B remembers the last 64 base keys it accepted and
// refuses a prekey message that would set the same session up again
// (ErrReplay)": the first prekey message of a session, sent again under a
// new frame id (so not a DUPLICATE), is REJECTED.
func TestPrekeyMessageReplay(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	c.handshake(2)
	fr := c.text("first")
	if !e2e.IsPrekeyEnvelope(fr.GetMessage().Envelope) {
		t.Fatal("the first message is not a prekey message")
	}
	acks, err := c.exchange(fr)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], fr.GetMessage().Id, ok)
	again := msgFrame(newID(), fr.GetMessage().Envelope)
	acks, err = c.exchange(again)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], again.GetMessage().Id, rejected)
	if !strings.Contains(acks[0].Reason, "replay") {
		t.Fatalf("reason %q", acks[0].Reason)
	}
}

// PROTOCOL.md §Contacts, message requests, blocks: "Removing a contact or
// declining a request deletes the session: the peer's next frame is
// REJECTED, it starts a new session, and its text arrives as a new
// request."
func TestDeclineDeletesSession(t *testing.T) {
	ctx := context.Background()
	node := startNode(t)
	c := newClient(t, node)
	c.handshake(2)
	if acks, err := c.exchange(c.text("hello")); err != nil || len(acks) != 1 || acks[0].Status != ok {
		t.Fatalf("acks %v, %v", acks, err)
	}
	if _, err := node.Chat().Decline(ctx, c.id()); err != nil {
		t.Fatal(err)
	}
	next := c.text("still there?")
	acks, err := c.exchange(next)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], next.GetMessage().Id, rejected)
	// A new session (the client asks for a fresh bundle).
	c.mu.Lock()
	c.ch = new(e2e.Channel)
	c.mu.Unlock()
	c.handshake(2)
	fr := c.text("hello again")
	acks, err = c.exchange(fr)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], fr.GetMessage().Id, ok)
	if reqs, err := node.Chat().Requests(ctx); err != nil || len(reqs) != 1 {
		t.Fatalf("requests %v, %v", reqs, err)
	}
}
