package e2e

import (
	"bytes"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"
)

func newSenderPair(t *testing.T) (*SenderChain, *SenderReceiver) {
	t.Helper()
	c, err := NewSenderChain(detRand(7))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewSenderReceiver(c.Distribution())
	if err != nil {
		t.Fatal(err)
	}
	return c, r
}

func mustSeal(t *testing.T, c *SenderChain, msg string, ad []byte) []byte {
	t.Helper()
	m, err := c.Seal([]byte(msg), ad)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func senderSnapshot(t *testing.T, r *SenderReceiver) []byte {
	t.Helper()
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSenderKeys(t *testing.T) {
	ad := []byte("room|epoch|sender")
	c, r := newSenderPair(t)
	rng := mrand.New(mrand.NewPCG(3, 4))
	var msgs [][]byte
	for i := range 500 {
		msgs = append(msgs, mustSeal(t, c, fmt.Sprint("m", i), ad))
	}
	order := rng.Perm(len(msgs))
	for k, i := range order {
		got, err := r.Open(msgs[i], ad, t0)
		if err != nil || string(got) != fmt.Sprint("m", i) {
			t.Fatalf("message %d: %q, %v", i, got, err)
		}
		if k%37 == 0 {
			enc := senderSnapshot(t, r)
			r = new(SenderReceiver)
			if err := r.UnmarshalBinary(enc); err != nil {
				t.Fatal(err)
			}
			enc, _ = c.MarshalBinary()
			c = new(SenderChain)
			if err := c.UnmarshalBinary(enc); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(r.skipped) != 0 {
		t.Fatalf("%d skipped keys left", len(r.skipped))
	}
	// A member given the distribution now cannot read earlier messages.
	late, err := NewSenderReceiver(c.Distribution())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := late.Open(msgs[0], ad, t0); !errors.Is(err, ErrReplay) {
		t.Fatalf("late member read an earlier message: %v", err)
	}
	next := mustSeal(t, c, "next", ad)
	if got, err := late.Open(next, ad, t0); err != nil || string(got) != "next" {
		t.Fatalf("late member: %q %v", got, err)
	}
}

func TestSenderErrors(t *testing.T) {
	ad := []byte("ad")
	flip := func(m []byte, i int) []byte {
		c := bytes.Clone(m)
		c[i] ^= 1
		return c
	}
	tests := []struct {
		name string
		msg  func(c *SenderChain, r *SenderReceiver) ([]byte, []byte)
		want error
	}{
		{"replay", func(c *SenderChain, r *SenderReceiver) ([]byte, []byte) {
			m := mustSeal(t, c, "x", ad)
			r.Open(m, ad, t0)
			return m, ad
		}, ErrReplay},
		{"gap too large", func(c *SenderChain, r *SenderReceiver) ([]byte, []byte) {
			for range MaxSkip + 1 {
				mustSeal(t, c, "lost", ad)
			}
			return mustSeal(t, c, "x", ad), ad
		}, ErrTooManySkipped},
		{"tampered header", func(c *SenderChain, r *SenderReceiver) ([]byte, []byte) {
			return flip(mustSeal(t, c, "x", ad), senderHeaderSize-1), ad
		}, ErrAuthFailed},
		{"tampered ciphertext", func(c *SenderChain, r *SenderReceiver) ([]byte, []byte) {
			return flip(mustSeal(t, c, "x", ad), senderHeaderSize), ad
		}, ErrAuthFailed},
		{"wrong ad", func(c *SenderChain, r *SenderReceiver) ([]byte, []byte) {
			return mustSeal(t, c, "x", ad), []byte("other room")
		}, ErrAuthFailed},
		{"truncated", func(c *SenderChain, r *SenderReceiver) ([]byte, []byte) {
			m := mustSeal(t, c, "x", ad)
			return m[:senderHeaderSize+tagSize-1], ad
		}, ErrMalformed},
		{"wrong version", func(c *SenderChain, r *SenderReceiver) ([]byte, []byte) {
			m := mustSeal(t, c, "x", ad)
			m[0] = 2
			return m, ad
		}, ErrUnknownVersion},
		{"wrong chain", func(c *SenderChain, r *SenderReceiver) ([]byte, []byte) {
			return flip(mustSeal(t, c, "x", ad), 1), ad
		}, ErrWrongChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, r := newSenderPair(t)
			m, a := tt.msg(c, r)
			snap := senderSnapshot(t, r)
			if _, err := r.Open(m, a, t0); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !bytes.Equal(snap, senderSnapshot(t, r)) {
				t.Fatal("failed Open changed the receiver")
			}
		})
	}
}

func TestSenderSkippedBounds(t *testing.T) {
	ad := []byte("ad")
	c, r := newSenderPair(t)
	for round := range 3 {
		for range MaxSkip {
			mustSeal(t, c, "lost", ad)
		}
		if _, err := r.Open(mustSeal(t, c, "x", ad), ad, t0.Add(time.Duration(round)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.skipped) != MaxSkippedKeys {
		t.Fatalf("%d skipped keys, want the cap %d", len(r.skipped), MaxSkippedKeys)
	}
	if _, err := r.Open(mustSeal(t, c, "x", ad), ad, t0.Add(SkippedKeyMaxAge+time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(r.skipped) != 0 {
		t.Fatalf("%d skipped keys past their age", len(r.skipped))
	}
	if _, err := NewSenderReceiver([]byte{1, 2, 3}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short distribution: %v", err)
	}
	if _, err := c.Seal(make([]byte, MaxPlaintextSize+1), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("large plaintext: %v", err)
	}
}
