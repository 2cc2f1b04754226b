package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/parley-im/parley/peer/client"
)

func init() {
	register(command{name: "id", summary: "print this node's peer ID, addresses and network", run: runID})
	register(command{name: "peers", summary: "list connected peers with address and latency", run: runPeers})
	register(command{name: "status", summary: "reachability, DHT, connections and outbox", run: runStatus})
	register(command{name: "find", args: "PEERID", summary: "look a peer up in the DHT and print its addresses", run: runFind})
	register(command{name: "connect", args: "MADDR|PEERID", summary: "connect to a peer", run: runConnect})
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
	id, err := c.ID(ctx)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, id)
	}
	fmt.Fprintf(e.stdout, "peer id:  %s\nnetwork:  %s\nversion:  %s\naddresses:\n", id.PeerID, id.Network, id.Version)
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
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tLATENCY\tPATH\tDIR\tADDRESS")
	for _, p := range peers {
		path := "direct"
		if p.Relayed {
			path = "relayed"
		}
		fmt.Fprintf(tw, "%s\t%.1fms\t%s\t%s\t%s\n", p.PeerID, p.LatencyMS, path, p.Direction, p.Addr)
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
	c, f, pos, err := clientCmd(e, "find", args, 1, "PEERID")
	if err != nil {
		return helpOK(err)
	}
	res, err := c.Find(ctx, pos[0])
	if err != nil {
		return err
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
	c, f, pos, err := clientCmd(e, "connect", args, 1, "MADDR|PEERID")
	if err != nil {
		return helpOK(err)
	}
	res, err := c.Connect(ctx, pos[0])
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "connected to %s via %s\n", res.PeerID, res.Addr)
	return nil
}
