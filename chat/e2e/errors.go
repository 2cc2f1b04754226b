package e2e

import "errors"

// Errors returned by this package. They are wrapped with context; test them
// with errors.Is. None of them reveals key material.
var (
	// ErrUnknownVersion means an encoding starts with a version other than
	// Version: the peer runs an incompatible release.
	ErrUnknownVersion = errors.New("e2e: unknown version")
	// ErrMalformed means an encoding is truncated, too long or has an
	// invalid field.
	ErrMalformed = errors.New("e2e: malformed encoding")
	// ErrTooLarge means a plaintext or encoding exceeds its size limit.
	ErrTooLarge = errors.New("e2e: too large")
	// ErrBadSignature means a signature does not verify against the
	// contact's Ed25519 identity: the key material is not the contact's.
	ErrBadSignature = errors.New("e2e: bad signature")
	// ErrKeyMismatch means a key store or channel is used with an identity
	// other than the one it belongs to.
	ErrKeyMismatch = errors.New("e2e: identity key mismatch")
	// ErrNoSession means there is no session to encrypt with, or a message
	// matches no session: a new session must be initiated.
	ErrNoSession = errors.New("e2e: no session")
	// ErrReplay means the message's key was already used (or discarded):
	// the message was delivered before.
	ErrReplay = errors.New("e2e: replayed message")
	// ErrTooManySkipped means a message is further ahead of its chain than
	// MaxSkip allows.
	ErrTooManySkipped = errors.New("e2e: message gap too large")
	// ErrAuthFailed means a message failed authentication: its header or
	// ciphertext was tampered with or truncated, or it belongs to no known
	// session.
	ErrAuthFailed = errors.New("e2e: message authentication failed")
	// ErrUnknownPrekey means a prekey message names a signed or one-time
	// prekey that this node does not have (never issued, already used, or
	// dropped after its grace period).
	ErrUnknownPrekey = errors.New("e2e: unknown prekey")
	// ErrDowngrade means X3DH (a version 1 bundle or a type 2 prekey
	// message) was offered for a contact that is known to speak PQXDH: it
	// once set up a PQXDH session with us, or we added it from a version 2
	// contact link. Such a contact gets PQXDH or nothing.
	ErrDowngrade = errors.New("e2e: X3DH refused for a contact that speaks PQXDH")
	// ErrExpiredPrekey means a signed prekey is past its lifetime.
	ErrExpiredPrekey = errors.New("e2e: expired signed prekey")
	// ErrWrongChain means a sender-key message belongs to another chain.
	ErrWrongChain = errors.New("e2e: message from another sender chain")
	// ErrChainExhausted means a chain reached its maximum message count.
	ErrChainExhausted = errors.New("e2e: chain exhausted")
)
