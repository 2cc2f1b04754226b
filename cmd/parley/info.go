package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/parley-im/parley/internal/safetext"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/client"
)

func init() {
	register(command{name: "id", summary: "print this node's peer ID, addresses and network", run: runID,
		group: "Start",
		long: `Prints the peer ID (your address: what contacts add), the network and the
node's addresses. With no node running it reads the home: the peer ID, the
network and the addresses the node listened on last time.`,
		examples: []string{"parley id", "parley id --json | jq -r .peer_id"}})
	register(command{name: "peers", summary: "list connected peers with contact name, latency and path", run: runPeers,
		group: "Network",
		long: `Lists the peers this node holds connections to (contacts, DHT and relay
peers), with the contact name where there is one, the latency, whether the
connection is direct or relayed, its direction and remote address.`,
		examples: []string{"parley peers", "parley peers --json"}})
	register(command{name: "status", summary: "reachability, DHT, connections and outbox", run: runStatus,
		group: "Network",
		long: `Shows what the node sees of the network: NAT reachability (AutoNAT's
verdict), relays in use, the DHT mode and routing table size, connections,
messages waiting in the outbox and the uptime.`,
		examples: []string{"parley status", "parley status --json | jq .outbox"}})
	register(command{name: "find", args: "NAME|PEERID", summary: "look a contact or peer up in the DHT and print its addresses", run: runFind,
		group:    "Network",
		long:     `Asks the DHT for a peer's current addresses. Takes a contact name or a peer ID.`,
		examples: []string{"parley find bob", "parley find 12D3KooWQ...  # any peer, contact or not"}})
	register(command{name: "connect", args: "MADDR|NAME|PEERID", summary: "connect to a peer", run: runConnect,
		group: "Network",
		long: `Opens a connection to a peer: a multiaddr ending in /p2p/PEERID is dialled as
it is; a contact name or a bare peer ID is first looked up in the DHT. On a
private network, a peer holding another network key fails the handshake,
and connect says so.`,
		examples: []string{"parley connect /ip4/192.0.2.10/tcp/4001/p2p/12D3KooWQ...", "parley connect bob"}})
}

// clientCmd parses the shared flags and returns a client for the home.
// define, if given, adds the command's own flags before parsing.
func clientCmd(e *env, name string, args []string, nargs int, usage string, define ...func(*flags)) (*client.Client, *flags, []string, error) {
	f := newFlags(e, name, true)
	for _, d := range define {
		d(f)
	}
	pos, err := f.parse(args)
	if err != nil {
		return nil, nil, nil, err
	}
	if nargs >= 0 && len(pos) != nargs {
		return nil, nil, nil, usagef("usage: parley %s %s", name, usage)
	}
	home, err := f.homeDir()
	if err != nil {
		return nil, nil, nil, err
	}
	return clientFor(home), f, pos, nil
}

func clientFor(home string) *client.Client { return client.New(home) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runID(ctx context.Context, e *env, args []string) error {
	c, f, _, err := clientCmd(e, "id", args, 0, "")
	if err != nil {
		return helpOK(err)
	}
	var id apitype.ID
	running := true
	err = readOnly(ctx, c, func() (err error) {
		id, err = c.ID(ctx)
		return err
	}, func(o *offline) error {
		id, running = o.ID(), false
		return nil
	})
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, id)
	}
	fmt.Fprintf(e.stdout, "peer id:  %s\nnetwork:  %s\nversion:  %s\n", id.PeerID, id.Network, id.Version)
	if !running {
		fmt.Fprintln(e.stdout, "node:     not running (addresses of its last start)")
	}
	fmt.Fprintln(e.stdout, "addresses:")
	if len(id.Addrs) == 0 {
		fmt.Fprintln(e.stdout, "  (none known)")
	}
	for _, a := range id.Addrs {
		fmt.Fprintf(e.stdout, "  %s\n", a)
	}
	return nil
}

func runPeers(ctx context.Context, e *env, args []string) error {
	c, f, _, err := clientCmd(e, "peers", args, 0, "")
	if err != nil {
		return helpOK(err)
	}
	peers, err := c.Peers(ctx)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, peers)
	}
	if len(peers) == 0 {
		fmt.Fprintln(e.stdout, "no peers connected")
		return nil
	}
	names := map[string]string{} // peer ID -> contact name; none on a bootstrap node
	if byName, err := contactNames(ctx, c); err == nil {
		for name, id := range byName {
			names[id] = safetext.Line(name)
		}
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTACT\tPEER\tLATENCY\tPATH\tDIR\tADDRESS")
	for _, p := range peers {
		path := "direct"
		if p.Relayed {
			path = "relayed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1fms\t%s\t%s\t%s\n", orDash(names[p.PeerID]), p.PeerID, p.LatencyMS, path, p.Direction, p.Addr)
	}
	return tw.Flush()
}

func runStatus(ctx context.Context, e *env, args []string) error {
	c, f, _, err := clientCmd(e, "status", args, 0, "")
	if err != nil {
		return helpOK(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, st)
	}
	relays := "none"
	if len(st.Relays) > 0 {
		relays = strings.Join(st.Relays, ", ")
	}
	fmt.Fprintf(e.stdout, "peer id:       %s\nnetwork:       %s\nreachability:  %s\nrelays:        %s\n",
		st.PeerID, st.Network, st.Reachability, relays)
	fmt.Fprintf(e.stdout, "dht:           %s mode, %d peers in routing table\n", st.DHTMode, st.RoutingTable)
	fmt.Fprintf(e.stdout, "connections:   %d (%d in, %d out, %d relayed) to %d peers\n",
		st.Conns.Total, st.Conns.Inbound, st.Conns.Outbound, st.Conns.Relayed, st.Peers)
	fmt.Fprintf(e.stdout, "outbox:        %d waiting\nuptime:        %s\n", st.Outbox, st.Uptime)
	return nil
}

func runFind(ctx context.Context, e *env, args []string) error {
	c, f, pos, err := clientCmd(e, "find", args, 1, "NAME|PEERID")
	if err != nil {
		return helpOK(err)
	}
	id, err := resolvePeer(ctx, c, pos[0])
	if err != nil {
		return err
	}
	res, err := c.Find(ctx, id)
	if err != nil {
		if id != pos[0] {
			return fmt.Errorf("find %s (%s): %w", pos[0], id, err)
		}
		return fmt.Errorf("find %s: %w", id, err)
	}
	if f.json {
		return printJSON(e.stdout, res)
	}
	for _, a := range res.Addrs {
		fmt.Fprintf(e.stdout, "%s/p2p/%s\n", a, res.PeerID)
	}
	return nil
}

func runConnect(ctx context.Context, e *env, args []string) error {
	c, f, pos, err := clientCmd(e, "connect", args, 1, "MADDR|NAME|PEERID")
	if err != nil {
		return helpOK(err)
	}
	addr := pos[0]
	if !strings.HasPrefix(addr, "/") {
		if addr, err = resolvePeer(ctx, c, addr); err != nil {
			return err
		}
	}
	res, err := c.Connect(ctx, addr)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "connected to %s via %s\n", res.PeerID, res.Addr)
	return nil
}
