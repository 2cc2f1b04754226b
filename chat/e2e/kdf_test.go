package e2e

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding"
	"testing"
)

// TestExpandReusedState checks the per-message KDF against crypto/hmac and
// crypto/hkdf used plainly, many times over one kdfState: the scratch
// states it reuses (and scrubs in place between uses) must not leak from
// one derivation into the next.
func TestExpandReusedState(t *testing.T) {
	k := getKDF()
	defer k.put()
	var ck [keySize]byte
	for i := range 8 {
		ck[0] = byte(i)
		mk, next := kdfCKWith(k, &ck)
		m := hmac.New(sha256.New, ck[:])
		m.Write([]byte{1})
		if want := m.Sum(nil); !bytes.Equal(mk[:], want) {
			t.Fatalf("step %d: message key %x, want %x", i, mk, want)
		}
		m.Reset()
		m.Write([]byte{2})
		if want := m.Sum(nil); !bytes.Equal(next[:], want) {
			t.Fatalf("step %d: next chain key %x, want %x", i, next, want)
		}
		for _, label := range []string{labelMessageKey, labelSenderMessage} {
			got := expandWith(k, &mk, label)
			want, err := hkdf.Key(sha256.New, mk[:], nil, label, keySize+nonceSize)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.key[:], want[:keySize]) || !bytes.Equal(got.nonce[:], want[keySize:]) {
				t.Fatalf("step %d, %s: key %x nonce %x, want %x", i, label, got.key, got.nonce, want)
			}
		}
	}
}

// TestKDFStateScrubbed checks that a kdfState returned to the pool keeps
// nothing of the message key in the SHA-256 states it reuses: neither the
// key, nor the inner digest the extraction feeds to its outer hash.
func TestKDFStateScrubbed(t *testing.T) {
	k := getKDF()
	var mk [keySize]byte
	for i := range mk {
		mk[i] = 0xA5 ^ byte(i)
	}
	inner := sha256.New()
	inner.Write(bytes.Repeat([]byte{0x36}, sha256.BlockSize)) // zero salt XOR ipad
	inner.Write(mk[:])
	innerDigest := inner.Sum(nil)
	expandWith(k, &mk, labelMessageKey)
	k.put() // clears k; it may go back to the pool, but no other goroutine runs
	if k.exDigests[1] == nil {
		t.Skip("the extraction states are out of reach")
	}
	for i, d := range k.exDigests {
		state, err := d.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(state, mk[:4]) || bytes.Contains(state, innerDigest[:4]) {
			t.Errorf("extraction state %d still holds the message key or its inner digest: %x", i, state)
		}
	}
	for i := range k.digests {
		state, err := k.digests[i].Hash.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(state, mustMarshal(t, sha256.New().(encoding.BinaryMarshaler))) {
			t.Errorf("HMAC state %d is not the initial state after put: %x", i, state)
		}
	}
}

func mustMarshal(t *testing.T, d encoding.BinaryMarshaler) []byte {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
