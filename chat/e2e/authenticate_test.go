package e2e

import (
	"bytes"
	"errors"
	"testing"
)

// TestAuthenticateChangesNothing: Authenticate refuses a first message
// whose PQXDH header names another peer than its author, accepts the
// honest one (positive control), and in both cases leaves the channel and
// the key store as they were: the one-time KEM prekey is consumed only by
// the Decrypt that follows.
func TestAuthenticateChangesNothing(t *testing.T) {
	a, b, victim := newParty(t, 1), newParty(t, 2), newParty(t, 3)
	bundle := a.initiatePQ(t, b, t0)
	if bundle.KEMPrekeyLastResort {
		t.Fatal("want a one-time KEM prekey")
	}
	env := a.send(t, "hello", t0)
	// a rewrites the initiator field to claim the message is victim's.
	forged := bytes.Clone(env)
	copy(forged[2+prekeyHeaderSize:], victim.pub)

	snap := b.snapshot(t)
	if err := b.ch.Authenticate(b.id, b.ks, victim.pub, forged, t0); err == nil {
		t.Fatal("a message naming another initiator authenticated")
	}
	if err := b.ch.Authenticate(b.id, b.ks, victim.pub, env, t0); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("a's message authenticated as victim's: %v", err)
	}
	if err := b.ch.Authenticate(b.id, b.ks, a.pub, env, t0); err != nil {
		t.Fatalf("positive control: %v", err)
	}
	if !bytes.Equal(snap, b.snapshot(t)) {
		t.Fatal("Authenticate changed the channel or the key store")
	}
	before, _ := b.ks.KEMPrekeyCounts()
	n := len(b.ks.okps)
	b.recv(t, a, env, "hello", t0)
	if len(b.ks.okps) != n-1 {
		t.Fatalf("Decrypt after Authenticate did not consume the one-time KEM prekey (%d -> %d)", n, len(b.ks.okps))
	}
	if after, _ := b.ks.KEMPrekeyCounts(); after != before {
		t.Fatalf("unissued one-time KEM prekeys %d -> %d", before, after)
	}
	// A second first message on the same pending session names the same,
	// now consumed, one-time KEM prekey: it still authenticates, on the
	// session the first one set up.
	env2 := a.send(t, "again", t0)
	if err := b.ch.Authenticate(b.id, b.ks, a.pub, env2, t0); err != nil {
		t.Fatalf("second prekey message of the same session: %v", err)
	}
	b.recv(t, a, env2, "again", t0)
	// A replay of the first one after it was decrypted is refused.
	if err := b.ch.Authenticate(b.id, b.ks, a.pub, env, t0); err == nil {
		t.Fatal("a replayed first message authenticated")
	}
}

// BenchmarkAuthenticateForged measures what the inviter spends on one
// forged first message from its link mailbox, in the worst case: a header
// its author could make (its own identity, the link's last-resort KEM
// prekey) and a ciphertext that fails only at the AEAD, after the
// signature check, the X25519 DHs and the ML-KEM-768 decapsulation.
func BenchmarkAuthenticateForged(b *testing.B) {
	x, y := newParty(b, 1), newParty(b, 2)
	lb, err := y.ks.LinkBundle(y.id, t0)
	if err != nil {
		b.Fatal(err)
	}
	if err := x.ch.Initiate(x.id, x.ks, y.pub, lb, x.rnd, t0); err != nil {
		b.Fatal(err)
	}
	env := x.send(b, "hello", t0)
	env[len(env)-1] ^= 1
	b.ReportAllocs()
	for b.Loop() {
		if err := y.ch.Authenticate(y.id, y.ks, x.pub, env, t0); !errors.Is(err, ErrAuthFailed) {
			b.Fatalf("forged message: %v", err)
		}
	}
}

// TestLinkFirstMessageReplay: a first message made from a link's bundle
// uses no one-time prekey, so nothing is consumed when it is accepted.
// Replayed after its channel is gone (the contact removed, the request
// declined; anyone holding the link can fetch and re-deposit it), it must
// not set up its session again. Positive control: another first message
// from the same link is accepted, and the key store survives its encoding
// with what it remembers.
func TestLinkFirstMessageReplay(t *testing.T) {
	a, b, c := newParty(t, 1), newParty(t, 2), newParty(t, 3)
	lb, err := b.ks.LinkBundle(b.id, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ch.Initiate(a.id, a.ks, b.pub, lb, a.rnd, t0); err != nil {
		t.Fatal(err)
	}
	first := a.send(t, "hello from the link", t0)
	b.recv(t, a, first, "hello from the link", t0)
	b.reload(t)

	b.ch = Channel{} // b removes a: the channel and its seen base keys go
	snap := b.snapshot(t)
	if _, err := b.ch.Decrypt(b.id, b.ks, a.pub, first, b.rnd, t0); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed link first message: %v, want ErrReplay", err)
	}
	if !bytes.Equal(snap, b.snapshot(t)) || b.ch.HasSession() {
		t.Fatal("a refused replay changed the state")
	}

	if err := c.ch.Initiate(c.id, c.ks, b.pub, lb, c.rnd, t0); err != nil {
		t.Fatal(err)
	}
	var bc Channel
	got, err := bc.Decrypt(b.id, b.ks, c.pub, c.send(t, "another", t0), b.rnd, t0)
	if err != nil || string(got) != "another" {
		t.Fatalf("positive control: %q, %v", got, err)
	}
	// Once the signed prekey the replay names is gone, it is forgotten (a
	// replay then fails as a stale bundle).
	later := t0.Add(SignedPrekeyMaxAge + SignedPrekeyRotation)
	for now := t0; !now.After(later); now = now.Add(SignedPrekeyRotation) {
		if _, err := b.ks.Maintain(b.id, b.rnd, now); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.ks.spent) != 0 {
		t.Fatalf("%d spent base keys kept after their signed prekey went", len(b.ks.spent))
	}
	if _, err := b.ch.Decrypt(b.id, b.ks, a.pub, first, b.rnd, later); err == nil {
		t.Fatal("replay accepted after the signed prekey went")
	}
}
