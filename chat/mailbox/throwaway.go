package mailbox

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ws "github.com/libp2p/go-libp2p/p2p/transport/websocket"
)

// newThrowaway starts a dial-only libp2p host under a fresh random Ed25519
// identity, with the node's transports and security and, on a private
// network, its pre-shared key. A deposit round runs on one and closes it,
// so the mailbox sees a peer ID that nothing else ever used.
func newThrowaway(psk pnet.PSK) (host.Host, error) {
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("throwaway identity: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.NoListenAddrs,
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(ws.New),
		libp2p.UserAgent("parley"),
		libp2p.DisableMetrics(),
	}
	if psk == nil {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	} else {
		opts = append(opts, libp2p.PrivateNetwork(psk))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("throwaway host: %w", err)
	}
	return h, nil
}

// addrsOf gathers the addresses known for mailbox m without connecting the
// node's own host to it: the peerstore, the address book, then the router.
func (s *Service) addrsOf(ctx context.Context, m peer.ID) peer.AddrInfo {
	info := peer.AddrInfo{ID: m, Addrs: s.host.Peerstore().Addrs(m)}
	if sp, ok, _ := s.db.LookupPeer(ctx, m); ok {
		for _, a := range sp.Info.Addrs {
			if !slices.ContainsFunc(info.Addrs, a.Equal) {
				info.Addrs = append(info.Addrs, a)
			}
		}
	}
	if len(info.Addrs) == 0 && s.cfg.Router != nil {
		if found, err := s.cfg.Router.FindPeer(ctx, m); err == nil {
			info.Addrs = found.Addrs
		}
	}
	return info
}

// connectThrowaway connects throwaway host h to mailbox m.
func (s *Service) connectThrowaway(ctx context.Context, h host.Host, m peer.ID) error {
	ctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "parley-mailbox"), dialTimeout)
	defer cancel()
	info := s.addrsOf(ctx, m)
	if len(info.Addrs) == 0 {
		return fmt.Errorf("mailbox %s unreachable: no known address", m)
	}
	if err := h.Connect(ctx, info); err != nil {
		return fmt.Errorf("mailbox %s unreachable: %w", m, err)
	}
	return nil
}
