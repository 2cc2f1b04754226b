package room_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// syncOnce sends one room sync request from h to target and returns the
// response's error text.
func syncOnce(t *testing.T, h host.Host, target *peertest.Running) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := h.NewStream(ctx, target.Host().ID(), wire.ProtocolRoomSync)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	if err := wire.WriteFrame(st, &wirepb.RoomSyncRequest{Version: wire.Version, RoomId: make([]byte, 32), Proof: make([]byte, 32)}); err != nil {
		t.Fatal(err)
	}
	st.CloseWrite()
	var resp wirepb.RoomSyncResponse
	if err := wire.ReadFrame(st, wire.MaxSyncResponse, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Error
}

// TestSyncBudgetPerIP: sync requests under ever new peer IDs from one
// address are stopped by the address's budget, before they are read; a
// peer at another address is still served (positive control: its request
// is answered on its merits, "unknown room").
func TestSyncBudgetPerIP(t *testing.T) {
	target := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	newHost := func(ip string) host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/"+ip+"/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		if err := h.Connect(context.Background(), target.AddrInfo()); err != nil {
			t.Fatal(err)
		}
		return h
	}
	limited := 0
	for range 4 { // each identity within its own budget (100 at once)
		h := newHost("127.0.0.1")
		for range 90 {
			if syncOnce(t, h, target) == "rate limited" {
				limited++
			}
		}
		h.Close()
	}
	if limited < 100 {
		t.Fatalf("360 requests from one address under 4 identities: %d rate limited, want at least 100", limited)
	}
	if got := syncOnce(t, newHost("127.0.0.2"), target); got == "rate limited" {
		t.Fatalf("a peer at another address was refused: %q", got)
	}
}
