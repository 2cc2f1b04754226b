package room_test

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/identity"
	"github.com/parley-im/parley/peer/peertest"
)

// meshSize and meshDegree shape TestPrivateRoomOverMeshOnly: a room of
// meshSize members on a random graph of average degree meshDegree, along
// whose edges alone connections are allowed.
const (
	meshSize   = 20
	meshDegree = 5
)

// startMesh starts n nodes of one private network whose allowlists admit
// only the neighbours of each node in graph, and connects every edge. No
// other connection can ever be made: the connection gater refuses it in
// both directions.
func startMesh(t *testing.T, n int, graph [][2]int) []*peertest.Running {
	t.Helper()
	dir := t.TempDir()
	key, err := peer.NewSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	swarm := filepath.Join(dir, "swarm.key")
	if err := os.WriteFile(swarm, key, 0o600); err != nil {
		t.Fatal(err)
	}
	homes := make([]string, n)
	ids := make([]lpeer.ID, n)
	for i := range homes {
		homes[i] = peertest.Home(t)
		if err := os.MkdirAll(homes[i], 0o700); err != nil {
			t.Fatal(err)
		}
		id, _, err := identity.LoadOrCreate(homes[i])
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id.PeerID()
	}
	allow := make([][]string, n)
	for _, e := range graph {
		allow[e[0]] = append(allow[e[0]], ids[e[1]].String())
		allow[e[1]] = append(allow[e[1]], ids[e[0]].String())
	}
	nodes := make([]*peertest.Running, n)
	for i := range nodes {
		list := filepath.Join(dir, fmt.Sprintf("allow-%d", i))
		if err := os.WriteFile(list, []byte(strings.Join(allow[i], "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := peertest.Config(t, homes[i])
		cfg.SwarmKey, cfg.Allowlist = swarm, list
		nodes[i] = peertest.Start(t, cfg, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, e := range graph {
		if err := nodes[e[0]].Host().Connect(ctx, nodes[e[1]].AddrInfo()); err != nil {
			t.Fatalf("edge %v: %v", e, err)
		}
	}
	return nodes
}

// nonEdge returns two nodes that graph does not connect.
func nonEdge(n int, graph [][2]int) (int, int) {
	edge := map[[2]int]bool{}
	for _, e := range graph {
		edge[e] = true
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			if !edge[[2]int{i, j}] {
				return i, j
			}
		}
	}
	panic("complete graph")
}

// displays counts, over every node, the room messages "KIND SEQ" shown
// from someone else.
type displays struct {
	mu   sync.Mutex
	seen map[string]bool // "node/text"
	more chan struct{}
}

func watchDisplays(t *testing.T, nodes []*peertest.Running) *displays {
	d := &displays{seen: map[string]bool{}, more: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); wg.Wait() })
	for i, node := range nodes {
		ev, cancel := node.Chat().Subscribe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			for {
				select {
				case <-stop:
					return
				case e := <-ev:
					if e.Type != "message" || e.Message == nil || e.Message.Outgoing || !strings.HasPrefix(e.Message.Conv, "#") {
						continue
					}
					d.mu.Lock()
					d.seen[fmt.Sprintf("%d/%s", i, e.Message.Text)] = true
					d.mu.Unlock()
					select {
					case d.more <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	return d
}

func (d *displays) count(prefix string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for k := range d.seen {
		if _, text, _ := strings.Cut(k, "/"); strings.HasPrefix(text, prefix) {
			n++
		}
	}
	return n
}

// wait blocks until count(prefix) reaches want, or fails t at timeout.
func (d *displays) wait(t *testing.T, timeout time.Duration, prefix string, want int) {
	t.Helper()
	deadline := time.After(timeout)
	for d.count(prefix) < want {
		select {
		case <-d.more:
		case <-deadline:
			t.Fatalf("after %v: %d of %d %q messages displayed", timeout, d.count(prefix), want, prefix)
		}
	}
}

// TestPrivateRoomOverMeshOnly forms a 20-member private room on a sparse
// graph (degree about 5) where a connection gater allows no connection but
// the graph's edges: keys and messages can travel only along the gossip
// mesh, never over a 1:1 session between two members that are not
// neighbours. Every member joins by one multi-use link, then every member
// says one message and every other member displays it.
//
// Control: a direct dial between two members that are not neighbours
// fails, so the restriction is in force.
func TestPrivateRoomOverMeshOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("20 nodes")
	}
	ctx := context.Background()
	graph := randomGraph(meshSize, meshDegree, mrand.New(mrand.NewPCG(20, 4)))
	nodes := startMesh(t, meshSize, graph)
	shown := watchDisplays(t, nodes)

	a, b := nonEdge(meshSize, graph)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := nodes[a].Host().Connect(dctx, nodes[b].AddrInfo())
	cancel()
	if err == nil {
		t.Fatalf("control: nodes %d and %d connected although the graph has no such edge", a, b)
	}

	admin := nodes[0]
	if _, err := admin.Rooms().Create(ctx, "mesh"); err != nil {
		t.Fatal(err)
	}
	link := makeLink(t, admin, "#mesh", meshSize-1)
	var wg sync.WaitGroup
	errs := make([]error, meshSize)
	for i, m := range nodes[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i+1] = joinLink(ctx, m, link)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: join: %v", i, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	joined := func() (n int) {
		for _, m := range nodes {
			info, err := m.Rooms().Info(ctx, "#mesh")
			if err == nil && len(info.Members) == meshSize && (info.State == "" || info.State == "joined") {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(3 * time.Minute); joined() < meshSize; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			for i, m := range nodes {
				info, err := m.Rooms().Info(ctx, "#mesh")
				t.Logf("node %d: state %q epoch %d, %d members, %d topic peers, %q, %v", i, info.State, info.Epoch, len(info.Members), info.Peers, info.Detail, err)
			}
			t.Fatalf("after 3m, %d of %d members hold the whole roster", joined(), meshSize)
		}
	}
	for i, m := range nodes {
		if _, err := m.Rooms().Send(ctx, "#mesh", fmt.Sprintf("mesh %d", i)); err != nil {
			t.Fatalf("node %d: send: %v", i, err)
		}
	}
	shown.wait(t, 2*time.Minute, "mesh ", meshSize*(meshSize-1))

	neighbours := map[[2]lpeer.ID]bool{}
	for _, e := range graph {
		x, y := nodes[e[0]].Host().ID(), nodes[e[1]].Host().ID()
		neighbours[[2]lpeer.ID{x, y}], neighbours[[2]lpeer.ID{y, x}] = true, true
	}
	for i, m := range nodes {
		for _, p := range m.Host().Network().Peers() {
			if !neighbours[[2]lpeer.ID{m.Host().ID(), p}] {
				t.Errorf("node %d is connected to %s, which is not its neighbour", i, p)
			}
		}
	}
}

// startKuboLike starts a DHT server on loopback that, like a stock kubo
// node, hands out provider records without addresses when stripAddrs is
// set (kubo drops non-public addresses; here every address is loopback).
func startKuboLike(t *testing.T, stripAddrs bool) string {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	opts := []dht.Option{
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(discovery.AminoPrefix),
		dht.BootstrapPeersFunc(func() []lpeer.AddrInfo { return nil }),
	}
	if stripAddrs {
		opts = append(opts, dht.AddressFilter(func([]ma.Multiaddr) []ma.Multiaddr { return nil }))
	}
	d, err := dht.New(h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return h.Addrs()[0].String() + "/p2p/" + h.ID().String()
}

// TestRendezvousWithoutProviderAddrs has two nodes that know each other
// only through a DHT server, join the same public room and must meet by
// the room's rendezvous record. Both are DHT clients, so the server's
// answers name them only as providers. With a server that strips the
// providers' addresses (stock kubo) they must look the provider up
// (FindPeer) instead of giving up. Control: the same with addresses.
func TestRendezvousWithoutProviderAddrs(t *testing.T) {
	for _, strip := range []bool{false, true} {
		t.Run(fmt.Sprintf("strip=%v", strip), func(t *testing.T) {
			ctx := context.Background()
			boot := startKuboLike(t, strip)
			client := discovery.ModeClient
			var nodes [2]*peertest.Running
			for i := range nodes {
				cfg := peertest.Config(t, peertest.Home(t), boot)
				cfg.DHTMode = &client
				nodes[i] = peertest.Start(t, cfg, nil)
			}
			shown := watchDisplays(t, nodes[:])
			for _, n := range nodes {
				if _, err := n.Rooms().JoinPublic(ctx, "rendezvous"); err != nil {
					t.Fatal(err)
				}
			}
			a, b := nodes[0].Host(), nodes[1].Host()
			peertest.Eventually(t, 90*time.Second, "the two members connected", func() bool {
				return a.Network().Connectedness(b.ID()) == network.Connected
			})
			peertest.Eventually(t, 30*time.Second, "a topic peer", func() bool {
				info, err := nodes[1].Rooms().Info(ctx, "#rendezvous")
				return err == nil && info.Peers > 0
			})
			if _, err := nodes[0].Rooms().Send(ctx, "#rendezvous", "met"); err != nil {
				t.Fatal(err)
			}
			shown.wait(t, 30*time.Second, "met", 1)
		})
	}
}

// makeLink makes a join link into room on node that admits uses joins.
func makeLink(t *testing.T, node *peertest.Running, room string, uses int) string {
	t.Helper()
	l, err := node.Rooms().Link(context.Background(), room, uses, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return l.Link
}

// joinLink joins by link; a join under way ("waiting") is no error.
func joinLink(ctx context.Context, node *peertest.Running, link string) error {
	_, err := node.Rooms().JoinLink(ctx, link)
	return err
}
