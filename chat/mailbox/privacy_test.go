package mailbox_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	_ "modernc.org/sqlite"

	"github.com/parley-im/parley/chat/store"
)

// TestOperatorLearnsNoContentNorSender deposits through a bootstrap
// mailbox, then opens the operator's SQLite file and looks in every column
// of every row for the plaintext and for alice's peer ID (binary and text).
func TestOperatorLearnsNoContentNorSender(t *testing.T) {
	const n = 5
	tn := newNet(t, 1, true)
	m := tn.mailboxes[0]
	alice := tn.alice.Host().ID()
	tn.sendOffline(n)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(m.Home, store.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := must(queryStrings(db, "SELECT name FROM sqlite_master WHERE type = 'table'"))
	needles := [][]byte{[]byte("offline "), []byte(alice), []byte(alice.String())}
	items := 0
	for _, table := range tables {
		if strings.HasPrefix(table, "sqlite_") || strings.HasPrefix(table, "messages_fts") {
			continue
		}
		rows, err := db.Query("SELECT * FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			if table == "mailbox_items" {
				items++
			}
			for i, v := range vals {
				b := []byte(fmt.Sprint(v))
				if bb, ok := v.([]byte); ok {
					b = bb
				}
				for _, needle := range needles {
					if bytes.Contains(b, needle) {
						if table == "addrbook" && i == 0 {
							// The discovery address book lists peers the node
							// connected to; no mailbox table refers to it.
							continue
						}
						t.Errorf("table %s column %s holds %q", table, cols[i], needle)
					}
				}
			}
		}
		rows.Close()
	}
	if items != n {
		t.Fatalf("operator database holds %d items, want %d", items, n)
	}
}

func queryStrings(db *sql.DB, q string) ([]string, error) {
	rows, err := db.Query(q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// TestMailboxNeverSeesSender records the remote peer of every stream the
// mailbox accepts while alice deposits 5 frames for bob, and checks that
// alice's peer ID is never among them: deposits come from throwaway
// identities, one per deposit round.
func TestMailboxNeverSeesSender(t *testing.T) {
	const n = 5
	tn := newNet(t, 1, false)
	m := tn.mailboxes[0]
	var (
		mu   sync.Mutex
		seen = map[peer.ID]int{}
	)
	m.Mailbox().OnStream(func(p peer.ID) {
		mu.Lock()
		seen[p]++
		mu.Unlock()
	})
	alice, bob := tn.alice.Host().ID(), tn.bob.Host().ID()
	tn.sendOffline(n)

	mu.Lock()
	defer mu.Unlock()
	if seen[alice] > 0 {
		t.Fatalf("the mailbox saw alice's peer ID on %d streams", seen[alice])
	}
	deposits := 0
	for p, k := range seen {
		if p != bob && p != m.Host().ID() {
			deposits += k
		}
	}
	if deposits < n {
		t.Fatalf("the mailbox saw %d streams from throwaway identities, want at least %d (seen: %v)", deposits, n, seen)
	}
}
