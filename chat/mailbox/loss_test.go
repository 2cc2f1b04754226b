package mailbox_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

func waitMessages(t testing.TB, ev <-chan apitype.Event, n int) {
	t.Helper()
	got := map[string]bool{}
	waitFor(t, ev, fmt.Sprintf("%d messages", n), func(ev apitype.Event) bool {
		if ev.Type == "message" && !ev.Message.Outgoing {
			if got[ev.Message.ID] {
				t.Errorf("message %s shown twice", ev.Message.ID)
			}
			got[ev.Message.ID] = true
		}
		return len(got) == n
	})
}

// TestOneMailboxLosesData: bob uses two mailboxes; one loses everything;
// bob still gets every message from the other.
func TestOneMailboxLosesData(t *testing.T) {
	const n = 20
	tn := newNet(t, 2, false)
	ids := tn.sendOffline(n)
	if _, err := tn.mailboxes[0].DB().SQL().Exec("DELETE FROM mailbox_items"); err != nil {
		t.Fatal(err)
	}
	bob, bev := restart(t, tn.bob, tn.bootAddrs()...)
	waitMessages(t, bev, n)
	log := incoming(t, bob, "alice")
	if len(log) != n+1 {
		t.Fatalf("bob has %d messages, want %d", len(log), n+1)
	}
	for i, m := range log[1:] {
		if m.ID != ids[i] || m.Gap != 0 {
			t.Fatalf("message %d: id %s gap %d, want id %s and no gap", i, m.ID, m.Gap, ids[i])
		}
	}
}

// TestMessageLostEverywhereShowsGap: both mailboxes lose the same message;
// bob shows the gap; when alice comes back online her outbox (which keeps
// frames until bob acks them directly) fills it.
func TestMessageLostEverywhereShowsGap(t *testing.T) {
	const n, lost = 10, 3
	tn := newNet(t, 2, false)
	ids := tn.sendOffline(n)
	// Deposits arrive in queue order, so item #lost is the same frame in both.
	for _, m := range tn.mailboxes {
		res, err := m.DB().SQL().Exec("DELETE FROM mailbox_items WHERE rowid = (SELECT rowid FROM mailbox_items ORDER BY received_at, rowid LIMIT 1 OFFSET ?)", lost)
		if err != nil {
			t.Fatal(err)
		}
		if k, _ := res.RowsAffected(); k != 1 {
			t.Fatalf("deleted %d items", k)
		}
	}
	bob, bev := restart(t, tn.bob, tn.bootAddrs()...)
	waitMessages(t, bev, n-1)
	log := incoming(t, bob, "alice")
	gaps := 0
	for _, m := range log {
		if m.ID == ids[lost] {
			t.Fatalf("the lost message arrived: %q", m.Text)
		}
		if m.Gap > 0 {
			gaps += m.Gap
			if m.ID != ids[lost+1] {
				t.Errorf("gap shown on %q, want on the message after the lost one", m.Text)
			}
		}
	}
	if gaps != 1 {
		t.Fatalf("bob's log shows %d missing messages, want 1", gaps)
	}

	// alice comes back: her outbox still holds the frame.
	_, _ = restart(t, tn.alice, bob.Addr())
	waitFor(t, bev, "the lost message", func(ev apitype.Event) bool {
		return ev.Type == "message" && ev.Message.ID == ids[lost]
	})
	log = incoming(t, bob, "alice")
	if len(log) != n+1 {
		t.Fatalf("bob has %d messages after alice's resend, want %d", len(log), n+1)
	}
	peertest.Eventually(t, 10*time.Second, "nothing left in the mailboxes", func() bool {
		return stored(t, tn.mailboxes[0]) == 0 && stored(t, tn.mailboxes[1]) == 0
	})
}
