package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/localapi"
)

// OutboxDepth is set by the chat service to report queued messages.
type OutboxDepth interface {
	OutboxDepth(ctx context.Context) int
}

func (n *Node) registerRoutes() {
	n.api.Handle("GET /v1/id", func(w http.ResponseWriter, r *http.Request) {
		localapi.WriteJSON(w, n.IDInfo())
	})
	n.api.Handle("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) {
		localapi.WriteJSON(w, n.Peers())
	})
	n.api.Handle("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		localapi.WriteJSON(w, n.Status(r.Context()))
	})
	n.api.Handle("GET /v1/find", func(w http.ResponseWriter, r *http.Request) {
		id, err := lpeer.Decode(r.URL.Query().Get("peer"))
		if err != nil {
			localapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("invalid peer ID %q: %w", r.URL.Query().Get("peer"), err))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		defer cancel()
		info, err := n.disc.FindPeer(ctx, id)
		if err != nil {
			localapi.WriteError(w, http.StatusNotFound, err)
			return
		}
		localapi.WriteJSON(w, apitype.FindResult{PeerID: id.String(), Addrs: addrStrings(info.Addrs)})
	})
	n.api.Handle("POST /v1/connect", func(w http.ResponseWriter, r *http.Request) {
		var req apitype.ConnectRequest
		if err := localapi.ReadJSON(r, &req); err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		defer cancel()
		res, err := n.Connect(ctx, req.Addr)
		if err != nil {
			status := http.StatusBadGateway
			var perr *parseError
			if errors.As(err, &perr) {
				status = http.StatusBadRequest
			}
			localapi.WriteError(w, status, err)
			return
		}
		localapi.WriteJSON(w, res)
	})
}

type parseError struct{ err error }

func (e *parseError) Error() string { return e.err.Error() }
func (e *parseError) Unwrap() error { return e.err }

// Connect dials a multiaddr with /p2p/, or a bare peer ID (looked up in the DHT).
func (n *Node) Connect(ctx context.Context, addr string) (apitype.ConnectResult, error) {
	var info lpeer.AddrInfo
	if id, err := lpeer.Decode(addr); err == nil {
		info, err = n.disc.FindPeer(ctx, id)
		if err != nil {
			return apitype.ConnectResult{}, err
		}
	} else {
		info, err = ParseAddrInfo(addr)
		if err != nil {
			return apitype.ConnectResult{}, &parseError{fmt.Errorf("invalid address %q: %w", addr, err)}
		}
	}
	if info.ID == n.host.ID() {
		return apitype.ConnectResult{}, &parseError{errors.New("that is this node's own address")}
	}
	// An explicit connect is a fresh attempt: a failure of the node's own
	// earlier dial must not hide behind "dial backoff".
	if sw, ok := n.host.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
		sw.Backoff().Clear(info.ID)
	}
	if err := n.host.Connect(ctx, info); err != nil {
		if discovery.IsHandshakeFailure(err) {
			return apitype.ConnectResult{}, fmt.Errorf("connect to %s: %w (%v)", info.ID, discovery.ErrHandshake, err)
		}
		return apitype.ConnectResult{}, fmt.Errorf("connect to %s: %w", info.ID, err)
	}
	res := apitype.ConnectResult{PeerID: info.ID.String()}
	if cs := n.host.Network().ConnsToPeer(info.ID); len(cs) > 0 {
		res.Addr = cs[0].RemoteMultiaddr().String()
	}
	return res, nil
}

// IDInfo describes this node.
func (n *Node) IDInfo() apitype.ID {
	p2p := ma.StringCast("/p2p/" + n.host.ID().String())
	addrs := make([]string, 0, len(n.host.Addrs()))
	for _, a := range n.host.Addrs() {
		addrs = append(addrs, a.Encapsulate(p2p).String())
	}
	return apitype.ID{PeerID: n.host.ID().String(), Addrs: addrs, Network: n.network, Version: n.cfg.Version}
}

// Peers lists connected peers, sorted by peer ID.
func (n *Node) Peers() []apitype.Peer {
	out := []apitype.Peer{} // "[]", not "null", in JSON
	for _, p := range n.host.Network().Peers() {
		conns := n.host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		ap := apitype.Peer{
			PeerID:    p.String(),
			Addr:      conns[0].RemoteMultiaddr().String(),
			Direction: directionString(conns[0].Stat().Direction),
			Relayed:   true,
			LatencyMS: float64(n.host.Peerstore().LatencyEWMA(p).Microseconds()) / 1000,
			Conns:     len(conns),
		}
		for _, c := range conns {
			if !isRelayedConn(c) {
				ap.Relayed = false
				ap.Addr = c.RemoteMultiaddr().String()
				ap.Direction = directionString(c.Stat().Direction)
				break
			}
		}
		out = append(out, ap)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PeerID < out[j].PeerID })
	return out
}

// Status summarises the node's state.
func (n *Node) Status(ctx context.Context) apitype.Status {
	st := apitype.Status{
		PeerID:       n.host.ID().String(),
		Network:      n.network,
		Reachability: reachabilityString(n.Reachability()),
		DHTMode:      n.cfg.dhtMode.String(),
		RoutingTable: n.disc.RoutingTableSize(),
		Peers:        len(n.host.Network().Peers()),
		Relays:       []string{},
		Started:      n.started,
		Uptime:       time.Since(n.started).Round(time.Second).String(),
	}
	for _, c := range n.host.Network().Conns() {
		st.Conns.Total++
		if c.Stat().Direction == network.DirInbound {
			st.Conns.Inbound++
		} else {
			st.Conns.Outbound++
		}
		if isRelayedConn(c) {
			st.Conns.Relayed++
		}
	}
	seen := map[string]bool{}
	for _, a := range n.host.Addrs() {
		if relayID, ok := relayOf(a); ok && !seen[relayID] {
			seen[relayID] = true
			st.Relays = append(st.Relays, relayID)
		}
	}
	for _, s := range n.services {
		if o, ok := s.(OutboxDepth); ok {
			st.Outbox += o.OutboxDepth(ctx)
		}
	}
	return st
}

// directionString is the lowercase form apitype.Peer documents (libp2p's
// Direction.String says "Inbound" and "Outbound").
func directionString(d network.Direction) string {
	switch d {
	case network.DirInbound:
		return "inbound"
	case network.DirOutbound:
		return "outbound"
	}
	return "unknown"
}

func isRelayedConn(c network.Conn) bool {
	return discovery.IsRelayed(c.RemoteMultiaddr()) || c.Stat().Limited
}

// relayOf returns the relay peer of a /p2p/R/p2p-circuit address.
func relayOf(a ma.Multiaddr) (string, bool) {
	if !discovery.IsRelayed(a) {
		return "", false
	}
	id, err := a.ValueForProtocol(ma.P_P2P)
	return id, err == nil
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}
