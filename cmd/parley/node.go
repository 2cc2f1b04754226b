package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/peer"
)

func init() {
	register(command{name: "up", args: "[flags]", summary: "run a node in the foreground until interrupted", run: runUp,
		group: "Start",
		long: `Runs this user's node: it joins the network (the public Amino DHT, or the
private network of --net), keeps contacts' sessions and delivers messages.
Logs go to stderr; the other commands talk to the node through a unix socket
in its home (--home). Ctrl-C or SIGTERM stops it and prints a "stopped" line.

Settings come from flags, then PARLEY_* environment variables, then
HOME/parley.conf (one "flag = value" per line; booleans take yes/no,
true/false, on/off or 1/0; relative paths resolve against the home).`,
		examples: []string{
			"parley up",
			"parley up --home ~/alice --listen /ip4/0.0.0.0/tcp/4001",
			"parley up --net swarm.key --bootstrap /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW...",
		}})
	register(command{name: "bootstrap", args: "[flags]", summary: "run a headless bootstrap/relay node for a network", run: runBootstrap,
		group: "Node",
		long: `Runs a node with no chat state that other nodes join the network through: a
DHT server, a circuit relay and an AutoNAT service. For a private network,
give it the network's key with --net and hand its address to the users
(parley up --bootstrap ADDR). With --mailbox it also keeps messages for
offline peers of the private network.`,
		examples: []string{
			"parley net new -o swarm.key && parley bootstrap --net swarm.key --listen /ip4/0.0.0.0/tcp/4001",
			"parley bootstrap --home /var/lib/parley --net swarm.key --mailbox",
		}})
	register(command{name: "net new", summary: "create a private-network swarm key (libp2p PSK format)", run: runNetNew,
		group: "Node",
		long: `Creates the secret of a new private network. Nodes started with --net FILE
connect only to nodes holding the same key; outsiders cannot even complete a
connection. Keep it like a password: -o writes it with mode 0600, and a
redirected stdout is made 0600 too.`,
		examples: []string{
			"parley net new -o swarm.key",
			"parley net new > swarm.key",
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
	f.Var(&f.listen, "listen", "`MADDR` to listen on (repeatable; default: TCP, QUIC and WebSocket on all interfaces)")
	f.Var(&f.bootstrap, "bootstrap", "bootstrap peer `MADDR`, ending in /p2p/ID (repeatable; $PARLEY_BOOTSTRAP); \"none\" joins no one")
	f.StringVar(&f.net, "net", os.Getenv("PARLEY_NET"), "swarm key `FILE`: join that private network ($PARLEY_NET)")
	f.StringVar(&f.allow, "allow", os.Getenv("PARLEY_ALLOW"), "`FILE` of the peer IDs allowed to connect (private networks)")
	f.BoolVar(&f.noMDNS, "no-mdns", false, "do not look for peers on the local network")
	f.BoolVar(&f.noPortMap, "no-port-map", false, "do not ask the router for a port mapping (UPnP/NAT-PMP)")
	f.StringVar(&f.reach, "reachability", "auto", "`MODE`: auto (AutoNAT decides), public, or private (behind NAT: use a relay at once)")
	f.StringVar(&f.dhtMode, "dht-mode", "", "DHT `MODE`: auto, server or client (default: auto on the public network, server otherwise)")
	f.StringVar(&f.metrics, "metrics", os.Getenv("PARLEY_METRICS"), "serve Prometheus metrics on `ADDR`, e.g. 127.0.0.1:9090 ($PARLEY_METRICS)")
	f.StringVar(&f.configPath, "config", "", "config `FILE` (default HOME/parley.conf when it exists)")
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
		Version:         buildVersion(),
		MetricsAddr:     f.metrics,
	}
	if f.dhtMode != "" {
		m, err := discovery.ParseMode(f.dhtMode)
		if err != nil {
			return peer.Config{}, usagef("%v", err)
		}
		cfg.DHTMode = &m
	}
	// Every mistake in the settings -- flags, environment or config file --
	// is a usage error (exit 2), found before anything starts.
	if err := cfg.Validate(); err != nil {
		return peer.Config{}, usagef("%v", err)
	}
	if cfg.SwarmKey != "" {
		if _, err := peer.LoadSwarmKey(cfg.SwarmKey); err != nil {
			return peer.Config{}, usagef("--net %s: %v", cfg.SwarmKey, err)
		}
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
	runErr := n.Run(ctx)
	closeErr := n.Close()
	if err := errors.Join(runErr, closeErr); err != nil {
		return err
	}
	why := "interrupted"
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		why = cause.Error()
	}
	fmt.Fprintf(e.stdout, "parley node %s stopped (%s)\n", id.PeerID, why)
	return nil
}

func runNetNew(_ context.Context, e *env, args []string) error {
	f := newFlags(e, "net new", false)
	out := f.String("o", "", "write the key to this `FILE` (created with mode 0600; never overwritten)")
	pos, err := f.parse(args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return usagef("net new takes no arguments; write the key with -o FILE (or redirect: parley net new > swarm.key)")
	}
	key, err := peer.NewSwarmKey()
	if err != nil {
		return err
	}
	if *out != "" {
		file, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists; a network key is never overwritten (remove it first, or choose another name)", *out)
		}
		if err != nil {
			return err
		}
		if _, err := file.Write(key); err != nil {
			file.Close()
			os.Remove(*out)
			return err
		}
		if err := file.Close(); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "wrote a new network key to %s (mode 0600); start nodes with --net %s\n", *out, *out)
		return nil
	}
	if file, ok := e.stdout.(*os.File); ok {
		switch fi, err := file.Stat(); {
		case err != nil:
		case isTerminal(file):
			fmt.Fprintln(e.stderr, "parley: warning: printing a network secret on the terminal; use -o FILE to write it to a private file")
		case fi.Mode().IsRegular():
			// `parley net new > swarm.key`: the shell created the file with
			// the umask's mode; the key must not be readable by others.
			if err := file.Chmod(0o600); err != nil {
				return fmt.Errorf("make the key file private: %w", err)
			}
		}
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
