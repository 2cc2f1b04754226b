package e2e

import (
	"bytes"
	"crypto/ed25519"
	"io"
	mrand "math/rand/v2"
	"testing"
	"time"
)

// t0 is the start of every test clock.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// detRand returns a deterministic randomness source.
func detRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

// party is one side of a conversation.
type party struct {
	id  ed25519.PrivateKey
	pub ed25519.PublicKey
	ks  *KeyStore
	ch  Channel
	rnd io.Reader
}

func newParty(t testing.TB, seed byte) *party {
	t.Helper()
	rnd := detRand(seed)
	var s [32]byte
	rnd.Read(s[:])
	id := ed25519.NewKeyFromSeed(s[:])
	ks, err := NewKeyStore(id, rnd, t0)
	if err != nil {
		t.Fatal(err)
	}
	return &party{id: id, pub: id.Public().(ed25519.PublicKey), ks: ks, rnd: rnd}
}

// initiate makes p start a session with q from a fresh bundle of q.
func (p *party) initiate(t testing.TB, q *party, now time.Time) {
	t.Helper()
	b, err := q.ks.Bundle(q.id, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ch.Initiate(p.id, p.ks, q.pub, b, p.rnd, now); err != nil {
		t.Fatal(err)
	}
}

func (p *party) send(t testing.TB, msg string, now time.Time) []byte {
	t.Helper()
	env, err := p.ch.Encrypt(p.id, p.ks, []byte(msg), p.rnd, now)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (p *party) recv(t testing.TB, from *party, env []byte, want string, now time.Time) {
	t.Helper()
	got, err := p.ch.Decrypt(p.id, p.ks, from.pub, env, p.rnd, now)
	if err != nil {
		t.Fatalf("decrypt %q: %v", want, err)
	}
	if string(got) != want {
		t.Fatalf("decrypted %q, want %q", got, want)
	}
}

// snapshot encodes the channel and key store, to check that a failed
// operation changed neither.
func (p *party) snapshot(t testing.TB) []byte {
	t.Helper()
	c, err := p.ch.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	k, err := p.ks.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return append(c, k...)
}

// reload round-trips the channel and key store through their encodings.
func (p *party) reload(t testing.TB) {
	t.Helper()
	c, err := p.ch.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var ch Channel
	if err := ch.UnmarshalBinary(c); err != nil {
		t.Fatal(err)
	}
	c2, _ := ch.MarshalBinary()
	if !bytes.Equal(c, c2) {
		t.Fatal("channel encoding does not round-trip")
	}
	p.ch = ch
	k, err := p.ks.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ks := new(KeyStore)
	if err := ks.UnmarshalBinary(k); err != nil {
		t.Fatal(err)
	}
	p.ks = ks
}
