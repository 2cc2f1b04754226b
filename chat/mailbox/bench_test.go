package mailbox_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// BenchmarkCatchUp measures, in the same run, how long bob takes after he
// comes back online to have 1,000 messages that alice queued while he was
// away: from one mailbox (alice offline), and directly from alice. Run it
// with -benchtime=1x; it reports both times and their ratio.
func BenchmarkCatchUp(b *testing.B) {
	const n = 1000
	var viaMailbox, direct time.Duration
	for range b.N {
		viaMailbox += catchUpFromMailbox(b, n)
		direct += catchUpDirect(b, n)
	}
	b.ReportMetric(float64(viaMailbox.Milliseconds())/float64(b.N), "mailbox-ms")
	b.ReportMetric(float64(direct.Milliseconds())/float64(b.N), "direct-ms")
	b.ReportMetric(float64(viaMailbox)/float64(direct), "ratio")
	b.ReportMetric(0, "ns/op")
}

func catchUpFromMailbox(b *testing.B, n int) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	tn := newNet(b, 1, false)
	tn.sendOffline(n)
	start := time.Now()
	_, bev := restart(b, tn.bob, tn.mailboxes[0].Addr())
	waitMessages(b, bev, n)
	return time.Since(start)
}

func catchUpDirect(b *testing.B, n int) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	alice := peertest.Start(b, peertest.Config(b, peertest.Home(b)), nil)
	bob := peertest.Start(b, peertest.Config(b, peertest.Home(b), alice.Addr()), nil)
	befriend(b, alice, bob, "bob")
	befriend(b, bob, alice, "alice")
	aev, cancel := alice.Chat().Subscribe()
	first := send(b, alice, "bob", "before")
	waitFor(b, aev, "first delivered", func(ev apitype.Event) bool {
		return ev.Type == "receipt" && ev.Message.ID == first.ID && ev.Message.State == apitype.StateDelivered
	})
	cancel()
	bob.Stop(b)
	for i := range n {
		send(b, alice, "bob", fmt.Sprintf("offline %d", i))
	}
	start := time.Now()
	_, bev := restart(b, bob, alice.Addr())
	waitMessages(b, bev, n)
	return time.Since(start)
}
