package group

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// KeyPackage is a member's signed HPKE public key. Parsed key packages are
// verified and shared: treat them as read-only.
type KeyPackage struct {
	// Owner is the member whose identity key signed the package.
	Owner peer.ID
	// PublicKey is the 32-byte X25519 HPKE encryption key: commits seal the
	// commit secret to it while the owner stays a member.
	PublicKey []byte
	// InitKey is the 32-byte one-time X25519 HPKE key the commit adding the
	// owner seals its joiner secret to (the Welcome).
	InitKey []byte
	// CreatedAt is the owner's clock when it made the package (ms precision).
	CreatedAt time.Time

	raw    []byte // serialized SignedKeyPackage
	signed *wirepb.SignedKeyPackage
}

// KeyPackagePrivate is the private half of one of our key packages: the
// encryption key and the one-time init key. Store it as a secret
// (MarshalBinary). Commit.Open erases the init key once it took the Welcome
// sealed to it (store the key again then); delete the whole key once a
// commit sealed to a newer package of ours is settled. Neither key opens an
// epoch on its own: every epoch also needs the previous epoch's init
// secret, which members erase.
type KeyPackagePrivate struct {
	// PublicKey is the matching HPKE encryption key.
	PublicKey []byte
	// InitKey is the matching one-time init key.
	InitKey []byte

	mu   sync.Mutex
	priv hpke.PrivateKey
	init hpke.PrivateKey // nil once erased
}

// NewKeyPackage makes a fresh HPKE key pair and signs its public half with
// the identity key priv.
func NewKeyPackage(priv crypto.PrivKey, now time.Time) (*KeyPackage, *KeyPackagePrivate, error) {
	k, err := hpkeKEM.GenerateKey()
	if err != nil {
		return nil, nil, fmt.Errorf("group: key package: %w", err)
	}
	ik, err := hpkeKEM.GenerateKey()
	if err != nil {
		return nil, nil, fmt.Errorf("group: key package: %w", err)
	}
	return newKeyPackage(priv, k, ik, now)
}

// newKeyPackage signs a key package for the HPKE encryption key k and init
// key ik.
func newKeyPackage(priv crypto.PrivKey, k, ik hpke.PrivateKey, now time.Time) (*KeyPackage, *KeyPackagePrivate, error) {
	owner, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("group: key package: %w", err)
	}
	pub := k.PublicKey().Bytes()
	ipub := ik.PublicKey().Bytes()
	body := marshal(&wirepb.KeyPackage{
		Owner:         []byte(owner),
		HpkePublicKey: pub,
		CreatedAtMs:   now.UnixMilli(),
		HpkeInitKey:   ipub,
	})
	sig, err := sign(priv, labelKeyPackage, body)
	if err != nil {
		return nil, nil, fmt.Errorf("group: key package: %w", err)
	}
	raw := marshal(&wirepb.SignedKeyPackage{KeyPackage: body, Signature: sig})
	kp, err := ParseKeyPackage(raw)
	if err != nil {
		return nil, nil, err
	}
	return kp, &KeyPackagePrivate{PublicKey: pub, InitKey: ipub, priv: k, init: ik}, nil
}

// verified remembers key packages whose signature verified, by the SHA-256
// of their bytes, so that a commit repeating a roster of a thousand does
// not cost a thousand signature checks on every member. Verification is a
// pure function of the bytes, so the memo changes no result.
var verified struct {
	sync.Mutex
	m map[Hash]*KeyPackage
}

// maxVerified bounds the memo; it is emptied when full.
const maxVerified = 4 * MaxMembers

// ParseKeyPackage decodes a serialized SignedKeyPackage and verifies its
// owner's signature.
func ParseKeyPackage(b []byte) (*KeyPackage, error) {
	if len(b) > MaxKeyPackageSize {
		return nil, fmt.Errorf("%w: key package: %d bytes, limit %d", ErrInvalid, len(b), MaxKeyPackageSize)
	}
	h := Hash(sha256.Sum256(b))
	verified.Lock()
	kp := verified.m[h]
	verified.Unlock()
	if kp != nil {
		return kp, nil
	}
	kp, err := parseKeyPackage(b)
	if err != nil {
		return nil, err
	}
	verified.Lock()
	if len(verified.m) >= maxVerified || verified.m == nil {
		verified.m = make(map[Hash]*KeyPackage)
	}
	verified.m[h] = kp
	verified.Unlock()
	return kp, nil
}

func parseKeyPackage(b []byte) (*KeyPackage, error) {
	kp, err := decodeKeyPackage(b)
	if err != nil {
		return nil, err
	}
	if !usableKey(kp.PublicKey) || !usableKey(kp.InitKey) {
		return nil, fmt.Errorf("%w: key package: low-order HPKE key", ErrInvalid)
	}
	if err := verify(kp.Owner, labelKeyPackage, kp.signed.KeyPackage, kp.signed.Signature); err != nil {
		return nil, fmt.Errorf("key package: %w", err)
	}
	return kp, nil
}

// decodeKeyPackage decodes a SignedKeyPackage and checks its fields, but
// neither the signature nor the keys' order (parseKeyPackage does).
func decodeKeyPackage(b []byte) (*KeyPackage, error) {
	var s wirepb.SignedKeyPackage
	if err := unmarshal("key package", b, MaxKeyPackageSize, &s); err != nil {
		return nil, err
	}
	var k wirepb.KeyPackage
	if err := unmarshal("key package body", s.KeyPackage, MaxKeyPackageSize, &k); err != nil {
		return nil, err
	}
	owner, err := parsePeerID("key package owner", k.Owner)
	if err != nil {
		return nil, err
	}
	if len(k.HpkePublicKey) != 32 || len(k.HpkeInitKey) != 32 || bytes.Equal(k.HpkePublicKey, k.HpkeInitKey) {
		return nil, fmt.Errorf("%w: key package: bad HPKE public key", ErrInvalid)
	}
	if k.CreatedAtMs <= 0 {
		return nil, fmt.Errorf("%w: key package: created_at_ms %d", ErrInvalid, k.CreatedAtMs)
	}
	return &KeyPackage{
		Owner:     owner,
		PublicKey: k.HpkePublicKey,
		InitKey:   k.HpkeInitKey,
		CreatedAt: time.UnixMilli(k.CreatedAtMs),
		raw:       bytes.Clone(b),
		signed:    &s,
	}, nil
}

// KeyPackageFromProto is ParseKeyPackage for a decoded SignedKeyPackage (as
// in a RoomEnvelope).
func KeyPackageFromProto(s *wirepb.SignedKeyPackage) (*KeyPackage, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: no key package", ErrInvalid)
	}
	return ParseKeyPackage(marshal(s))
}

// Marshal returns the serialized SignedKeyPackage.
func (kp *KeyPackage) Marshal() []byte { return bytes.Clone(kp.raw) }

// Proto returns the SignedKeyPackage, for a RoomEnvelope.
func (kp *KeyPackage) Proto() *wirepb.SignedKeyPackage {
	return proto.CloneOf(kp.signed)
}

// Hash is SHA-256 of the serialized SignedKeyPackage.
func (kp *KeyPackage) Hash() Hash { return sha256.Sum256(kp.raw) }

// Equal says whether both are the same signed package.
func (kp *KeyPackage) Equal(o *KeyPackage) bool { return bytes.Equal(kp.raw, o.raw) }

// lowOrderProbe is a fixed X25519 scalar: a Diffie-Hellman with it fails
// exactly for the low-order points (RFC 7748 §6.1, all-zero output).
var lowOrderProbe = func() *ecdh.PrivateKey {
	k, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0x5a}, 32))
	if err != nil {
		panic(err)
	}
	return k
}()

// usableKey says whether b is a 32-byte X25519 public key HPKE can seal to:
// not a low-order point, where the shared secret would be all zero and
// every Encap fails.
func usableKey(b []byte) bool {
	if len(b) != 32 {
		return false
	}
	pub, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return false
	}
	_, err = lowOrderProbe.ECDH(pub)
	return err == nil
}

// EraseInit erases the one-time init key (Commit.Open does it once it took
// the Welcome). The encryption key stays.
func (p *KeyPackagePrivate) EraseInit() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init = nil
}

// initKey returns the init private key, nil once erased.
func (p *KeyPackagePrivate) initKey() hpke.PrivateKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.init
}

// MarshalBinary returns the private key for storage: the 32-byte X25519
// HPKE encryption private key, followed by the 32-byte init private key
// unless erased (RFC 9180 SerializePrivateKey).
func (p *KeyPackagePrivate) MarshalBinary() ([]byte, error) {
	b, err := p.priv.Bytes()
	if err != nil {
		return nil, err
	}
	if ik := p.initKey(); ik != nil {
		ib, err := ik.Bytes()
		if err != nil {
			return nil, err
		}
		b = append(b, ib...)
	}
	return b, nil
}

// UnmarshalKeyPackagePrivate restores a private key saved by MarshalBinary.
func UnmarshalKeyPackagePrivate(b []byte) (*KeyPackagePrivate, error) {
	if len(b) != 32 && len(b) != 64 {
		return nil, fmt.Errorf("%w: key package private key: %d bytes", ErrInvalid, len(b))
	}
	k, err := hpkeKEM.NewPrivateKey(b[:32])
	if err != nil {
		return nil, fmt.Errorf("%w: key package private key: %v", ErrInvalid, err)
	}
	p := &KeyPackagePrivate{PublicKey: k.PublicKey().Bytes(), priv: k}
	if len(b) == 64 {
		ik, err := hpkeKEM.NewPrivateKey(b[32:])
		if err != nil {
			return nil, fmt.Errorf("%w: key package init key: %v", ErrInvalid, err)
		}
		p.init, p.InitKey = ik, ik.PublicKey().Bytes()
	}
	return p, nil
}
