package mailbox

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"

	"github.com/parley-im/parley/chat/wire"
)

// Domain-separation labels of the mailbox construction (version 1). Each is
// used for exactly one purpose; see docs/PROTOCOL.md, "Mailboxes".
const (
	labelFetch = "parley/mailbox/1 fetch-key"
	labelTag   = "parley/mailbox/1 tag"
	labelSeal  = "parley/mailbox/1 seal-key"
	labelNonce = "parley/mailbox/1 nonce-key"
	labelBlob  = "parley/mailbox/1 blob"
)

// SealVersion is the first byte of every sealed blob.
const SealVersion = 1

const (
	frameIDSize = wire.IDSize
	nonceSize   = chacha20poly1305.NonceSizeX
	// sealOverhead is what Seal adds to frame id + envelope.
	sealOverhead = 1 + nonceSize + chacha20poly1305.Overhead
	// MaxSealedEnvelope is the largest envelope whose sealed blob still
	// fits in Deposit.blob (wire.MaxEnvelopeSize).
	MaxSealedEnvelope = wire.MaxEnvelopeSize - sealOverhead - frameIDSize
)

// ErrOpen is returned by Open for a blob that is not a valid seal under the
// secret: wrong secret, tampered, truncated or of another version.
var ErrOpen = errors.New("mailbox: cannot open sealed blob")

// Secret is the 32-byte tag secret one recipient gives one contact in a
// MailboxList. From it derive the fetch keys and tags of each day and the
// key that seals the deposits of that contact to that recipient.
type Secret [wire.SecretSize]byte

// String never shows the secret.
func (Secret) String() string { return "mailbox.Secret(redacted)" }

// keys are the subkeys of a Secret.
type keys struct {
	fetch, seal, nonce [32]byte
}

func (s *Secret) keys() keys {
	var k keys
	for _, d := range []struct {
		label string
		out   *[32]byte
	}{{labelFetch, &k.fetch}, {labelSeal, &k.seal}, {labelNonce, &k.nonce}} {
		r := hkdf.New(sha256.New, s[:], nil, []byte(d.label))
		if _, err := io.ReadFull(r, d.out[:]); err != nil {
			panic(err) // HKDF-SHA256 yields up to 8160 bytes
		}
	}
	return k
}

func (k *keys) zero() {
	clear(k.fetch[:])
	clear(k.seal[:])
	clear(k.nonce[:])
}

// Day is a UTC calendar day: days since 1970-01-01.
type Day int64

// DayOf returns the UTC day of t.
func DayOf(t time.Time) Day { return Day(t.UTC().Unix() / 86400) }

// FetchKey returns the fetch key of day d at mailbox m:
//
//	HMAC-SHA256(fetch-key, u64be(d) || m)
//
// where m is the mailbox's peer ID in its binary (multihash) form. The
// recipient presents it in Fetch.tags at m; it is the preimage of the tag
// that senders use at m that day, so only the holder of the secret can
// name the tag's items. Binding the mailbox in makes a key that m has seen
// useless anywhere else: at another mailbox it names a tag nobody uses.
func (s *Secret) FetchKey(m peer.ID, d Day) [32]byte {
	k := s.keys()
	defer k.zero()
	mac := hmac.New(sha256.New, k.fetch[:])
	mac.Write(binary.BigEndian.AppendUint64(nil, uint64(d)))
	mac.Write([]byte(m))
	var out [32]byte
	mac.Sum(out[:0])
	return out
}

// Tag returns the recipient tag of day d at mailbox m, under which senders
// deposit there.
func (s *Secret) Tag(m peer.ID, d Day) [32]byte {
	fk := s.FetchKey(m, d)
	return TagOf(fk[:])
}

// TagOf returns the tag named by a fetch key:
// SHA-256("parley/mailbox/1 tag" 0x00 fetch_key). A mailbox computes it for
// every key in a Fetch.
func TagOf(fetchKey []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(labelTag))
	h.Write([]byte{0})
	h.Write(fetchKey)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Seal encrypts a frame (its 16-byte id and its E2E envelope) for the
// recipient with XChaCha20-Poly1305 under the secret's seal key. The nonce
// is synthetic, HMAC-SHA256(nonce-key, frame_id || envelope)[:24], so the
// same frame always seals to the same blob: a retried deposit is
// byte-identical and the mailbox stores it once. Layout:
//
//	0x01 || nonce (24) || AEAD(seal-key, nonce, frame_id || envelope,
//	                           ad = 0x01 || "parley/mailbox/1 blob")
func (s *Secret) Seal(frameID, envelope []byte) ([]byte, error) {
	if len(frameID) != frameIDSize {
		return nil, fmt.Errorf("mailbox: seal: frame id is %d bytes, want %d", len(frameID), frameIDSize)
	}
	if len(envelope) == 0 || len(envelope) > MaxSealedEnvelope {
		return nil, fmt.Errorf("mailbox: seal: envelope of %d bytes (want 1 to %d)", len(envelope), MaxSealedEnvelope)
	}
	k := s.keys()
	defer k.zero()
	plain := make([]byte, 0, frameIDSize+len(envelope))
	plain = append(append(plain, frameID...), envelope...)
	nonce := syntheticNonce(&k, plain)
	aead, err := chacha20poly1305.NewX(k.seal[:])
	if err != nil {
		return nil, fmt.Errorf("mailbox: seal: %w", err)
	}
	out := make([]byte, 0, sealOverhead+len(plain))
	out = append(out, SealVersion)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, blobAD()), nil
}

// Open reverses Seal: it authenticates the blob under the secret and
// returns the frame id and the envelope.
func (s *Secret) Open(blob []byte) (frameID, envelope []byte, err error) {
	if len(blob) < sealOverhead+frameIDSize+1 || len(blob) > wire.MaxEnvelopeSize || blob[0] != SealVersion {
		return nil, nil, ErrOpen
	}
	k := s.keys()
	defer k.zero()
	aead, err := chacha20poly1305.NewX(k.seal[:])
	if err != nil {
		return nil, nil, fmt.Errorf("mailbox: open: %w", err)
	}
	nonce := blob[1 : 1+nonceSize]
	plain, err := aead.Open(nil, nonce, blob[1+nonceSize:], blobAD())
	if err != nil {
		return nil, nil, ErrOpen
	}
	if subtle.ConstantTimeCompare(nonce, syntheticNonce(&k, plain)) != 1 {
		return nil, nil, ErrOpen
	}
	return plain[:frameIDSize], plain[frameIDSize:], nil
}

func syntheticNonce(k *keys, plain []byte) []byte {
	m := hmac.New(sha256.New, k.nonce[:])
	m.Write(plain)
	return m.Sum(nil)[:nonceSize]
}

func blobAD() []byte { return append([]byte{SealVersion}, labelBlob...) }
