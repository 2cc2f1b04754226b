package e2e

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

// Domain-separation labels. Each is used for exactly one purpose.
const (
	labelIdentityDH    = "parley/e2e/v1 identity-dh"
	labelSignedPrekey  = "parley/e2e/v1 signed-prekey"
	labelX3DH          = "parley/e2e/v1 x3dh"
	labelRoot          = "parley/e2e/v1 root"
	labelMessageKey    = "parley/e2e/v1 message-key"
	labelSenderChain   = "parley/e2e/v1 sender-chain"
	labelSenderMessage = "parley/e2e/v1 sender-message-key"
)

const (
	keySize   = 32
	sigSize   = ed25519.SignatureSize
	tagSize   = chacha20poly1305.Overhead
	nonceSize = chacha20poly1305.NonceSize
)

// keyPair is an X25519 key pair.
type keyPair struct {
	priv, pub [keySize]byte
}

// newKeyPair reads a private key from rand.
func newKeyPair(rand io.Reader) (keyPair, error) {
	var kp keyPair
	if _, err := io.ReadFull(rand, kp.priv[:]); err != nil {
		return keyPair{}, fmt.Errorf("e2e: read randomness: %w", err)
	}
	pub, err := curve25519.X25519(kp.priv[:], curve25519.Basepoint)
	if err != nil {
		return keyPair{}, fmt.Errorf("e2e: derive public key: %w", err)
	}
	copy(kp.pub[:], pub)
	return kp, nil
}

func (kp *keyPair) zero() { clear(kp.priv[:]) }

// dh computes X25519(priv, pub), refusing low-order points.
func dh(priv, pub *[keySize]byte) ([keySize]byte, error) {
	var out [keySize]byte
	s, err := curve25519.X25519(priv[:], pub[:])
	if err != nil {
		return out, fmt.Errorf("%w: invalid public key", ErrAuthFailed)
	}
	copy(out[:], s)
	clear(s)
	return out, nil
}

// kdfRK is the root KDF: HKDF-SHA256 with salt rk, input dhOut and info
// labelRoot, 64 bytes split into the new root key and a chain key.
func kdfRK(rk, dhOut *[keySize]byte) (newRK, ck [keySize]byte) {
	var out [2 * keySize]byte
	r := hkdf.New(sha256.New, dhOut[:], rk[:], []byte(labelRoot))
	if _, err := io.ReadFull(r, out[:]); err != nil {
		panic("e2e: hkdf: " + err.Error()) // unreachable: 64 bytes is within HKDF's limit
	}
	copy(newRK[:], out[:keySize])
	copy(ck[:], out[keySize:])
	clear(out[:])
	return newRK, ck
}

// kdfCK is the chain KDF of the Signal specification: the message key is
// HMAC-SHA256(ck, 0x01), the next chain key HMAC-SHA256(ck, 0x02).
func kdfCK(ck *[keySize]byte) (mk, next [keySize]byte) {
	h := hmac.New(sha256.New, ck[:])
	h.Write([]byte{0x01})
	h.Sum(mk[:0])
	h.Reset()
	h.Write([]byte{0x02})
	h.Sum(next[:0])
	return mk, next
}

// senderStep is the sender-key chain step: the message seed is
// HMAC-SHA256(ck, 0x01 || labelSenderChain), the next chain key
// HMAC-SHA256(ck, 0x02 || labelSenderChain).
func senderStep(ck *[keySize]byte) (seed, next [keySize]byte) {
	h := hmac.New(sha256.New, ck[:])
	h.Write([]byte{0x01})
	h.Write([]byte(labelSenderChain))
	h.Sum(seed[:0])
	h.Reset()
	h.Write([]byte{0x02})
	h.Write([]byte(labelSenderChain))
	h.Sum(next[:0])
	return seed, next
}

// aeadKey is the ChaCha20-Poly1305 key and nonce derived from one message key.
type aeadKey struct {
	key   [keySize]byte
	nonce [nonceSize]byte
}

func (k *aeadKey) zero() { clear(k.key[:]); clear(k.nonce[:]) }

// expandMessageKey derives the AEAD key and nonce from a message key:
// HKDF-SHA256 with an all-zero salt, input mk and info label, 44 bytes.
func expandMessageKey(mk *[keySize]byte, label string) aeadKey {
	var out [keySize + nonceSize]byte
	r := hkdf.New(sha256.New, mk[:], nil, []byte(label))
	if _, err := io.ReadFull(r, out[:]); err != nil {
		panic("e2e: hkdf: " + err.Error()) // unreachable
	}
	var k aeadKey
	copy(k.key[:], out[:keySize])
	copy(k.nonce[:], out[keySize:])
	clear(out[:])
	return k
}

// seal appends the encryption of plaintext under mk to dst.
func seal(dst []byte, mk *[keySize]byte, label string, plaintext, ad []byte) []byte {
	k := expandMessageKey(mk, label)
	defer k.zero()
	aead, err := chacha20poly1305.New(k.key[:])
	if err != nil {
		panic("e2e: chacha20poly1305: " + err.Error()) // unreachable: fixed key size
	}
	return aead.Seal(dst, k.nonce[:], plaintext, ad)
}

// open decrypts ciphertext under mk.
func open(mk *[keySize]byte, label string, ciphertext, ad []byte) ([]byte, error) {
	k := expandMessageKey(mk, label)
	defer k.zero()
	aead, err := chacha20poly1305.New(k.key[:])
	if err != nil {
		panic("e2e: chacha20poly1305: " + err.Error()) // unreachable
	}
	pt, err := aead.Open(nil, k.nonce[:], ciphertext, ad)
	if err != nil {
		return nil, ErrAuthFailed
	}
	return pt, nil
}

// x3dhSecret derives the shared secret SK of X3DH:
//
//	HKDF-SHA256(salt = 32 zero bytes,
//	            ikm  = 32 0xFF bytes || DH1 || DH2 || DH3 [|| DH4],
//	            info = labelX3DH || initiator Ed25519 || responder Ed25519)
func x3dhSecret(dhs [][keySize]byte, initiator, responder ed25519.PublicKey) [keySize]byte {
	ikm := make([]byte, 0, keySize*5)
	for range keySize {
		ikm = append(ikm, 0xFF)
	}
	for i := range dhs {
		ikm = append(ikm, dhs[i][:]...)
	}
	info := make([]byte, 0, len(labelX3DH)+2*ed25519.PublicKeySize)
	info = append(info, labelX3DH...)
	info = append(info, initiator...)
	info = append(info, responder...)
	var salt [keySize]byte
	var sk [keySize]byte
	if _, err := io.ReadFull(hkdf.New(sha256.New, ikm, salt[:], info), sk[:]); err != nil {
		panic("e2e: hkdf: " + err.Error()) // unreachable
	}
	clear(ikm)
	return sk
}

// identityDHMessage is what the Ed25519 identity signs to bind the X25519
// identity key: labelIdentityDH || public key.
func identityDHMessage(pub *[keySize]byte) []byte {
	return append([]byte(labelIdentityDH), pub[:]...)
}

// signedPrekeyMessage is what the Ed25519 identity signs for a signed
// prekey: labelSignedPrekey || u32 id || u64 created (Unix seconds) || key.
func signedPrekeyMessage(id uint32, created int64, pub *[keySize]byte) []byte {
	m := append([]byte(labelSignedPrekey), byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	for i := 7; i >= 0; i-- {
		m = append(m, byte(uint64(created)>>(8*i)))
	}
	return append(m, pub[:]...)
}
