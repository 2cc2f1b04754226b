package nattest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-im/parley/internal/nattest"
	"github.com/parley-im/parley/peer"
)

// abuseEnv holds the relay's address in the copy of the test binary that
// TestRelayAbuse runs, as the abuser, in a namespace of its own.
const abuseEnv = "PARLEY_NATTEST_ABUSE_RELAY"

// abusers is how many identities the abuser uses from its one address:
// well over peer.RelayReservationsPerIP.
const abusers = 2 * peer.RelayReservationsPerIP

// TestRelayAbuse: a client on one address asks the relay for reservations
// under many identities and pushes far more than the per-connection data
// limit through a circuit. The relay refuses what is beyond its limits and
// keeps serving alice and bob, who reserve and chat through it meanwhile.
func TestRelayAbuse(t *testing.T) {
	if relay := os.Getenv(abuseEnv); relay != "" {
		abuse(t, relay)
		return
	}
	w := nattest.New(t)
	boot := w.AddPublic("boot").Start("boot", "bootstrap", "--bootstrap", "none")
	bootID, bootAddr := boot.PeerID(), boot.Addr("tcp")

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := w.AddPublic("abuser").Command(self, "-test.run=^TestRelayAbuse$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), abuseEnv+"="+bootAddr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	t.Cleanup(func() {
		stdin.Close() // the abuser lets go when its stdin closes
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-waited
		}
	})
	report := make(chan string, 1)
	var childOut syncBuilder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			childOut.WriteString(line + "\n")
			if strings.HasPrefix(line, "ABUSE ") {
				report <- line
			}
		}
		io.Copy(io.Discard, stdout)
		waited <- cmd.Wait()
	}()
	var line string
	select {
	case line = <-report:
	case err := <-waited:
		waited <- err // for the cleanup
		t.Fatalf("the abuser exited (%v) without a report:\n%s", err, childOut.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("the abuser reported nothing:\n%s", childOut.String())
	}
	t.Log(line)
	var ok, refused, flooded int
	if _, err := fmt.Sscanf(line, "ABUSE reservations=%d refused=%d flooded=%d", &ok, &refused, &flooded); err != nil {
		t.Fatalf("abuser report %q: %v", line, err)
	}
	if ok > peer.RelayReservationsPerIP || refused < abusers-peer.RelayReservationsPerIP {
		t.Errorf("relay gave %d reservations to one address (refused %d), want at most %d", ok, refused, peer.RelayReservationsPerIP)
	}
	if flooded > 2*peer.RelayCircuitData {
		t.Errorf("relay carried %d bytes on one circuit, want about %d at most", flooded, peer.RelayCircuitData)
	}

	// The abuser still holds its reservations; the relay serves others.
	alice := w.AddHome("alice", nattest.SymmetricNAT).Start("alice", "up", "--bootstrap", bootAddr)
	bob := w.AddHome("bob", nattest.SymmetricNAT).Start("bob", "up", "--bootstrap", bootAddr)
	waitRelayed(t, alice, bootID)
	waitRelayed(t, bob, bootID)
	befriend(t, alice, bob)
	a2b, b2a := texts("despite the abuser, alice", 3), texts("despite the abuser, bob", 3)
	send(t, alice, "bob", a2b...)
	send(t, bob, "alice", b2a...)
	waitDelivered(t, alice, bob, a2b...)
	waitDelivered(t, bob, alice, b2a...)
	if t.Failed() {
		t.Logf("abuser output:\n%s", childOut.String())
	}
}

// abuse runs inside the abuser's namespace: reservations under many
// identities, then a flood through one circuit; it prints one ABUSE line
// and holds on to everything until its stdin closes.
func abuse(t *testing.T, relayAddr string) {
	relay, err := peer.ParseAddrInfo(relayAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var hosts []host.Host
	defer func() {
		for _, h := range hosts {
			h.Close()
		}
	}()
	ok, refused := 0, 0
	var reserved []host.Host
	for range abusers {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/0.0.0.0/tcp/0"), libp2p.EnableRelay(), libp2p.DisableMetrics())
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
		// The relay's resource manager limits connections per IP address
		// too: a refused connection is a refused reservation.
		if err := h.Connect(ctx, relay); err != nil {
			t.Logf("connection refused: %v", err)
			refused++
			continue
		}
		if _, err := client.Reserve(ctx, h, relay); err != nil {
			t.Logf("reservation refused: %v", err)
			refused++
			continue
		}
		ok++
		reserved = append(reserved, h)
	}
	flooded := 0
	if len(reserved) >= 2 {
		dst, src := reserved[0], reserved[1]
		dst.SetStreamHandler("/abuse/flood", func(s network.Stream) { io.Copy(io.Discard, s); s.Close() })
		circuit := ma.StringCast("/p2p/" + relay.ID.String() + "/p2p-circuit")
		addr := relay.Addrs[0].Encapsulate(circuit)
		src.Peerstore().AddAddr(dst.ID(), addr, time.Hour)
		if err := src.Connect(network.WithAllowLimitedConn(ctx, "abuse"), lpeer.AddrInfo{ID: dst.ID(), Addrs: []ma.Multiaddr{addr}}); err != nil {
			t.Fatal(err)
		}
		s, err := src.NewStream(network.WithAllowLimitedConn(ctx, "abuse"), dst.ID(), "/abuse/flood")
		if err != nil {
			t.Fatal(err)
		}
		s.SetWriteDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 32<<10)
		for flooded < 8*peer.RelayCircuitData {
			n, err := s.Write(buf)
			flooded += n
			if err != nil {
				break
			}
		}
		s.Reset()
	}
	fmt.Printf("ABUSE reservations=%d refused=%d flooded=%d\n", ok, refused, flooded)
	io.Copy(io.Discard, os.Stdin)
}

// syncBuilder is a strings.Builder safe for one writer and other readers.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuilder) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.WriteString(s)
}

func (b *syncBuilder) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
