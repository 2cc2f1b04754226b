package group

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestRestoreChain: an epoch restored from an old full state plus the chain
// state saved after a message opens what follows and refuses the message
// already opened; a chain state older than the epoch's is refused (it would
// make a used key usable again).
func TestRestoreChain(t *testing.T) {
	now := time.Now()
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	self, _ := peer.IDFromPrivateKey(key)
	kp, _, err := NewKeyPackage(key, now)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := NewRoomID()
	_, e, err := Create(id, key, kp, now)
	if err != nil {
		t.Fatal(err)
	}
	full, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	old, err := e.MarshalChain(self)
	if err != nil {
		t.Fatal(err)
	}
	msgID := make([]byte, IDSize)
	if _, err := e.Seal(self, msgID, uint64(now.UnixMilli())<<16, []byte("one")); err != nil {
		t.Fatal(err)
	}
	moved, err := e.MarshalChain(self)
	if err != nil {
		t.Fatal(err)
	}
	restored, err := UnmarshalEpoch(full)
	if err != nil {
		t.Fatal(err)
	}
	if err := restored.RestoreChain(moved); err != nil {
		t.Fatalf("control: restore the moved chain: %v", err)
	}
	// The restored epoch seals at the next generation, never the used one.
	m, err := restored.Seal(self, msgID, uint64(now.UnixMilli())<<16+1, []byte("two"))
	if err != nil || m.Generation != 1 {
		t.Fatalf("seal after restore: generation %d, %v; want 1", m.GetGeneration(), err)
	}
	if err := restored.RestoreChain(old); err == nil {
		t.Fatal("a chain state behind the epoch's was restored")
	}
	if err := restored.RestoreChain([]byte("junk")); err == nil {
		t.Fatal("a malformed chain state was restored")
	}
}
