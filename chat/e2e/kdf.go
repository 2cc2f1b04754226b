package e2e

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"sync"

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
	// Version 2 (PQXDH) labels.
	labelKEMPrekey = "parley/e2e/v2 kem-prekey"
	labelPQXDH     = "parley/e2e/v2 pqxdh X25519 SHA-256 ML-KEM-768"
)

const (
	keySize   = 32
	sigSize   = ed25519.SignatureSize
	tagSize   = chacha20poly1305.Overhead
	nonceSize = chacha20poly1305.NonceSize

	// KEMPublicKeySize is the size of an ML-KEM-768 encapsulation key.
	KEMPublicKeySize = mlkem.EncapsulationKeySize768
	// KEMCiphertextSize is the size of an ML-KEM-768 ciphertext.
	KEMCiphertextSize = mlkem.CiphertextSize768
	kemSeedSize       = mlkem.SeedSize
	// kemTypeMLKEM768 is the one-byte type that prefixes an encoded KEM
	// public key wherever it is signed or hashed (EncodeKEM of PQXDH).
	kemTypeMLKEM768 = 0x01
)

// KEM prekey kinds, in signatures and prekey headers.
const (
	kemLastResort = 1
	kemOneTime    = 2
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
// HMAC-SHA256(ck, 0x01), the next chain key HMAC-SHA256(ck, 0x02). One
// HMAC object serves both outputs (Reset restores its keyed state).
func kdfCK(ck *[keySize]byte) (mk, next [keySize]byte) {
	k := getKDF()
	defer k.put()
	return kdfCKWith(k, ck)
}

func kdfCKWith(k *kdfState, ck *[keySize]byte) (mk, next [keySize]byte) {
	k.key = *ck // the HMAC keeps its key slice: this keeps ck on the stack
	h := k.hmac(k.key[:])
	h.Write(byte01)
	copy(mk[:], h.Sum(k.sum[:0]))
	h.Reset()
	h.Write(byte02)
	copy(next[:], h.Sum(k.sum[:0]))
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
// HKDF-SHA256 (RFC 5869) with an all-zero salt, input mk and info label,
// 44 bytes. Extract is HMAC-SHA256 under the all-zero salt, a key that is
// not secret, so one keyed HMAC object per kdfState serves every message;
// Expand takes two blocks from one HMAC object keyed with the PRK:
//
//	T1 = HMAC(PRK, label || 0x01), T2 = HMAC(PRK, T1 || label || 0x02)
//
// The known-answer vectors in testdata pin the result.
func expandMessageKey(mk *[keySize]byte, label string) aeadKey {
	k := getKDF()
	defer k.put()
	return expandWith(k, mk, label)
}

func expandWith(k *kdfState, mk *[keySize]byte, label string) aeadKey {
	k.key = *mk // hash.Hash.Write would move mk to the heap
	k.extract.Reset()
	k.extract.Write(k.key[:])
	prk := k.extract.Sum(k.prk[:0])
	k.scrubExtract()
	h := k.hmac(prk)
	clear(k.prk[:])
	h.Write(labelOf(label))
	h.Write(byte01)
	t := h.Sum(k.sum[:0])
	var out aeadKey
	copy(out.key[:], t)
	h.Reset()
	h.Write(t)
	h.Write(labelOf(label))
	h.Write(byte02)
	t = h.Sum(k.sum[:0])
	copy(out.nonce[:], t)
	clear(k.sum[:])
	return out
}

var (
	byte01 = []byte{0x01}
	byte02 = []byte{0x02}
	// zeroSalt is HKDF's default salt for SHA-256: 32 zero bytes.
	zeroSalt [sha256.Size]byte
)

// kdfState is scratch space for the per-message KDF and AEAD: buffers that
// would otherwise be allocated for every message, the HKDF-Extract HMAC
// keyed with the all-zero salt, and the two SHA-256 states that the
// per-message HMACs (see hmac) run on. Secrets written into it are cleared
// before it goes back to the pool.
type kdfState struct {
	extract hash.Hash
	// exDigests are the SHA-256 states under extract, scrubbed in place
	// after each use (see scrubExtract); nil if crypto/hmac did not ask
	// for exactly two.
	exDigests [2]hash.Hash
	digests   [2]plainDigest
	nextDig   int
	newDig    func() hash.Hash // k.digest, bound once
	key       [keySize]byte
	prk       [sha256.Size]byte
	sum       [sha256.Size]byte
	ak        aeadKey
	ad        []byte
}

// plainDigest is a SHA-256 state that offers only the hash.Hash methods.
// crypto/hmac saves the keyed states of a hash that can marshal itself on
// the first Reset, allocating two buffers; an HMAC keyed for one message
// has no use for them, and writing the padded key again costs one block.
// (GODEBUG=fips140=only would refuse this wrapper, as it refuses X25519.)
type plainDigest struct{ hash.Hash }

var kdfPool = sync.Pool{New: func() any {
	k := &kdfState{
		digests: [2]plainDigest{{sha256.New()}, {sha256.New()}},
		ad:      make([]byte, 0, 1+2*ed25519.PublicKeySize+2+prekeyHeaderSize+pqHeaderSize+headerSize),
	}
	var ex []hash.Hash
	k.extract = hmac.New(func() hash.Hash {
		d := sha256.New()
		ex = append(ex, d)
		return d
	}, zeroSalt[:])
	if len(ex) == len(k.exDigests) {
		copy(k.exDigests[:], ex)
	}
	// The first Reset saves the keyed states, which every later Reset
	// (inner) and Sum (outer) restores.
	k.extract.Reset()
	k.newDig = k.digest
	return k
}}

func getKDF() *kdfState { return kdfPool.Get().(*kdfState) }

// digest hands out k's two SHA-256 states in turn, reset: crypto/hmac.New
// asks for two (outer and inner).
func (k *kdfState) digest() hash.Hash {
	d := &k.digests[k.nextDig]
	k.nextDig ^= 1
	d.Reset()
	return d
}

// hmac returns HMAC-SHA256 keyed with key, running on k's SHA-256 states:
// it is valid until the next call of hmac on k. Only the HMAC object and
// its padded keys are allocated.
func (k *kdfState) hmac(key []byte) hash.Hash {
	k.nextDig = 0
	return hmac.New(k.newDig, key)
}

// put clears the scratch buffers and returns k to the pool.
func (k *kdfState) put() {
	clear(k.key[:])
	k.ak.zero()
	clear(k.prk[:])
	clear(k.sum[:])
	for i := range k.digests {
		k.digests[i].scrub()
	}
	kdfPool.Put(k)
}

// scrub overwrites what the state holds of the keys hashed with it: its
// chaining value (Reset) and the partial block it buffers (fewer than 64
// bytes, overwritten by 63 zero bytes).
func (d *plainDigest) scrub() { scrubDigest(d.Hash) }

func scrubDigest(d hash.Hash) {
	d.Reset()
	d.Write(zeroBlock[:sha256.BlockSize-1])
	d.Reset()
}

var zeroBlock [sha256.BlockSize]byte

// scrubExtract overwrites what the extract HMAC holds of the last input:
// its inner hash buffers mk and its outer hash the inner digest. Both
// states are scrubbed in place, which costs no SHA-256 block: crypto/hmac
// restores the inner state on Reset and the outer one on Sum, so the next
// extraction is unaffected (TestExpandReusedState checks it). If the
// states are out of reach, it hashes the empty message over them instead.
func (k *kdfState) scrubExtract() {
	if k.exDigests[1] == nil {
		k.extract.Reset()
		k.extract.Sum(k.sum[:0])
		k.extract.Reset()
		return
	}
	for _, d := range k.exDigests {
		scrubDigest(d)
	}
}

// The message-key labels as bytes, so that writing one into a hash does
// not allocate.
var (
	labelMessageKeyBytes    = []byte(labelMessageKey)
	labelSenderMessageBytes = []byte(labelSenderMessage)
)

func labelOf(label string) []byte {
	switch label {
	case labelMessageKey:
		return labelMessageKeyBytes
	case labelSenderMessage:
		return labelSenderMessageBytes
	}
	return []byte(label)
}

// seal appends the encryption of plaintext under mk to dst.
func seal(dst []byte, mk *[keySize]byte, label string, plaintext, ad []byte) []byte {
	k := getKDF()
	defer k.put()
	return sealWith(k, dst, mk, label, plaintext, ad)
}

func sealWith(k *kdfState, dst []byte, mk *[keySize]byte, label string, plaintext, ad []byte) []byte {
	k.ak = expandWith(k, mk, label)
	defer k.ak.zero()
	aead, err := chacha20poly1305.New(k.ak.key[:])
	if err != nil {
		panic("e2e: chacha20poly1305: " + err.Error()) // unreachable: fixed key size
	}
	return aead.Seal(dst, k.ak.nonce[:], plaintext, ad)
}

// open decrypts ciphertext under mk.
func open(mk *[keySize]byte, label string, ciphertext, ad []byte) ([]byte, error) {
	k := getKDF()
	defer k.put()
	return openWith(k, mk, label, ciphertext, ad)
}

func openWith(k *kdfState, mk *[keySize]byte, label string, ciphertext, ad []byte) ([]byte, error) {
	k.ak = expandWith(k, mk, label)
	defer k.ak.zero()
	aead, err := chacha20poly1305.New(k.ak.key[:])
	if err != nil {
		panic("e2e: chacha20poly1305: " + err.Error()) // unreachable
	}
	pt, err := aead.Open(nil, k.ak.nonce[:], ciphertext, ad)
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

// pqxdhSecret derives the shared secret SK of PQXDH (envelope type 3):
//
//	HKDF-SHA256(salt = 32 zero bytes,
//	            ikm  = 32 0xFF bytes || DH1 || DH2 || DH3 [|| DH4] || SS,
//	            info = labelPQXDH || initiator Ed25519 || responder Ed25519 ||
//	                   SHA-256(0x01 || KEM public key || KEM ciphertext))
//
// SS is the ML-KEM-768 shared secret. The hash in info binds SK to the
// exact KEM public key and ciphertext, so a shared secret re-encapsulated
// under another key or ciphertext yields another SK.
func pqxdhSecret(dhs [][keySize]byte, ss []byte, kemPub, ct []byte, initiator, responder ed25519.PublicKey) [keySize]byte {
	ikm := make([]byte, 0, keySize*6)
	for range keySize {
		ikm = append(ikm, 0xFF)
	}
	for i := range dhs {
		ikm = append(ikm, dhs[i][:]...)
	}
	ikm = append(ikm, ss...)
	th := sha256.New()
	th.Write([]byte{kemTypeMLKEM768})
	th.Write(kemPub)
	th.Write(ct)
	info := make([]byte, 0, len(labelPQXDH)+2*ed25519.PublicKeySize+sha256.Size)
	info = append(info, labelPQXDH...)
	info = append(info, initiator...)
	info = append(info, responder...)
	info = th.Sum(info)
	var salt [keySize]byte
	var sk [keySize]byte
	if _, err := io.ReadFull(hkdf.New(sha256.New, ikm, salt[:], info), sk[:]); err != nil {
		panic("e2e: hkdf: " + err.Error()) // unreachable
	}
	clear(ikm)
	return sk
}

// kemPrekeyMessage is what the Ed25519 identity signs for an ML-KEM-768
// prekey: labelKEMPrekey || u32 id || u8 kind (1 last-resort, 2 one-time) ||
// u8 KEM type (0x01, ML-KEM-768) || encapsulation key.
func kemPrekeyMessage(id uint32, kind byte, pub []byte) []byte {
	m := make([]byte, 0, len(labelKEMPrekey)+4+2+len(pub))
	m = append(m, labelKEMPrekey...)
	m = appendU32(m, id)
	m = append(m, kind, kemTypeMLKEM768)
	return append(m, pub...)
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
