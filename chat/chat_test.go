package chat_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-im/parley/chat"
	"github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// pair starts alice and bob (bob bootstraps from alice) and makes them
// contacts of each other by bare peer ID.
func pair(t *testing.T) (alice, bob *peertest.Running) {
	t.Helper()
	alice = peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	bob = peertest.Start(t, peertest.Config(t, peertest.Home(t), alice.Addr()), nil)
	befriend(t, alice, bob, "bob")
	befriend(t, bob, alice, "alice")
	return alice, bob
}

func befriend(t *testing.T, a, b *peertest.Running, name string) {
	t.Helper()
	if _, err := a.Chat().AddContact(context.Background(), b.Host().ID().String(), name); err != nil {
		t.Fatal(err)
	}
}

// waitFor reads events until ok holds or the deadline passes.
func waitFor(t *testing.T, ch <-chan apitype.Event, what string, ok func(apitype.Event) bool) apitype.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, open := <-ch:
			if !open {
				t.Fatalf("event stream closed waiting for %s", what)
			}
			if ok(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func received(id string) func(apitype.Event) bool {
	return func(ev apitype.Event) bool { return ev.Type == "message" && ev.Message.ID == id }
}

func delivered(id string) func(apitype.Event) bool {
	return func(ev apitype.Event) bool {
		return ev.Type == "receipt" && ev.Message.ID == id && ev.Message.State == apitype.StateDelivered
	}
}

func send(t *testing.T, from *peertest.Running, to, text string) apitype.Message {
	t.Helper()
	m, err := from.Chat().Send(context.Background(), to, text)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return m
}

func TestDirectMessagesBothWays(t *testing.T) {
	alice, bob := pair(t)
	aev, cancelA := alice.Chat().Subscribe()
	defer cancelA()
	bev, cancelB := bob.Chat().Subscribe()
	defer cancelB()

	m := send(t, alice, "bob", "hello bob")
	got := waitFor(t, bev, "bob receives", received(m.ID))
	if got.Message.Text != "hello bob" || got.Message.Conv != "alice" {
		t.Fatalf("bob got %+v", got.Message)
	}
	waitFor(t, aev, "alice sees delivered", delivered(m.ID))

	r := send(t, bob, "alice", "hi alice")
	waitFor(t, aev, "alice receives", received(r.ID))
	waitFor(t, bev, "bob sees delivered", delivered(r.ID))

	ctx := context.Background()
	log, err := alice.Chat().Log(ctx, "bob", 0)
	if err != nil || len(log) != 2 || log[0].Text != "hello bob" || log[1].Text != "hi alice" {
		t.Fatalf("alice's log = %+v, %v", log, err)
	}
	if log[0].State != apitype.StateDelivered || log[1].State != apitype.StateReceived {
		t.Fatalf("states = %s, %s", log[0].State, log[1].State)
	}
	hits, err := bob.Chat().Search(ctx, "hello", 10)
	if err != nil || len(hits) != 1 || hits[0].Text != "hello bob" {
		t.Fatalf("search = %+v, %v", hits, err)
	}
	a, _ := alice.Chat().SafetyNumber(ctx, "bob")
	b, _ := bob.Chat().SafetyNumber(ctx, "alice")
	if a.Number == "" || a.Number != b.Number || len(a.Number) != 60+11 {
		t.Fatalf("safety numbers differ or malformed: %q vs %q", a.Number, b.Number)
	}
}

// TestSendWhileOffline queues messages while bob is down; they arrive, in
// order, when bob comes back with the same home.
func TestSendWhileOffline(t *testing.T) {
	alice, bob := pair(t)
	// A first exchange creates the session and bob's address book entry.
	aev, cancelA := alice.Chat().Subscribe()
	defer cancelA()
	first := send(t, alice, "bob", "before")
	waitFor(t, aev, "first delivered", delivered(first.ID))

	bobHome := bob.Home
	bob.Stop(t)
	var ids []string
	for _, text := range []string{"one", "two", "three"} {
		ids = append(ids, send(t, alice, "bob", text).ID)
	}
	bob = peertest.Start(t, peertest.Config(t, bobHome, alice.Addr()), nil)
	pending := map[string]bool{ids[0]: true, ids[1]: true, ids[2]: true}
	waitFor(t, aev, "queued messages delivered", func(ev apitype.Event) bool {
		if ev.Message != nil && delivered(ev.Message.ID)(ev) {
			delete(pending, ev.Message.ID)
		}
		return len(pending) == 0
	})
	log, err := bob.Chat().Log(context.Background(), "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range log {
		texts = append(texts, m.Text)
	}
	if want := []string{"before", "one", "two", "three"}; !equal(texts, want) {
		t.Fatalf("bob's log = %q, want %q", texts, want)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSimultaneousFirstMessages has both sides start a session at once; both
// messages arrive and later messages keep working both ways.
func TestSimultaneousFirstMessages(t *testing.T) {
	alice, bob := pair(t)
	aev, cancelA := alice.Chat().Subscribe()
	defer cancelA()
	bev, cancelB := bob.Chat().Subscribe()
	defer cancelB()
	ma := send(t, alice, "bob", "from alice")
	mb := send(t, bob, "alice", "from bob")
	waitFor(t, bev, "bob receives", received(ma.ID))
	waitFor(t, aev, "alice receives", received(mb.ID))
	for i := range 3 {
		x := send(t, alice, "bob", "a"+string(rune('0'+i)))
		waitFor(t, bev, "bob receives follow-up", received(x.ID))
		y := send(t, bob, "alice", "b"+string(rune('0'+i)))
		waitFor(t, aev, "alice receives follow-up", received(y.ID))
	}
}

// TestReset drops alice's session; both sides recover with a new one.
func TestReset(t *testing.T) {
	alice, bob := pair(t)
	aev, cancelA := alice.Chat().Subscribe()
	defer cancelA()
	bev, cancelB := bob.Chat().Subscribe()
	defer cancelB()
	m := send(t, alice, "bob", "first")
	waitFor(t, aev, "delivered", delivered(m.ID))
	if err := alice.Chat().Reset(context.Background(), "bob"); err != nil {
		t.Fatal(err)
	}
	m2 := send(t, alice, "bob", "after reset")
	waitFor(t, bev, "bob receives after reset", received(m2.ID))
	m3 := send(t, bob, "alice", "bob after reset")
	waitFor(t, aev, "alice receives after reset", received(m3.ID))
}

// TestSendRefusesBadInput tries an unknown contact, an empty and an
// oversized message, and invalid UTF-8: each is a clear error and nothing
// is stored.
func TestSendRefusesBadInput(t *testing.T) {
	alice := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	ctx := context.Background()
	for name, tc := range map[string]struct{ to, text string }{
		"unknown contact": {"nobody", "hi"},
		"empty":           {"nobody", "  "},
		"too long":        {"nobody", string(make([]byte, chat.MaxTextLen+1))},
		"invalid utf8":    {"nobody", "\xff\xfe"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := alice.Chat().Send(ctx, tc.to, tc.text); err == nil {
				t.Fatal("Send accepted bad input")
			}
		})
	}
	if n := alice.Chat().OutboxDepth(ctx); n != 0 {
		t.Fatalf("outbox holds %d frames after refused sends", n)
	}
	for _, bad := range []string{"", "not-a-peer-id", "parley://contact/!!!", "parley://contact/AAAA"} {
		if _, err := alice.Chat().AddContact(ctx, bad, ""); err == nil {
			t.Errorf("AddContact(%q) accepted", bad)
		}
	}
	if _, err := alice.Chat().AddContact(ctx, alice.Host().ID().String(), "me"); err == nil {
		t.Error("AddContact accepted the node's own ID")
	}
}

var _ = peer.RoleUser
