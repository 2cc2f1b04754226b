package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestMigrateAndMeta(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("database mode: %v, %v", st.Mode(), err)
	}
	v, err := db.Version(ctx)
	if err != nil || v != len(migrations) {
		t.Fatalf("version = %d, %v", v, err)
	}
	if _, ok, _ := db.GetMeta(ctx, "x"); ok {
		t.Fatal("unset meta reported as set")
	}
	if err := db.SetMeta(ctx, "x", "1"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMeta(ctx, "x", "2"); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := db.GetMeta(ctx, "x"); got != "2" || !ok || err != nil {
		t.Fatalf("GetMeta = %q %v %v", got, ok, err)
	}
}

// TestNewerVersionRefused opens a database whose schema is newer than this
// binary: Open must fail with ErrNewerVersion and leave the file alone.
func TestNewerVersionRefused(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	if _, err := db.SQL().ExecContext(ctx, "PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(ctx, path)
	if !errors.Is(err, ErrNewerVersion) {
		t.Fatalf("err = %v, want ErrNewerVersion", err)
	}
}

func TestGarbageFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	garbage := []byte("this is not an sqlite database, not even close.........................................................")
	os.WriteFile(path, garbage, 0o600)
	if _, err := Open(context.Background(), path); err == nil {
		t.Fatal("garbage database opened")
	}
	got, _ := os.ReadFile(path)
	if string(got) != string(garbage) {
		t.Fatal("garbage file was modified")
	}
}

func TestAddressBook(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	id, _ := peer.Decode("12D3KooWLr1gYejUTeriAsSu6roR2aQ423G3Q4fFTqzqSwTsMz9n")
	a := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	if err := db.RememberPeer(ctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{a}}, time.UnixMilli(1000)); err != nil {
		t.Fatal(err)
	}
	sp, ok, err := db.LookupPeer(ctx, id)
	if err != nil || !ok || len(sp.Info.Addrs) != 1 || !sp.Info.Addrs[0].Equal(a) || sp.LastSeen.UnixMilli() != 1000 {
		t.Fatalf("LookupPeer = %+v %v %v", sp, ok, err)
	}
	recent, err := db.RecentPeers(ctx, 10)
	if err != nil || len(recent) != 1 {
		t.Fatalf("RecentPeers = %v %v", recent, err)
	}
}

// TestOpenReadOnly checks that a read-only handle reads what the writer
// committed, refuses every write, and shares the file with a live writer.
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	if _, err := OpenReadOnly(ctx, path); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("OpenReadOnly of a missing file: %v, want ErrNoDatabase", err)
	}
	w, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetMeta(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	// With the writer open (its WAL and shared memory live).
	r, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := r.GetMeta(ctx, "k"); err != nil || !ok || v != "v1" {
		t.Fatalf("GetMeta = %q, %v, %v; want v1", v, ok, err)
	}
	if err := r.SetMeta(ctx, "k", "x"); err == nil {
		t.Fatal("a write through the read-only handle succeeded")
	}
	if err := w.SetMeta(ctx, "k", "v2"); err != nil {
		t.Fatalf("the writer cannot write while a reader is open: %v", err)
	}
	if v, _, _ := r.GetMeta(ctx, "k"); v != "v2" {
		t.Fatalf("reader sees %q after the writer's commit, want v2", v)
	}
	r.Close()
	// After the writer closed (WAL checkpointed and removed).
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly with no writer: %v", err)
	}
	defer r.Close()
	if v, _, err := r.GetMeta(ctx, "k"); err != nil || v != "v2" {
		t.Fatalf("GetMeta with no writer = %q, %v; want v2", v, err)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Log("reader left a -wal file")
	}
}
