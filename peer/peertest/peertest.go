// Package peertest starts real Parley nodes on 127.0.0.1 for tests: no
// public bootstrap, no mDNS, no port mapping, DHT in server mode, and
// everything stopped (and checked for leaks by the caller) at cleanup.
package peertest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/peer"
)

// Running is a started node and the means to stop it.
type Running struct {
	*peer.Node
	Home   string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// Stop ends Run and closes the node; it is safe to call twice.
func (r *Running) Stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("node %s: run: %v", r.Home, err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("node %s: close: %v", r.Home, err)
		}
	})
}

// Addr returns the node's first loopback address with /p2p/.
func (r *Running) Addr() string { return r.IDInfo().Addrs[0] }

// AddrInfo returns the node's peer ID and addresses.
func (r *Running) AddrInfo() lpeer.AddrInfo {
	return lpeer.AddrInfo{ID: r.Host().ID(), Addrs: r.Host().Addrs()}
}

// Home returns a short temporary home directory (unix socket paths are
// limited to 107 bytes, which t.TempDir() under a long test name can exceed).
func Home(t testing.TB) string {
	dir, err := os.MkdirTemp("", "parley-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "h")
}

// Config returns a loopback-only test config for home.
func Config(t testing.TB, home string, bootstrap ...string) peer.Config {
	mode := discovery.ModeServer
	return peer.Config{
		Home:      home,
		Listen:    []string{"/ip4/127.0.0.1/tcp/0"},
		Bootstrap: bootstrap,
		NoPortMap: true,
		DHTMode:   &mode,
		Logger:    Logger(t),
		Version:   "test",
	}
}

// Logger returns a logger that is silent unless PARLEY_TEST_LOG is set.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Start starts a node with cfg and registers its Stop with t.Cleanup. setup,
// if non-nil, runs between New and Run (to attach services).
func Start(t testing.TB, cfg peer.Config, setup func(*peer.Node)) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n, err := peer.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("start node: %v", err)
	}
	if setup != nil {
		setup(n)
	}
	r := &Running{Node: n, Home: cfg.Home, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- n.Run(ctx) }()
	t.Cleanup(func() { r.Stop(t) })
	// Tests talk to the node at once: wait until its handlers are in place,
	// or a stream opened in the first milliseconds finds no protocol.
	if c := n.Chat(); c != nil {
		select {
		case <-c.Started():
		case err := <-r.done:
			r.done <- err
		case <-time.After(30 * time.Second):
			t.Fatal("node did not start its chat service within 30s")
		}
	}
	if rs := n.Rooms(); rs != nil {
		select {
		case <-rs.Started():
		case err := <-r.done:
			r.done <- err
		case <-time.After(30 * time.Second):
			t.Fatal("node did not start its room service within 30s")
		}
	}
	return r
}

// Eventually polls cond every 20ms until it holds or the deadline passes.
// Tests use it only for state that has no event to wait on (routing tables).
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
