package conformance

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// nextRequest returns the version of the node's next prekey request.
func (c *client) nextRequest() uint32 {
	c.t.Helper()
	select {
	case v := <-c.prekeyRequests:
		return v
	case <-time.After(30 * time.Second):
		c.t.Fatal("timed out waiting for a prekey request from the node")
		return 0
	}
}

// firstEnvelopeType makes the node send to c (a contact it has no session
// with) and returns the type byte of the first envelope it sends.
func firstEnvelopeType(t *testing.T, c *client) byte {
	t.Helper()
	in := c.next()
	if in.err != nil {
		t.Fatalf("first frame: %v", in.err)
	}
	return in.frame.Envelope[1]
}

// PROTOCOL.md §Prekeys (version negotiation, the node as requester): "a
// node asks for version: 2 and gets a version 2 (PQXDH) bundle"; "only on
// that answer [unsupported prekey protocol version 2] does the requester
// ask again with version: 1"; "A version 2 request answered with a version
// 1 bundle is refused as a downgrade (no session, nothing sent)".
func TestNodeNegotiatesPrekeyVersion(t *testing.T) {
	ctx := context.Background()
	t.Run("version 2", func(t *testing.T) {
		node := startNode(t)
		c := newClient(t, node)
		if _, err := node.Chat().AddContact(ctx, c.id(), "client"); err != nil {
			t.Fatal(err)
		}
		if _, err := node.Chat().Send(ctx, "client", "hi"); err != nil {
			t.Fatal(err)
		}
		if v := c.nextRequest(); v != 2 {
			t.Fatalf("the node asked for version %d", v)
		}
		if typ := firstEnvelopeType(t, c); typ != 3 {
			t.Fatalf("first envelope type %d, want 3 (PQXDH)", typ)
		}
	})
	t.Run("old peer", func(t *testing.T) {
		node := startNode(t)
		c := newClient(t, node)
		c.setPrekeyAnswer(func(req *wirepb.PrekeyRequest) *wirepb.PrekeyResponse {
			if req.Version != 1 {
				return &wirepb.PrekeyResponse{Error: "unsupported prekey protocol version 2"}
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			b, _ := c.ks.Bundle(c.key, time.Now())
			raw, _ := b.MarshalBinary()
			return &wirepb.PrekeyResponse{Bundle: raw}
		})
		if _, err := node.Chat().AddContact(ctx, c.id(), "client"); err != nil {
			t.Fatal(err)
		}
		if _, err := node.Chat().Send(ctx, "client", "hi"); err != nil {
			t.Fatal(err)
		}
		if v1, v2 := c.nextRequest(), c.nextRequest(); v1 != 2 || v2 != 1 {
			t.Fatalf("the node asked for versions %d then %d, want 2 then 1", v1, v2)
		}
		if typ := firstEnvelopeType(t, c); typ != 2 {
			t.Fatalf("first envelope type %d, want 2 (X3DH)", typ)
		}
	})
	t.Run("downgrade", func(t *testing.T) {
		node := startNode(t)
		c := newClient(t, node)
		c.setPrekeyAnswer(func(req *wirepb.PrekeyRequest) *wirepb.PrekeyResponse {
			c.mu.Lock()
			defer c.mu.Unlock()
			b, _ := c.ks.Bundle(c.key, time.Now()) // version 1, whatever was asked
			raw, _ := b.MarshalBinary()
			return &wirepb.PrekeyResponse{Bundle: raw}
		})
		if _, err := node.Chat().AddContact(ctx, c.id(), "client"); err != nil {
			t.Fatal(err)
		}
		if _, err := node.Chat().Send(ctx, "client", "hi"); err != nil {
			t.Fatal(err)
		}
		// Refused: the node never falls back to version 1 on its own, and
		// its retry asks for version 2 again.
		if v1, v2 := c.nextRequest(), c.nextRequest(); v1 != 2 || v2 != 2 {
			t.Fatalf("the node asked for versions %d then %d, want 2 then 2", v1, v2)
		}
		select {
		case in := <-c.inbox:
			t.Fatalf("the node sent a frame after a downgraded bundle: %v", in.frame)
		default:
		}
	})
}

// setPrekeyAnswer sets the client's prekey handler's answer.
func (c *client) setPrekeyAnswer(f func(req *wirepb.PrekeyRequest) *wirepb.PrekeyResponse) {
	c.mu.Lock()
	c.prekeyAnswer = f
	c.mu.Unlock()
}

// PROTOCOL.md §Prekeys: "A bundle whose created lies in the future is
// accepted (clocks differ)": the node starts a session from a bundle whose
// signed prekey was made a day ahead of its clock.
func TestNodeAcceptsBundleFromTheFuture(t *testing.T) {
	ctx := context.Background()
	node := startNode(t)
	c := newClient(t, node)
	ks, err := e2e.NewKeyStore(c.key, rand.Reader, time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.ks = ks
	c.mu.Unlock()
	if _, err := node.Chat().AddContact(ctx, c.id(), "client"); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Chat().Send(ctx, "client", "from the past"); err != nil {
		t.Fatal(err)
	}
	p := c.nextPayload(func(p *wirepb.Payload) bool { return p.GetText() != nil })
	if p.GetText().Body != "from the past" {
		t.Fatalf("got %q", p.GetText().Body)
	}
}
