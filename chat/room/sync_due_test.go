package room

import (
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestSyncInterval(t *testing.T) {
	for range 1000 {
		if d := syncInterval(); d < syncEvery-syncJitter || d >= syncEvery+syncJitter {
			t.Fatalf("interval %v outside %v ± %v", d, syncEvery, syncJitter)
		}
	}
}

// A private room skips the periodic sync only while nothing suggests it
// misses messages, and never for syncFloor.
func TestSyncDue(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	s := &Service{now: func() time.Time { return now }}
	r := &room{}
	if !s.syncDue(r, now) {
		t.Fatal("a room that never synced should sync")
	}
	s.synced(r, 0, nil)
	if s.syncDue(r, now.Add(syncEvery)) {
		t.Fatal("a quiet room synced a minute ago should skip")
	}
	if !s.syncDue(r, now.Add(syncFloor)) {
		t.Fatal("a room should sync at least every syncFloor")
	}
	if !s.syncDue(&room{public: true}, now) {
		t.Fatal("a public room always syncs")
	}

	for name, mark := range map[string]func(){
		"failed sync":    func() { s.synced(r, 0, errors.New("unreachable")) },
		"messages found": func() { s.synced(r, 3, nil) },
		"generation gap": func() {
			sawGeneration(r, 2, "alice", 0)
			sawGeneration(r, 2, "alice", 1)
			sawGeneration(r, 2, "alice", 3)
		},
	} {
		t.Run(name, func(t *testing.T) {
			s.synced(r, 0, nil)
			mark()
			if !s.syncDue(r, now.Add(syncEvery)) {
				t.Fatal("should sync")
			}
		})
	}

	// In order, late ones and new chains are no gap.
	s.synced(r, 0, nil)
	r.nextGen = nil
	for _, m := range []struct {
		epoch  uint64
		author peer.ID
		gen    uint32
	}{{3, "bob", 0}, {3, "bob", 1}, {3, "carol", 7}, {4, "bob", 0}, {3, "bob", 2}, {3, "carol", 8}, {3, "carol", 8}} {
		sawGeneration(r, m.epoch, m.author, m.gen)
	}
	if s.syncDue(r, now.Add(syncEvery)) {
		t.Fatal("no gap, yet the room is suspect")
	}
}
