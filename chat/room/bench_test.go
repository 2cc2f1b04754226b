package room_test

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/peer/peertest"
)

// Benchmark parameters: 500-byte messages from random senders at a steady
// rate, on a random graph of degree about 6.
const (
	benchDegree   = 6
	benchMessages = 100
	benchRate     = 20 // messages per second, whole room
	benchSize     = 500
	benchSettle   = 15 * time.Second // wait for stragglers after the last send
)

// randomGraph returns the edges of a connected random graph on n nodes: a
// random spanning tree plus random edges up to an average degree of deg.
func randomGraph(n, deg int, rng *mrand.Rand) [][2]int {
	edges := map[[2]int]bool{}
	add := func(i, j int) {
		if i == j {
			return
		}
		if i > j {
			i, j = j, i
		}
		edges[[2]int{i, j}] = true
	}
	perm := rng.Perm(n)
	for k := 1; k < n; k++ {
		add(perm[k], perm[rng.IntN(k)])
	}
	for len(edges) < n*deg/2 && len(edges) < n*(n-1)/2 {
		add(rng.IntN(n), rng.IntN(n))
	}
	var out [][2]int
	for e := range edges {
		out = append(out, e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a][0]*n+out[a][1] < out[b][0]*n+out[b][1] })
	return out
}

// run is one measured run: who sends what when, and when it is displayed.
type run struct {
	mu     sync.Mutex
	sentAt map[int]time.Time
	lat    []time.Duration
	got    int
}

func newRun() *run { return &run{sentAt: map[int]time.Time{}} }

func (r *run) sent(seq int, at time.Time) {
	r.mu.Lock()
	r.sentAt[seq] = at
	r.mu.Unlock()
}

// shown records that a receiver displayed text (which starts with its seq).
func (r *run) shown(text string, at time.Time) {
	seq, err := strconv.Atoi(strings.SplitN(text, " ", 2)[0])
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t0, ok := r.sentAt[seq]; ok {
		r.lat = append(r.lat, at.Sub(t0))
		r.got++
	}
}

func (r *run) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got
}

func (r *run) percentile(p float64) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lat) == 0 {
		return 0
	}
	l := append([]time.Duration(nil), r.lat...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[min(len(l)-1, int(float64(len(l))*p))]
}

func text(seq int) string {
	s := strconv.Itoa(seq) + " "
	return s + strings.Repeat("x", benchSize-len(s))
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// drive sends benchMessages at benchRate from random senders and waits
// until every receiver has displayed every message or benchSettle passes.
func drive(b *testing.B, n int, r *run, rng *mrand.Rand, send func(from, seq int) error) (cpu float64, heap uint64) {
	b.Helper()
	cpu0 := cpuSeconds()
	tick := time.NewTicker(time.Second / benchRate)
	defer tick.Stop()
	for seq := 0; seq < benchMessages; seq++ {
		<-tick.C
		r.sent(seq, time.Now())
		if err := send(rng.IntN(n), seq); err != nil {
			b.Fatalf("send %d: %v", seq, err)
		}
	}
	want := benchMessages * (n - 1)
	deadline := time.Now().Add(benchSettle)
	for r.count() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cpu = cpuSeconds() - cpu0
	return cpu, heapInuse()
}

type result struct {
	delivery float64
	p50, p99 time.Duration
	cpu      float64
	heap     float64 // bytes per node under load
	idle     float64 // bytes per node, idle after setup
}

func report(b *testing.B, name string, n int, r *run, cpu float64, heap, base, idle uint64) result {
	res := result{
		delivery: float64(r.count()) / float64(benchMessages*(n-1)),
		p50:      r.percentile(0.50),
		p99:      r.percentile(0.99),
		cpu:      cpu,
		heap:     float64(heap-min(heap, base)) / float64(n),
		idle:     float64(idle-min(idle, base)) / float64(n),
	}
	b.ReportMetric(res.delivery, name+"-delivery")
	b.ReportMetric(float64(res.p50.Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(res.p99.Microseconds())/1000, name+"-p99-ms")
	b.ReportMetric(res.cpu, name+"-cpu-s")
	b.ReportMetric(res.heap/(1<<20), name+"-MiB/node")
	b.ReportMetric(res.idle/(1<<20), name+"-idle-MiB/node")
	b.Logf("%s N=%d: delivery %.4f, p50 %v, p99 %v, cpu %.2fs, heap %.2f MiB/node under load, %.2f MiB/node idle",
		name, n, res.delivery, res.p50, res.p99, res.cpu, res.heap/(1<<20), res.idle/(1<<20))
	return res
}

// BenchmarkRooms compares raw gossipsub with Parley private rooms (real
// nodes: encryption, validators, the database) on the same random graph.
//
//	go test -run '^$' -bench Rooms -benchtime 1x ./chat/room/
func BenchmarkRooms(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				graph := randomGraph(n, benchDegree, mrand.New(mrand.NewPCG(uint64(n), 1)))
				raw := benchRaw(b, n, graph)
				parley := benchParley(b, n, graph)
				b.ReportMetric(float64(parley.p99)/float64(raw.p99), "p99-ratio")
				b.ReportMetric(float64(parley.p50)/float64(raw.p50), "p50-ratio")
				b.Logf("N=%d: parley/raw p50 %.2fx, p99 %.2fx, cpu %.2fx", n,
					float64(parley.p50)/float64(raw.p50), float64(parley.p99)/float64(raw.p99), parley.cpu/raw.cpu)
			}
		})
	}
}

func connect(b *testing.B, hs []host.Host, graph [][2]int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, e := range graph {
		to := peer.AddrInfo{ID: hs[e[1]].ID(), Addrs: hs[e[1]].Addrs()}
		if err := hs[e[0]].Connect(ctx, to); err != nil {
			// A node's own dials to its peers (DHT, 1:1 sessions) can race
			// ours; the graph stays connected through its other edges.
			b.Logf("edge %v: %v", e, err)
		}
	}
}

func benchRaw(b *testing.B, n int, graph [][2]int) result {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := heapInuse()
	const topic = "bench"
	hs := make([]host.Host, n)
	topics := make([]*pubsub.Topic, n)
	r := newRun()
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i := range hs {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictSign))
		if err != nil {
			b.Fatal(err)
		}
		t, err := ps.Join(topic)
		if err != nil {
			b.Fatal(err)
		}
		sub, err := t.Subscribe()
		if err != nil {
			b.Fatal(err)
		}
		hs[i], topics[i] = h, t
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sub.Cancel()
			for {
				m, err := sub.Next(ctx)
				if err != nil {
					return
				}
				if m.GetFrom() != h.ID() {
					r.shown(string(m.Data), time.Now())
				}
			}
		}()
	}
	connect(b, hs, graph)
	peertest.Eventually(b, 30*time.Second, "raw topic peers", func() bool {
		for _, t := range topics {
			if len(t.ListPeers()) == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // a few heartbeats to build the mesh
	idle := heapInuse()
	cpu, heap := drive(b, n, r, mrand.New(mrand.NewPCG(2, uint64(n))), func(from, seq int) error {
		return topics[from].Publish(ctx, []byte(text(seq)))
	})
	return report(b, "raw", n, r, cpu, heap, base, idle)
}

func benchParley(b *testing.B, n int, graph [][2]int) result {
	ctx := context.Background()
	base := heapInuse()
	nodes := make([]*peertest.Running, n)
	hs := make([]host.Host, n)
	for i := range nodes {
		nodes[i] = peertest.Start(b, peertest.Config(b, peertest.Home(b)), nil)
		hs[i] = nodes[i].Host()
	}
	connect(b, hs, graph)
	alice := nodes[0]
	if _, err := alice.Rooms().Create(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	var joiners []*room.Service
	for _, m := range nodes[1:] {
		joiners = append(joiners, m.Rooms())
	}
	jctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := alice.Rooms().AdmitAll(jctx, "#bench", joiners); err != nil {
		b.Fatal(err)
	}
	// Everyone in the room: each member says
	// hello and every member displays every hello.
	r := newRun()
	warm := newRun()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer func() { close(stop); wg.Wait() }()
	for _, m := range nodes {
		ev, cancel := m.Chat().Subscribe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			for {
				select {
				case <-stop:
					return
				case e := <-ev:
					if e.Type == "message" && e.Message != nil && !e.Message.Outgoing {
						if strings.HasPrefix(e.Message.Text, "hello ") {
							warm.shown(strings.TrimPrefix(e.Message.Text, "hello "), time.Now())
						} else {
							r.shown(e.Message.Text, time.Now())
						}
					}
				}
			}
		}()
	}
	peertest.Eventually(b, 120*time.Second, "every member in the room", func() bool {
		for _, m := range nodes {
			info, err := m.Rooms().Info(ctx, "#bench")
			if err != nil || len(info.Members) != n {
				return false
			}
		}
		return true
	})
	for i, m := range nodes {
		warm.sent(i, time.Now())
		if _, err := m.Rooms().Send(ctx, "#bench", fmt.Sprintf("hello %d", i)); err != nil {
			b.Fatal(err)
		}
	}
	peertest.Eventually(b, 180*time.Second, "every hello everywhere", func() bool { return warm.count() >= n*(n-1) })
	degree := 0
	for _, h := range hs {
		degree += len(h.Network().Peers())
	}
	b.Logf("parley N=%d: average connections per node %.1f (graph %.1f)", n, float64(degree)/float64(n), 2*float64(len(graph))/float64(n))
	b.ReportMetric(float64(degree)/float64(n), "parley-conns-avg")
	idle := heapInuse()
	stopProfile := driveProfile(b)
	cpu, heap := drive(b, n, r, mrand.New(mrand.NewPCG(2, uint64(n))), func(from, seq int) error {
		_, err := nodes[from].Rooms().Send(ctx, "#bench", text(seq))
		return err
	})
	stopProfile()
	res := report(b, "parley", n, r, cpu, heap, base, idle)
	for _, m := range nodes {
		m.Stop(b)
	}
	return res
}
