package e2e

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// Bundle is what a node hands out so that a peer can start a session with
// it: its X25519 identity key and signed prekey, both signed by its Ed25519
// identity, and at most one one-time prekey. A peer must call Verify with
// the Ed25519 key of the node's peer ID before using a bundle.
type Bundle struct {
	// IdentityDH is the X25519 identity key.
	IdentityDH [32]byte
	// IdentityDHSignature is the Ed25519 signature of
	// "parley/e2e/v1 identity-dh" || IdentityDH.
	IdentityDHSignature [64]byte
	// SignedPrekeyID names the signed prekey in the initiator's message.
	SignedPrekeyID uint32
	// SignedPrekeyCreated is when the signed prekey was created, at second
	// precision; it is covered by the signature.
	SignedPrekeyCreated time.Time
	// SignedPrekey is the X25519 signed prekey.
	SignedPrekey [32]byte
	// SignedPrekeySignature is the Ed25519 signature of
	// "parley/e2e/v1 signed-prekey" || u32 id || u64 created || key.
	SignedPrekeySignature [64]byte
	// HasOneTimePrekey reports whether OneTimePrekeyID and OneTimePrekey
	// are set.
	HasOneTimePrekey bool
	// OneTimePrekeyID names the one-time prekey.
	OneTimePrekeyID uint32
	// OneTimePrekey is an X25519 one-time prekey (not signed).
	OneTimePrekey [32]byte
}

const (
	bundleBaseSize = 1 + 1 + keySize + sigSize + 4 + 8 + keySize + sigSize
	// MaxBundleSize is the size of an encoded bundle with a one-time prekey,
	// the largest there is.
	MaxBundleSize = bundleBaseSize + 4 + keySize
)

// Verify checks both signatures of the bundle against remote, the Ed25519
// key of the peer the bundle claims to come from. It returns an error
// wrapping ErrBadSignature when either does not verify.
func (b *Bundle) Verify(remote ed25519.PublicKey) error {
	if len(remote) != ed25519.PublicKeySize {
		return fmt.Errorf("e2e: verify bundle: %w: Ed25519 public key has %d bytes", ErrBadSignature, len(remote))
	}
	if !ed25519.Verify(remote, identityDHMessage(&b.IdentityDH), b.IdentityDHSignature[:]) {
		return fmt.Errorf("e2e: verify bundle: %w: identity key not signed by this peer", ErrBadSignature)
	}
	if !ed25519.Verify(remote, signedPrekeyMessage(b.SignedPrekeyID, b.SignedPrekeyCreated.Unix(), &b.SignedPrekey), b.SignedPrekeySignature[:]) {
		return fmt.Errorf("e2e: verify bundle: %w: signed prekey not signed by this peer", ErrBadSignature)
	}
	return nil
}

// MarshalBinary encodes the bundle:
//
//	u8 version | u8 flags (bit 0: one-time prekey) | identity DH [32] |
//	signature [64] | u32 signed prekey id | u64 created (Unix s) |
//	signed prekey [32] | signature [64] [| u32 one-time id | one-time [32]]
func (b *Bundle) MarshalBinary() ([]byte, error) {
	out := make([]byte, 0, MaxBundleSize)
	flags := byte(0)
	if b.HasOneTimePrekey {
		flags = 1
	}
	out = append(out, Version, flags)
	out = append(out, b.IdentityDH[:]...)
	out = append(out, b.IdentityDHSignature[:]...)
	out = appendU32(out, b.SignedPrekeyID)
	out = appendU64(out, uint64(b.SignedPrekeyCreated.Unix()))
	out = append(out, b.SignedPrekey[:]...)
	out = append(out, b.SignedPrekeySignature[:]...)
	if b.HasOneTimePrekey {
		out = appendU32(out, b.OneTimePrekeyID)
		out = append(out, b.OneTimePrekey[:]...)
	}
	return out, nil
}

// UnmarshalBinary decodes a bundle encoded by MarshalBinary. It does not
// verify it: call Verify.
func (b *Bundle) UnmarshalBinary(data []byte) error {
	if len(data) > MaxBundleSize {
		return fmt.Errorf("e2e: unmarshal bundle: %w: %d bytes, limit %d", ErrTooLarge, len(data), MaxBundleSize)
	}
	if len(data) > 0 && data[0] != Version {
		return fmt.Errorf("e2e: unmarshal bundle: %w %d", ErrUnknownVersion, data[0])
	}
	d := decoder{b: data}
	d.u8()
	flags := d.u8()
	if flags > 1 {
		return fmt.Errorf("e2e: unmarshal bundle: %w: unknown flags %#x", ErrMalformed, flags)
	}
	var n Bundle
	d.key(&n.IdentityDH)
	copy(n.IdentityDHSignature[:], d.take(sigSize))
	n.SignedPrekeyID = d.u32()
	n.SignedPrekeyCreated = time.Unix(int64(d.u64()), 0)
	d.key(&n.SignedPrekey)
	copy(n.SignedPrekeySignature[:], d.take(sigSize))
	if flags == 1 {
		n.HasOneTimePrekey = true
		n.OneTimePrekeyID = d.u32()
		d.key(&n.OneTimePrekey)
	}
	if !d.ok() {
		return fmt.Errorf("e2e: unmarshal bundle: %w: wrong length %d", ErrMalformed, len(data))
	}
	*b = n
	return nil
}
