package e2e

import (
	"crypto/ed25519"
	"crypto/mlkem"
	"fmt"
	"time"
)

// Bundle is what a node hands out so that a peer can start a session with
// it: its X25519 identity key and signed prekey, both signed by its Ed25519
// identity, at most one one-time prekey and, in version 2 (PQXDH), a signed
// ML-KEM-768 prekey. A peer must call Verify with the Ed25519 key of the
// node's peer ID before using a bundle.
//
// The version is the negotiation: a version 2 bundle makes the initiator
// run PQXDH (envelope type 3), a version 1 bundle X3DH (type 2), which
// peers from before PQXDH speak.
type Bundle struct {
	// Version is 1 (X3DH) or 2 (PQXDH); 0 is read as 1.
	Version byte
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

	// KEMPrekeyID names the ML-KEM-768 prekey (version 2).
	KEMPrekeyID uint32
	// KEMPrekeyLastResort reports whether the KEM prekey is the
	// last-resort one (reused until it rotates) rather than a one-time one.
	KEMPrekeyLastResort bool
	// KEMPrekey is the ML-KEM-768 encapsulation key (version 2).
	KEMPrekey [KEMPublicKeySize]byte
	// KEMPrekeySignature is the Ed25519 signature of
	// "parley/e2e/v2 kem-prekey" || u32 id || u8 kind (1 last-resort,
	// 2 one-time) || u8 0x01 (ML-KEM-768) || KEMPrekey.
	KEMPrekeySignature [64]byte
}

const (
	bundleBaseSize = 1 + 1 + keySize + sigSize + 4 + 8 + keySize + sigSize
	bundleKEMSize  = 4 + 1 + KEMPublicKeySize + sigSize
	// MaxBundleSize is the size of an encoded version 2 bundle with a
	// one-time prekey, the largest there is.
	MaxBundleSize = bundleBaseSize + 4 + keySize + bundleKEMSize
)

// Bundle flags, the second byte of the encoding.
const (
	bundleFlagOneTime    = 1 << 0 // a one-time X25519 prekey follows
	bundleFlagKEMOneTime = 1 << 1 // version 2: the KEM prekey is a one-time one
)

// PostQuantum reports whether b is a version 2 (PQXDH) bundle.
func (b *Bundle) PostQuantum() bool { return b.Version == 2 }

func (b *Bundle) version() byte {
	if b.Version == 0 {
		return 1
	}
	return b.Version
}

func (b *Bundle) kemKind() byte {
	if b.KEMPrekeyLastResort {
		return kemLastResort
	}
	return kemOneTime
}

// Verify checks every signature of the bundle against remote, the Ed25519
// key of the peer the bundle claims to come from: the identity key, the
// signed prekey and, in version 2, the KEM prekey, which must also be a
// valid ML-KEM-768 encapsulation key. It returns an error wrapping
// ErrBadSignature when a signature does not verify.
func (b *Bundle) Verify(remote ed25519.PublicKey) error {
	if len(remote) != ed25519.PublicKeySize {
		return fmt.Errorf("e2e: verify bundle: %w: Ed25519 public key has %d bytes", ErrBadSignature, len(remote))
	}
	switch b.version() {
	case 1, 2:
	default:
		return fmt.Errorf("e2e: verify bundle: %w %d", ErrUnknownVersion, b.Version)
	}
	if !ed25519.Verify(remote, identityDHMessage(&b.IdentityDH), b.IdentityDHSignature[:]) {
		return fmt.Errorf("e2e: verify bundle: %w: identity key not signed by this peer", ErrBadSignature)
	}
	if !ed25519.Verify(remote, signedPrekeyMessage(b.SignedPrekeyID, b.SignedPrekeyCreated.Unix(), &b.SignedPrekey), b.SignedPrekeySignature[:]) {
		return fmt.Errorf("e2e: verify bundle: %w: signed prekey not signed by this peer", ErrBadSignature)
	}
	if b.version() == 2 {
		if !ed25519.Verify(remote, kemPrekeyMessage(b.KEMPrekeyID, b.kemKind(), b.KEMPrekey[:]), b.KEMPrekeySignature[:]) {
			return fmt.Errorf("e2e: verify bundle: %w: KEM prekey not signed by this peer", ErrBadSignature)
		}
		if _, err := mlkem.NewEncapsulationKey768(b.KEMPrekey[:]); err != nil {
			return fmt.Errorf("e2e: verify bundle: %w: KEM prekey: %v", ErrMalformed, err)
		}
	}
	return nil
}

// MarshalBinary encodes the bundle:
//
//	u8 version | u8 flags (bit 0: one-time prekey; bit 1: one-time KEM
//	prekey) | identity DH [32] | signature [64] | u32 signed prekey id |
//	u64 created (Unix s) | signed prekey [32] | signature [64]
//	[| u32 one-time id | one-time [32]]
//	[version 2: | u32 KEM id | u8 0x01 (ML-KEM-768) | KEM key [1184] |
//	 signature [64]]
func (b *Bundle) MarshalBinary() ([]byte, error) {
	v := b.version()
	if v != 1 && v != 2 {
		return nil, fmt.Errorf("e2e: marshal bundle: %w %d", ErrUnknownVersion, b.Version)
	}
	out := make([]byte, 0, MaxBundleSize)
	flags := byte(0)
	if b.HasOneTimePrekey {
		flags |= bundleFlagOneTime
	}
	if v == 2 && !b.KEMPrekeyLastResort {
		flags |= bundleFlagKEMOneTime
	}
	out = append(out, v, flags)
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
	if v == 2 {
		out = appendU32(out, b.KEMPrekeyID)
		out = append(out, kemTypeMLKEM768)
		out = append(out, b.KEMPrekey[:]...)
		out = append(out, b.KEMPrekeySignature[:]...)
	}
	return out, nil
}

// UnmarshalBinary decodes a bundle encoded by MarshalBinary, of version 1
// or 2. It does not verify it: call Verify.
func (b *Bundle) UnmarshalBinary(data []byte) error {
	if len(data) > MaxBundleSize {
		return fmt.Errorf("e2e: unmarshal bundle: %w: %d bytes, limit %d", ErrTooLarge, len(data), MaxBundleSize)
	}
	if len(data) > 0 && data[0] != 1 && data[0] != 2 {
		return fmt.Errorf("e2e: unmarshal bundle: %w %d", ErrUnknownVersion, data[0])
	}
	d := decoder{b: data}
	v := d.u8()
	flags := d.u8()
	allowed := byte(bundleFlagOneTime)
	if v == 2 {
		allowed |= bundleFlagKEMOneTime
	}
	if flags&^allowed != 0 {
		return fmt.Errorf("e2e: unmarshal bundle: %w: unknown flags %#x", ErrMalformed, flags)
	}
	n := Bundle{Version: v}
	d.key(&n.IdentityDH)
	copy(n.IdentityDHSignature[:], d.take(sigSize))
	n.SignedPrekeyID = d.u32()
	n.SignedPrekeyCreated = time.Unix(int64(d.u64()), 0)
	d.key(&n.SignedPrekey)
	copy(n.SignedPrekeySignature[:], d.take(sigSize))
	if flags&bundleFlagOneTime != 0 {
		n.HasOneTimePrekey = true
		n.OneTimePrekeyID = d.u32()
		d.key(&n.OneTimePrekey)
	}
	if v == 2 {
		n.KEMPrekeyID = d.u32()
		if t := d.u8(); !d.failed && t != kemTypeMLKEM768 {
			return fmt.Errorf("e2e: unmarshal bundle: %w: unknown KEM type %#x", ErrMalformed, t)
		}
		n.KEMPrekeyLastResort = flags&bundleFlagKEMOneTime == 0
		copy(n.KEMPrekey[:], d.take(KEMPublicKeySize))
		copy(n.KEMPrekeySignature[:], d.take(sigSize))
	}
	if !d.ok() {
		return fmt.Errorf("e2e: unmarshal bundle: %w: wrong length %d", ErrMalformed, len(data))
	}
	*b = n
	return nil
}
