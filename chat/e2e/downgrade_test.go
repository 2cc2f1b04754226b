package e2e

import (
	"bytes"
	"errors"
	"testing"
)

// TestDowngradeRefusedOnceSpoken: a contact that has set up a PQXDH
// session with us (either way), or that we marked with RequirePostQuantum
// (added from a version 2 link), never gets X3DH again: a version 1 bundle
// is refused by Initiate and a type 2 prekey message by Decrypt, each with
// ErrDowngrade and no state change, also after a reload. Positive control:
// a contact never seen speaking PQXDH still gets X3DH both ways.
func TestDowngradeRefusedOnceSpoken(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)

	// Positive control: before any PQXDH session, X3DH works both ways.
	var fresh Channel
	v1, err := b.ks.Bundle(b.id, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.Initiate(a.id, a.ks, b.pub, v1, a.rnd, t0); err != nil {
		t.Fatalf("positive control: X3DH with a new contact: %v", err)
	}
	x3dh, err := fresh.Encrypt(a.id, a.ks, []byte("classical"), a.rnd, t0)
	if err != nil {
		t.Fatal(err)
	}

	a.initiatePQ(t, b, t0)
	b.recv(t, a, a.send(t, "pq hello", t0), "pq hello", t0)
	for _, p := range []*party{a, b} {
		p.reload(t)
		if !p.ch.PostQuantumRequired() {
			t.Fatal("a PQXDH session did not make the contact PQXDH-only")
		}
	}

	// Initiator side: a version 1 bundle from b is refused.
	v1, err = b.ks.Bundle(b.id, t0)
	if err != nil {
		t.Fatal(err)
	}
	snap := a.snapshot(t)
	if err := a.ch.Initiate(a.id, a.ks, b.pub, v1, a.rnd, t0); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("Initiate with a version 1 bundle = %v, want ErrDowngrade", err)
	}
	if !bytes.Equal(snap, a.snapshot(t)) || !a.ch.PostQuantum() {
		t.Fatal("a refused downgrade changed the initiator's state")
	}

	// Responder side: a type 2 prekey message from a is refused.
	snap = b.snapshot(t)
	if _, err := b.ch.Decrypt(b.id, b.ks, a.pub, x3dh, b.rnd, t0); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("Decrypt of a type 2 prekey message = %v, want ErrDowngrade", err)
	}
	if !bytes.Equal(snap, b.snapshot(t)) || !b.ch.PostQuantum() {
		t.Fatal("a refused downgrade changed the responder's state")
	}

	// A version 2 bundle still starts a new session (positive control).
	a.initiatePQ(t, b, t0)
	b.recv(t, a, a.send(t, "new pq session", t0), "new pq session", t0)

	// RequirePostQuantum, without any session: only PQXDH is accepted.
	c := newParty(t, 3)
	var ch Channel
	ch.RequirePostQuantum()
	blob, err := ch.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.UnmarshalBinary(blob); err != nil || !ch.PostQuantumRequired() {
		t.Fatalf("RequirePostQuantum does not survive the encoding: %v", err)
	}
	v1, _ = b.ks.Bundle(b.id, t0)
	if err := ch.Initiate(c.id, c.ks, b.pub, v1, c.rnd, t0); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("RequirePostQuantum: version 1 bundle: %v", err)
	}
	v2, _ := b.ks.BundlePQ(b.id, t0)
	if err := ch.Initiate(c.id, c.ks, b.pub, v2, c.rnd, t0); err != nil || !ch.PostQuantum() {
		t.Fatalf("RequirePostQuantum: version 2 bundle: %v", err)
	}
}
