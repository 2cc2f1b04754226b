package chat_test

import (
	"context"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// BenchmarkDirect measures, in one run on loopback, a raw go-libp2p stream
// (1 KiB ping-pong round trip; one-way 1 KiB messages acked every 64) and
// Parley's durable direct messages between two nodes (send until the
// receiver committed and acked), and reports both and their ratio:
//
//	go test -run '^$' -bench Direct -benchtime 2000x ./chat/
func BenchmarkDirect(b *testing.B) {
	const size = 1024
	raw := rawRoundTrips(b, b.N, size)
	rawTput := rawThroughput(b, max(b.N, 10000), size)

	alice, bob := pairB(b)
	ev, cancel := alice.Chat().Subscribe()
	defer cancel()
	text := strings.Repeat("x", size)
	ctx := context.Background()
	// Warm up: the session exists before measuring.
	sendAcked(b, alice, ev, text)

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		sendAcked(b, alice, ev, text)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()

	// Throughput: queue many messages, wait until all are acked. Events are
	// drained concurrently so the subscription never falls behind.
	n := max(b.N, 10000)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		seen := make(map[string]bool, n)
		for e := range ev {
			if e.Type == "receipt" && e.Message.State != apitype.StatePending {
				if seen[e.Message.ID] = true; len(seen) == n {
					return
				}
			}
		}
	}()
	// 64 concurrent senders, as several clients of one node would be; their
	// sends share transactions (group commit).
	const senders = 64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += senders {
				if _, err := alice.Chat().Send(ctx, "bob", text); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	<-acked
	tput := float64(n) / time.Since(start).Seconds()
	_ = bob

	rp50, rp99 := pct(raw, 50), pct(raw, 99)
	p50, p99 := pct(lat, 50), pct(lat, 99)
	b.ReportMetric(float64(rp50.Microseconds()), "raw-p50-µs")
	b.ReportMetric(float64(rp99.Microseconds()), "raw-p99-µs")
	b.ReportMetric(float64(p50.Microseconds()), "parley-p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "parley-p99-µs")
	b.ReportMetric(float64(p50)/float64(rp50), "p50-ratio")
	b.ReportMetric(float64(p99)/float64(rp99), "p99-ratio")
	b.ReportMetric(rawTput, "raw-msg/s")
	b.ReportMetric(tput, "parley-msg/s")
	b.ReportMetric(0, "ns/op")
}

func pairB(b *testing.B) (*peertest.Running, *peertest.Running) {
	alice := peertest.Start(b, peertest.Config(b, peertest.Home(b)), nil)
	bob := peertest.Start(b, peertest.Config(b, peertest.Home(b), alice.Addr()), nil)
	ctx := context.Background()
	if _, err := alice.Chat().AddContact(ctx, bob.Host().ID().String(), "bob"); err != nil {
		b.Fatal(err)
	}
	if _, err := bob.Chat().AddContact(ctx, alice.Host().ID().String(), "alice"); err != nil {
		b.Fatal(err)
	}
	return alice, bob
}

// sendAcked sends one message and waits until the receiver's node acked it
// (committed); the message is then "sent" or already "delivered".
func sendAcked(b *testing.B, from *peertest.Running, ev <-chan apitype.Event, text string) {
	m, err := from.Chat().Send(context.Background(), "bob", text)
	if err != nil {
		b.Fatal(err)
	}
	for e := range ev {
		if e.Type == "receipt" && e.Message.ID == m.ID && e.Message.State != apitype.StatePending {
			return
		}
	}
	b.Fatal("event stream closed")
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

func rawHosts(b *testing.B) (host.Host, host.Host) {
	mk := func() host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		return h
	}
	x, y := mk(), mk()
	if err := x.Connect(context.Background(), y.Peerstore().PeerInfo(y.ID())); err != nil {
		b.Fatal(err)
	}
	x.Peerstore().AddAddrs(y.ID(), y.Addrs(), time.Hour)
	return x, y
}

// rawRoundTrips measures n 1 KiB ping-pongs on one raw libp2p stream, on
// hosts closed when it returns, so that they cost nothing afterwards.
func rawRoundTrips(b *testing.B, n, size int) []time.Duration {
	x, y := rawHosts(b)
	defer x.Close()
	defer y.Close()
	y.SetStreamHandler("/bench/echo", func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	s, err := x.NewStream(context.Background(), y.ID(), "/bench/echo")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, size)
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := s.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// rawThroughput sends n one-way 1 KiB messages, acked every 64, and returns messages/s.
func rawThroughput(b *testing.B, n, size int) float64 {
	x, y := rawHosts(b)
	y.SetStreamHandler("/bench/sink", func(s network.Stream) {
		defer s.Close()
		buf := make([]byte, size)
		for i := 1; ; i++ {
			if _, err := io.ReadFull(s, buf); err != nil {
				return
			}
			if i%64 == 0 {
				s.Write([]byte{1})
			}
		}
	})
	s, err := x.NewStream(context.Background(), y.ID(), "/bench/sink")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, size)
	ack := make([]byte, 1)
	start := time.Now()
	for i := 1; i <= n; i++ {
		if _, err := s.Write(buf); err != nil {
			b.Fatal(err)
		}
		if i%64 == 0 {
			if _, err := io.ReadFull(s, ack); err != nil {
				b.Fatal(err)
			}
		}
	}
	return float64(n) / time.Since(start).Seconds()
}
