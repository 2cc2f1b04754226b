package peer_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/peer"
)

// idleHelperEnv makes the test binary, run again by BenchmarkIdleNode,
// start one idle node ("node": a Parley node as peertest starts it; "raw":
// a default go-libp2p host with kad-dht and gossipsub), measure itself and
// exit instead of running tests (see TestMain).
const idleHelperEnv = "PARLEY_IDLE_HELPER"

// How long an idle helper settles after its start, then how long it is
// watched for CPU time.
const (
	idleSettle = 5 * time.Second
	idleWindow = 10 * time.Second
)

// idleStats is what an idle helper reports.
type idleStats struct {
	rssKiB   float64 // VmRSS at the end of the window
	anonKiB  float64 // RssAnon: heap, stacks, runtime
	fileKiB  float64 // RssFile: the binary's pages read in
	cpuMs    float64 // user+system CPU time during the window
	heapKiB  float64 // Go heap in use at the end of the window
	goroutin float64 // goroutines at the end of the window
}

// BenchmarkIdleNode measures the resident memory and CPU of one idle node
// with its DHT (server mode) and gossipsub, against a default go-libp2p
// host with kad-dht (server mode) and gossipsub, on 127.0.0.1 and without
// bootstrap peers. Each runs in its own process (this test binary run
// again), so RSS is the whole process's, as `ps` would show for `parley up`.
// Each process settles for idleSettle, then is watched for idleWindow.
//
//	go test -run '^$' -bench IdleNode ./peer
func BenchmarkIdleNode(b *testing.B) {
	if testing.Short() {
		b.Skip("starts two processes for 15 s each")
	}
	var node, raw idleStats
	for b.Loop() {
		node = runIdleHelper(b, "node")
		raw = runIdleHelper(b, "raw")
	}
	b.ReportMetric(node.rssKiB/1024, "node-rss-MiB")
	b.ReportMetric(raw.rssKiB/1024, "raw-rss-MiB")
	b.ReportMetric(node.rssKiB/raw.rssKiB, "rss-node/raw")
	b.ReportMetric(node.anonKiB/1024, "node-anon-MiB")
	b.ReportMetric(raw.anonKiB/1024, "raw-anon-MiB")
	b.ReportMetric(node.fileKiB/1024, "node-file-MiB")
	b.ReportMetric(raw.fileKiB/1024, "raw-file-MiB")
	b.ReportMetric(node.heapKiB/1024, "node-heap-MiB")
	b.ReportMetric(raw.heapKiB/1024, "raw-heap-MiB")
	b.ReportMetric(node.goroutin, "node-goroutines")
	b.ReportMetric(raw.goroutin, "raw-goroutines")
	b.ReportMetric(node.cpuMs/idleWindow.Seconds(), "node-cpu-ms/s")
	b.ReportMetric(raw.cpuMs/idleWindow.Seconds(), "raw-cpu-ms/s")
}

// runIdleHelper runs this test binary as the idle helper kind and parses
// its report.
func runIdleHelper(b *testing.B, kind string) idleStats {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), idleHelperEnv+"="+kind)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("idle helper %s: %v\n%s", kind, err, stderr.Bytes())
	}
	var s idleStats
	if _, err := fmt.Sscanf(string(out), "rss_kib=%g anon_kib=%g file_kib=%g cpu_ms=%g heap_kib=%g goroutines=%g",
		&s.rssKiB, &s.anonKiB, &s.fileKiB, &s.cpuMs, &s.heapKiB, &s.goroutin); err != nil {
		b.Fatalf("idle helper %s: report %q: %v", kind, out, err)
	}
	return s
}

// idleHelper starts one node of the given kind, lets it settle, watches it
// and writes its report to stdout. It returns the process's exit code.
func idleHelper(kind string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stop func()
	var err error
	switch kind {
	case "node":
		stop, err = startIdleNode(ctx)
	case "raw":
		stop, err = startIdleRaw(ctx)
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "idle helper: %v\n", err)
		return 1
	}
	defer stop()
	time.Sleep(idleSettle)
	before := cpuTime()
	time.Sleep(idleWindow)
	cpu := cpuTime() - before
	st, err := procStatus("VmRSS", "RssAnon", "RssFile")
	if err != nil {
		fmt.Fprintf(os.Stderr, "idle helper: %v\n", err)
		return 1
	}
	fmt.Printf("rss_kib=%d anon_kib=%d file_kib=%d cpu_ms=%.1f heap_kib=%d goroutines=%d\n",
		st[0], st[1], st[2], float64(cpu)/float64(time.Millisecond), heapInUse()/1024, runtime.NumGoroutine())
	return 0
}

// startIdleNode starts a Parley node configured as peertest.Config does.
func startIdleNode(ctx context.Context) (stop func(), err error) {
	dir, err := os.MkdirTemp("", "parley-idle-")
	if err != nil {
		return nil, err
	}
	mode := discovery.ModeServer
	cfg := peer.Config{
		Home:      filepath.Join(dir, "h"),
		Listen:    []string{"/ip4/127.0.0.1/tcp/0"},
		NoPortMap: true,
		DHTMode:   &mode,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Version:   "test",
	}
	ctx, cancel := context.WithCancel(ctx)
	n, err := peer.New(ctx, cfg)
	if err != nil {
		cancel()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start node: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case <-n.Chat().Started():
	case err := <-done:
		cancel()
		n.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("run node: %w", err)
	}
	return func() {
		cancel()
		<-done
		n.Close()
		os.RemoveAll(dir)
	}, nil
}

// startIdleRaw starts a default go-libp2p host listening on 127.0.0.1 with
// kad-dht in server mode (auto mode stays a client on loopback) and no
// bootstrap peers (the default list is the public network), and gossipsub.
func startIdleRaw(ctx context.Context) (stop func(), err error) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	d, err := dht.New(h, dht.Mode(dht.ModeServer), dht.BootstrapPeersFunc(func() []lpeer.AddrInfo { return nil }))
	if err != nil {
		cancel()
		h.Close()
		return nil, err
	}
	if _, err := pubsub.NewGossipSub(ctx, h); err != nil {
		cancel()
		d.Close()
		h.Close()
		return nil, err
	}
	return func() {
		cancel()
		d.Close()
		h.Close()
	}, nil
}

// cpuTime returns the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus returns the named fields of /proc/self/status, in KiB.
func procStatus(names ...string) ([]int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	vals := make([]int64, len(names))
	for i, name := range names {
		found := false
		for line := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				vals[i], err = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("/proc/self/status: %s: %w", name, err)
				}
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("no %s in /proc/self/status", name)
		}
	}
	return vals, nil
}

// heapInUse returns the bytes of live and not yet swept heap objects.
func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
