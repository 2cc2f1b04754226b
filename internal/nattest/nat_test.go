package nattest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/nattest"
	"github.com/parley-im/parley/peer/apitype"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nattest.Cleanup()
	os.Exit(code)
}

// Deadlines. A user node needs AutoNAT's verdict and then a reservation
// (seconds each); a delivery after an outage waits for the outbox's
// backoff.
const (
	upDeadline       = 90 * time.Second
	deliveryDeadline = 2 * time.Minute
)

// waitRelayed waits until the node says it is private and holds a
// reservation with relay, checked through `parley status --json`.
func waitRelayed(t *testing.T, n *nattest.Node, relay string) apitype.Status {
	t.Helper()
	var st apitype.Status
	err := nattest.Poll(upDeadline, func(ctx context.Context) error {
		out, err := n.CLI("status", "--json")
		if err != nil {
			return err
		}
		st = apitype.Status{}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return fmt.Errorf("parley status --json: %w: %s", err, out)
		}
		if st.Reachability != "private" || !slices.Contains(st.Relays, relay) {
			return fmt.Errorf("reachability %s, relays %v", st.Reachability, st.Relays)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: no reservation with relay %s: %v", n.Name, relay, err)
	}
	return st
}

// peerEntry returns what `parley peers --json` on n says about peer id.
func peerEntry(n *nattest.Node, id string) (apitype.Peer, error) {
	out, err := n.CLI("peers", "--json")
	if err != nil {
		return apitype.Peer{}, err
	}
	var peers []apitype.Peer
	if err := json.Unmarshal([]byte(out), &peers); err != nil {
		return apitype.Peer{}, fmt.Errorf("parley peers --json: %w: %s", err, out)
	}
	for _, p := range peers {
		if p.PeerID == id {
			return p, nil
		}
	}
	return apitype.Peer{}, fmt.Errorf("not connected to %s", id)
}

// befriend makes a and b contacts of each other by bare peer ID, so that
// each finds the other through the DHT of the bootstrap list.
func befriend(t *testing.T, a, b *nattest.Node) {
	t.Helper()
	if _, err := a.CLI("add", b.PeerID(), "--name", b.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CLI("add", a.PeerID(), "--name", a.Name); err != nil {
		t.Fatal(err)
	}
}

// send queues texts from a to contact to, with fixed ids so that a retry
// could never store a message twice.
func send(t *testing.T, from *nattest.Node, to string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := from.Client.Send(ctx, to, text)
		cancel()
		if err != nil {
			t.Fatalf("%s sends %q to %s: %v", from.Name, text, to, err)
		}
	}
}

// waitDelivered waits until from's log of conv shows every text delivered
// and to's log of from shows each of them received exactly once.
func waitDelivered(t *testing.T, from, to *nattest.Node, texts ...string) {
	t.Helper()
	err := nattest.Poll(deliveryDeadline, func(ctx context.Context) error {
		got, err := to.Client.Log(ctx, from.Name, 1000)
		if err != nil {
			return err
		}
		for _, text := range texts {
			n := 0
			for _, m := range got {
				if !m.Outgoing && m.Text == text {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("%s has %q %d times", to.Name, text, n)
			}
		}
		sent, err := from.Client.Log(ctx, to.Name, 1000)
		if err != nil {
			return err
		}
		for _, text := range texts {
			i := slices.IndexFunc(sent, func(m apitype.Message) bool { return m.Outgoing && m.Text == text })
			if i < 0 {
				return fmt.Errorf("%s lost %q", from.Name, text)
			}
			if sent[i].State != apitype.StateDelivered {
				return fmt.Errorf("%s: %q is %s", from.Name, text, sent[i].State)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s -> %s: %v", from.Name, to.Name, err)
	}
}

func texts(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %d", prefix, i)
	}
	return out
}

// publicWorld is one bootstrap node and two users behind their own NAT.
type publicWorld struct {
	net        *nattest.Net
	boot       *nattest.Node
	bootID     string
	alice, bob *nattest.Node
}

func newPublicWorld(t *testing.T, aliceNAT, bobNAT nattest.NAT) *publicWorld {
	t.Helper()
	w := &publicWorld{net: nattest.New(t)}
	w.boot = w.net.AddPublic("boot").Start("boot", "bootstrap", "--bootstrap", "none")
	w.bootID = w.boot.PeerID()
	bootAddr := w.boot.Addr("tcp")
	w.alice = w.net.AddHome("alice", aliceNAT).Start("alice", "up", "--bootstrap", bootAddr)
	w.bob = w.net.AddHome("bob", bobNAT).Start("bob", "up", "--bootstrap", bootAddr)
	return w
}

// TestRelayedChat: two users, each behind a NAT with no port forwarding
// (bob's NAT symmetric, so hole punching cannot work), exchange messages
// both ways through the bootstrap node's relay, found only through the
// --bootstrap list.
func TestRelayedChat(t *testing.T) {
	w := newPublicWorld(t, nattest.ConeNAT, nattest.SymmetricNAT)
	st := waitRelayed(t, w.alice, w.bootID)
	t.Logf("alice: reachability %s, relays %v", st.Reachability, st.Relays)
	st = waitRelayed(t, w.bob, w.bootID)
	t.Logf("bob: reachability %s, relays %v", st.Reachability, st.Relays)

	befriend(t, w.alice, w.bob)
	a2b, b2a := texts("alice to bob", 5), texts("bob to alice", 5)
	send(t, w.alice, "bob", a2b...)
	send(t, w.bob, "alice", b2a...)
	waitDelivered(t, w.alice, w.bob, a2b...)
	waitDelivered(t, w.bob, w.alice, b2a...)

	bobID := w.bob.PeerID()
	p, err := peerEntry(w.alice, bobID)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Relayed || !strings.Contains(p.Addr, "/p2p/"+w.bootID+"/p2p-circuit") {
		t.Fatalf("alice's connection to bob is not relayed through %s: %+v", w.bootID, p)
	}
	t.Logf("alice -> bob: relayed=%v addr=%s", p.Relayed, p.Addr)
}
