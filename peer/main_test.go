package peer_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// node a test starts must stop everything it started. Run with
// PARLEY_IDLE_HELPER set, the binary is BenchmarkIdleNode's helper instead.
func TestMain(m *testing.M) {
	if kind := os.Getenv(idleHelperEnv); kind != "" {
		os.Exit(idleHelper(kind))
	}
	goleak.VerifyTestMain(m)
}
