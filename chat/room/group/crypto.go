package group

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Labels: every signature, hash, HKDF info and MAC of version 2 starts with
// one of these. Signing and hashing inputs are label || 0x00 || bytes.
const (
	labelKeyPackage = "parley/room/2 key package"
	labelCommit     = "parley/room/2 commit"
	labelBody       = "parley/room/2 commit body"
	labelWelcome    = "parley/room/2 welcome"
	labelCommitSec  = "parley/room/2 commit secret"
	labelContext    = "parley/room/2 context"
	labelJoiner     = "parley/room/2 joiner"
	labelEpoch      = "parley/room/2 epoch"
	labelInit       = "parley/room/2 init"
	labelConfirm    = "parley/room/2 confirm"
	labelFork       = "parley/room/2 fork"
	labelConsent    = "parley/room/2 join consent"
	labelJoinProof  = "parley/room/2 join proof"
	labelLeave      = "parley/room/2 leave"
	labelJoinToken  = "parley/room/2 join token"
	labelMembership = "parley/room/2 membership"
	labelRendezvous = "parley/room/2 rendezvous"
	labelSync       = "parley/room/2 sync"
	labelSender     = "parley/room/2 sender"
	labelMessage    = "parley/room/2 message"
	labelMAC        = "parley/room/2 membership mac"
	labelSyncProof  = "parley/room/2 sync proof"
)

// Sizes and limits.
const (
	// RoomIDSize is the size of a room id.
	RoomIDSize = 32
	// HashSize is the size of a commit hash.
	HashSize = sha256.Size
	// SecretSize is the size of an epoch secret and of every derived key.
	SecretSize = 32
	// IDSize is the size of a message id and of a token id.
	IDSize = 16
	// EpochHashSize is the size of AppMessage.epoch_hash: a prefix of the
	// commit hash.
	EpochHashSize = 8
	// MaxMembers bounds a roster.
	MaxMembers = 1000
	// MaxSkip bounds how far ahead a generation may be, and how many skipped
	// message keys are kept per author.
	MaxSkip = 1000
	// MaxCommitSize bounds a serialized SignedCommit, and a RoomEnvelope
	// holding a commit. A commit adding 999 members to a room at once is
	// about 430 KB (a rekey of 1000 members about 280 KB).
	MaxCommitSize = 512 << 10
	// MaxJoinRequestSize bounds a RoomEnvelope holding a join request.
	MaxJoinRequestSize = 2 << 10
	// MaxKeyPackageSize bounds a serialized SignedKeyPackage.
	MaxKeyPackageSize = 512
	// MaxTokenSize bounds a serialized SignedJoinToken.
	MaxTokenSize = 512
	// MaxPlaintext bounds the plaintext of one application message.
	MaxPlaintext = 12 << 10
	// MaxEpochStateSize bounds a serialized Epoch.
	MaxEpochStateSize = MaxCommitSize + MaxMembers*(128+MaxSkip*48)
	// maxPeerIDSize bounds a binary peer ID.
	maxPeerIDSize = 64
)

// RoomID is the random 32-byte id of a room.
type RoomID [RoomIDSize]byte

// Hash is a commit hash: SHA-256 of the commit's signing input.
type Hash [HashSize]byte

// The HPKE suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
var (
	hpkeKEM  = hpke.DHKEM(ecdh.X25519())
	hpkeKDF  = hpke.HKDFSHA256()
	hpkeAEAD = hpke.ChaCha20Poly1305()
)

// labelled returns label || 0x00 || parts....
func labelled(label string, parts ...[]byte) []byte {
	n := len(label) + 1
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, label...)
	b = append(b, 0)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// appendLP appends u32(len(b)) || b.
func appendLP(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// sign signs label || 0x00 || msg with an Ed25519 identity key.
func sign(priv crypto.PrivKey, label string, msg []byte) ([]byte, error) {
	if priv == nil || priv.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: signing key is not Ed25519", ErrInvalid)
	}
	return priv.Sign(labelled(label, msg))
}

// verify checks sig over label || 0x00 || msg against the key of id.
func verify(id peer.ID, label string, msg, sig []byte) error {
	pub, err := id.ExtractPublicKey()
	if err != nil || pub.Type() != crypto.Ed25519 {
		return fmt.Errorf("%w: %s holds no Ed25519 key", ErrBadSignature, id)
	}
	ok, err := pub.Verify(labelled(label, msg), sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: by %s", ErrBadSignature, id)
	}
	return nil
}

// parsePeerID decodes a binary peer ID field.
func parsePeerID(field string, b []byte) (peer.ID, error) {
	if len(b) == 0 || len(b) > maxPeerIDSize {
		return "", fmt.Errorf("%w: %s: %d bytes", ErrInvalid, field, len(b))
	}
	id, err := peer.IDFromBytes(b)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
	}
	return id, nil
}

// unmarshal decodes b into m, refusing inputs over max bytes and any
// unknown field (padding that would travel the mesh for free).
func unmarshal(what string, b []byte, max int, m proto.Message) error {
	if len(b) > max {
		return fmt.Errorf("%w: %s: %d bytes, limit %d", ErrInvalid, what, len(b), max)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, what, err)
	}
	if hasUnknown(m.ProtoReflect()) {
		return fmt.Errorf("%w: %s: unknown fields", ErrInvalid, what)
	}
	return nil
}

// hasUnknown says whether m or a message inside it holds unknown fields.
func hasUnknown(m protoreflect.Message) bool {
	if len(m.GetUnknown()) != 0 {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && !found; i++ {
				found = hasUnknown(l.Get(i).Message())
			}
		case fd.Message() != nil && !fd.IsMap():
			found = hasUnknown(v.Message())
		}
		return !found
	})
	return found
}

// extract is HKDF-Extract(SHA-256, salt, ikm).
func extract(salt, ikm []byte) []byte {
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		panic("group: hkdf: " + err.Error()) // unreachable
	}
	return prk
}

// expandCtx is HKDF-Expand(prk, label || 0x00 || context, 32).
func expandCtx(prk []byte, label string, context []byte) (k [SecretSize]byte) {
	b, err := hkdf.Expand(sha256.New, prk, string(labelled(label, context)), SecretSize)
	if err != nil {
		panic("group: hkdf: " + err.Error()) // unreachable: fixed length 32
	}
	copy(k[:], b)
	clear(b)
	return k
}

// marshal encodes m deterministically.
func marshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		// Only messages this package built reach here; they always encode.
		panic(fmt.Sprintf("group: marshal: %v", err))
	}
	return b
}
