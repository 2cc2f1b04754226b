package peer

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/peer/localapi"
)

// Role says what a node is for.
type Role int

const (
	// RoleUser is a person's node: chat state, auto-relay client, hole punching.
	RoleUser Role = iota
	// RoleBootstrap is an operator's headless node: DHT server, relay v2
	// service, AutoNAT service, no chat state. It assumes it is publicly
	// reachable (that is what it is deployed for).
	RoleBootstrap
)

// Connection manager limits. When a node holds HighWater connections or
// more (checked every TrimEvery), it closes the least valued of those that are
// neither protected nor younger than GracePeriod until LowWater of them
// are left. Protected are gossipsub mesh peers (go-libp2p-pubsub protects
// them), relays we hold a reservation on (autorelay), the admin of a room
// join we wait on and the joiners an admin admitted (chat/room), contacts
// while a 1:1 exchange is under way (chat) and, on a bootstrap node only,
// the peers of the DHT's two widest buckets.
//
// A user node needs few: its rooms' meshes (protected) and a few others.
// Every DHT lookup (the routing table's refresh, a rendezvous Provide)
// dials the peers it queries and leaves them connected; in a network of a
// few dozen nodes that is every node, and gossipsub counts each room
// member among them as a topic peer (flood publishing to each). Those
// connections go 10 to 15 s after they were opened. The routing table
// keeps its peers without a connection, and a 1:1 delivery or a sync dials
// again when it needs to. A bootstrap node serves the DHT and relays to
// everyone and keeps many.
const (
	LowWater    = 4
	HighWater   = 12
	GracePeriod = 10 * time.Second
	TrimEvery   = 5 * time.Second

	BootstrapLowWater    = 96
	BootstrapHighWater   = 192
	BootstrapGracePeriod = time.Minute
)

// Config is everything a node needs to start. The zero value plus a Home is
// a user node on the public network with default listeners.
type Config struct {
	// Home is the node's directory: identity, database, lock and API socket.
	Home string
	// Role is RoleUser or RoleBootstrap.
	Role Role
	// Listen are the multiaddrs to listen on; empty means DefaultListen (or
	// DefaultListenPrivate on a private network).
	Listen []string
	// Bootstrap are multiaddrs with /p2p/ of peers to join the DHT through.
	Bootstrap []string
	// PublicBootstrap adds the well-known public Amino bootstrap peers when
	// Bootstrap is empty on the public network. cmd/parley sets it; tests never do.
	PublicBootstrap bool
	// SwarmKey is the path of a libp2p PSK file; set, it makes the node part
	// of that private network (TCP and WebSocket only).
	SwarmKey string
	// Allowlist is the path of a file of peer IDs allowed to connect (private
	// networks; optional).
	Allowlist string
	// Mailbox makes a bootstrap node serve /parley/mailbox/1 to every peer
	// of its network (chat/mailbox); user nodes enable theirs at run time.
	Mailbox bool
	// MDNS enables LAN discovery.
	MDNS bool
	// DHTMode overrides the DHT mode; the default is auto on the public
	// network and server on a private one or for a bootstrap node.
	DHTMode *discovery.Mode
	// NoPortMap disables UPnP/NAT-PMP port mapping (tests: it multicasts on the LAN).
	NoPortMap bool
	// Reachability overrides AutoNAT: "public" (the node is directly
	// dialable; a bootstrap node always is), "private" (behind NAT: reserve
	// a relay at once instead of waiting for AutoNAT's verdict) or ""/"auto".
	Reachability string
	// Logger receives the node's logs; nil means slog.Default().
	Logger *slog.Logger
	// Version is reported by `parley id`.
	Version string
	// MetricsAddr, if set, serves Prometheus metrics (libp2p's and the
	// Go runtime's) over HTTP at /metrics on this address.
	MetricsAddr string
}

// DefaultListen are the listen addresses of a public-network node.
var DefaultListen = []string{
	"/ip4/0.0.0.0/tcp/0",
	"/ip4/0.0.0.0/udp/0/quic-v1",
	"/ip4/0.0.0.0/tcp/0/ws",
	"/ip6/::/tcp/0",
	"/ip6/::/udp/0/quic-v1",
}

// DefaultListenPrivate are the listen addresses of a private-network node
// (QUIC cannot carry a pre-shared key).
var DefaultListenPrivate = []string{
	"/ip4/0.0.0.0/tcp/0",
	"/ip4/0.0.0.0/tcp/0/ws",
	"/ip6/::/tcp/0",
}

// validated is a Config checked and parsed.
type validated struct {
	Config
	listen    []ma.Multiaddr
	bootstrap []lpeer.AddrInfo
	dhtMode   discovery.Mode
}

// Validate checks c as New does, without creating or starting anything:
// the command line reports a bad setting as a configuration error.
func (c Config) Validate() error {
	_, err := c.validate()
	return err
}

func (c Config) validate() (*validated, error) {
	if c.Home == "" {
		return nil, errors.New("config: no home directory")
	}
	if len(c.Home) > 4096 {
		return nil, errors.New("config: home path too long")
	}
	// Checked here, before the home, the identity and the database are
	// created, so that a home that cannot hold the API socket is left alone.
	if _, err := localapi.SocketPath(c.Home); err != nil {
		return nil, err
	}
	v := &validated{Config: c}
	if v.Logger == nil {
		v.Logger = slog.Default()
	}
	listen := c.Listen
	if len(listen) == 0 {
		listen = DefaultListen
		if c.SwarmKey != "" {
			listen = DefaultListenPrivate
		}
	}
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("invalid listen address %q: %w", s, err)
		}
		if c.SwarmKey != "" && isQUIC(a) {
			return nil, fmt.Errorf("listen address %s: QUIC cannot run on a private network (pre-shared keys need TCP or WebSocket)", s)
		}
		v.listen = append(v.listen, a)
	}
	for _, s := range c.Bootstrap {
		info, err := ParseAddrInfo(s)
		if err != nil {
			return nil, fmt.Errorf("invalid bootstrap address %q: %w", s, err)
		}
		v.bootstrap = append(v.bootstrap, info)
	}
	switch {
	case c.DHTMode != nil:
		v.dhtMode = *c.DHTMode
	case c.Role == RoleBootstrap || c.SwarmKey != "":
		v.dhtMode = discovery.ModeServer
	default:
		v.dhtMode = discovery.ModeAuto
	}
	switch c.Reachability {
	case "", "auto", "public", "private":
	default:
		return nil, fmt.Errorf("invalid reachability %q (want auto, public or private)", c.Reachability)
	}
	if c.Allowlist != "" && c.SwarmKey == "" {
		return nil, errors.New("an allowlist needs a private network: pass --net swarm.key too")
	}
	return v, nil
}

func isQUIC(a ma.Multiaddr) bool {
	for _, p := range a.Protocols() {
		if p.Code == ma.P_QUIC_V1 || p.Code == ma.P_QUIC || p.Code == ma.P_WEBTRANSPORT {
			return true
		}
	}
	return false
}

// ParseAddrInfo parses a multiaddr that ends in /p2p/<peer-id>.
func ParseAddrInfo(s string) (lpeer.AddrInfo, error) {
	s = strings.TrimSpace(s)
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return lpeer.AddrInfo{}, err
	}
	info, err := lpeer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return lpeer.AddrInfo{}, fmt.Errorf("%w (the address must end in /p2p/<peer-id>)", err)
	}
	return *info, nil
}
