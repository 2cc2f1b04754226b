package peer_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// node a test starts must stop everything it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
