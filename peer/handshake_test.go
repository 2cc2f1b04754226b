package peer_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/peer/peertest"
)

// lineWriter hands each log line to a channel (dropping lines nobody
// waits for).
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	select {
	case w <- string(p):
	default:
	}
	return len(p), nil
}

// TestWrongNetworkKeyNamed: a node started with another network's key
// than its bootstrap peer logs the failed handshake as such, and an
// explicit connect reports ErrHandshake instead of "dial backoff".
func TestWrongNetworkKeyNamed(t *testing.T) {
	a := startPrivate(t, newSwarmKeyFile(t), "")
	logs := make(lineWriter, 256)
	cfg := peertest.Config(t, peertest.Home(t), a.Addr())
	cfg.SwarmKey = newSwarmKeyFile(t)
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b := peertest.Start(t, cfg, nil)

	timeout := time.After(60 * time.Second)
	for found := false; !found; {
		select {
		case l := <-logs:
			found = strings.Contains(l, "level=WARN") && strings.Contains(l, "handshake failed: the peer is on another network") &&
				strings.Contains(l, a.Host().ID().String())
		case <-timeout:
			t.Fatal("no log line names the failed handshake with the bootstrap peer")
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := b.Connect(ctx, a.Addr())
	if !errors.Is(err, discovery.ErrHandshake) {
		t.Fatalf("Connect across networks: %v, want ErrHandshake", err)
	}
	if strings.Contains(err.Error(), "dial backoff") {
		t.Errorf("the error hides behind the dial backoff: %v", err)
	}

	// Positive control: a node with the right key connects.
	c := startPrivate(t, cfg.SwarmKey, "")
	if _, err := b.Connect(ctx, c.Addr()); err != nil {
		t.Fatalf("Connect within the network: %v", err)
	}
}
