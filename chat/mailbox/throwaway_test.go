package mailbox

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/parley-im/parley/chat/wire"
)

// TestThrowawayHost: every throwaway host has a fresh identity, reaches a
// listening host, and leaves no goroutine behind once closed.
func TestThrowawayHost(t *testing.T) {
	before := goleak.IgnoreCurrent()
	srv, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	seen := make(chan peer.ID, 4)
	srv.SetStreamHandler(wire.ProtocolMailbox, func(st network.Stream) {
		seen <- st.Conn().RemotePeer()
		io.Copy(io.Discard, st)
		st.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ids := map[peer.ID]bool{srv.ID(): true}
	for range 2 {
		h, err := newThrowaway(nil)
		if err != nil {
			t.Fatal(err)
		}
		if ids[h.ID()] {
			t.Fatalf("throwaway identity %s reused", h.ID())
		}
		ids[h.ID()] = true
		if err := h.Connect(ctx, peer.AddrInfo{ID: srv.ID(), Addrs: srv.Addrs()}); err != nil {
			t.Fatal(err)
		}
		st, err := h.NewStream(ctx, srv.ID(), wire.ProtocolMailbox)
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte("x"))
		st.CloseWrite()
		if got := <-seen; got != h.ID() {
			t.Fatalf("server saw %s, want the throwaway %s", got, h.ID())
		}
		io.Copy(io.Discard, st)
		st.Close()
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)
}
