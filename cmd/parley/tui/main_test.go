package tui

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: the
// event pump, backend calls and the program's own loops must all end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
