package peer_test

import (
	"net"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/peertest"
)

// TestPortInUseRefused: a second node asked to listen on the TCP port of a
// running node, or of any other process, fails at start with a clear error
// instead of sharing the port through SO_REUSEPORT; on a free port it
// starts (positive control).
func TestPortInUseRefused(t *testing.T) {
	first := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	var taken string
	for _, a := range first.Host().Network().ListenAddresses() {
		if p, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			taken = p
		}
	}
	if taken == "" {
		t.Fatal("first node has no TCP listener")
	}
	cfg := peertest.Config(t, peertest.Home(t))
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/" + taken}
	wantErr(t, newNode(t, cfg), peer.ErrPortInUse, "already in use")

	// Another process's plain listener: the same.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cfg = peertest.Config(t, peertest.Home(t))
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/" + port}
	wantErr(t, newNode(t, cfg), peer.ErrPortInUse, "already in use")

	// Control: a free fixed port works.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, free, _ := net.SplitHostPort(ln2.Addr().String())
	ln2.Close()
	cfg = peertest.Config(t, peertest.Home(t))
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/" + free}
	if err := newNode(t, cfg); err != nil {
		t.Fatalf("a node on a free port: %v", err)
	}
}
