package mailbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	ppeer "github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// net is a test network: mailboxes and two users, alice and bob.
type testNet struct {
	t          testing.TB
	mailboxes  []*peertest.Running
	alice, bob *peertest.Running
}

// newNet starts n user-node mailboxes (serving their contacts), alice and
// bob; the mailboxes have bob (the recipient) as a contact but not alice
// (the depositor), alice and bob have each other, and bob uses every
// mailbox. It waits until bob has drained (and so registered his tags),
// alice holds bob's list and a first message has set up the session.
func newNet(t testing.TB, n int, bootstrapMailbox bool) *testNet {
	t.Helper()
	ctx := context.Background()
	tn := &testNet{t: t}
	for range n {
		var boot []string
		if len(tn.mailboxes) > 0 {
			boot = []string{tn.mailboxes[0].Addr()}
		}
		cfg := peertest.Config(t, peertest.Home(t), boot...)
		if bootstrapMailbox {
			cfg.Role, cfg.Mailbox = ppeer.RoleBootstrap, true
		}
		m := peertest.Start(t, cfg, nil)
		if !bootstrapMailbox {
			if err := m.Mailbox().Enable(ctx, true, 100_000); err != nil {
				t.Fatal(err)
			}
		}
		tn.mailboxes = append(tn.mailboxes, m)
	}
	tn.alice = peertest.Start(t, peertest.Config(t, peertest.Home(t), tn.mailboxes[0].Addr()), nil)
	tn.bob = peertest.Start(t, peertest.Config(t, peertest.Home(t), tn.bootAddrs()...), nil)
	befriend(t, tn.alice, tn.bob, "bob")
	befriend(t, tn.bob, tn.alice, "alice")
	var ids []peer.ID
	for _, m := range tn.mailboxes {
		if !bootstrapMailbox {
			befriend(t, m, tn.bob, "bob")
		}
		ids = append(ids, m.Host().ID())
	}
	if err := tn.bob.Mailbox().Use(ctx, ids, false); err != nil {
		t.Fatal(err)
	}
	peertest.Eventually(t, 30*time.Second, "bob drains his mailboxes", func() bool {
		return !tn.bob.Mailbox().LastDrain().IsZero()
	})
	aev, cancel := tn.alice.Chat().Subscribe()
	defer cancel()
	first := send(t, tn.alice, "bob", "before")
	waitFor(t, aev, "first message delivered", func(ev apitype.Event) bool {
		return ev.Type == "receipt" && ev.Message.ID == first.ID && ev.Message.State == apitype.StateDelivered
	})
	peertest.Eventually(t, 30*time.Second, "alice learns bob's mailboxes", func() bool {
		l, err := tn.alice.Mailbox().ListOf(ctx, tn.bob.Host().ID())
		return err == nil && len(l) == n
	})
	return tn
}

func (tn *testNet) bootAddrs() []string {
	var out []string
	for _, m := range tn.mailboxes {
		out = append(out, m.Addr())
	}
	return out
}

func befriend(t testing.TB, a, b *peertest.Running, name string) {
	t.Helper()
	if _, err := a.Chat().AddContact(context.Background(), b.Host().ID().String(), name); err != nil {
		t.Fatal(err)
	}
}

func send(t testing.TB, from *peertest.Running, to, text string) apitype.Message {
	t.Helper()
	m, err := from.Chat().Send(context.Background(), to, text)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return m
}

func waitFor(t testing.TB, ch <-chan apitype.Event, what string, ok func(apitype.Event) bool) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev, open := <-ch:
			if !open {
				t.Fatalf("event stream closed waiting for %s", what)
			}
			if ok(ev) {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func stored(t testing.TB, m *peertest.Running) int {
	n, _, err := m.Mailbox().Stored(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sendOffline stops bob, has alice send n messages and waits until every
// mailbox holds them; then alice stops too.
func (tn *testNet) sendOffline(n int) (ids []string) {
	t := tn.t
	tn.bob.Stop(t)
	for i := range n {
		ids = append(ids, send(t, tn.alice, "bob", fmt.Sprintf("offline %d", i)).ID)
	}
	for _, m := range tn.mailboxes {
		peertest.Eventually(t, 90*time.Second, "deposits reach the mailbox", func() bool {
			tn.alice.Chat().Kick(tn.bob.Host().ID()) // skip the deliverer's backoff
			return stored(t, m) >= n
		})
		if got := stored(t, m); got != n {
			t.Fatalf("mailbox holds %d items, want %d", got, n)
		}
	}
	tn.alice.Stop(t)
	return ids
}

// restart starts a stopped node again from its home, subscribed to its
// events before it runs.
func restart(t testing.TB, r *peertest.Running, boot ...string) (*peertest.Running, <-chan apitype.Event) {
	var ev <-chan apitype.Event
	n := peertest.Start(t, peertest.Config(t, r.Home, boot...), func(n *ppeer.Node) {
		var cancel func()
		ev, cancel = n.Chat().Subscribe()
		t.Cleanup(cancel)
	})
	return n, ev
}

func incoming(t testing.TB, r *peertest.Running, conv string) []apitype.Message {
	t.Helper()
	log, err := r.Chat().Log(context.Background(), conv, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []apitype.Message
	for _, m := range log {
		if !m.Outgoing {
			out = append(out, m)
		}
	}
	return out
}

// TestOfflineDeliveryThroughMailbox: alice sends 50 messages while bob is
// offline, then goes offline; bob comes back and gets all 50 from the
// mailbox, in order, exactly once; alice comes back and sees them delivered.
func TestOfflineDeliveryThroughMailbox(t *testing.T) {
	const n = 50
	tn := newNet(t, 1, false)
	m := tn.mailboxes[0]
	ids := tn.sendOffline(n)

	bob, bev := restart(t, tn.bob, m.Addr())
	got := map[string]bool{}
	waitFor(t, bev, "bob receives 50 messages", func(ev apitype.Event) bool {
		if ev.Type == "message" && !ev.Message.Outgoing {
			if got[ev.Message.ID] {
				t.Errorf("message %s shown twice", ev.Message.ID)
			}
			got[ev.Message.ID] = true
		}
		return len(got) == n+0 && got[ids[n-1]]
	})
	log := incoming(t, bob, "alice")
	if len(log) != n+1 {
		t.Fatalf("bob has %d messages from alice, want %d", len(log), n+1)
	}
	for i, msg := range log[1:] {
		if msg.Text != fmt.Sprintf("offline %d", i) || msg.ID != ids[i] || msg.Gap != 0 {
			t.Fatalf("message %d = %q (id %s, gap %d), want %q", i, msg.Text, msg.ID, msg.Gap, fmt.Sprintf("offline %d", i))
		}
	}
	peertest.Eventually(t, 30*time.Second, "the mailbox deletes what bob committed", func() bool { return stored(t, m) == 0 })

	alice, aev := restart(t, tn.alice, bob.Addr())
	delivered := map[string]bool{}
	for _, msg := range must(alice.Chat().Log(context.Background(), "bob", 0)) {
		if msg.State == apitype.StateDelivered {
			delivered[msg.ID] = true
		}
	}
	want := func() bool {
		for _, id := range ids {
			if !delivered[id] {
				return false
			}
		}
		return true
	}
	if !want() {
		waitFor(t, aev, "alice sees all 50 delivered", func(ev apitype.Event) bool {
			if ev.Type == "receipt" && ev.Message.State == apitype.StateDelivered {
				delivered[ev.Message.ID] = true
			}
			return want()
		})
	}
	if got := incoming(t, bob, "alice"); len(got) != n+1 {
		t.Fatalf("after alice's resend bob has %d messages, want %d", len(got), n+1)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
