package room

import (
	"crypto/rand"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestLogIndex: an unloaded index answers "maybe" to everything (the
// database decides); a loaded one never answers "no" for a key it was
// given, across its growth, and rarely "maybe" for one it was not.
func TestLogIndex(t *testing.T) {
	var x logIndex
	authors := []peer.ID{"alice", "bob", "carol"}
	id := func() []byte {
		b := make([]byte, 16)
		rand.Read(b)
		return b
	}
	if !x.mayHold(authors[0], id()) {
		t.Fatal("an unloaded index said no")
	}
	type key struct {
		a  peer.ID
		id []byte
	}
	var (
		added  []key
		logged []logHash
	)
	for i := range 100 { // in the log when it loads
		k := key{authors[i%3], id()}
		h1, h2 := logKeyHash(k.a, k.id)
		logged = append(logged, logHash{h1, h2})
		added = append(added, k)
	}
	for i := range 100 { // stored while it loads
		k := key{authors[i%3], id()}
		x.add(k.a, k.id)
		added = append(added, k)
	}
	x.load(logged)
	const n = 5 * bloomMinKeys // several filters
	for i := range n {
		k := key{authors[i%3], id()}
		x.add(k.a, k.id)
		added = append(added, k)
	}
	if len(x.blooms) < 3 {
		t.Errorf("%d filters for %d keys, want growth", len(x.blooms), n)
	}
	for _, k := range added {
		if !x.mayHold(k.a, k.id) {
			t.Fatalf("a key it was given: %s %x", k.a, k.id)
		}
	}
	// The same id under another author is another message.
	k := added[len(added)-1]
	other := peer.ID("mallory")
	falsePos := 0
	for i := range n {
		a := other
		msg := id()
		if i == 0 {
			msg = k.id
		}
		if x.mayHold(a, msg) {
			falsePos++
		}
	}
	if rate := float64(falsePos) / n; rate > 0.03 {
		t.Errorf("false maybe rate %.3f", rate)
	}
}
