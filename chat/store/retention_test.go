package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-im/parley/chat/store"
)

// TestSeenFramesKeyedByPeer: the same frame id from two peers is two
// rows: one peer's ids cannot make another's frames look like duplicates.
func TestSeenFramesKeyedByPeer(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id := make([]byte, 16)
	for _, p := range []string{"alice", "carol", "alice"} {
		if _, err := db.SQL().Exec("INSERT INTO seen_frames(frame_id, peer_id, at) VALUES(?, ?, ?) ON CONFLICT DO NOTHING", id, p, 1); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.SQL().QueryRow("SELECT count(*) FROM seen_frames").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d rows for one frame id from two peers (one twice), want 2", n)
	}
}

// TestPruneRetention: old frame ids and stale or excess address-book
// entries go; recent ones and contacts' entries stay.
func TestPruneRetention(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	old := now.Add(-store.SeenFramesRetention - time.Hour).UnixMilli()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.SQL().Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec("INSERT INTO seen_frames(frame_id, peer_id, at) VALUES(?, 'p', ?)", []byte("old-frame-id-000"), old)
	exec("INSERT INTO seen_frames(frame_id, peer_id, at) VALUES(?, 'p', ?)", []byte("new-frame-id-000"), now.UnixMilli())
	stale := now.Add(-store.AddrBookRetention - time.Hour).UnixMilli()
	exec("INSERT INTO contacts(peer_id, name, added_at) VALUES('friend', 'friend', 0)")
	exec("INSERT INTO addrbook(peer_id, addrs, last_seen) VALUES('friend', '/ip4/1.2.3.4/tcp/1', ?)", stale)
	exec("INSERT INTO addrbook(peer_id, addrs, last_seen) VALUES('stranger', '/ip4/1.2.3.4/tcp/1', ?)", stale)
	for i := range store.MaxAddrBook + 10 {
		exec("INSERT INTO addrbook(peer_id, addrs, last_seen) VALUES(?, '/ip4/1.2.3.4/tcp/1', ?)", fmt.Sprintf("p%05d", i), now.UnixMilli()-int64(i))
	}
	st, err := db.Prune(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.SeenFrames != 1 || st.AddrBook != 11 {
		t.Fatalf("pruned %+v, want 1 frame id and 11 address-book entries", st)
	}
	count := func(q string) int {
		var n int
		if err := db.SQL().QueryRow(q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count("SELECT count(*) FROM seen_frames WHERE at = "+fmt.Sprint(now.UnixMilli())) != 1 {
		t.Fatal("a recent frame id was pruned")
	}
	if count("SELECT count(*) FROM addrbook WHERE peer_id = 'friend'") != 1 {
		t.Fatal("a contact's address was pruned")
	}
	if count("SELECT count(*) FROM addrbook WHERE peer_id = 'stranger'") != 0 {
		t.Fatal("a stale stranger's address was kept")
	}
	if n := count("SELECT count(*) FROM addrbook WHERE peer_id != 'friend'"); n != store.MaxAddrBook {
		t.Fatalf("%d strangers kept, want %d", n, store.MaxAddrBook)
	}
	if count("SELECT count(*) FROM addrbook WHERE peer_id = 'p00000'") != 1 {
		t.Fatal("the most recently seen stranger was pruned")
	}
}
