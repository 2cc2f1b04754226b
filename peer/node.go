// Package peer is the node: the composition root that builds the libp2p host
// (identity, transports, security, muxers, resource and connection
// managers, gater, NAT traversal, private network) and wires discovery, the
// store, the chat service and the local API together.
//
// Lifecycle:
//
//	New ──► Run(ctx) ──(ctx done)──► Close
//	 │                                 ▲
//	 └──────────(never run)────────────┘
//
// New acquires the home lock, loads or creates the identity, opens the
// database and starts the host and DHT; if it fails, everything it started is
// stopped again. Run serves until its context ends and returns once every
// goroutine it started has returned. Close then releases the host, the DHT,
// the database and the lock, in that order. Close may be called without Run.
package peer

import (
	"context"
	"errors"
	"fmt"
	ma "github.com/multiformats/go-multiaddr"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"golang.org/x/sync/errgroup"

	"github.com/parley-im/parley/chat"
	"github.com/parley-im/parley/chat/mailbox"
	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/peer/identity"
	"github.com/parley-im/parley/peer/localapi"
)

// Node is one running Parley node.
type Node struct {
	cfg     *validated
	log     *slog.Logger
	lock    *homeLock
	id      *identity.Identity
	db      *store.DB
	host    host.Host
	disc    *discovery.Discovery
	api     *localapi.Server
	psk     pnet.PSK
	network string
	started time.Time

	mu           sync.Mutex
	reachability network.Reachability // guarded by mu

	chat      *chat.Service    // nil on a bootstrap node
	rooms     *room.Service    // nil on a bootstrap node
	mailbox   *mailbox.Service // nil on a bootstrap node without --mailbox
	services  []Service
	metrics   *metricsServer // nil unless Config.MetricsAddr
	gater     *allowGater    // nil without an allowlist
	closeOnce sync.Once
	closeErr  error
}

// Service is a subsystem that runs for the node's lifetime under its errgroup.
type Service interface {
	Run(ctx context.Context) error
}

// New starts a node: on error nothing it started is left running.
func New(ctx context.Context, c Config) (_ *Node, err error) {
	cfg, err := c.validate()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, network: "public"}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.lock, err = lockHome(cfg.Home); err != nil {
		return nil, err
	}
	if cfg.SwarmKey != "" {
		if n.psk, err = LoadSwarmKey(cfg.SwarmKey); err != nil {
			return nil, err
		}
		n.network = "private:" + string(discovery.NetworkPrefix(n.psk))
	}
	var created bool
	if n.id, created, err = identity.LoadOrCreate(cfg.Home); err != nil {
		return nil, err
	}
	if created {
		n.log.Info("created new identity", "peer", n.id.PeerID())
	}
	if n.db, err = store.Open(ctx, filepath.Join(cfg.Home, store.FileName)); err != nil {
		return nil, err
	}
	if err := n.checkNetwork(ctx); err != nil {
		return nil, err
	}
	// The API socket is claimed before the host starts so that a home that
	// cannot hold it (path too long, not writable) fails before any traffic.
	if n.api, err = localapi.Listen(cfg.Home, n.log.With("subsystem", "localapi")); err != nil {
		return nil, err
	}
	if cfg.MetricsAddr != "" {
		m, err := listenMetrics(cfg.MetricsAddr)
		if err != nil {
			return nil, err
		}
		n.metrics = m
		n.AddService(m)
	}
	if err := n.startHost(); err != nil {
		return nil, err
	}
	n.AddService(retention{db: n.db, log: n.log.With("subsystem", "store")})
	n.registerRoutes()
	if cfg.Role == RoleUser {
		svc, err := chat.New(ctx, chat.Config{
			Host:     n.host,
			DB:       n.db,
			Identity: n.id,
			Router:   n.disc,
			Logger:   n.log.With("subsystem", "chat"),
		})
		if err != nil {
			return nil, err
		}
		n.chat = svc
		svc.Register(n.api)
		n.AddService(svc)

		// Rooms (chat/room): gossipsub topics, served '#room' conversations.
		rooms, err := room.New(ctx, room.Config{
			Chat:   svc,
			DHT:    n.disc.DHT(),
			Logger: n.log.With("subsystem", "room"),
		})
		if err != nil {
			return nil, err
		}
		n.rooms = rooms
		svc.SetRooms(rooms, rooms.HandlePayload)
		rooms.Register(n.api)
		n.AddService(rooms)
	}
	if err := n.startMailbox(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// startMailbox wires chat/mailbox: on a user node the client (deposits,
// drains, announces) and the contacts-only server of `parley mailbox
// enable`; on a bootstrap node started with --mailbox, a server for every
// peer of the network.
func (n *Node) startMailbox(ctx context.Context) error {
	cfg := mailbox.Config{
		Host:   n.host,
		DB:     n.db,
		Router: n.disc,
		PSK:    n.psk,
		Logger: n.log.With("subsystem", "mailbox"),
	}
	switch {
	case n.chat != nil:
		cfg.Chat = n.chat
		if n.psk != nil { // default mailboxes: the private network's bootstrap nodes
			for _, b := range n.cfg.bootstrap {
				cfg.Defaults = append(cfg.Defaults, b.ID)
			}
		}
	case n.cfg.Mailbox:
		cfg.Serve = mailbox.ServeNetwork
	default:
		return nil
	}
	mb, err := mailbox.New(ctx, cfg)
	if err != nil {
		return err
	}
	n.mailbox = mb
	n.admitDepositors(mb)
	if n.chat != nil {
		n.chat.SetMailbox(mb)
		n.chat.SetMailboxListHandler(mb.HandleList)
	}
	mb.Register(n.api)
	n.AddService(mb)
	return nil
}

// Mailbox returns the mailbox service (nil on a bootstrap node without
// --mailbox).
func (n *Node) Mailbox() *mailbox.Service { return n.mailbox }

// checkNetwork refuses to reuse a home on another network: the address book
// and the chat state of one network must not leak into another.
func (n *Node) checkNetwork(ctx context.Context) error {
	prev, ok, err := n.db.GetMeta(ctx, "network")
	if err != nil {
		return err
	}
	if ok && prev != n.network {
		return fmt.Errorf("home %s belongs to network %q, not %q; use another --home", n.cfg.Home, prev, n.network)
	}
	if !ok {
		return n.db.SetMeta(ctx, "network", n.network)
	}
	return nil
}

func (n *Node) startHost() error {
	var routing struct {
		sync.Mutex
		d *discovery.Discovery
	}
	routingFn := func() *discovery.Discovery {
		routing.Lock()
		defer routing.Unlock()
		return routing.d
	}
	newHost := func(listen []ma.Multiaddr) (host.Host, error) {
		opts, err := n.hostOptions(listen, routingFn)
		if err != nil {
			return nil, err
		}
		h, err := libp2p.New(opts...)
		if err != nil {
			return nil, fmt.Errorf("start libp2p host: %w", err)
		}
		return h, nil
	}
	// With the default listeners, a node keeps the ports it got on its first
	// start, so contacts find it again at the address they remember.
	listen, saved := n.cfg.listen, false
	if len(n.cfg.Listen) == 0 {
		if l := n.savedListen(); len(l) > 0 {
			listen, saved = l, true
		}
	}
	h, err := newHost(listen)
	if err != nil && saved {
		n.log.Warn("the ports of the last start are taken; choosing new ones", "err", err)
		h, err = newHost(n.cfg.listen)
	}
	if err != nil {
		return err
	}
	n.host = h
	n.watchDepositors()
	if len(n.cfg.Listen) == 0 {
		n.saveListen(h.Network().ListenAddresses())
	}
	prefix := discovery.AminoPrefix
	mdnsService := "_parley._udp"
	if n.psk != nil {
		prefix = discovery.NetworkPrefix(n.psk)
		mdnsService = "_parley-" + string(prefix[len("/parley/"):]) + "._udp"
	}
	bootstrap := n.cfg.bootstrap
	if len(bootstrap) == 0 && n.psk == nil && n.cfg.PublicBootstrap {
		bootstrap = publicBootstrapPeers()
	}
	d, err := discovery.New(h, discovery.Config{
		Prefix:      prefix,
		Mode:        n.cfg.dhtMode,
		Bootstrap:   bootstrap,
		MDNS:        n.cfg.MDNS,
		MDNSService: mdnsService,
		Book:        bookAdapter{n.db},
		Logger:      n.log.With("subsystem", "discovery"),
		// A bootstrap node keeps its routing table connected, as kad-dht
		// does by default; a user node's lookups leave nothing pinned.
		PinRoutingTable: n.cfg.Role == RoleBootstrap,
	})
	if err != nil {
		return err
	}
	routing.Lock()
	routing.d = d
	routing.Unlock()
	n.disc = d
	return nil
}

// AddService adds a service that Run starts; call it before Run.
func (n *Node) AddService(s Service) { n.services = append(n.services, s) }

// Chat returns the chat service (nil on a bootstrap node).
func (n *Node) Chat() *chat.Service { return n.chat }

// Rooms returns the room service (nil on a bootstrap node).
func (n *Node) Rooms() *room.Service { return n.rooms }

// Host returns the libp2p host.
func (n *Node) Host() host.Host { return n.host }

// Identity returns the node's identity.
func (n *Node) Identity() *identity.Identity { return n.id }

// DB returns the node's database.
func (n *Node) DB() *store.DB { return n.db }

// Discovery returns the discovery subsystem.
func (n *Node) Discovery() *discovery.Discovery { return n.disc }

// API returns the local API server, for services to register routes on.
func (n *Node) API() *localapi.Server { return n.api }

// Logger returns the node's logger.
func (n *Node) Logger() *slog.Logger { return n.log }

// Network returns "public" or "private:<dht-prefix>".
func (n *Node) Network() string { return n.network }

// Run serves until ctx ends.
func (n *Node) Run(ctx context.Context) error {
	n.started = time.Now()
	sub, err := n.host.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		return err
	}
	defer sub.Close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.disc.Run(ctx) })
	g.Go(func() error { return n.api.Run(ctx) })
	g.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case e := <-sub.Out():
				r := e.(event.EvtLocalReachabilityChanged).Reachability
				n.mu.Lock()
				n.reachability = r
				n.mu.Unlock()
				n.log.Info("reachability changed", "reachability", reachabilityString(r))
			}
		}
	})
	for _, s := range n.services {
		g.Go(func() error { return s.Run(ctx) })
	}
	n.log.Info("node running", "peer", n.id.PeerID(), "network", n.network, "addrs", n.host.Addrs())
	return g.Wait()
}

// Close stops the host and DHT and closes the database and the lock.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.api != nil {
			errs = append(errs, n.api.Close())
		}
		if n.metrics != nil {
			n.metrics.ln.Close() // already closed if Run served it
		}
		if n.rooms != nil {
			errs = append(errs, n.rooms.Close())
		}
		if n.disc != nil {
			errs = append(errs, n.disc.Close())
		}
		if n.host != nil {
			errs = append(errs, n.host.Close())
		}
		if n.db != nil {
			errs = append(errs, n.db.Close())
		}
		if n.lock != nil {
			errs = append(errs, n.lock.Unlock())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// Reachability returns what AutoNAT last said.
func (n *Node) Reachability() network.Reachability {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reachability
}

func reachabilityString(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

// bookAdapter lets discovery use the store as its address book.
type bookAdapter struct{ db *store.DB }

func (b bookAdapter) RememberPeer(ctx context.Context, info lpeer.AddrInfo, seen time.Time) error {
	return b.db.RememberPeer(ctx, info, seen)
}

func (b bookAdapter) RecentAddrInfos(ctx context.Context, limit int) ([]lpeer.AddrInfo, error) {
	seen, err := b.db.RecentPeers(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]lpeer.AddrInfo, len(seen))
	for i, s := range seen {
		out[i] = s.Info
	}
	return out, nil
}

// savedListen returns the listen addresses stored by the last start.
func (n *Node) savedListen() []ma.Multiaddr {
	v, ok, err := n.db.GetMeta(context.Background(), "listen")
	if err != nil || !ok {
		return nil
	}
	var out []ma.Multiaddr
	for _, s := range strings.Split(v, "\n") {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil // written by us; if it does not parse, start afresh
		}
		if n.psk != nil && isQUIC(a) {
			continue
		}
		out = append(out, a)
	}
	return out
}

func (n *Node) saveListen(addrs []ma.Multiaddr) {
	strs := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if discovery.IsRelayed(a) {
			continue // the relay transport's pseudo-listener
		}
		strs = append(strs, a.String())
	}
	if err := n.db.SetMeta(context.Background(), "listen", strings.Join(strs, "\n")); err != nil {
		n.log.Warn("could not save listen addresses", "err", err)
	}
}
