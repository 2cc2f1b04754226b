package chat_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/parley-im/parley/chat"
	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// fetchBundle asks target for one prekey bundle from h; it returns the
// bundle, or the refusal.
func fetchBundle(t *testing.T, h host.Host, target *peertest.Running) (e2e.Bundle, string) {
	t.Helper()
	st := open(t, h, target, wire.ProtocolPrekeys)
	defer st.Close()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	if err := wire.WriteFrame(st, &wirepb.PrekeyRequest{Version: 1}); err != nil {
		t.Fatal(err)
	}
	var resp wirepb.PrekeyResponse
	if err := wire.NewReader(st).ReadFrame(wire.MaxPrekeyResponse, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Error != "" {
		return e2e.Bundle{}, resp.Error
	}
	var b e2e.Bundle
	if err := b.UnmarshalBinary(resp.Bundle); err != nil {
		t.Fatal(err)
	}
	return b, ""
}

// TestPrekeyDrainByThrowawayIDs: an attacker makes a fresh peer ID for
// every three bundles (the per-peer budget) from one address, enough to
// empty the one-time prekey pool. It is stopped by its address's budget,
// and a peer from another address still gets a bundle with a one-time
// prekey (positive control of the same fetch).
func TestPrekeyDrainByThrowawayIDs(t *testing.T) {
	victim := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	got, refused := 0, 0
	for range (e2e.OneTimePrekeyTarget + 10) / 3 {
		h := attacker(t, victim)
		for range 3 {
			if _, why := fetchBundle(t, h, victim); why != "" {
				refused++
			} else {
				got++
			}
		}
		h.Close()
	}
	if got > 20 || refused == 0 {
		t.Fatalf("throwaway identities from one address got %d bundles (%d refused)", got, refused)
	}

	// An honest peer on another address.
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.2/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Connect(context.Background(), victim.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	b, why := fetchBundle(t, h, victim)
	if why != "" {
		t.Fatalf("an honest peer was refused: %s", why)
	}
	if !b.HasOneTimePrekey {
		t.Fatal("an honest peer's bundle has no one-time prekey: the pool was drained")
	}
}

// TestPrekeyPoolToppedUp: with the per-IP and global budgets lifted, more
// bundles than the pool holds (e2e.OneTimePrekeyTarget) are handed out in
// a row, and every one carries a one-time prekey: the pool is topped up
// before it runs dry, not at the next hourly maintenance.
func TestPrekeyPoolToppedUp(t *testing.T) {
	defer chat.SetPrekeyBursts(1000, 1000)()
	victim := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	for i := range (e2e.OneTimePrekeyTarget + 20) / 3 {
		h := attacker(t, victim)
		for j := range 3 {
			b, why := fetchBundle(t, h, victim)
			if why != "" {
				t.Fatalf("bundle %d refused: %s", 3*i+j, why)
			}
			if !b.HasOneTimePrekey {
				t.Fatalf("bundle %d has no one-time prekey", 3*i+j)
			}
		}
		h.Close()
	}
}
