// Package discovery finds peers: the Kademlia DHT (kad-dht) for peer routing
// and rendezvous, mDNS on the local network, the bootstrap list, and a
// persistent address book that remembers where peers were last seen so that
// a restarted node reconnects without any bootstrap.
//
// Lifecycle: New builds the DHT (it starts answering queries at once);
// Run connects to bootstrap and remembered peers, starts mDNS and records
// identified peers in the address book until its context ends; Close stops
// the DHT. Run must have returned before Close is called.
package discovery

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// AminoPrefix is the protocol prefix of the public Amino DHT (/ipfs/kad/1.0.0).
const AminoPrefix protocol.ID = "/ipfs"

// Mode says whether the DHT serves queries.
type Mode int

const (
	// ModeAuto serves queries only when AutoNAT finds the node publicly
	// reachable (the right choice on the public network).
	ModeAuto Mode = iota
	// ModeServer always serves queries (bootstrap nodes, private networks, tests).
	ModeServer
	// ModeClient never serves queries.
	ModeClient
)

// ParseMode parses "auto", "server" or "client".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto", "":
		return ModeAuto, nil
	case "server":
		return ModeServer, nil
	case "client":
		return ModeClient, nil
	}
	return 0, fmt.Errorf("unknown DHT mode %q (want auto, server or client)", s)
}

func (m Mode) String() string {
	switch m {
	case ModeServer:
		return "server"
	case ModeClient:
		return "client"
	}
	return "auto"
}

// NetworkPrefix returns the DHT protocol prefix of a private network: a
// keyed hash of its pre-shared key, so two private networks never share a
// routing table and the prefix reveals nothing about the key.
func NetworkPrefix(psk pnet.PSK) protocol.ID {
	mac := hmac.New(sha256.New, psk)
	mac.Write([]byte("parley/v1 dht-prefix"))
	return protocol.ID("/parley/" + hex.EncodeToString(mac.Sum(nil)[:8]))
}

// AddressBook persists where peers were last seen.
type AddressBook interface {
	RememberPeer(ctx context.Context, info peer.AddrInfo, seen time.Time) error
	RecentAddrInfos(ctx context.Context, limit int) ([]peer.AddrInfo, error)
}

// Config configures discovery.
type Config struct {
	// Prefix is the DHT protocol prefix: AminoPrefix or NetworkPrefix(psk).
	Prefix protocol.ID
	// Mode is the DHT mode.
	Mode Mode
	// Bootstrap peers are dialled at start and whenever the routing table empties.
	Bootstrap []peer.AddrInfo
	// MDNS enables LAN discovery; MDNSService scopes it (one name per network).
	MDNS        bool
	MDNSService string
	// Book is the persistent address book (may be nil).
	Book AddressBook
	// PinRoutingTable keeps kad-dht's default of protecting the peers of
	// the routing table's two widest buckets from the connection manager
	// (a bootstrap node, which serves the DHT to everyone). Unset, those
	// peers are tagged instead (RoutingTableTag), so that the connections
	// a lookup leaves behind are trimmed like any other idle one: the
	// routing table keeps its peers without a connection.
	PinRoutingTable bool
	// Logger receives discovery logs.
	Logger *slog.Logger
}

// Discovery is the running discovery subsystem of one node.
type Discovery struct {
	host host.Host
	dht  *dht.IpfsDHT
	cfg  Config
	log  *slog.Logger
}

// New creates the DHT on h.
func New(h host.Host, cfg Config) (*Discovery, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = AminoPrefix
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var mode dht.ModeOpt
	switch cfg.Mode {
	case ModeServer:
		mode = dht.ModeServer
	case ModeClient:
		mode = dht.ModeClient
	default:
		mode = dht.ModeAuto
	}
	opts := []dht.Option{dht.Mode(mode), dht.ProtocolPrefix(cfg.Prefix)}
	if len(cfg.Bootstrap) > 0 {
		opts = append(opts, dht.BootstrapPeers(cfg.Bootstrap...))
	} else {
		// Never fall back to the library's built-in public list: the caller
		// decides which bootstrap peers to use.
		opts = append(opts, dht.BootstrapPeersFunc(func() []peer.AddrInfo { return nil }))
	}
	if cfg.Prefix != AminoPrefix {
		// A private network holds no IPNS records; only peer routing and
		// provider records are needed.
		opts = append(opts, dht.DisableValues())
	}
	dh := h
	if !cfg.PinRoutingTable {
		dh = unpinnedHost{h}
	}
	d, err := dht.New(dh, opts...)
	if err != nil {
		return nil, fmt.Errorf("start dht: %w", err)
	}
	return &Discovery{host: h, dht: d, cfg: cfg, log: cfg.Logger}, nil
}

// kbucketTag is the tag under which kad-dht protects (from the connection
// manager) the peers of its two widest buckets, those whose key shares
// fewer than two leading bits with ours: three quarters of the peers it
// knows. Its other peers it tags with value 5.
const kbucketTag = "kbucket"

// RoutingTableTag is the connection-manager tag, and RoutingTableValue its
// value, of the routing table's peers that kad-dht would protect: worth a
// little more than a peer nothing tags, much less than anything Parley or
// gossipsub values.
const (
	RoutingTableTag   = "kbucket-wide"
	RoutingTableValue = 5
)

// unpinnedHost is the host as the DHT sees it: its connection manager
// turns the routing table's protections into tags.
type unpinnedHost struct{ host.Host }

func (h unpinnedHost) ConnManager() connmgr.ConnManager {
	return unpinnedConnManager{h.Host.ConnManager()}
}

// unpinnedConnManager tags, with RoutingTableTag, the peers kad-dht would
// protect with kbucketTag; everything else passes through.
type unpinnedConnManager struct{ connmgr.ConnManager }

func (c unpinnedConnManager) Protect(p peer.ID, tag string) {
	if tag == kbucketTag {
		c.TagPeer(p, RoutingTableTag, RoutingTableValue)
		return
	}
	c.ConnManager.Protect(p, tag)
}

func (c unpinnedConnManager) Unprotect(p peer.ID, tag string) bool {
	if tag == kbucketTag {
		c.UntagPeer(p, RoutingTableTag)
		return c.IsProtected(p, "")
	}
	return c.ConnManager.Unprotect(p, tag)
}

var (
	_ host.Host           = unpinnedHost{}
	_ connmgr.ConnManager = unpinnedConnManager{}
)

// DHT returns the underlying DHT (peer routing, provider records).
func (d *Discovery) DHT() *dht.IpfsDHT { return d.dht }

// RoutingTableSize returns the number of peers in the DHT routing table.
func (d *Discovery) RoutingTableSize() int { return d.dht.RoutingTable().Size() }

// Close stops the DHT.
func (d *Discovery) Close() error { return d.dht.Close() }

// FindPeer looks a peer up: first the peerstore of a connected peer, then the DHT.
func (d *Discovery) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	if id == d.host.ID() {
		return peer.AddrInfo{ID: id, Addrs: d.host.Addrs()}, nil
	}
	info, err := d.dht.FindPeer(ctx, id)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("find peer %s: %w", id, err)
	}
	return info, nil
}

// Run connects to bootstrap and remembered peers, bootstraps the DHT, runs
// mDNS and keeps the address book current until ctx ends.
func (d *Discovery) Run(ctx context.Context) error {
	sub, err := d.host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return fmt.Errorf("subscribe identify events: %w", err)
	}
	defer sub.Close()
	// The DHT dials the bootstrap peers as soon as it is built, so peers
	// may have been identified before the subscription: record them too.
	for _, p := range d.host.Network().Peers() {
		if addrs := d.host.Peerstore().Addrs(p); len(addrs) > 0 {
			d.rememberInfo(ctx, peer.AddrInfo{ID: p, Addrs: addrs})
		}
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.connectInitial(ctx)
	}()

	if d.cfg.MDNS {
		svc := mdns.NewMdnsService(d.host, d.cfg.MDNSService, &mdnsNotifee{ctx: ctx, d: d, wg: &wg})
		if err := svc.Start(); err != nil {
			d.log.Warn("mdns unavailable", "err", err)
		} else {
			defer svc.Close()
		}
	}

	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-sub.Out():
			if !ok {
				return nil
			}
			d.remember(ctx, e.(event.EvtPeerIdentificationCompleted))
		case <-tick.C:
			if d.RoutingTableSize() == 0 && len(d.cfg.Bootstrap) > 0 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d.connectAll(ctx, d.cfg.Bootstrap)
				}()
			}
		}
	}
}

func (d *Discovery) remember(ctx context.Context, e event.EvtPeerIdentificationCompleted) {
	if d.cfg.Book == nil {
		return
	}
	addrs := e.ListenAddrs
	if len(addrs) == 0 && e.Conn != nil && !IsRelayed(e.Conn.RemoteMultiaddr()) {
		addrs = []ma.Multiaddr{e.Conn.RemoteMultiaddr()}
	}
	d.rememberInfo(ctx, peer.AddrInfo{ID: e.Peer, Addrs: addrs})
}

func (d *Discovery) rememberInfo(ctx context.Context, info peer.AddrInfo) {
	if d.cfg.Book == nil {
		return
	}
	if err := d.cfg.Book.RememberPeer(ctx, info, time.Now()); err != nil && ctx.Err() == nil {
		d.log.Warn("address book write failed", "peer", info.ID, "err", err)
	}
}

// IsRelayed reports whether a is a relay (p2p-circuit) address.
func IsRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// connectInitial dials the bootstrap peers and up to 32 remembered peers,
// then bootstraps the DHT.
func (d *Discovery) connectInitial(ctx context.Context) {
	peers := append([]peer.AddrInfo(nil), d.cfg.Bootstrap...)
	if d.cfg.Book != nil {
		remembered, err := d.cfg.Book.RecentAddrInfos(ctx, 32)
		if err != nil {
			d.log.Warn("address book read failed", "err", err)
		}
		peers = append(peers, remembered...)
	}
	n := d.connectAll(ctx, peers)
	d.log.Info("initial peers connected", "connected", n, "tried", len(peers))
	if err := d.dht.Bootstrap(ctx); err != nil && ctx.Err() == nil {
		d.log.Warn("dht bootstrap failed", "err", err)
	}
}

// connectAll dials peers concurrently and returns how many connected.
func (d *Discovery) connectAll(ctx context.Context, peers []peer.AddrInfo) int {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		n  int
	)
	for _, p := range peers {
		if p.ID == d.host.ID() || p.ID == "" {
			continue
		}
		wg.Add(1)
		go func(p peer.AddrInfo) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			err := d.host.Connect(cctx, p)
			if errors.Is(err, swarm.ErrDialBackoff) {
				// Another part of the node dialled first and failed: dial
				// once more to learn why (a bootstrap peer on another network
				// must be reported as such, not as "dial backoff").
				if sw, ok := d.host.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
					sw.Backoff().Clear(p.ID)
					err = d.host.Connect(cctx, p)
				}
			}
			if err != nil {
				if IsHandshakeFailure(err) {
					d.log.Warn("handshake failed: the peer is on another network (a different or missing --net key)", "peer", p.ID, "err", err)
					return
				}
				d.log.Debug("connect failed", "peer", p.ID, "err", err)
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
		}(p)
	}
	wg.Wait()
	return n
}

type mdnsNotifee struct {
	ctx context.Context
	d   *Discovery
	wg  *sync.WaitGroup
}

func (m *mdnsNotifee) HandlePeerFound(info peer.AddrInfo) {
	if info.ID == m.d.host.ID() || m.ctx.Err() != nil {
		return
	}
	if m.d.host.Network().Connectedness(info.ID) == network.Connected {
		return
	}
	m.d.log.Debug("mdns found peer", "peer", info.ID)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		cctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
		defer cancel()
		if err := m.d.host.Connect(cctx, info); err != nil && !errors.Is(err, context.Canceled) {
			m.d.log.Debug("mdns connect failed", "peer", info.ID, "err", err)
		}
	}()
}

// ErrHandshake marks a connection refused in the handshake: with a private
// network's pre-shared key, a peer holding another key (or none) decrypts
// the other side's bytes to garbage, and the security negotiation fails.
var ErrHandshake = errors.New("handshake failed: the peer is on another network (a different or missing --net key)")

// IsHandshakeFailure reports whether a dial error is a failed security
// handshake, the sign of peers on different networks.
func IsHandshakeFailure(err error) bool {
	return err != nil && strings.Contains(err.Error(), "failed to negotiate security protocol")
}
