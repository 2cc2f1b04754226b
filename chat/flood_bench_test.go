package chat_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// BenchmarkDMFlood measures, in one run on loopback, alice's send-to-ack
// latency to bob unloaded, then while flooders hammer bob's dm handler:
// two of bob's contacts with real sessions sending 256-frame batches of
// forged ~100-byte frames built to cost the most (a new ratchet key and
// MaxSkip gaps), and two strangers sending forged prekey messages, all
// from the same address as alice. It reports both latencies, their ratio
// (the target is at most 2), how many forged frames reached the crypto, and
// a control: the ratio when the same flood is aimed at a sink host instead
// of bob (what the in-process flooders' own CPU costs alice on this
// machine, which a remote attacker would not):
//
//	go test -run '^$' -bench DMFlood -benchtime 300x ./chat/
func BenchmarkDMFlood(b *testing.B) {
	alice, bob := pairB(b)
	ev, cancel := alice.Chat().Subscribe()
	defer cancel()
	ctx := context.Background()
	text := strings.Repeat("x", 256)
	sendAcked(b, alice, ev, text) // the session exists before measuring

	measure := func() []time.Duration {
		lat := make([]time.Duration, 0, b.N)
		for range b.N {
			start := time.Now()
			sendAcked(b, alice, ev, text)
			lat = append(lat, time.Since(start))
		}
		return lat
	}
	b.ResetTimer()
	idle := measure()

	var contacts []*rawPeer
	for i := range 2 {
		p := newRawPeer(b, bob)
		if _, err := bob.Chat().AddContact(ctx, p.ID().String(), "flooder"+string(rune('a'+i))); err != nil {
			b.Fatal(err)
		}
		if acks, err := exchange(b, p, p.to, []*wirepb.DMMessage{p.honest(b, "hello")}); err != nil || acks[0].GetStatus() != wirepb.AckStatus_ACK_STATUS_OK {
			b.Fatalf("flooder's honest frame: %v %v", acks, err)
		}
		contacts = append(contacts, p)
	}
	strangers := []*rawPeer{newRawPeer(b, bob), newRawPeer(b, bob)}

	// The control: the same flood aimed at a host that resets every dm
	// stream, so the run also shows what the flooders' own work (they run
	// in this process, on the same cores) costs alice without bob's
	// handler in the picture.
	sink, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	sink.SetStreamHandler(wire.ProtocolDM, func(st network.Stream) { st.Reset() })
	flooders := append(append([]*rawPeer(nil), contacts...), strangers...)
	for _, p := range flooders {
		if err := p.Connect(ctx, peer.AddrInfo{ID: sink.ID(), Addrs: sink.Addrs()}); err != nil {
			b.Fatal(err)
		}
	}

	var sent, decrypted, streams atomic.Int64
	run := func(to peer.ID) []time.Duration {
		fctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for i, p := range flooders {
			// One batch, sent again and again: forged frames are never
			// committed, so their ids never count as duplicates; and
			// building frames would spend this process's CPU on the
			// attacker's side.
			batch := make([]*wirepb.DMMessage, 256)
			for j := range batch {
				if i < len(contacts) {
					batch[j] = forged()
				} else {
					batch[j] = &wirepb.DMMessage{Id: frameID(), Envelope: garbage(2, 400)}
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for fctx.Err() == nil {
					streams.Add(1)
					acks, _ := exchange(b, p, to, batch)
					sent.Add(int64(len(batch)))
					for _, a := range acks {
						if a.GetStatus() == wirepb.AckStatus_ACK_STATUS_REJECTED {
							decrypted.Add(1)
						}
					}
				}
			}()
		}
		lat := measure()
		stop()
		wg.Wait()
		return lat
	}
	control := run(sink.ID())
	sent.Store(0)
	decrypted.Store(0)
	streams.Store(0)
	loaded := run(bob.Host().ID())
	b.StopTimer()

	c50, c99 := pct(control, 50), pct(control, 99)
	b.ReportMetric(float64(c50)/float64(pct(idle, 50)), "control-p50-ratio")
	b.ReportMetric(float64(c99)/float64(pct(idle, 99)), "control-p99-ratio")
	i50, i99 := pct(idle, 50), pct(idle, 99)
	l50, l99 := pct(loaded, 50), pct(loaded, 99)
	b.ReportMetric(float64(i50.Microseconds()), "idle-p50-µs")
	b.ReportMetric(float64(i99.Microseconds()), "idle-p99-µs")
	b.ReportMetric(float64(l50.Microseconds()), "flood-p50-µs")
	b.ReportMetric(float64(l99.Microseconds()), "flood-p99-µs")
	b.ReportMetric(float64(l50)/float64(i50), "p50-ratio")
	b.ReportMetric(float64(l99)/float64(i99), "p99-ratio")
	b.ReportMetric(float64(sent.Load()), "forged-sent")
	b.ReportMetric(float64(decrypted.Load()), "forged-decrypted")
	b.ReportMetric(float64(streams.Load()), "flood-streams")
	b.ReportMetric(0, "ns/op")
}
