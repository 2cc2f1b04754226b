package discovery

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerRouter finds a peer's addresses (the DHT).
type PeerRouter interface {
	FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error)
}

// Remembered returns the addresses where a peer was last seen (the
// address book); ok is false if it was never seen.
type Remembered func(ctx context.Context, id peer.ID) (info peer.AddrInfo, ok bool)

// Reach makes sure h has a connection to p, trying in turn the addresses h
// already knows, the remembered ones and a lookup through router (which
// may be nil), for at most timeout. A relayed (limited) connection is
// enough: without allowing it, Connect would wait the whole timeout for a
// direct one. why names the caller in libp2p's bookkeeping.
func Reach(ctx context.Context, h host.Host, remembered Remembered, router PeerRouter, p peer.ID, timeout time.Duration, why string) error {
	if c := h.Network().Connectedness(p); c == network.Connected || c == network.Limited {
		return nil
	}
	ctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, why), timeout)
	defer cancel()
	if len(h.Peerstore().Addrs(p)) > 0 {
		if err := h.Connect(ctx, peer.AddrInfo{ID: p}); err == nil {
			return nil
		}
	}
	if remembered != nil {
		if info, ok := remembered(ctx, p); ok {
			if err := h.Connect(ctx, info); err == nil {
				return nil
			}
		}
	}
	if router == nil {
		return fmt.Errorf("peer %s unreachable", p)
	}
	info, err := router.FindPeer(ctx, p)
	if err == nil {
		err = h.Connect(ctx, info)
	}
	if err != nil {
		return fmt.Errorf("peer %s unreachable: %w", p, err)
	}
	return nil
}
