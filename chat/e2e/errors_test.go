package e2e

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

// established returns two parties with a confirmed session.
func established(t *testing.T) (a, b *party) {
	t.Helper()
	a, b = newParty(t, 1), newParty(t, 2)
	a.initiate(t, b, t0)
	b.recv(t, a, a.send(t, "hi", t0), "hi", t0)
	a.recv(t, b, b.send(t, "hi back", t0), "hi back", t0)
	return a, b
}

// mustFail decrypts env at p and checks the error and that neither the
// channel nor the key store changed.
func mustFail(t *testing.T, p, from *party, env []byte, want error, now time.Time) {
	t.Helper()
	snap := p.snapshot(t)
	_, err := p.ch.Decrypt(p.id, p.ks, from.pub, env, p.rnd, now)
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
	if !bytes.Equal(snap, p.snapshot(t)) {
		t.Fatal("failed decrypt changed the state")
	}
}

func TestDecryptErrors(t *testing.T) {
	flip := func(env []byte, i int) []byte {
		c := bytes.Clone(env)
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name string
		env  func(t *testing.T, a, b *party) []byte // a message from a to b
		want error
	}{
		{"replay", func(t *testing.T, a, b *party) []byte {
			e := a.send(t, "x", t0)
			b.recv(t, a, e, "x", t0)
			return e
		}, ErrReplay},
		{"replay of skipped", func(t *testing.T, a, b *party) []byte {
			e1 := a.send(t, "x", t0)
			b.recv(t, a, a.send(t, "y", t0), "y", t0)
			b.recv(t, a, e1, "x", t0)
			return e1
		}, ErrReplay},
		{"replay of finished chain", func(t *testing.T, a, b *party) []byte {
			e := a.send(t, "x", t0)
			b.recv(t, a, e, "x", t0)
			a.recv(t, b, b.send(t, "r", t0), "r", t0)
			b.recv(t, a, a.send(t, "z", t0), "z", t0)
			return e
		}, ErrReplay},
		{"gap too large", func(t *testing.T, a, b *party) []byte {
			for range MaxSkip + 1 {
				a.send(t, "lost", t0)
			}
			return a.send(t, "x", t0)
		}, ErrTooManySkipped},
		{"gap too large in new chain", func(t *testing.T, a, b *party) []byte {
			a.recv(t, b, b.send(t, "r", t0), "r", t0) // a steps its ratchet
			for range MaxSkip + 1 {
				a.send(t, "lost", t0)
			}
			return a.send(t, "x", t0)
		}, ErrTooManySkipped},
		{"tampered ratchet key", func(t *testing.T, a, b *party) []byte {
			return flip(a.send(t, "x", t0), 2)
		}, ErrAuthFailed},
		{"tampered counter", func(t *testing.T, a, b *party) []byte {
			return flip(a.send(t, "x", t0), 2+keySize+7)
		}, ErrAuthFailed},
		{"tampered previous counter", func(t *testing.T, a, b *party) []byte {
			return flip(a.send(t, "x", t0), 2+keySize+3)
		}, ErrAuthFailed},
		{"tampered ciphertext", func(t *testing.T, a, b *party) []byte {
			e := a.send(t, "x", t0)
			return flip(e, len(e)-tagSize-1)
		}, ErrAuthFailed},
		{"tampered tag", func(t *testing.T, a, b *party) []byte {
			e := a.send(t, "x", t0)
			return flip(e, len(e)-1)
		}, ErrAuthFailed},
		{"truncated tag", func(t *testing.T, a, b *party) []byte {
			e := a.send(t, "x", t0)
			return e[:len(e)-1]
		}, ErrAuthFailed},
		{"truncated header", func(t *testing.T, a, b *party) []byte {
			return a.send(t, "x", t0)[:2+headerSize]
		}, ErrMalformed},
		{"empty", func(t *testing.T, a, b *party) []byte { return nil }, ErrMalformed},
		{"unknown type", func(t *testing.T, a, b *party) []byte {
			e := a.send(t, "x", t0)
			e[1] = 9
			return e
		}, ErrMalformed},
		{"wrong version", func(t *testing.T, a, b *party) []byte {
			e := a.send(t, "x", t0)
			e[0] = 2
			return e
		}, ErrUnknownVersion},
		{"too large", func(t *testing.T, a, b *party) []byte {
			return make([]byte, MaxEnvelopeSize+1)
		}, ErrTooLarge},
		{"to the sender", func(t *testing.T, a, b *party) []byte {
			return b.send(t, "x", t0) // b decrypting its own message
		}, ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := established(t)
			env := tt.env(t, a, b)
			mustFail(t, b, a, env, tt.want, t0)
		})
	}
}

func TestPrekeyErrors(t *testing.T) {
	t.Run("tampered prekey header", func(t *testing.T) {
		a, b := newParty(t, 1), newParty(t, 2)
		a.initiate(t, b, t0)
		e := a.send(t, "x", t0)
		for _, i := range []int{2, 2 + 8, 2 + 8 + keySize, 2 + 8 + keySize + sigSize, 2 + 8 + 2*keySize + sigSize} {
			c := bytes.Clone(e)
			c[i] ^= 1
			snap := b.snapshot(t)
			if _, err := b.ch.Decrypt(b.id, b.ks, a.pub, c, b.rnd, t0); err == nil {
				t.Fatalf("tampered byte %d accepted", i)
			}
			if !bytes.Equal(snap, b.snapshot(t)) {
				t.Fatal("failed decrypt changed the state")
			}
		}
		b.recv(t, a, e, "x", t0)
	})
	t.Run("identity key signed by another key", func(t *testing.T) {
		a, b, m := newParty(t, 1), newParty(t, 2), newParty(t, 3)
		m.initiate(t, b, t0) // mallory's own keys, claimed as alice's
		mustFail(t, b, a, m.send(t, "x", t0), ErrBadSignature, t0)
	})
	t.Run("one-time prekey reuse", func(t *testing.T) {
		a, b := newParty(t, 1), newParty(t, 2)
		bundle, err := b.ks.Bundle(b.id, t0)
		if err != nil {
			t.Fatal(err)
		}
		a.ch.Initiate(a.id, a.ks, b.pub, bundle, a.rnd, t0)
		b.recv(t, a, a.send(t, "first", t0), "first", t0)
		// A second session from the same bundle names a consumed key.
		var a2 Channel
		if err := a2.Initiate(a.id, a.ks, b.pub, bundle, a.rnd, t0); err != nil {
			t.Fatal(err)
		}
		e, err := a2.Encrypt(a.id, a.ks, []byte("second"), a.rnd, t0)
		if err != nil {
			t.Fatal(err)
		}
		mustFail(t, b, a, e, ErrUnknownPrekey, t0)
	})
	t.Run("bundle never issues a one-time prekey twice", func(t *testing.T) {
		b := newParty(t, 2)
		seen := map[uint32]bool{}
		for range OneTimePrekeyTarget + 5 {
			bundle, err := b.ks.Bundle(b.id, t0)
			if err != nil {
				t.Fatal(err)
			}
			if !bundle.HasOneTimePrekey {
				continue
			}
			if seen[bundle.OneTimePrekeyID] {
				t.Fatalf("one-time prekey %d issued twice", bundle.OneTimePrekeyID)
			}
			seen[bundle.OneTimePrekeyID] = true
		}
		if len(seen) != OneTimePrekeyTarget {
			t.Fatalf("issued %d one-time prekeys, want %d", len(seen), OneTimePrekeyTarget)
		}
		bundle, _ := b.ks.Bundle(b.id, t0)
		a := newParty(t, 1)
		if err := a.ch.Initiate(a.id, a.ks, b.pub, bundle, a.rnd, t0); err != nil {
			t.Fatal(err)
		}
		b.recv(t, a, a.send(t, "no otpk", t0), "no otpk", t0)
	})
	t.Run("expired signed prekey at responder", func(t *testing.T) {
		a, b := newParty(t, 1), newParty(t, 2)
		a.initiate(t, b, t0)
		e := a.send(t, "late", t0)
		stale, err := b.ks.Bundle(b.id, t0)
		if err != nil {
			t.Fatal(err)
		}
		later := t0.Add(SignedPrekeyRotation)
		if _, err := b.ks.Maintain(b.id, b.rnd, later); err != nil { // rotates
			t.Fatal(err)
		}
		b.recv(t, a, e, "late", later.Add(SignedPrekeyGrace-time.Second)) // in grace
		c := newParty(t, 3)
		b.ch = Channel{} // b's channel with c
		if err := c.ch.Initiate(c.id, c.ks, b.pub, stale, c.rnd, t0); err != nil {
			t.Fatal(err)
		}
		mustFail(t, b, c, c.send(t, "too late", t0), ErrExpiredPrekey, later.Add(SignedPrekeyGrace))
		if _, err := b.ks.Maintain(b.id, b.rnd, later.Add(SignedPrekeyGrace)); err != nil { // deletes
			t.Fatal(err)
		}
		mustFail(t, b, c, c.send(t, "too late", t0), ErrUnknownPrekey, later.Add(SignedPrekeyGrace))
	})
	t.Run("expired signed prekey in bundle", func(t *testing.T) {
		a, b := newParty(t, 1), newParty(t, 2)
		bundle, err := b.ks.Bundle(b.id, t0)
		if err != nil {
			t.Fatal(err)
		}
		snap, _ := a.ch.MarshalBinary()
		err = a.ch.Initiate(a.id, a.ks, b.pub, bundle, a.rnd, t0.Add(SignedPrekeyMaxAge))
		if !errors.Is(err, ErrExpiredPrekey) {
			t.Fatalf("got %v, want ErrExpiredPrekey", err)
		}
		if after, _ := a.ch.MarshalBinary(); !bytes.Equal(snap, after) {
			t.Fatal("failed Initiate changed the channel")
		}
		if _, err := b.ks.Bundle(b.id, t0.Add(SignedPrekeyMaxAge)); !errors.Is(err, ErrExpiredPrekey) {
			t.Fatalf("Bundle without Maintain: got %v, want ErrExpiredPrekey", err)
		}
	})
	t.Run("message before session", func(t *testing.T) {
		a, b := established(t)
		c := newParty(t, 2)
		mustFail(t, c, a, a.send(t, "x", t0), ErrNoSession, t0)
		_ = b
	})
	t.Run("wrong contact", func(t *testing.T) {
		a, b := established(t)
		m := newParty(t, 3)
		mustFail(t, b, m, a.send(t, "x", t0), ErrKeyMismatch, t0)
	})
}

func TestBundle(t *testing.T) {
	b, m := newParty(t, 2), newParty(t, 3)
	bundle, err := b.ks.Bundle(b.id, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.Verify(b.pub); err != nil {
		t.Fatal(err)
	}
	enc, err := bundle.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Bundle
	if err := got.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(b.pub); err != nil {
		t.Fatalf("decoded bundle: %v", err)
	}
	if err := got.Verify(m.pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bundle verified against another key: %v", err)
	}
	if err := got.Verify(ed25519.PublicKey{1, 2}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("short key: %v", err)
	}
	for i := range enc {
		c := bytes.Clone(enc)
		c[i] ^= 0x80
		var x Bundle
		if err := x.UnmarshalBinary(c); err != nil {
			continue
		}
		if x.HasOneTimePrekey && i >= bundleBaseSize {
			continue // the one-time prekey is not signed
		}
		if err := x.Verify(b.pub); err == nil {
			t.Fatalf("bundle with byte %d flipped verified", i)
		}
	}
	// A bundle signed by another identity is refused by Initiate.
	a := newParty(t, 1)
	mb, _ := m.ks.Bundle(m.id, t0)
	snap, _ := a.ch.MarshalBinary()
	if err := a.ch.Initiate(a.id, a.ks, b.pub, mb, a.rnd, t0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Initiate with another key's bundle: %v", err)
	}
	if after, _ := a.ch.MarshalBinary(); !bytes.Equal(snap, after) {
		t.Fatal("failed Initiate changed the channel")
	}
	for _, n := range []int{0, 1, bundleBaseSize - 1, bundleBaseSize + 1, MaxBundleSize + 1} {
		var x Bundle
		if err := x.UnmarshalBinary(make([]byte, n)); err == nil {
			t.Fatalf("%d zero bytes decoded as a bundle", n)
		}
	}
	enc[0] = 7
	if err := got.UnmarshalBinary(enc); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("version 7: %v", err)
	}
}

func TestKeyStoreMaintain(t *testing.T) {
	b := newParty(t, 2)
	changed, err := b.ks.Maintain(b.id, b.rnd, t0)
	if err != nil || changed {
		t.Fatalf("fresh store: changed=%v err=%v", changed, err)
	}
	for range OneTimePrekeyTarget - OneTimePrekeyLow + 1 {
		b.ks.Bundle(b.id, t0)
	}
	if changed, _ := b.ks.Maintain(b.id, b.rnd, t0); !changed {
		t.Fatal("pool below the low mark was not refilled")
	}
	unissued := 0
	for _, k := range b.ks.otpks {
		if !k.issued {
			unissued++
		}
	}
	if unissued != OneTimePrekeyTarget {
		t.Fatalf("%d unissued after refill", unissued)
	}
	for i := range 20 {
		now := t0.Add(time.Duration(i) * 24 * time.Hour)
		if _, err := b.ks.Maintain(b.id, b.rnd, now); err != nil {
			t.Fatal(err)
		}
		if age := now.Unix() - b.ks.spks[0].created; age >= int64(SignedPrekeyRotation/time.Second) {
			t.Fatalf("day %d: current signed prekey is %ds old", i, age)
		}
		if len(b.ks.spks) > 1+int(SignedPrekeyGrace/SignedPrekeyRotation)+1 {
			t.Fatalf("day %d: %d signed prekeys kept", i, len(b.ks.spks))
		}
	}
	for range 20 {
		for range OneTimePrekeyTarget {
			b.ks.Bundle(b.id, t0)
		}
		b.ks.Maintain(b.id, b.rnd, t0.Add(19*24*time.Hour))
	}
	if len(b.ks.otpks) > MaxOneTimePrekeys {
		t.Fatalf("pool grew to %d", len(b.ks.otpks))
	}
	m := newParty(t, 3)
	if _, err := b.ks.Maintain(m.id, b.rnd, t0); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("Maintain with another identity: %v", err)
	}
	if _, err := b.ks.Bundle(m.id, t0); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("Bundle with another identity: %v", err)
	}
	b.reload(t)
	var empty KeyStore
	if _, err := empty.Bundle(b.id, t0); err == nil {
		t.Fatal("empty key store issued a bundle")
	}
}
