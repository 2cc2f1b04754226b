// Package nattest builds a small internet inside Linux network namespaces
// and runs real `parley` processes in it, so that tests can check what
// users behind NAT get: relayed connections through a bootstrap node's
// relay v2 service, hole punching (DCUtR) where the NAT allows it, and
// delivery that survives a relay restart.
//
// Topology (see docs/NAT.md for the picture):
//
//   - one "internet" namespace holding a bridge on InternetPrefix; nothing
//     runs in it, it only switches frames;
//   - public hosts (AddPublic): a namespace each with one address on the
//     bridge, for `parley bootstrap` nodes;
//   - homes (AddHome): a router namespace with a WAN address on the bridge
//     and a LAN 192.168.N.0/24, doing source NAT (nftables masquerade) and
//     dropping unsolicited inbound traffic, and a home namespace on that LAN.
//
// The internet uses an address range that libp2p counts as public
// (manet.IsPublicAddr): AutoNAT, the observed-address logic and hole
// punching ignore RFC 1918 and documentation ranges, so an "internet" on
// 10.x would not behave like the real one. No namespace has a route out of
// the topology, so no packet leaves the machine.
//
// Everything needs root, ip(8) and nft(8) (or iptables); New skips the test
// otherwise. Namespace names include the process ID, and everything is
// removed in t.Cleanup, failed test or not.
package nattest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/client"
)

// InternetPrefix is the "public" range of the test internet (a /24; hosts
// are numbered inside it).
const InternetPrefix = "11.77.0."

// NAT is how a home router maps its LAN to its WAN address.
type NAT int

const (
	// ConeNAT is Linux masquerade: port-preserving, endpoint-independent
	// mapping, address-and-port-dependent filtering. Hole punching works.
	ConeNAT NAT = iota
	// SymmetricNAT masquerades with fully random source ports: every new
	// destination gets a new mapping, so the port a peer observed is never
	// the one a punch comes from. Hole punching fails.
	SymmetricNAT
)

func (n NAT) String() string {
	if n == SymmetricNAT {
		return "symmetric"
	}
	return "cone"
}

var seq atomic.Int64

// Net is one topology. Its namespaces are removed when the test ends.
type Net struct {
	t      testing.TB
	prefix string
	inet   string
	nft    bool // use nft(8); else iptables(8)
	hosts  int  // public hosts added
	homes  int  // homes added
	dir    string
}

// Host is a namespace that nodes run in.
type Host struct {
	net  *Net
	Name string // namespace name
	IP   string // the host's own address
	// Router is the namespace of the home's router, or "" for a public host.
	Router string
	// WAN is the router's public address, or "" for a public host.
	WAN string
}

// Require skips t unless namespaces, NAT rules and the parley binary can
// be had.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("nattest: real processes in network namespaces take minutes; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("nattest: needs root to create network namespaces (run the tests as root, as CI does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("nattest: needs ip(8) from iproute2 to create network namespaces")
	}
	_, errNft := exec.LookPath("nft")
	_, errIpt := exec.LookPath("iptables")
	if errNft != nil && errIpt != nil {
		t.Skip("nattest: needs nft(8) or iptables(8) for the routers' NAT rules")
	}
}

// New builds an empty internet: one namespace with a bridge.
func New(t testing.TB) *Net {
	t.Helper()
	Require(t)
	_, errNft := exec.LookPath("nft")
	n := &Net{
		t:      t,
		prefix: fmt.Sprintf("parley-nat-%d-%d", os.Getpid(), seq.Add(1)),
		nft:    errNft == nil,
		dir:    t.TempDir(),
	}
	n.inet = n.prefix + "-inet"
	n.addNS(n.inet)
	n.ip(n.inet, "link", "add", "br0", "type", "bridge")
	n.ip(n.inet, "link", "set", "br0", "up")
	return n
}

// Dir is a directory for the test's files (removed by the testing package).
func (n *Net) Dir() string { return n.dir }

// Home is the home directory Start gives node name.
func (n *Net) Home(name string) string { return filepath.Join(n.dir, name) }

// Parley runs the parley binary with args (no node involved: `net new`).
func (n *Net) Parley(args ...string) []byte {
	n.t.Helper()
	out, err := exec.Command(Build(n.t), args...).Output()
	if err != nil {
		n.t.Fatalf("parley %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (n *Net) addNS(name string) {
	n.t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		n.t.Skipf("nattest: cannot create network namespace %s: %v: %s", name, err, out)
	}
	n.t.Cleanup(func() {
		// Processes in the namespace were stopped by cleanups registered
		// later (they run first); the namespace goes last.
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			n.t.Errorf("nattest: remove namespace %s: %v: %s", name, err, out)
		}
	})
	n.ip(name, "link", "set", "lo", "up")
}

func (n *Net) ip(ns string, args ...string) {
	n.t.Helper()
	n.run(append([]string{"ip", "-n", ns}, args...)...)
}

// exec runs a command inside namespace ns.
func (n *Net) exec(ns string, args ...string) {
	n.t.Helper()
	n.run(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

func (n *Net) run(args ...string) {
	n.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("nattest: %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// plug connects namespace ns to the internet bridge with interface ifname
// at address addr.
func (n *Net) plug(ns, ifname, addr string, port string) {
	n.t.Helper()
	n.ip(n.inet, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns)
	n.ip(n.inet, "link", "set", port, "master", "br0", "up")
	n.ip(ns, "addr", "add", addr+"/24", "dev", ifname)
	n.ip(ns, "link", "set", ifname, "up")
}

// AddPublic adds a host with a public address on the internet.
func (n *Net) AddPublic(name string) *Host {
	n.t.Helper()
	n.hosts++
	h := &Host{net: n, Name: fmt.Sprintf("%s-%s", n.prefix, name), IP: fmt.Sprintf("%s%d", InternetPrefix, 1+n.hosts)}
	n.addNS(h.Name)
	n.plug(h.Name, "eth0", h.IP, fmt.Sprintf("pub%d", n.hosts))
	return h
}

// AddHome adds a router doing nat between the internet and a LAN, and a
// host on that LAN.
func (n *Net) AddHome(name string, nat NAT) *Host {
	n.t.Helper()
	n.homes++
	i := n.homes
	lan := fmt.Sprintf("192.168.%d.", i)
	h := &Host{
		net:    n,
		Name:   fmt.Sprintf("%s-%s", n.prefix, name),
		IP:     lan + "2",
		Router: fmt.Sprintf("%s-%s-rt", n.prefix, name),
		WAN:    fmt.Sprintf("%s%d", InternetPrefix, 100+i),
	}
	n.addNS(h.Router)
	n.addNS(h.Name)
	n.plug(h.Router, "wan", h.WAN, fmt.Sprintf("rt%d", i))
	n.ip(h.Router, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", h.Name)
	n.ip(h.Router, "addr", "add", lan+"1/24", "dev", "lan")
	n.ip(h.Router, "link", "set", "lan", "up")
	n.ip(h.Name, "addr", "add", h.IP+"/24", "dev", "eth0")
	n.ip(h.Name, "link", "set", "eth0", "up")
	n.ip(h.Name, "route", "add", "default", "via", lan+"1")
	n.exec(h.Router, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	n.natRules(h.Router, nat)
	return h
}

// natRules makes router a home router: masquerade on the WAN, and drop
// whatever arrives on the WAN that is not part of a connection started
// from inside (so a closed port neither answers nor resets a punch).
func (n *Net) natRules(router string, nat NAT) {
	n.t.Helper()
	if n.nft {
		flags := ""
		if nat == SymmetricNAT {
			flags = " random,fully-random"
		}
		rules := `
table ip nat {
	chain masq {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" masquerade` + flags + `
	}
}
table ip filter {
	chain from_wan {
		type filter hook forward priority filter; policy accept;
		iifname "wan" ct state != { established, related } drop
	}
	chain to_router {
		type filter hook input priority filter; policy accept;
		iifname "wan" ct state != { established, related } drop
	}
}
`
		cmd := exec.Command("ip", "netns", "exec", router, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			n.t.Fatalf("nattest: nft rules in %s: %v: %s", router, err, out)
		}
		return
	}
	masq := []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if nat == SymmetricNAT {
		masq = append(masq, "--random-fully")
	}
	n.exec(router, masq...)
	for _, chain := range []string{"FORWARD", "INPUT"} {
		n.exec(router, "iptables", "-A", chain, "-i", "wan", "-m", "conntrack", "!", "--ctstate", "ESTABLISHED,RELATED", "-j", "DROP")
	}
}

// Binary returns the path of a parley binary built once per test process
// into a directory that Cleanup removes.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Build builds cmd/parley (once per process) and returns the binary's path.
func Build(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			binary.err = fmt.Errorf("no go tool to build parley: %w", err)
			return
		}
		binary.dir, binary.err = os.MkdirTemp("", "parley-nattest-bin-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "parley")
		out, err := exec.Command(goTool, "build", "-o", binary.path, "github.com/parley-im/parley/cmd/parley").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build ./cmd/parley: %v: %s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// Cleanup removes the binary Build made; call it from TestMain.
func Cleanup() {
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
}

// Node is a parley process running in a namespace.
type Node struct {
	Name   string
	Home   string
	Host   *Host
	Client *client.Client
	args   []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Start runs `parley VERB ARGS... --home HOME` in the host's namespace and
// waits until its local API answers. The node is stopped when the test ends.
// Listen addresses are TCP and (unless args has --net) QUIC on ports 4001.
func (h *Host) Start(name, verb string, args ...string) *Node {
	t := h.net.t
	t.Helper()
	home := h.net.Home(name)
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	full := []string{verb, "--home", home, "--no-mdns", "--no-port-map",
		"--listen", "/ip4/0.0.0.0/tcp/4001"}
	if !hasFlag(args, "--net") {
		full = append(full, "--listen", "/ip4/0.0.0.0/udp/4001/quic-v1")
	}
	full = append(full, args...)
	n := &Node{Name: name, Home: home, Host: h, Client: client.New(home), args: full}
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() || os.Getenv("PARLEY_NATTEST_DUMP") != "" {
			n.dumpLog(t)
		}
	})
	n.Restart()
	return n
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

// Restart starts the process again (after Stop) with the same arguments
// and home, and waits for its API.
func (n *Node) Restart() {
	t := n.Host.net.t
	t.Helper()
	bin := Build(t)
	logf, err := os.OpenFile(filepath.Join(n.Host.net.dir, n.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== %s: ip netns exec %s parley %s\n", time.Now().Format(time.RFC3339Nano), n.Host.Name, strings.Join(n.args, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Host.Name, bin}, n.args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PARLEY_LOG_LEVEL="+envOr("PARLEY_NATTEST_LOG_LEVEL", "info"))
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("nattest: start %s: %v", n.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done, n.log = cmd, done, logf
	n.mu.Unlock()
	err = Poll(60*time.Second, func(ctx context.Context) error {
		select {
		case <-done:
			return errStopped
		default:
		}
		_, err := n.Client.ID(ctx)
		return err
	})
	if err != nil {
		t.Fatalf("nattest: node %s did not come up: %v", n.Name, err)
	}
}

var errStopped = errors.New("process exited")

// Stop sends SIGTERM and waits for the process to exit (SIGKILL after 10s).
func (n *Node) Stop() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Log returns what the process wrote so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(filepath.Join(n.Host.net.dir, n.Name+".log"))
	return string(b)
}

func (n *Node) dumpLog(t testing.TB) {
	b := []byte(n.Log())
	const max = 256 << 10
	if len(b) > max {
		b = append([]byte("...\n"), b[len(b)-max:]...)
	}
	t.Logf("log of %s:\n%s", n.Name, b)
}

// Addr returns the node's listen address on transport ("tcp" or
// "quic-v1") at its own IP, with /p2p/.
func (n *Node) Addr(transport string) string {
	t := n.Host.net.t
	t.Helper()
	id := n.id()
	for _, a := range id.Addrs {
		if !strings.HasPrefix(a, "/ip4/"+n.Host.IP+"/") {
			continue
		}
		quic := strings.Contains(a, "/quic-v1/")
		if (transport == "quic-v1") == quic && !strings.Contains(a, "/ws/") {
			return a
		}
	}
	t.Fatalf("nattest: %s has no %s address on %s: %v", n.Name, transport, n.Host.IP, id.Addrs)
	return ""
}

// PeerID returns the node's peer ID.
func (n *Node) PeerID() string {
	n.Host.net.t.Helper()
	return n.id().PeerID
}

// id asks the node for its identity, failing the test if it cannot.
func (n *Node) id() apitype.ID {
	t := n.Host.net.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := n.Client.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// CLI runs the parley binary (in the test's own namespace: it only talks
// to the node's API socket) with --home set, and returns its stdout.
func (n *Node) CLI(args ...string) (string, error) {
	t := n.Host.net.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Build(t), append(args, "--home", n.Home)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("parley %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

// AcceptRoomInvite waits up to timeout for an invitation into room
// ('#name') from a contact, as `parley rooms --invites` lists them, and
// accepts it with `parley room accept ID`: invitations wait for consent.
func (n *Node) AcceptRoomInvite(room string, timeout time.Duration) error {
	return Poll(timeout, func(ctx context.Context) error {
		out, err := n.CLI("rooms", "--invites", "--json")
		if err != nil {
			return err
		}
		var invites []apitype.RoomInvite
		if err := json.Unmarshal([]byte(out), &invites); err != nil {
			return fmt.Errorf("rooms --invites --json: %v", err)
		}
		for _, inv := range invites {
			if inv.Room == room {
				_, err := n.CLI("room", "accept", inv.ID)
				return err
			}
		}
		return fmt.Errorf("no invitation into %s yet", room)
	})
}

// Poll calls f every 250ms, each call with a 10s deadline, until it returns
// nil or timeout passes; it returns f's last error then.
func Poll(timeout time.Duration, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := f(ctx)
		cancel()
		if err == nil || errors.Is(err, errStopped) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Command returns a command that runs name with args inside the host's
// namespace; the caller starts it and must make sure it ends.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}
