package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
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

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/discovery"
)

// Relay service limits of a bootstrap node. A reservation lasts an hour; a
// relayed connection lasts at most RelayCircuitDuration and carries at most
// RelayCircuitData bytes each way before the relay closes it (peers then
// reconnect or, better, upgrade to a direct connection with DCUtR).
const (
	RelayReservationTTL    = time.Hour
	RelayMaxReservations   = 256
	RelayMaxCircuits       = 32 // per peer
	RelayReservationsPerIP = 16
	RelayCircuitDuration   = 10 * time.Minute
	RelayCircuitData       = 1 << 20
)

// Auto-relay client settings of a user node. See docs/NAT.md.
//
// Parley networks have few relays (often just the operator's one or two
// bootstrap nodes), so the go-libp2p defaults, made for the public IPFS
// network with thousands of them, are wrong here: it waits up to three
// minutes for four candidates before it picks one, asks for new candidates
// every 30 seconds at most, and shuns a relay for an hour after one refused
// reservation. A node behind NAT is unreachable for all of that time.
const (
	// relayBootDelay is how long the relay finder waits for more candidates
	// before it reserves with the ones it has.
	relayBootDelay = 2 * time.Second
	// relayPeerSourceInterval is how often the finder may ask for
	// candidates: after a relay goes away, the node is reachable again
	// at most this long after the relay is back.
	relayPeerSourceInterval = 10 * time.Second
	// relayBackoff is how long a relay that refused a reservation is
	// left alone.
	relayBackoff = time.Minute
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

func (n *Node) hostOptions(listen []ma.Multiaddr, routing func() *discovery.Discovery) ([]libp2p.Option, error) {
	// Everything that can fail on input comes first: the connection and
	// resource managers start goroutines that only the host stops.
	if err := portsFree(listen); err != nil {
		return nil, err
	}
	var gater *allowGater
	if n.cfg.Allowlist != "" {
		allow, err := LoadAllowlist(n.cfg.Allowlist)
		if err != nil {
			return nil, err
		}
		gater = &allowGater{self: n.id.PeerID(), allow: allow, dep: newDepositorGate()}
		n.gater = gater
	}
	low, high, grace, every := LowWater, HighWater, GracePeriod, TrimEvery
	if n.cfg.Role == RoleBootstrap {
		low, high, grace, every = BootstrapLowWater, BootstrapHighWater, BootstrapGracePeriod, 10*time.Second
	}
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(grace), connmgr.WithSilencePeriod(every))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	limits := rcmgr.PartialLimitConfig{Protocol: map[protocol.ID]rcmgr.ResourceLimits{
		wire.ProtocolMailbox: mailboxProtocolLimits,
	}}.Build(rcmgr.DefaultLimits.AutoScale())
	var rm network.ResourceManager
	rm, err = rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
	if err != nil {
		cm.Close()
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	if gater != nil {
		rm = &depositorRM{ResourceManager: rm, gate: gater.dep}
	}
	opts := []libp2p.Option{
		libp2p.Identity(n.id.PrivKey()),
		libp2p.ListenAddrs(listen...),
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
	if n.cfg.Role != RoleBootstrap {
		switch n.cfg.Reachability {
		case "public":
			opts = append(opts, libp2p.ForceReachabilityPublic())
		case "private":
			opts = append(opts, libp2p.ForceReachabilityPrivate())
		}
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
			relayPeerSource(n.cfg.bootstrap, routing),
			autorelay.WithMinInterval(relayPeerSourceInterval),
			autorelay.WithBootDelay(relayBootDelay),
			autorelay.WithBackoff(relayBackoff),
		))
	}
	return opts, nil
}

// relayPeerSource offers auto-relay the configured bootstrap peers first,
// then the peers in the DHT routing table; auto-relay keeps those that speak
// relay v2 hop and makes a reservation when AutoNAT says the node is
// private. The bootstrap list comes first because it is what the operator
// deployed as relays, and because a bootstrap node that restarted may have
// left the routing table: it must still be tried again.
func relayPeerSource(bootstrap []lpeer.AddrInfo, routing func() *discovery.Discovery) autorelay.PeerSource {
	return func(ctx context.Context, num int) <-chan lpeer.AddrInfo {
		out := make(chan lpeer.AddrInfo, num)
		defer close(out)
		seen := make(map[lpeer.ID]bool)
		offer := func(info lpeer.AddrInfo) {
			if len(out) < num && !seen[info.ID] {
				seen[info.ID] = true
				out <- info
			}
		}
		for _, info := range bootstrap {
			offer(info)
		}
		d := routing()
		if d == nil {
			return out
		}
		h := d.DHT().Host()
		for _, p := range d.DHT().RoutingTable().ListPeers() {
			if p != h.ID() {
				offer(h.Peerstore().PeerInfo(p))
			}
		}
		return out
	}
}

// publicBootstrapPeers is the well-known Amino bootstrap list, used only on
// the public network when the user gives no --bootstrap.
func publicBootstrapPeers() []lpeer.AddrInfo { return dht.GetDefaultBootstrapPeerAddrInfos() }

// mailboxProtocolLimits is the resource-manager scope of
// /parley/mailbox/1: whatever the peers, the mailbox protocol holds at most
// this many streams and this much memory, so depositors (anonymous by
// design) cannot starve the node's other protocols.
var mailboxProtocolLimits = rcmgr.ResourceLimits{
	Streams:         256,
	StreamsInbound:  256,
	StreamsOutbound: 64,
	Memory:          64 << 20,
}

// ErrPortInUse is returned when a listen address's port is taken by another
// socket (another node, or any other process).
var ErrPortInUse = errors.New("port already in use")

// portsFree checks that every listen address with a fixed port can be
// bound by a plain socket. libp2p binds its TCP listeners with
// SO_REUSEPORT (so that it can dial from the port it listens on, for hole
// punching), and Linux lets two such sockets of one user share a port:
// a second node started on a taken port would silently split the first
// one's incoming connections with it. A plain bind (without SO_REUSEPORT)
// fails on a port that any socket holds, so it is the check. A port that is
// taken between this check and libp2p's bind is not caught; this closes
// the common mistake, not that race.
func portsFree(listen []ma.Multiaddr) error {
	for _, a := range listen {
		ip, err := a.ValueForProtocol(ma.P_IP4)
		if err != nil {
			if ip, err = a.ValueForProtocol(ma.P_IP6); err != nil {
				continue // not an IP address; libp2p reports it
			}
		}
		network, port := "tcp", ""
		if port, err = a.ValueForProtocol(ma.P_TCP); err != nil {
			if port, err = a.ValueForProtocol(ma.P_UDP); err != nil {
				continue
			}
			network = "udp"
		}
		if port == "0" {
			continue
		}
		addr := net.JoinHostPort(ip, port)
		var c io.Closer
		switch network {
		case "tcp":
			c, err = net.Listen(network, addr)
		default:
			c, err = net.ListenPacket(network, addr)
		}
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("listen on %s: %w by another process (another parley node?); choose another --listen port or stop it", a, ErrPortInUse)
			}
			return fmt.Errorf("listen on %s: %w", a, err)
		}
		c.Close()
	}
	return nil
}
