package peer_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/peertest"
)

func TestMetrics(t *testing.T) {
	cfg := peertest.Config(t, peertest.Home(t))
	cfg.MetricsAddr = "127.0.0.1:0"
	n := peertest.Start(t, cfg, nil)
	resp, err := http.Get("http://" + n.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "go_goroutines") {
		t.Fatalf("metrics: %s\n%.300s", resp.Status, body)
	}
}

func TestMetricsBadAddress(t *testing.T) {
	cfg := peertest.Config(t, peertest.Home(t))
	cfg.MetricsAddr = "not an address"
	if _, err := peer.New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "metrics address") {
		t.Fatalf("err = %v, want a metrics address error", err)
	}
}
