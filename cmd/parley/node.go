package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/peer"
)

func init() {
	register(command{name: "up", args: "[flags]", summary: "run a node in the foreground until interrupted", run: runUp})
	register(command{name: "bootstrap", args: "[flags]", summary: "run a headless bootstrap/relay node for a network", run: runBootstrap})
	register(command{name: "net new", summary: "print a new private-network swarm key (libp2p PSK format)", run: runNetNew})
	register(command{name: "version", summary: "print the version", run: func(_ context.Context, e *env, _ []string) error {
		fmt.Fprintln(e.stdout, "parley", version)
		return nil
	}})
}

func defaultHome() (string, error) { return peer.DefaultHome() }

type nodeFlags struct {
	*flags
	listen    listFlag
	bootstrap listFlag
	net       string
	allow     string
	noMDNS    bool
	noPortMap bool
	reach     string
	dhtMode   string
	metrics   string
	// configPath is --config; empty means HOME/parley.conf if it exists.
	configPath string
}

func newNodeFlags(e *env, name string) *nodeFlags {
	f := &nodeFlags{flags: newFlags(e, name, false)}
	f.listen = envList("PARLEY_LISTEN")
	f.bootstrap = envList("PARLEY_BOOTSTRAP")
	f.Var(&f.listen, "listen", "multiaddr to listen on (repeatable; default: TCP, QUIC and WebSocket on all interfaces)")
	f.Var(&f.bootstrap, "bootstrap", "multiaddr/p2p/ID of a bootstrap peer (repeatable; $PARLEY_BOOTSTRAP); \"none\" joins no one")
	f.StringVar(&f.net, "net", os.Getenv("PARLEY_NET"), "swarm key file: join that private network ($PARLEY_NET)")
	f.StringVar(&f.allow, "allow", os.Getenv("PARLEY_ALLOW"), "file of peer IDs allowed to connect (private networks)")
	f.BoolVar(&f.noMDNS, "no-mdns", false, "do not look for peers on the local network")
	f.BoolVar(&f.noPortMap, "no-port-map", false, "do not ask the router for a port mapping (UPnP/NAT-PMP)")
	f.StringVar(&f.reach, "reachability", "auto", "auto (AutoNAT decides), public, or private (behind NAT: use a relay at once)")
	f.StringVar(&f.dhtMode, "dht-mode", "", "DHT mode: auto, server or client (default: auto on the public network, server otherwise)")
	f.StringVar(&f.metrics, "metrics", os.Getenv("PARLEY_METRICS"), "serve Prometheus metrics on this address, e.g. 127.0.0.1:9090 ($PARLEY_METRICS)")
	f.StringVar(&f.configPath, "config", "", "config file (default HOME/parley.conf when it exists)")
	return f
}

func (f *nodeFlags) config(e *env, role peer.Role) (peer.Config, error) {
	home, err := f.homeDir()
	if err != nil {
		return peer.Config{}, err
	}
	if err := f.applyConfigFile(home); err != nil {
		return peer.Config{}, err
	}
	log, err := f.logger(e)
	if err != nil {
		return peer.Config{}, err
	}
	bootstrap := []string(f.bootstrap)
	public := true
	if len(bootstrap) == 1 && bootstrap[0] == "none" {
		bootstrap, public = nil, false
	}
	cfg := peer.Config{
		Home:            home,
		Role:            role,
		Listen:          f.listen,
		Bootstrap:       bootstrap,
		PublicBootstrap: public,
		SwarmKey:        f.net,
		Allowlist:       f.allow,
		MDNS:            !f.noMDNS,
		NoPortMap:       f.noPortMap,
		Reachability:    f.reach,
		Logger:          log,
		Version:         version,
		MetricsAddr:     f.metrics,
	}
	if f.dhtMode != "" {
		m, err := discovery.ParseMode(f.dhtMode)
		if err != nil {
			return peer.Config{}, usagef("%v", err)
		}
		cfg.DHTMode = &m
	}
	return cfg, nil
}

func runUp(ctx context.Context, e *env, args []string) error {
	f := newNodeFlags(e, "up")
	pos, err := f.parse(args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return usagef("up takes no arguments, got %q", strings.Join(pos, " "))
	}
	cfg, err := f.config(e, peer.RoleUser)
	if err != nil {
		return err
	}
	return runNode(ctx, e, cfg)
}

func runBootstrap(ctx context.Context, e *env, args []string) error {
	f := newNodeFlags(e, "bootstrap")
	mailbox := f.Bool("mailbox", false, "also serve offline-delivery mailboxes to every peer of the private network (needs --net)")
	pos, err := f.parse(args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return usagef("bootstrap takes no arguments, got %q", strings.Join(pos, " "))
	}
	cfg, err := f.config(e, peer.RoleBootstrap)
	if err != nil {
		return err
	}
	if *mailbox && cfg.SwarmKey == "" {
		return usagef("--mailbox serves every peer that can connect: it needs a private network (--net swarm.key)")
	}
	cfg.Mailbox = *mailbox
	return runNode(ctx, e, cfg)
}

// runNode starts a node, prints how to reach it and serves until ctx ends.
func runNode(ctx context.Context, e *env, cfg peer.Config) error {
	n, err := newNode(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	id := n.IDInfo()
	fmt.Fprintf(e.stdout, "parley node %s (%s network)\n", id.PeerID, id.Network)
	for _, a := range id.Addrs {
		fmt.Fprintf(e.stdout, "  %s\n", a)
	}
	if err := n.Run(ctx); err != nil {
		return err
	}
	return n.Close()
}

func runNetNew(_ context.Context, e *env, args []string) error {
	f := newFlags(e, "net new", false)
	pos, err := f.parse(args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return usagef("net new takes no arguments; redirect its output: parley net new > swarm.key")
	}
	key, err := peer.NewSwarmKey()
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(key)
	return err
}

// helpOK turns -h into a clean exit.
func helpOK(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
