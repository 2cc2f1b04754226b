package peer_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/peertest"
)

// mdnsChildEnv marks the copy of the test binary that TestMDNS runs inside
// its network namespace.
const mdnsChildEnv = "PARLEY_TEST_MDNS_NETNS"

// TestMDNS checks that two nodes with no bootstrap peer and no address book
// find each other by mDNS. Multicast must never reach a real network, so
// the nodes run in a copy of the test binary inside a network namespace of
// their own (lo and a veth pair, both with multicast); without root and
// ip(8) to make one, the test is skipped.
func TestMDNS(t *testing.T) {
	if os.Getenv(mdnsChildEnv) != "" {
		testMDNSInNamespace(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace: mDNS multicast must not leave the machine")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs ip(8) to create a network namespace: mDNS multicast must not leave the machine")
	}
	ns := fmt.Sprintf("parley-mdns-%d", os.Getpid())
	ip := func(args ...string) error {
		out, err := exec.Command(ipPath, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := ip("netns", "add", ns); err != nil {
		t.Skipf("cannot create a network namespace (%v): skipping, mDNS multicast must not leave the machine", err)
	}
	t.Cleanup(func() {
		if err := ip("netns", "del", ns); err != nil {
			t.Error(err)
		}
	})
	in := func(args ...string) []string { return append([]string{"-n", ns}, args...) }
	for _, cmd := range [][]string{
		in("link", "set", "lo", "up"),
		in("link", "set", "lo", "multicast", "on"),
		in("link", "add", "pveth0", "type", "veth", "peer", "name", "pveth1"),
		in("addr", "add", "10.231.0.1/24", "dev", "pveth0"),
		in("addr", "add", "10.231.0.2/24", "dev", "pveth1"),
		in("link", "set", "pveth0", "multicast", "on", "up"),
		in("link", "set", "pveth1", "multicast", "on", "up"),
		in("route", "add", "224.0.0.0/4", "dev", "pveth0"),
	} {
		if err := ip(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	child := exec.CommandContext(ctx, ipPath, "netns", "exec", ns, self,
		"-test.run=^TestMDNS$", "-test.count=1", "-test.v")
	child.Env = append(os.Environ(), mdnsChildEnv+"=1")
	out, err := child.CombinedOutput()
	t.Logf("inside namespace %s:\n%s", ns, out)
	if err != nil {
		t.Fatalf("mDNS test in the namespace failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestMDNS") {
		t.Fatal("mDNS test in the namespace did not run")
	}
}

// testMDNSInNamespace runs inside the namespace: two nodes, mDNS on,
// nothing else to find each other with.
func testMDNSInNamespace(t *testing.T) {
	cfg := func() peer.Config {
		c := peertest.Config(t, peertest.Home(t))
		c.Listen = []string{"/ip4/0.0.0.0/tcp/0"} // the namespace's own interfaces only
		c.MDNS = true
		return c
	}
	a := peertest.Start(t, cfg(), nil)
	connected := make(chan struct{})
	b := peertest.Start(t, cfg(), func(n *peer.Node) { waitConnected(t, n, a.Host().ID(), connected) })
	select {
	case <-connected:
	case <-time.After(60 * time.Second):
		t.Fatal("nodes did not find each other by mDNS")
	}
	t.Logf("%s found %s by mDNS", b.Host().ID(), a.Host().ID())
}
