package nattest_test

import (
	"context"
	"encoding/json"
	"errors"
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
	start := time.Now()
	st := waitRelayed(t, w.alice, w.bootID)
	t.Logf("%v alice: reachability %s, relays %v", time.Since(start), st.Reachability, st.Relays)
	st = waitRelayed(t, w.bob, w.bootID)
	t.Logf("%v bob: reachability %s, relays %v", time.Since(start), st.Reachability, st.Relays)

	befriend(t, w.alice, w.bob)
	a2b, b2a := texts("alice to bob", 5), texts("bob to alice", 5)
	send(t, w.alice, "bob", a2b...)
	send(t, w.bob, "alice", b2a...)
	waitDelivered(t, w.alice, w.bob, a2b...)
	t.Logf("%v alice -> bob delivered", time.Since(start))
	waitDelivered(t, w.bob, w.alice, b2a...)
	t.Logf("%v bob -> alice delivered", time.Since(start))

	bobID := w.bob.PeerID()
	p, err := peerEntry(w.alice, bobID)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Relayed || !strings.Contains(p.Addr, "/p2p/"+w.bootID+"/p2p-circuit") {
		t.Fatalf("alice's connection to bob is not relayed through %s: %+v", w.bootID, p)
	}
	t.Logf("alice -> bob: relayed=%v addr=%s", p.Relayed, p.Addr)

	// A private room over the same relayed connection. Gossipsub never uses
	// relayed connections, so between these two the room runs on history
	// sync, pulled every few seconds from relay-only members.
	if _, err := w.alice.CLI("room", "create", "team"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.alice.CLI("room", "invite", "team", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := w.bob.AcceptRoomInvite("#team", roomDeadline); err != nil {
		t.Fatal(err)
	}
	if err := nattest.Poll(roomDeadline, func(ctx context.Context) error {
		rooms, err := w.bob.Client.Rooms(ctx)
		if err != nil {
			return err
		}
		for _, r := range rooms {
			if r.Name == "#team" {
				return nil
			}
		}
		return errors.New("bob is not in #team yet")
	}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		from, to *nattest.Node
		text     string
	}{{w.alice, w.bob, "hello team, through the relay"}, {w.bob, w.alice, "bob to the team, through the relay"}} {
		sent := time.Now()
		if _, err := x.from.CLI("send", "#team", x.text); err != nil {
			t.Fatal(err)
		}
		if err := nattest.Poll(roomDeadline, func(ctx context.Context) error {
			log, err := x.to.Client.Log(ctx, "#team", 100)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(log, func(m apitype.Message) bool { return m.Text == x.text }) {
				return fmt.Errorf("%q not read yet", x.text)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("room message %q arrived after %v", x.text, time.Since(sent).Round(time.Millisecond))
	}
}

// roomDeadline is well under the minute of the general history sync: a
// room message arriving within it came by the relay-only pull.
const roomDeadline = 20 * time.Second

// TestHolePunch: behind two port-preserving NATs, the relayed connection
// between alice and bob is upgraded to a direct one by DCUtR, and messages
// keep flowing both ways.
func TestHolePunch(t *testing.T) {
	w := newPublicWorld(t, nattest.ConeNAT, nattest.ConeNAT)
	waitRelayed(t, w.alice, w.bootID)
	waitRelayed(t, w.bob, w.bootID)
	befriend(t, w.alice, w.bob)
	first := texts("before the punch", 3)
	send(t, w.alice, "bob", first...)
	waitDelivered(t, w.alice, w.bob, first...)

	bobID, aliceID := w.bob.PeerID(), w.alice.PeerID()
	var p apitype.Peer
	err := nattest.Poll(upDeadline, func(ctx context.Context) error {
		var err error
		p, err = peerEntry(w.alice, bobID)
		if err == nil && p.Relayed {
			err = fmt.Errorf("still relayed: %s", p.Addr)
		}
		return err
	})
	if err != nil {
		t.Fatalf("alice -> bob never became direct: %v", err)
	}
	t.Logf("alice -> bob: relayed=%v addr=%s", p.Relayed, p.Addr)
	if !strings.HasPrefix(p.Addr, "/ip4/"+w.bob.Host.WAN+"/") {
		t.Errorf("direct connection goes to %s, want bob's router %s", p.Addr, w.bob.Host.WAN)
	}
	q, err := peerEntry(w.bob, aliceID)
	if err != nil || q.Relayed {
		t.Errorf("bob -> alice: %+v, %v; want a direct connection", q, err)
	}

	after := texts("after the punch", 3)
	send(t, w.bob, "alice", after...)
	waitDelivered(t, w.bob, w.alice, after...)
}

// outbox returns the node's outbox depth from `parley status --json`.
func outbox(n *nattest.Node) (int, error) {
	out, err := n.CLI("status", "--json")
	if err != nil {
		return 0, err
	}
	var st apitype.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return 0, fmt.Errorf("parley status --json: %w: %s", err, out)
	}
	return st.Outbox, nil
}

// TestRelayRestart: the only relay between two users behind symmetric NATs
// goes down mid-conversation. What both send meanwhile waits in their
// outboxes; once the relay is back (same identity, same address) both
// reserve again and every message arrives exactly once.
func TestRelayRestart(t *testing.T) {
	w := newPublicWorld(t, nattest.SymmetricNAT, nattest.SymmetricNAT)
	waitRelayed(t, w.alice, w.bootID)
	waitRelayed(t, w.bob, w.bootID)
	befriend(t, w.alice, w.bob)
	before := texts("before the restart", 3)
	send(t, w.alice, "bob", before...)
	waitDelivered(t, w.alice, w.bob, before...)

	w.boot.Stop()
	start := time.Now()
	// The relayed connection and both reservations die with the relay.
	for _, n := range []*nattest.Node{w.alice, w.bob} {
		err := nattest.Poll(30*time.Second, func(ctx context.Context) error {
			st, err := n.Client.Status(ctx)
			if err == nil && (len(st.Relays) > 0 || st.Conns.Relayed > 0) {
				err = fmt.Errorf("still holds relays %v and %d relayed connections", st.Relays, st.Conns.Relayed)
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s after the relay stopped: %v", n.Name, err)
		}
	}
	during, reply := texts("while the relay is down", 5), texts("bob while the relay is down", 5)
	send(t, w.alice, "bob", during...)
	send(t, w.bob, "alice", reply...)
	if n, err := outbox(w.alice); err != nil || n == 0 {
		t.Fatalf("alice's outbox holds %d messages (%v) while the relay is down, want some", n, err)
	}

	w.boot.Restart()
	t.Logf("relay back after %v", time.Since(start))
	waitRelayed(t, w.alice, w.bootID)
	waitRelayed(t, w.bob, w.bootID)
	t.Logf("%v both reserved again", time.Since(start))
	waitDelivered(t, w.alice, w.bob, append(before, during...)...)
	waitDelivered(t, w.bob, w.alice, reply...)
	t.Logf("%v everything delivered once", time.Since(start))
	for _, n := range []*nattest.Node{w.alice, w.bob} {
		if d, err := outbox(n); err != nil || d != 0 {
			t.Errorf("%s: outbox %d (%v) after delivery, want 0", n.Name, d, err)
		}
	}
}
