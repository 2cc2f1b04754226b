package mailbox_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	ppeer "github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/peertest"
)

func swarmKey(t testing.TB) string {
	key, err := ppeer.NewSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "swarm.key")
	if err := os.WriteFile(path, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDefaultMailboxPickedWhenItAppears: bob's network's bootstrap
// mailbox is down when bob starts and comes back later. bob uses it as
// soon as he connects to it again (as discovery's reconnects would), not
// at the next 2-minute tick. Positive control: a bob that starts while the
// mailbox is up uses it at once.
func TestDefaultMailboxPickedWhenItAppears(t *testing.T) {
	key := swarmKey(t)
	mcfg := peertest.Config(t, peertest.Home(t))
	mcfg.Role, mcfg.Mailbox, mcfg.SwarmKey = ppeer.RoleBootstrap, true, key
	m := peertest.Start(t, mcfg, nil)
	maddr, mid := m.Addr(), m.Host().ID()
	uses := func(r *peertest.Running) func() bool {
		return func() bool { return slices.Contains(r.Mailbox().Mailboxes(), mid) }
	}

	// Control: the mailbox is up when the user node starts.
	ccfg := peertest.Config(t, peertest.Home(t), maddr)
	ccfg.SwarmKey = key
	control := peertest.Start(t, ccfg, nil)
	peertest.Eventually(t, 20*time.Second, "the control node uses the bootstrap mailbox", uses(control))

	// The mailbox goes down; bob starts; the mailbox comes back on the
	// same address.
	m.Stop(t)
	mcfg.Listen = []string{maddr[:len(maddr)-len("/p2p/")-len(mid.String())]}
	bcfg := peertest.Config(t, peertest.Home(t), maddr)
	bcfg.SwarmKey = key
	bob := peertest.Start(t, bcfg, nil)
	if got := bob.Mailbox().Mailboxes(); len(got) != 0 {
		t.Fatalf("bob uses %v while the mailbox is down", got)
	}
	m = peertest.Start(t, mcfg, nil)
	if m.Host().ID() != mid {
		t.Fatal("the mailbox restarted with another identity")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// bob's failed dials at start left a dial backoff; discovery's own
	// reconnects wait it out, the test clears it.
	bob.Host().Network().(*swarm.Swarm).Backoff().Clear(mid)
	if err := bob.Host().Connect(ctx, m.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	peertest.Eventually(t, 20*time.Second, "bob uses the bootstrap mailbox once it is back", uses(bob))
	st, err := bob.Mailbox().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Auto || len(st.Defaults) != 1 {
		t.Fatalf("status: auto %v, defaults %v", st.Auto, st.Defaults)
	}
}
