// Package apitype holds the JSON types of the local API, shared by the
// daemon (peer/localapi) and the CLI's client (peer/client). It imports no
// libp2p package: peer IDs and multiaddrs travel as strings.
//
// Field names are part of the stable `--json` output of the CLI; add fields,
// never rename or remove them.
package apitype

import "time"

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
}

// ID answers GET /v1/id.
type ID struct {
	PeerID  string   `json:"peer_id"`
	Addrs   []string `json:"addrs"`   // listen addresses with /p2p/ suffix, dialable form
	Network string   `json:"network"` // "public" or "private:<dht-prefix>"
	Version string   `json:"version"`
}

// Peer is one connected peer in GET /v1/peers.
type Peer struct {
	PeerID    string  `json:"peer_id"`
	Addr      string  `json:"addr"`      // remote address of the first connection
	Direction string  `json:"direction"` // inbound or outbound
	Relayed   bool    `json:"relayed"`   // true if every connection goes through a relay
	LatencyMS float64 `json:"latency_ms"`
	Conns     int     `json:"conns"`
}

// Status answers GET /v1/status.
type Status struct {
	PeerID       string    `json:"peer_id"`
	Network      string    `json:"network"`
	Reachability string    `json:"reachability"` // public, private or unknown (AutoNAT)
	DHTMode      string    `json:"dht_mode"`     // auto, server or client (configured)
	RoutingTable int       `json:"routing_table"`
	Peers        int       `json:"peers"`
	Conns        Conns     `json:"conns"`
	Relays       []string  `json:"relays"` // relay peers we hold a reservation with
	Outbox       int       `json:"outbox"` // messages waiting for delivery
	Uptime       string    `json:"uptime"`
	Started      time.Time `json:"started"`
}

// Conns counts open connections.
type Conns struct {
	Total    int `json:"total"`
	Inbound  int `json:"inbound"`
	Outbound int `json:"outbound"`
	Relayed  int `json:"relayed"`
}

// FindResult answers GET /v1/find?peer=ID.
type FindResult struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
}

// ConnectRequest is the body of POST /v1/connect.
type ConnectRequest struct {
	Addr string `json:"addr"` // a multiaddr ending in /p2p/<peer-id>, or a bare peer ID
}

// ConnectResult answers POST /v1/connect.
type ConnectResult struct {
	PeerID string `json:"peer_id"`
	Addr   string `json:"addr"`
}
