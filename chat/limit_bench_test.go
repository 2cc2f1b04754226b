package chat_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// BenchmarkDirectLimit measures, in one run, the physical limit of a
// durable direct message (issue 13) and Parley against it:
//
//	limit = raw libp2p 1 KiB round trip
//	      + one bare SQLite commit of a 1 KiB row on each side
//	        (modernc.org/sqlite through chat/store: same pragmas, same disk)
//	      + one ratchet encrypt and decrypt of 1 KiB
//
// then Parley's send-to-acked latency (b.N sends, one at a time) and its
// durable throughput with 64 concurrent senders (PARLEY_BENCH_MSGS
// messages, 10,000 unless set), the process CPU per delivered message
// (both nodes live in this process), the commits, statements and heap
// allocations per message during that phase (both nodes; less noisy than
// time on a shared machine), the write system calls and bytes written per
// message (/proc/self/io: pwrite to the databases, writes to the sockets),
// and the WAL and home sizes of both nodes afterwards. The limit's p99 is the sum of its parts' p99s.
//
//	go test -run '^$' -bench DirectLimit -benchtime 2000x ./chat/
func BenchmarkDirectLimit(b *testing.B) {
	const size = 1024
	n := b.N

	// The parts of the limit, each with its CPU per operation.
	var rawLat []time.Duration
	rawCPU := cpuPer(n, func() { rawLat = rawRoundTrips(b, n, size) })
	var commitA, commitB []time.Duration
	commitCPU := cpuPer(2*n, func() {
		commitA = bareCommits(b, n, size)
		commitB = bareCommits(b, n, size)
	}) * 2 // one commit on each side
	var ratchet []time.Duration
	ratchetCPU := cpuPer(n, func() { ratchet = ratchetRoundTrips(b, n, size) })

	limit50 := pct(rawLat, 50) + pct(commitA, 50) + pct(commitB, 50) + pct(ratchet, 50)
	limit99 := pct(rawLat, 99) + pct(commitA, 99) + pct(commitB, 99) + pct(ratchet, 99)
	limitCPU := rawCPU + commitCPU + ratchetCPU

	// Parley, send to acked, one message at a time.
	alice, bob := pairB(b)
	ev, cancel := alice.Chat().Subscribe()
	defer cancel()
	text := strings.Repeat("x", size)
	sendAcked(b, alice, ev, text) // the session exists before measuring
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	for range n {
		start := time.Now()
		sendAcked(b, alice, ev, text)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()

	// Durable throughput with 64 concurrent senders.
	msgs := 10000
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_MSGS")); err == nil && v > 0 {
		msgs = v
	}
	var tput float64
	txA0, opA0 := alice.Chat().DB().Ops()
	txB0, opB0 := bob.Chat().DB().Ops()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	io0 := procIO()
	tputCPU := cpuPer(msgs, func() { tput = sendConcurrently(b, alice, ev, text, msgs, 64) })
	io1 := procIO()
	runtime.ReadMemStats(&ms1)
	txA1, opA1 := alice.Chat().DB().Ops()
	txB1, opB1 := bob.Chat().DB().Ops()
	perMsg := func(a, b uint64) float64 { return float64(b-a) / float64(msgs) }
	b.ReportMetric(perMsg(txA0+txB0, txA1+txB1), "commits/msg")
	b.ReportMetric(perMsg(opA0+opB0, opA1+opB1), "stmts/msg")
	b.ReportMetric(perMsg(ms0.Mallocs, ms1.Mallocs), "allocs/msg")
	if io0 != nil && io1 != nil {
		b.ReportMetric(perMsg(io0["syscw"], io1["syscw"]), "writes/msg")
		b.ReportMetric(perMsg(io0["wchar"], io1["wchar"])/1024, "written-KiB/msg")
	}

	p50, p99 := pct(lat, 50), pct(lat, 99)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(pct(rawLat, 50)), "raw-p50-µs")
	b.ReportMetric(us(pct(commitA, 50)+pct(commitB, 50)), "2commits-p50-µs")
	b.ReportMetric(us(pct(ratchet, 50)), "ratchet-p50-µs")
	b.ReportMetric(us(limit50), "limit-p50-µs")
	b.ReportMetric(us(limit99), "limit-p99-µs")
	b.ReportMetric(us(p50), "parley-p50-µs")
	b.ReportMetric(us(p99), "parley-p99-µs")
	b.ReportMetric(float64(p50)/float64(limit50), "p50/limit")
	b.ReportMetric(float64(p99)/float64(limit99), "p99/limit99")
	b.ReportMetric(tput, "parley-msg/s")
	b.ReportMetric(us(limitCPU), "limit-cpu-µs/msg")
	b.ReportMetric(us(tputCPU), "parley-cpu-µs/msg")
	b.ReportMetric(float64(tputCPU)/float64(limitCPU), "cpu/limit")
	for _, r := range []struct {
		who  string
		node *peertest.Running
	}{{"alice", alice}, {"bob", bob}} {
		wal, home := sizes(b, r.node.Home)
		b.ReportMetric(float64(wal)/(1<<20), r.who+"-wal-MiB")
		b.ReportMetric(float64(home)/(1<<20), r.who+"-home-MiB")
	}
	b.ReportMetric(0, "ns/op")
}

// cpuPer runs fn and returns the process CPU time (user and system) it
// took, divided by ops.
func cpuPer(ops int, fn func()) time.Duration {
	before := cpuNow()
	fn()
	return (cpuNow() - before) / time.Duration(max(ops, 1))
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bareCommits commits n transactions of one 1 KiB row each to a fresh
// database opened by chat/store (its driver and pragmas) on the disk the
// nodes' homes are on.
func bareCommits(b *testing.B, n, size int) []time.Duration {
	dir, err := os.MkdirTemp("", "parley-bare-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SQL().ExecContext(ctx, "CREATE TABLE bare (n INTEGER PRIMARY KEY, body BLOB NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, size)
	out := make([]time.Duration, 0, n)
	for range n {
		rand.Read(body)
		start := time.Now()
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			_, err := db.Exec(ctx, tx, "INSERT INTO bare(body) VALUES(?)", body)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// ratchetRoundTrips times n encrypt+decrypt pairs of size bytes on an
// established session.
func ratchetRoundTrips(b *testing.B, n, size int) []time.Duration {
	now := time.Now()
	alicePub, alice, _ := ed25519.GenerateKey(rand.Reader)
	bobPub, bob, _ := ed25519.GenerateKey(rand.Reader)
	aliceKeys, err := e2e.NewKeyStore(alice, rand.Reader, now)
	if err != nil {
		b.Fatal(err)
	}
	bobKeys, err := e2e.NewKeyStore(bob, rand.Reader, now)
	if err != nil {
		b.Fatal(err)
	}
	bundle, err := bobKeys.Bundle(bob, now)
	if err != nil {
		b.Fatal(err)
	}
	var toBob, toAlice e2e.Channel
	if err := toBob.Initiate(alice, aliceKeys, bobPub, bundle, rand.Reader, now); err != nil {
		b.Fatal(err)
	}
	step := func(from, to *e2e.Channel, fromKey, toKey ed25519.PrivateKey, fromKS, toKS *e2e.KeyStore, fromPub ed25519.PublicKey, msg []byte) {
		env, err := from.Encrypt(fromKey, fromKS, msg, rand.Reader, now)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := to.Decrypt(toKey, toKS, fromPub, env, rand.Reader, now); err != nil {
			b.Fatal(err)
		}
	}
	step(&toBob, &toAlice, alice, bob, aliceKeys, bobKeys, alicePub, []byte("setup"))
	step(&toAlice, &toBob, bob, alice, bobKeys, aliceKeys, bobPub, []byte("reply"))
	msg := make([]byte, size)
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		step(&toBob, &toAlice, alice, bob, aliceKeys, bobKeys, alicePub, msg)
		out = append(out, time.Since(start))
	}
	return out
}

// sendConcurrently sends msgs messages from senders goroutines and returns
// the messages per second until the last one was acked.
func sendConcurrently(b *testing.B, from *peertest.Running, ev <-chan apitype.Event, text string, msgs, senders int) float64 {
	ctx := context.Background()
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		seen := make(map[string]bool, msgs)
		for e := range ev {
			if e.Type == "receipt" && e.Message.State != apitype.StatePending {
				if seen[e.Message.ID] = true; len(seen) == msgs {
					return
				}
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < msgs; i += senders {
				if _, err := from.Chat().Send(ctx, "bob", text); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	<-acked
	return float64(msgs) / time.Since(start).Seconds()
}

// procIO returns the counters of /proc/self/io (write system calls,
// bytes written), or nil where there is no such file.
func procIO() map[string]uint64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return nil
	}
	out := make(map[string]uint64)
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if n, err := strconv.ParseUint(v, 10, 64); ok && err == nil {
			out[k] = n
		}
	}
	return out
}

// sizes returns the size of a node's WAL file and of its whole home.
func sizes(b *testing.B, home string) (wal, total int64) {
	if fi, err := os.Stat(filepath.Join(home, store.FileName+"-wal")); err == nil {
		wal = fi.Size()
	}
	err := filepath.Walk(home, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return wal, total
}
