package chat

import (
	"testing"
	"time"
)

// TestDelivererBackoff checks that the backoff grows with the automatic
// retries, not with the attempts that kicks start while it runs: a burst of
// sends to a peer that is down for a moment must not push the next
// automatic retry minutes away (TestCrashDurability stalled on that).
func TestDelivererBackoff(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name     string
		failures []time.Duration // when each attempt failed, from t0
		want     time.Duration
	}{
		{"first failure", []time.Duration{0}, minBackoff},
		{"burst of kicked attempts", []time.Duration{0, time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond, time.Second, 1999 * time.Millisecond}, minBackoff},
		{"automatic retries double it", []time.Duration{0, 2 * time.Second, 6 * time.Second, 14 * time.Second}, 8 * minBackoff},
		{"kicks between retries", []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second}, 2 * minBackoff},
		{"capped", []time.Duration{0, time.Hour, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 5 * time.Hour, 6 * time.Hour, 7 * time.Hour, 8 * time.Hour, 9 * time.Hour}, maxBackoff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d deliverer
			for _, at := range tt.failures {
				d.failed(t0.Add(at))
			}
			if d.backoff != tt.want {
				t.Errorf("backoff = %v, want %v", d.backoff, tt.want)
			}
			last := tt.failures[len(tt.failures)-1]
			if !d.next.After(t0.Add(last)) {
				t.Errorf("next retry %v is not after the last failure", d.next.Sub(t0))
			}
		})
	}
}
