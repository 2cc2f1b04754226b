package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"

	"github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/identity"
	"github.com/parley-im/parley/peer/peertest"
)

// writeFile writes data to a new file in a fresh directory and returns its path.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newSwarmKeyFile(t *testing.T) string {
	t.Helper()
	key, err := peer.NewSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "swarm.key", key)
}

// startPrivate starts a node on the private network of keyFile.
func startPrivate(t *testing.T, keyFile, allowlist string, bootstrap ...string) *peertest.Running {
	t.Helper()
	cfg := peertest.Config(t, peertest.Home(t), bootstrap...)
	cfg.SwarmKey = keyFile
	cfg.Allowlist = allowlist
	return peertest.Start(t, cfg, nil)
}

// connect dials to from from with a deadline.
func connect(from, to *peertest.Running) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return from.Host().Connect(ctx, to.AddrInfo())
}

// mustNotConnect checks that from cannot complete a connection to to and
// that neither ends up connected.
func mustNotConnect(t *testing.T, from, to *peertest.Running, what string) {
	t.Helper()
	if err := connect(from, to); err == nil {
		t.Errorf("%s: connection succeeded, want it refused", what)
	}
	if c := from.Host().Network().Connectedness(to.Host().ID()); c == network.Connected {
		t.Errorf("%s: dialer is connected after a refused dial", what)
	}
}

// mustBeGated checks that gated refuses an inbound connection from
// stranger. The gater learns the dialler's peer ID only once the security
// handshake is done, and the dialler may finish its side of the upgrade
// (its muxer choice rides in the handshake) before gated hangs up, so the
// dial itself may report success; what must hold is that gated never has the
// connection, and stranger cannot use it and soon loses it.
func mustBeGated(t *testing.T, stranger, gated *peertest.Running) {
	t.Helper()
	sub, err := gated.Host().EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	id := stranger.Host().ID()
	if err := connect(stranger, gated); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := stranger.Host().NewStream(ctx, gated.Host().ID(), "/ipfs/id/1.0.0")
		cancel()
		if err == nil {
			s.Reset()
			t.Errorf("unlisted peer opened a stream to the gated node")
		}
		peertest.Eventually(t, 10*time.Second, "the unlisted peer to lose its connection", func() bool {
			return stranger.Host().Network().Connectedness(gated.Host().ID()) != network.Connected
		})
	}
	if gated.Host().Network().Connectedness(id) == network.Connected {
		t.Errorf("gated node is connected to an unlisted peer")
	}
	for {
		select {
		case e := <-sub.Out():
			if ev := e.(event.EvtPeerConnectednessChanged); ev.Peer == id && ev.Connectedness == network.Connected {
				t.Errorf("gated node reported a connection to an unlisted peer")
			}
		default:
			return
		}
	}
}

// TestPrivateNetworkRefusesOutsiders checks that a node without the swarm
// key cannot complete a connection to one that has it, in either direction,
// while two nodes with the key can.
func TestPrivateNetworkRefusesOutsiders(t *testing.T) {
	key := newSwarmKeyFile(t)
	inside := startPrivate(t, key, "")
	inside2 := startPrivate(t, key, "")
	outside := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)

	mustNotConnect(t, outside, inside, "public node dialling a private node")
	mustNotConnect(t, inside, outside, "private node dialling a public node")
	if err := connect(inside2, inside); err != nil {
		t.Fatalf("two nodes with the same key: %v", err)
	}
	if !strings.HasPrefix(inside.Network(), "private:/parley/") {
		t.Errorf("Network() = %q, want private:/parley/...", inside.Network())
	}
}

// TestPrivateNetworksStayApart runs two private networks whose nodes all
// bootstrap from the same address list (one node of each network): no node
// may ever hold a peer of the other network in its DHT routing table, or a
// connection to it.
func TestPrivateNetworksStayApart(t *testing.T) {
	keyA, keyB := newSwarmKeyFile(t), newSwarmKeyFile(t)
	a1 := startPrivate(t, keyA, "")
	b1 := startPrivate(t, keyB, "")
	shared := []string{a1.Addr(), b1.Addr()}
	netA := []*peertest.Running{a1, startPrivate(t, keyA, "", shared...), startPrivate(t, keyA, "", shared...)}
	netB := []*peertest.Running{b1, startPrivate(t, keyB, "", shared...), startPrivate(t, keyB, "", shared...)}
	if netA[0].Network() == netB[0].Network() {
		t.Fatalf("two keys gave the same network %q", netA[0].Network())
	}

	// Both networks form: every node sees the two others of its network.
	for _, nodes := range [][]*peertest.Running{netA, netB} {
		for i, n := range nodes {
			peertest.Eventually(t, 20*time.Second, fmt.Sprintf("node %d of %s to see its network", i, n.Network()), func() bool {
				return n.Discovery().RoutingTableSize() >= len(nodes)-1
			})
		}
	}
	// Dialling across explicitly fails too.
	mustNotConnect(t, netA[1], netB[1], "network A dialling network B")
	mustNotConnect(t, netB[2], netA[2], "network B dialling network A")

	check := func(nodes, others []*peertest.Running) {
		t.Helper()
		for i, n := range nodes {
			for _, o := range others {
				if n.Discovery().DHT().RoutingTable().Find(o.Host().ID()) != "" {
					t.Errorf("node %d of %s holds %s of %s in its routing table", i, n.Network(), o.Host().ID(), o.Network())
				}
				if n.Host().Network().Connectedness(o.Host().ID()) == network.Connected {
					t.Errorf("node %d of %s is connected to a node of %s", i, n.Network(), o.Network())
				}
			}
		}
	}
	check(netA, netB)
	check(netB, netA)
}

// TestAllowlist checks the allowlist gater of a private network: a node with
// the key but not on the list is refused in both directions; a listed one
// connects.
func TestAllowlist(t *testing.T) {
	key := newSwarmKeyFile(t)
	friend := startPrivate(t, key, "")
	stranger := startPrivate(t, key, "")
	list := fmt.Sprintf("# friends of the gated node\n\n%s  # friend\n", friend.Host().ID())
	gated := startPrivate(t, key, writeFile(t, "allow", []byte(list)))

	mustBeGated(t, stranger, gated)
	mustNotConnect(t, gated, stranger, "gated node dialling an unlisted peer")
	if err := connect(friend, gated); err != nil {
		t.Errorf("listed peer dialling the gated node: %v", err)
	}
	gated.Host().Network().ClosePeer(friend.Host().ID())
	// The friend may be redialling at the same moment (its DHT notices the
	// closed connection); a dial that loses that race is retried.
	var err error
	peertest.Eventually(t, 20*time.Second, "gated node dialling a listed peer", func() bool {
		err = connect(gated, friend)
		return err == nil
	})
}

func TestParseSwarmKey(t *testing.T) {
	good, err := peer.NewSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	hex64 := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		data string
		ok   bool
	}{
		{"generated", string(good), true},
		{"no trailing newline", "/key/swarm/psk/1.0.0/\n/base16/\n" + hex64, true},
		{"empty", "", false},
		{"bad header", "/key/swarm/psk/2.0.0/\n/base16/\n" + hex64 + "\n", false},
		{"no header", hex64 + "\n", false},
		{"unknown encoding", "/key/swarm/psk/1.0.0/\n/base99/\n" + hex64 + "\n", false},
		{"short key", "/key/swarm/psk/1.0.0/\n/base16/\n" + hex64[:40] + "\n", false},
		{"non-hex", "/key/swarm/psk/1.0.0/\n/base16/\n" + strings.Repeat("zz", 32) + "\n", false},
		{"too long hex", "/key/swarm/psk/1.0.0/\n/base16/\n" + hex64 + "cd\n", false},
		{"garbage", "\x00\xff\x10garbage", false},
		{"huge", "/key/swarm/psk/1.0.0/\n/base16/\n" + strings.Repeat("a", 10000), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			psk, err := peer.ParseSwarmKey([]byte(tt.data))
			if tt.ok {
				if err != nil || len(psk) != 32 {
					t.Fatalf("ParseSwarmKey = %d bytes, %v; want a 32-byte key", len(psk), err)
				}
				return
			}
			if !errors.Is(err, peer.ErrBadSwarmKey) {
				t.Fatalf("ParseSwarmKey error = %v, want ErrBadSwarmKey", err)
			}
			if !strings.Contains(err.Error(), "parley net new") {
				t.Errorf("error %q does not say how to make a key", err)
			}
		})
	}
}

// TestNewSwarmKeyInterop checks that what `parley net new` prints is read by
// go-libp2p's own decoder to the same key.
func TestNewSwarmKeyInterop(t *testing.T) {
	data, err := peer.NewSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := pnet.DecodeV1PSK(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("pnet.DecodeV1PSK: %v", err)
	}
	ours, err := peer.ParseSwarmKey(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(theirs, ours) {
		t.Fatal("pnet.DecodeV1PSK and ParseSwarmKey disagree")
	}
	again, _ := peer.NewSwarmKey()
	if bytes.Equal(again, data) {
		t.Fatal("two swarm keys are equal")
	}
}

func TestLoadAllowlist(t *testing.T) {
	id1, id2 := newPeerID(t), newPeerID(t)
	tests := []struct {
		name string
		data string
		want []lpeer.ID
		err  string
	}{
		{"two peers", id1.String() + "\n" + id2.String() + "\n", []lpeer.ID{id1, id2}, ""},
		{"comments and blanks", "# team\n\n  " + id1.String() + "  # alice\n", []lpeer.ID{id1}, ""},
		{"garbage peer ID", id1.String() + "\nnot-a-peer-id\n", nil, "line 2"},
		{"truncated peer ID", id1.String()[:20] + "\n", nil, "not a peer ID"},
		{"empty", "", nil, "lists no peers"},
		{"only comments", "# nobody\n\n", nil, "lists no peers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allow, err := peer.LoadAllowlist(writeFile(t, "allow", []byte(tt.data)))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("LoadAllowlist error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(allow) != len(tt.want) {
				t.Fatalf("LoadAllowlist = %v, want %v", allow, tt.want)
			}
			for _, id := range tt.want {
				if !allow[id] {
					t.Errorf("%s missing from %v", id, allow)
				}
			}
		})
	}
	if _, err := peer.LoadAllowlist(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("LoadAllowlist of a missing file succeeded")
	}
}

func newPeerID(t *testing.T) lpeer.ID {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return id.PeerID()
}
