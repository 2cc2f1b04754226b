package mailbox

import (
	"context"
	"encoding/hex"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/chat/store"
)

// TestLinkSecretRotates bounds what a leaked link costs: the link secret
// it carries (with which anyone holding the link can fill the link tag's
// quota and read who writes first messages) is replaced in new links after
// LinkSecretRotation and no longer drained linkSecretDrain after it was
// made. Positive control: a secret is handed out unchanged within its
// period and drained, with the newer one, until then.
func TestLinkSecretRotates(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := &Service{db: db, log: slog.Default(), now: func() time.Time { return now }}
	link := func() Secret {
		t.Helper()
		_, sec, err := s.LinkMailboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return sec
	}
	drained := func(sec Secret) bool {
		for _, o := range s.linkOwners(ctx) {
			if o.secret == sec && o.peer == "" {
				return true
			}
		}
		return false
	}

	first := link()
	now = now.Add(LinkSecretRotation - time.Hour)
	if link() != first {
		t.Fatal("the link secret changed within its period")
	}
	now = now.Add(time.Hour)
	second := link()
	if second == first {
		t.Fatal("a leaked link's secret is still handed out after LinkSecretRotation")
	}
	if !drained(first) || !drained(second) {
		t.Fatal("positive control: the secrets of usable links are not drained")
	}
	now = now.Add(linkSecretDrain - LinkSecretRotation)
	if drained(first) {
		t.Fatalf("a leaked link's secret is still drained %v after it was made", linkSecretDrain)
	}
	if !drained(second) {
		t.Fatal("the newer secret stopped being drained early")
	}

	// A secret stored before rotation (bare hex) is kept, dated, and
	// rotated like any other.
	var old Secret
	old[0] = 7
	if err := db.SetMeta(ctx, metaLinkSecret, hex.EncodeToString(old[:])); err != nil {
		t.Fatal(err)
	}
	if link() != old {
		t.Fatal("the secret from before rotation was not kept")
	}
	if v, _, _ := db.GetMeta(ctx, metaLinkSecret); !strings.Contains(v, ":") {
		t.Fatalf("the secret from before rotation was not dated: %q", v)
	}
	now = now.Add(LinkSecretRotation)
	if link() == old {
		t.Fatal("the secret from before rotation never rotates")
	}
}
