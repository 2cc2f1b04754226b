// Package e2e is Parley's end-to-end encryption: a post-quantum hybrid
// session setup (PQXDH, after Signal's specification) bound to the node's
// Ed25519 identity, with X3DH kept for peers from before it, the Double
// Ratchet for direct messages, and sender-key chains for private rooms.
//
// The package is pure: it does no I/O, keeps no clocks and logs nothing.
// Randomness comes from an io.Reader and the current time from a time.Time
// passed by the caller, so every operation is deterministic given its inputs
// (ML-KEM encapsulation excepted: crypto/mlkem draws its own randomness).
// All state (KeyStore, Channel, SenderChain, SenderReceiver) serialises with
// MarshalBinary; the caller stores it, typically in SQLite, in the same
// transaction as the message that changed it.
//
// The constructions, with no options:
//
//   - X25519 for every Diffie-Hellman, refusing low-order points;
//   - session setup version 2, PQXDH: X3DH's four DH outputs and an
//     ML-KEM-768 shared secret (crypto/mlkem) from a signed KEM prekey, a
//     one-time one or the last-resort one; version 1, X3DH, only with
//     peers that serve version 1 bundles. The bundle's version decides;
//   - HKDF-SHA256 with "parley/e2e/v1 ..." and "parley/e2e/v2 ..." info
//     labels for every key derivation, HMAC-SHA256 for the symmetric chains;
//   - ChaCha20-Poly1305 for every payload, with a key and nonce derived
//     from a single-use message key;
//   - Ed25519 signatures over labelled messages to bind the X25519 and
//     ML-KEM keys to the libp2p identity.
//
// Every decoder has a hard size limit and refuses unknown versions with
// ErrUnknownVersion. Every failed Decrypt or Open leaves the state exactly
// as it was. docs/PROTOCOL.md specifies the wire formats and KDFs.
package e2e

import "time"

// Version is the first byte of every envelope, distribution message and
// sender message. Bundles are version 1 (X3DH) or 2 (PQXDH); a PQXDH
// prekey message is envelope type 3; KeyStore and Channel state are
// encoded as version 2 and still decode from version 1.
const Version = 1

// Size limits.
const (
	// MaxPlaintextSize bounds the plaintext of one message (direct or room).
	MaxPlaintextSize = 64 << 10
	// MaxEnvelopeSize bounds an encoded envelope: a MaxPlaintextSize
	// plaintext plus headers and tag, rounded up to 66 KiB.
	MaxEnvelopeSize = 66 << 10
	// MaxSenderMessageSize bounds an encoded sender-key message.
	MaxSenderMessageSize = MaxPlaintextSize + 64
)

// Ratchet bounds. They apply to the Double Ratchet and to sender keys alike.
const (
	// MaxSkip is the largest gap accepted within one chain: a message more
	// than MaxSkip positions ahead of the next expected one is refused with
	// ErrTooManySkipped.
	MaxSkip = 1000
	// MaxSkippedKeys caps the stored keys of skipped messages per Channel or
	// SenderReceiver; beyond it the oldest are evicted.
	MaxSkippedKeys = 2000
	// SkippedKeyMaxAge is how long the key of a skipped message is kept.
	SkippedKeyMaxAge = 30 * 24 * time.Hour
	// MaxPreviousSessions caps the sessions a Channel keeps, besides the
	// current one, to decrypt messages still in flight.
	MaxPreviousSessions = 4
	// PreviousSessionMaxAge is how long a replaced session can still
	// decrypt.
	PreviousSessionMaxAge = 30 * 24 * time.Hour
)

// Prekey schedule, applied by KeyStore.Maintain.
const (
	// SignedPrekeyRotation is the age at which the signed prekey is replaced.
	SignedPrekeyRotation = 7 * 24 * time.Hour
	// SignedPrekeyGrace is how long a replaced signed prekey still accepts
	// new sessions (bundles already handed out may still name it).
	SignedPrekeyGrace = 14 * 24 * time.Hour
	// SignedPrekeyMaxAge is the age beyond which an initiator refuses a
	// bundle's signed prekey with ErrExpiredPrekey.
	SignedPrekeyMaxAge = SignedPrekeyRotation + SignedPrekeyGrace
	// OneTimePrekeyTarget is the number of unissued one-time prekeys that
	// Maintain refills the pool to.
	OneTimePrekeyTarget = 100
	// OneTimePrekeyLow is the number of unissued one-time prekeys below
	// which Maintain refills the pool.
	OneTimePrekeyLow = 25
	// MaxOneTimePrekeys caps the pool, issued keys included; beyond it the
	// oldest issued keys are dropped.
	MaxOneTimePrekeys = 400
	// maxSignedPrekeys caps the signed prekeys kept (current and previous).
	maxSignedPrekeys = 8
)
