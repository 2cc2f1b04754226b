package peer

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ws "github.com/libp2p/go-libp2p/p2p/transport/websocket"

	"github.com/parley-im/parley/discovery"
)

// Relay service limits of a bootstrap node. A reservation lasts an hour; a
// relayed connection lasts at most RelayCircuitDuration and carries at most
// RelayCircuitData bytes each way before the relay closes it (peers then
// reconnect or, better, upgrade to a direct connection with DCUtR).
const (
	RelayReservationTTL     = time.Hour
	RelayMaxReservations    = 256
	RelayMaxCircuits        = 32 // per peer
	RelayReservationsPerIP  = 16
	RelayCircuitDuration    = 10 * time.Minute
	RelayCircuitData        = 1 << 20
	relayPeerSourceInterval = 30 * time.Second
)

func relayResources() relay.Resources {
	r := relay.DefaultResources()
	r.ReservationTTL = RelayReservationTTL
	r.MaxReservations = RelayMaxReservations
	r.MaxCircuits = RelayMaxCircuits
	r.MaxReservationsPerIP = RelayReservationsPerIP
	r.Limit = &relay.RelayLimit{Duration: RelayCircuitDuration, Data: RelayCircuitData}
	return r
}

func (n *Node) hostOptions(routing func() *discovery.Discovery) ([]libp2p.Option, error) {
	// Everything that can fail on input comes first: the connection and
	// resource managers start goroutines that only the host stops.
	var gater *allowGater
	if n.cfg.Allowlist != "" {
		allow, err := LoadAllowlist(n.cfg.Allowlist)
		if err != nil {
			return nil, err
		}
		gater = &allowGater{self: n.id.PeerID(), allow: allow}
	}
	cm, err := connmgr.NewConnManager(LowWater, HighWater, connmgr.WithGracePeriod(GracePeriod))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.DefaultLimits.AutoScale()))
	if err != nil {
		cm.Close()
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(n.id.PrivKey()),
		libp2p.ListenAddrs(n.cfg.listen...),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(ws.New),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent("parley/" + n.cfg.Version),
		libp2p.EnableAutoNATv2(),
		libp2p.EnableRelay(),
		libp2p.EnableHolePunching(),
	}
	if gater != nil {
		opts = append(opts, libp2p.ConnectionGater(gater))
	}
	if n.psk == nil {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	} else {
		opts = append(opts, libp2p.PrivateNetwork(n.psk))
	}
	if !n.cfg.NoPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	switch n.cfg.Role {
	case RoleBootstrap:
		opts = append(opts,
			libp2p.EnableRelayService(relay.WithResources(relayResources())),
			libp2p.EnableNATService(),
			libp2p.ForceReachabilityPublic(),
		)
	default:
		opts = append(opts, libp2p.EnableAutoRelayWithPeerSource(
			relayPeerSource(routing),
			autorelay.WithMinInterval(relayPeerSourceInterval),
			autorelay.WithBootDelay(5*time.Second),
		))
	}
	return opts, nil
}

// relayPeerSource offers auto-relay the peers in the DHT routing table (the
// bootstrap nodes among them); auto-relay keeps those that speak relay v2 hop
// and makes a reservation when AutoNAT says the node is private.
func relayPeerSource(routing func() *discovery.Discovery) autorelay.PeerSource {
	return func(ctx context.Context, num int) <-chan lpeer.AddrInfo {
		out := make(chan lpeer.AddrInfo, num)
		defer close(out)
		d := routing()
		if d == nil {
			return out
		}
		h := d.DHT().Host()
		for _, p := range d.DHT().RoutingTable().ListPeers() {
			if len(out) == num {
				break
			}
			out <- h.Peerstore().PeerInfo(p)
		}
		return out
	}
}

// publicBootstrapPeers is the well-known Amino bootstrap list, used only on
// the public network when the user gives no --bootstrap.
func publicBootstrapPeers() []lpeer.AddrInfo { return dht.GetDefaultBootstrapPeerAddrInfos() }
