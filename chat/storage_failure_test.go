package chat_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// TestStorageFailure makes each side's database refuse writes in turn
// (PRAGMA query_only on the node's single connection):
//   - the receiver cannot commit: it answers RETRY_LATER, the sender keeps
//     the message pending, and it is delivered once storage works again;
//   - the sender cannot commit: Send fails with a clear error and nothing is
//     half-stored.
//
// Both nodes keep serving throughout and no message is lost or doubled.
func TestStorageFailure(t *testing.T) {
	alice, bob := pair(t)
	ctx := context.Background()
	aev, cancelA := alice.Chat().Subscribe()
	defer cancelA()
	bev, cancelB := bob.Chat().Subscribe()
	defer cancelB()
	first := send(t, alice, "bob", "before the failure")
	waitFor(t, aev, "first delivered", delivered(first.ID))

	// The receiver's storage fails.
	if _, err := bob.DB().SQL().ExecContext(ctx, "PRAGMA query_only = 1"); err != nil {
		t.Fatal(err)
	}
	m := send(t, alice, "bob", "while bob's disk fails")
	// Wait until alice's deliverer has tried and bob refused: alice's
	// outbox still holds the frame and its state is still pending.
	peertest.Eventually(t, 30*time.Second, "bob to answer retry-later", func() bool { return alice.Chat().Stats().RetryLater > 0 })
	if l, _ := alice.Chat().Log(ctx, "bob", 1); l[0].State != apitype.StatePending {
		t.Fatalf("message state %s while bob cannot store it", l[0].State)
	}
	if _, err := bob.DB().SQL().ExecContext(ctx, "PRAGMA query_only = 0"); err != nil {
		t.Fatal(err)
	}
	got := waitFor(t, bev, "bob receives after recovery", received(m.ID))
	if got.Message.Text != "while bob's disk fails" {
		t.Fatalf("bob got %q", got.Message.Text)
	}
	waitFor(t, aev, "delivered after recovery", delivered(m.ID))

	// The sender's storage fails.
	if _, err := alice.DB().SQL().ExecContext(ctx, "PRAGMA query_only = 1"); err != nil {
		t.Fatal(err)
	}
	_, err := alice.Chat().Send(ctx, "bob", "cannot be stored")
	if err == nil || !strings.Contains(err.Error(), "store message") {
		t.Fatalf("Send with failing storage: err = %v, want a storage error", err)
	}
	if _, err := alice.DB().SQL().ExecContext(ctx, "PRAGMA query_only = 0"); err != nil {
		t.Fatal(err)
	}
	log, err := alice.Chat().Log(ctx, "bob", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 || log[0].ID != first.ID || log[1].ID != m.ID {
		t.Fatalf("alice's history after the failures: %+v", log)
	}
	after := send(t, alice, "bob", "after both failures")
	waitFor(t, aev, "delivered after both failures", delivered(after.ID))
	blog, _ := bob.Chat().Log(ctx, "alice", 0)
	if len(blog) != 3 {
		t.Fatalf("bob holds %d messages, want 3", len(blog))
	}
}
