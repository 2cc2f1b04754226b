package conformance

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// PROTOCOL.md §Prekeys: "a node asks for version: 2 and gets a version 2
// (PQXDH) bundle", "A current node serves a version 1 bundle to a version 1
// request", and §Bundle: "Version 1 is exactly 206 or 242 bytes, version 2
// exactly 1459 or 1495 bytes"; every signature checks against the peer ID.
func TestPrekeyVersions(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	for _, tc := range []struct {
		version uint32
		sizes   []int
	}{
		{2, []int{1459, 1495}},
		{1, []int{206, 242}},
	} {
		resp, err := c.prekeys(tc.version)
		if err != nil || resp.Error != "" {
			t.Fatalf("version %d: %v %q", tc.version, err, resp.GetError())
		}
		if n := len(resp.Bundle); n != tc.sizes[0] && n != tc.sizes[1] {
			t.Fatalf("version %d bundle is %d bytes, want %v", tc.version, n, tc.sizes)
		}
		if resp.Bundle[0] != byte(tc.version) {
			t.Fatalf("version %d request answered with bundle version %d", tc.version, resp.Bundle[0])
		}
		var b e2e.Bundle
		if err := b.UnmarshalBinary(resp.Bundle); err != nil {
			t.Fatal(err)
		}
		if err := b.Verify(c.nodeKey); err != nil {
			t.Fatalf("version %d bundle does not verify against the peer ID: %v", tc.version, err)
		}
	}
}

// PROTOCOL.md §Prekeys: a version other than 1 and 2 is answered with the
// error "unsupported prekey protocol version N", and no bundle.
func TestPrekeyUnknownVersion(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	for _, v := range []uint32{0, 3, 9} {
		resp, err := c.prekeys(v)
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		want := "unsupported prekey protocol version " + itoa(v)
		if resp.Error != want || resp.Bundle != nil {
			t.Fatalf("version %d: got error %q bundle %d bytes, want %q", v, resp.Error, len(resp.Bundle), want)
		}
	}
	// Positive control: the refusals spent no budget.
	for range 3 {
		if resp, err := c.prekeys(2); err != nil || resp.Error != "" {
			t.Fatalf("honest request after refusals: %v %q", err, resp.GetError())
		}
	}
}

// PROTOCOL.md §Transport (frame caps): a PrekeyRequest frame is at most
// 256 bytes; a longer length prefix is refused (the stream is reset)
// before the body is read.
func TestPrekeyRequestLimit(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	padded := func(n int) []byte {
		b, _ := proto.Marshal(&wirepb.PrekeyRequest{Version: 2})
		// An unknown field pads the request to exactly n bytes; a reader
		// skips unknown fields.
		pad := n - len(b) - 3
		b = protowire.AppendTag(b, 15, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(pad))
		return append(b, make([]byte, pad)...)
	}
	at := padded(wire.MaxPrekeyRequest)
	if len(at) != 256 {
		t.Fatalf("padded request is %d bytes", len(at))
	}
	resp, err := c.rawPrekeys(at)
	if err != nil || resp.Error != "" || len(resp.Bundle) == 0 {
		t.Fatalf("256-byte request: %v %q", err, resp.GetError())
	}
	over := padded(wire.MaxPrekeyRequest + 1)
	if resp, err := c.rawPrekeys(over); err == nil {
		t.Fatalf("257-byte request answered: %v", resp)
	}
}

// PROTOCOL.md §Prekeys: "each peer may fetch 3 bundles at once and one more
// every 10 minutes; beyond that the server answers with an error", and
// "none is served twice".
func TestPrekeyRateLimit(t *testing.T) {
	node := startNode(t)
	c := newClient(t, node)
	seen := map[string]bool{}
	for i := range 3 {
		resp, err := c.prekeys(2)
		if err != nil || resp.Error != "" {
			t.Fatalf("request %d: %v %q", i, err, resp.GetError())
		}
		var b e2e.Bundle
		if err := b.UnmarshalBinary(resp.Bundle); err != nil {
			t.Fatal(err)
		}
		if !b.HasOneTimePrekey {
			t.Fatalf("bundle %d has no one-time prekey", i)
		}
		k := string(b.OneTimePrekey[:])
		if seen[k] {
			t.Fatalf("one-time prekey served twice")
		}
		seen[k] = true
	}
	resp, err := c.prekeys(2)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.Error, "rate limited") || resp.Bundle != nil {
		t.Fatalf("4th request: error %q, %d bytes of bundle", resp.Error, len(resp.Bundle))
	}
	// The budget is per peer: another client is served.
	if resp, err := newClient(t, node).prekeys(2); err != nil || resp.Error != "" {
		t.Fatalf("another peer: %v %q", err, resp.GetError())
	}
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

// PROTOCOL.md §Prekeys: "each address ... 20 at once"; peers on one
// address share it (every client here is on 127.0.0.1).
func TestPrekeyAddressBudget(t *testing.T) {
	node := startNode(t)
	served := 0
	var last string
	for range 7 { // 7 peers x 3 requests = 21 > 20
		c := newClient(t, node)
		for range 3 {
			resp, err := c.prekeys(2)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Error == "" {
				served++
			}
			last = resp.Error
		}
	}
	if served != 20 || !strings.HasPrefix(last, "rate limited") {
		t.Fatalf("served %d bundles to one address (want 20), last error %q", served, last)
	}
}
