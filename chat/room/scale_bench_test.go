package room_test

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/parley-im/parley/chat/room"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// The scale benchmarks of issue 9 (rooms v2). Each one runs real nodes in
// this process on loopback, connected along one random graph of degree
// about benchDegree (the same graph, for the same N, as raw gossipsub in
// BenchmarkScale), and reports with b.ReportMetric:
//
//	go test -run '^$' -bench 'Scale$/N=50$' -benchtime 1x -timeout 60m ./chat/room/
//	go test -run '^$' -bench 'ScaleKick' -benchtime 1x -timeout 60m ./chat/room/
//	go test -run '^$' -bench 'ScaleForm' -benchtime 1x -timeout 60m ./chat/room/
//
// "Messages on the wire" are the pubsub messages every node hands to a
// peer (one count per message per hop, from a pubsub RawTracer), plus the
// 1:1 frames every node had acknowledged by a peer (chat.Stats).

// wireCount counts, across every node of a benchmark, the pubsub messages
// sent to a peer and the distinct messages among them.
type wireCount struct {
	sends atomic.Int64
	mu    sync.Mutex
	ids   map[string]bool
}

func (w *wireCount) tracer() pubsub.RawTracer { return wireTracer{w} }

func (w *wireCount) snapshot() (sends int64, distinct int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sends.Load(), len(w.ids)
}

type wireTracer struct{ w *wireCount }

func (t wireTracer) SendRPC(rpc *pubsub.RPC, _ peer.ID) {
	if len(rpc.Publish) == 0 {
		return
	}
	t.w.sends.Add(int64(len(rpc.Publish)))
	t.w.mu.Lock()
	for _, m := range rpc.Publish {
		t.w.ids[string(m.From)+string(m.Seqno)] = true
	}
	t.w.mu.Unlock()
}

func (wireTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (wireTracer) OnClosedOutboundStream(peer.ID)                       {}
func (wireTracer) Join(string)                                          {}
func (wireTracer) Leave(string)                                         {}
func (wireTracer) Graft(peer.ID, string)                                {}
func (wireTracer) Prune(peer.ID, string)                                {}
func (wireTracer) ValidateMessage(*pubsub.Message)                      {}
func (wireTracer) DeliverMessage(*pubsub.Message)                       {}
func (wireTracer) RejectMessage(*pubsub.Message, string)                {}
func (wireTracer) DuplicateMessage(*pubsub.Message)                     {}
func (wireTracer) ThrottlePeer(peer.ID)                                 {}
func (wireTracer) RecvRPC(*pubsub.RPC)                                  {}
func (wireTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (wireTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (wireTracer) UndeliverableMessage(*pubsub.Message)                 {}

var _ pubsub.RawTracer = wireTracer{}

// cluster is n Parley nodes connected along graph, with every node's
// events dispatched: room messages to the runs, room changes to a nudge.
type cluster struct {
	nodes []*peertest.Running
	hs    []host.Host
	graph [][2]int
	wire  *wireCount

	mu     sync.Mutex
	runs   map[string]*run // by text prefix ("hello", "data", ...)
	nudges []chan struct{} // one per node: a room event arrived

	stop  chan struct{}
	wg    sync.WaitGroup
	start time.Time
}

func startCluster(b *testing.B, n int, graph [][2]int) *cluster {
	b.Helper()
	c := &cluster{graph: graph, wire: &wireCount{ids: map[string]bool{}}, runs: map[string]*run{}, stop: make(chan struct{}), start: time.Now()}
	room.SetTestPubsubOptions(b, func(host.Host) []pubsub.Option {
		return []pubsub.Option{pubsub.WithRawTracer(c.wire.tracer())}
	})
	for range n {
		node := peertest.Start(b, peertest.Config(b, peertest.Home(b)), nil)
		c.nodes = append(c.nodes, node)
		c.hs = append(c.hs, node.Host())
	}
	connectGraph(b, c.hs, graph)
	if os.Getenv("PARLEY_BENCH_CONNLOG") != "" {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			tick := time.NewTicker(2 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-c.stop:
					return
				case <-tick.C:
					avg, most := c.connections()
					prot := 0
					for _, h := range c.hs {
						for _, p := range h.Network().Peers() {
							if h.ConnManager().IsProtected(p, "") {
								prot++
							}
						}
					}
					b.Logf("%v in: connections per node avg %.1f max %d, protected avg %.1f", time.Since(c.start).Round(time.Second), avg, most, float64(prot)/float64(len(c.hs)))
					if dir := os.Getenv("PARLEY_BENCH_CONNLOG_DIR"); dir != "" {
						if f, err := os.Create(fmt.Sprintf("%s/g-%03d.txt", dir, int(time.Since(c.start).Seconds()))); err == nil {
							pprof.Lookup("goroutine").WriteTo(f, 1)
							f.Close()
						}
					}
				}
			}
		}()
	}
	for _, node := range c.nodes {
		nudge := make(chan struct{}, 1)
		c.nudges = append(c.nudges, nudge)
		ev, cancel := node.Chat().Subscribe()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer cancel()
			for {
				select {
				case <-c.stop:
					return
				case e := <-ev:
					switch {
					case e.Type == "message" && e.Message != nil && !e.Message.Outgoing:
						kind, rest, _ := strings.Cut(e.Message.Text, " ")
						c.mu.Lock()
						r := c.runs[kind]
						c.mu.Unlock()
						if r != nil {
							r.shown(rest, time.Now())
						}
					case e.Type == "room":
						select {
						case nudge <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	b.Cleanup(c.close)
	return c
}

// connectGraph connects every edge of graph, a few at a time, each with
// its own deadline and retries: 100 nodes starting on two cores make
// dials slow, and one shared deadline would leave edges out.
func connectGraph(b *testing.B, hs []host.Host, graph [][2]int) {
	b.Helper()
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
		sem    = make(chan struct{}, 8)
	)
	for _, e := range graph {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			to := peer.AddrInfo{ID: hs[e[1]].ID(), Addrs: hs[e[1]].Addrs()}
			var err error
			for range 3 {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err = hs[e[0]].Connect(ctx, to)
				cancel()
				if err == nil {
					return
				}
				// A dial that timed out on a loaded machine puts the
				// peer in the swarm's backoff; the next try must dial.
				if sw, ok := hs[e[0]].Network().(*swarm.Swarm); ok {
					sw.Backoff().Clear(to.ID)
				}
			}
			failed.Add(1)
			b.Logf("edge %v: %v", e, err)
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(failed.Load()), "edges-failed")
}

func (c *cluster) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.wg.Wait()
}

// track returns the run that counts displays of texts "kind SEQ ...".
func (c *cluster) track(kind string) *run {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := newRun()
	c.runs[kind] = r
	return r
}

// connections returns the average and maximum number of peers a node is
// connected to.
func (c *cluster) connections() (avg float64, most int) {
	total := 0
	for _, h := range c.hs {
		k := len(h.Network().Peers())
		total += k
		most = max(most, k)
	}
	return float64(total) / float64(len(c.hs)), most
}

// logConnections logs the connections per node at one phase of a run.
func (c *cluster) logConnections(b *testing.B, phase string) {
	avg, most := c.connections()
	b.Logf("N=%d: %s (%v in), connections per node avg %.1f max %d", len(c.nodes), phase, time.Since(c.start).Round(time.Second), avg, most)
}

// driveProfile writes a CPU profile of the measured run alone to the file
// named by PARLEY_BENCH_CPUPROFILE, if set (not with -cpuprofile: one CPU
// profile at a time), and returns what stops it.
func driveProfile(b *testing.B) func() {
	path := os.Getenv("PARLEY_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// dmFrames is the number of 1:1 frames acknowledged so far, all nodes.
func (c *cluster) dmFrames() int64 {
	var n uint64
	for _, node := range c.nodes {
		n += node.Chat().Stats().Acked
	}
	return int64(n)
}

// wireSnapshot is the wire counters at one moment.
type wireSnapshot struct {
	pubsub, distinct, dm int64
}

func (c *cluster) wireNow() wireSnapshot {
	s, d := c.wire.snapshot()
	return wireSnapshot{pubsub: s, distinct: int64(d), dm: c.dmFrames()}
}

func (c *cluster) reportWire(b *testing.B, name string, from wireSnapshot) wireSnapshot {
	to := c.wireNow()
	d := wireSnapshot{pubsub: to.pubsub - from.pubsub, distinct: to.distinct - from.distinct, dm: to.dm - from.dm}
	b.ReportMetric(float64(d.pubsub), name+"-pubsub-sends")
	b.ReportMetric(float64(d.distinct), name+"-pubsub-msgs")
	b.ReportMetric(float64(d.dm), name+"-dm-frames")
	b.ReportMetric(float64(d.pubsub+d.dm), name+"-wire-msgs")
	b.Logf("%s: %d pubsub sends (%d distinct messages), %d 1:1 frames", name, d.pubsub, d.distinct, d.dm)
	return d
}

// await waits until cond(i) holds for every node i in which (nil: all),
// checking each node when it reports a room change and every 250ms, and
// returns when each node first satisfied it.
func (c *cluster) await(b *testing.B, timeout time.Duration, what string, which []int, cond func(i int) bool) []time.Time {
	b.Helper()
	at, missing := c.awaitSome(timeout, which, cond)
	if missing > 0 {
		b.Fatalf("timed out after %v waiting for %s (%d of %d nodes)", timeout, what, missing, len(at))
	}
	return at
}

// awaitSome is await that gives up at the timeout and returns how many
// nodes had not got there (their times are zero).
func (c *cluster) awaitSome(timeout time.Duration, which []int, cond func(i int) bool) (at []time.Time, missing int) {
	if which == nil {
		for i := range c.nodes {
			which = append(which, i)
		}
	}
	at = make([]time.Time, len(which))
	// One channel that closes, not time.After: its one value would end
	// the wait of one node only.
	deadline := make(chan struct{})
	timer := time.AfterFunc(timeout, func() { close(deadline) })
	defer timer.Stop()
	var wg sync.WaitGroup
	for k, i := range which {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for !cond(i) {
				select {
				case <-c.nudges[i]:
				case <-tick.C:
				case <-deadline:
					return
				case <-c.stop:
					return
				}
			}
			at[k] = time.Now()
		}()
	}
	wg.Wait()
	for _, t := range at {
		if t.IsZero() {
			missing++
		}
	}
	return at, missing
}

// latest is the last of ts.
func latest(ts []time.Time) time.Time {
	var t time.Time
	for _, x := range ts {
		if x.After(t) {
			t = x
		}
	}
	return t
}

// info is node i's view of #bench (zero if it has none).
func (c *cluster) info(i int) apitype.Room {
	info, _ := c.nodes[i].Rooms().Info(context.Background(), "#bench")
	return info
}

// hellos has every node say "hello i" in #bench and waits until every
// node displayed every other's (everyone holds everyone's keys) or timeout
// passes. It reports the fraction displayed, and returns when all were
// (zero if they were not).
func (c *cluster) hellos(b *testing.B, timeout time.Duration) time.Time {
	b.Helper()
	n := len(c.nodes)
	warm := c.track("hello")
	for i, node := range c.nodes {
		warm.sent(i, time.Now())
		if _, err := node.Rooms().Send(context.Background(), "#bench", fmt.Sprintf("hello %d", i)); err != nil {
			b.Logf("node %d: hello: %v", i, err)
		}
	}
	deadline := time.Now().Add(timeout)
	for warm.count() < n*(n-1) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := warm.count()
	b.ReportMetric(float64(got)/float64(n*(n-1)), "hello-delivery")
	if got < n*(n-1) {
		b.Logf("after %v, %d of %d hellos displayed", timeout, got, n*(n-1))
		return time.Time{}
	}
	return time.Now()
}

// BenchmarkScale compares raw gossipsub with Parley private rooms on the
// same random graph at N=50 and N=100: connections per node, delivery,
// publish-to-display latency and CPU.
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{50, 100} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for range b.N {
				graph := randomGraph(n, benchDegree, mrand.New(mrand.NewPCG(uint64(n), 1)))
				b.ReportMetric(2*float64(len(graph))/float64(n), "graph-degree")
				raw := benchRaw(b, n, graph)
				c := startCluster(b, n, graph)
				c.logConnections(b, "after the graph")
				formRoom(b, c)
				c.logConnections(b, "after joining")
				c.hellos(b, 5*time.Minute)
				avg, most := c.connections()
				b.ReportMetric(avg, "conns-avg")
				b.ReportMetric(float64(most), "conns-max")
				b.Logf("N=%d: after forming, connections per node avg %.1f max %d", n, avg, most)
				if d, err := time.ParseDuration(os.Getenv("PARLEY_BENCH_SETTLE")); err == nil {
					// Measure the steady state: the connections the DHT's
					// lookups left are trimmed after the grace period.
					time.Sleep(d)
					c.logConnections(b, "after settling")
					avg, most = c.connections()
					b.ReportMetric(avg, "conns-settled-avg")
					b.ReportMetric(float64(most), "conns-settled-max")
				}
				r := c.track("data")
				var failed atomic.Int64
				stopProfile := driveProfile(b)
				cpu, heap := drive(b, n, r, mrand.New(mrand.NewPCG(2, uint64(n))), func(from, seq int) error {
					// A failed send counts as undelivered, not as the end of the run.
					if _, err := c.nodes[from].Rooms().Send(context.Background(), "#bench", "data "+text(seq)); err != nil {
						failed.Add(1)
					}
					return nil
				})
				stopProfile()
				b.ReportMetric(float64(failed.Load()), "send-errors")
				c.logConnections(b, "after the run")
				parley := report(b, "parley", n, r, cpu, heap, 0, 0)
				avg, most = c.connections()
				b.ReportMetric(float64(parley.p99)/float64(raw.p99), "p99-ratio")
				b.ReportMetric(float64(parley.p50)/float64(raw.p50), "p50-ratio")
				b.ReportMetric(parley.cpu/raw.cpu, "cpu-ratio")
				b.Logf("N=%d: connections per node avg %.1f max %d (graph %.1f); parley/raw p50 %.2fx, p99 %.2fx, cpu %.2fx", n,
					avg, most, 2*float64(len(graph))/float64(n),
					float64(parley.p50)/float64(raw.p50), float64(parley.p99)/float64(raw.p99), parley.cpu/raw.cpu)
				c.close()
			}
		})
	}
}

// BenchmarkScaleKick kicks one member of a formed 100-member room and
// measures the time until every remaining member is on the new epoch and
// the messages on the wire meanwhile.
func BenchmarkScaleKick(b *testing.B) {
	for _, n := range []int{50, 100} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for range b.N {
				graph := randomGraph(n, benchDegree, mrand.New(mrand.NewPCG(uint64(n), 1)))
				c := startCluster(b, n, graph)
				formRoom(b, c)
				c.hellos(b, 5*time.Minute)
				before := c.info(0).Epoch
				victim := c.nodes[n-1].Host().ID().String()
				rest := make([]int, n-1)
				for i := range rest {
					rest[i] = i
				}
				w0 := c.wireNow()
				start := time.Now()
				if _, err := c.nodes[0].Rooms().Kick(context.Background(), "#bench", victim); err != nil {
					b.Fatal(err)
				}
				at := c.await(b, 5*time.Minute, "every member on the new epoch", rest, func(i int) bool { return c.info(i).Epoch > before })
				took := latest(at).Sub(start)
				// Counted once every member is there, plus the key traffic
				// the change set off that was still in flight: settle a second.
				time.Sleep(time.Second)
				b.ReportMetric(took.Seconds(), "kick-s")
				c.reportWire(b, "kick", w0)
				b.Logf("kick N=%d: every remaining member on epoch > %d after %v", n, before, took)
				c.close()
			}
		})
	}
}

// BenchmarkScaleForm forms an N-member room, by the admin inviting N-1
// contacts one by one and, separately, by N-1 peers joining through one
// multi-use link, and measures the messages on the wire and the time until
// every member displayed a message of every other.
func BenchmarkScaleForm(b *testing.B) {
	for _, how := range []string{"invites", "link"} {
		for _, n := range []int{30, 50, 100} {
			b.Run(fmt.Sprintf("%s/N=%d", how, n), func(b *testing.B) {
				for range b.N {
					graph := randomGraph(n, benchDegree, mrand.New(mrand.NewPCG(uint64(n), 1)))
					c := startCluster(b, n, graph)
					w0 := c.wireNow()
					start := time.Now()
					joined := formBy(b, c, how)
					formed := time.Now()
					b.ReportMetric(float64(joined), "joined")
					b.ReportMetric(formed.Sub(start).Seconds(), "form-s")
					if joined < n {
						c.reportWire(b, how, w0)
						b.Logf("form by %s N=%d: only %d of %d members after %v", how, n, joined, n, formed.Sub(start))
						c.close()
						continue
					}
					b.Logf("form by %s N=%d: roster complete everywhere after %v", how, n, formed.Sub(start))
					if done := c.hellos(b, 5*time.Minute); !done.IsZero() {
						b.ReportMetric(done.Sub(start).Seconds(), "all-read-s")
						b.Logf("form by %s N=%d: everyone read everyone after %v", how, n, done.Sub(start))
					}
					c.reportWire(b, how, w0)
					c.close()
				}
			})
		}
	}
}

// formRoom makes every node of c a member of the private room #bench by
// one multi-use join link, and waits until each holds the whole roster.
func formRoom(b *testing.B, c *cluster) {
	b.Helper()
	joined := formBy(b, c, "link")
	b.ReportMetric(float64(joined), "joined")
	if joined < len(c.nodes) {
		b.Logf("only %d of %d nodes hold the whole roster", joined, len(c.nodes))
	}
}

// formBy forms #bench by invites or by one multi-use link and returns how
// many nodes hold the whole roster (all of them unless it timed out).
func formBy(b *testing.B, c *cluster, how string) int {
	b.Helper()
	ctx := context.Background()
	n := len(c.nodes)
	admin := c.nodes[0]
	if _, err := admin.Rooms().Create(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	switch how {
	case "invites":
		// Invitations count only between contacts, both ways.
		for _, m := range c.nodes[1:] {
			if _, err := admin.Chat().AddContact(ctx, m.Host().ID().String(), ""); err != nil {
				b.Fatal(err)
			}
			if _, err := m.Chat().AddContact(ctx, admin.Host().ID().String(), "admin"); err != nil {
				b.Fatal(err)
			}
		}
		// Every invitee accepts as soon as its invitation arrives.
		for i := 1; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.awaitSome(10*time.Minute, []int{i}, func(i int) bool {
					invs, err := c.nodes[i].Rooms().Invites(ctx)
					if err != nil || len(invs) == 0 {
						return false
					}
					_, err = c.nodes[i].Rooms().AcceptInvite(ctx, invs[0].ID)
					return err == nil
				})
			}()
		}
		for _, m := range c.nodes[1:] {
			if _, err := admin.Rooms().Invite(ctx, "#bench", m.Host().ID().String()); err != nil {
				b.Fatal(err)
			}
		}
	case "link":
		l, err := admin.Rooms().Link(ctx, "#bench", n-1, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		for i, m := range c.nodes[1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := m.Rooms().JoinLink(ctx, l.Link); err != nil {
					b.Logf("node %d: join: %v", i+1, err)
				}
			}()
		}
	}
	wg.Wait()
	at, missing := c.awaitSome(5*time.Minute, nil, func(i int) bool {
		info := c.info(i)
		return len(info.Members) == n && (info.State == "" || info.State == "joined")
	})
	for i, t := range at {
		if t.IsZero() {
			info := c.info(i)
			b.Logf("node %d: state %q, epoch %d, %d members, detail %q, %d connections", i, info.State, info.Epoch, len(info.Members), info.Detail, len(c.hs[i].Network().Peers()))
		}
	}
	return n - missing
}
