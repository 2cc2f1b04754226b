package e2e

import (
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/subtle"
	"fmt"
	"io"
	"time"
)

// KeyStore is the local key material for session setup: the X25519 identity
// key (signed by the Ed25519 identity), the current signed prekey and the
// replaced ones still in their grace period, and the pool of one-time
// prekeys. The zero value is empty; use NewKeyStore or UnmarshalBinary.
//
// A KeyStore changes when Maintain rotates keys, when Bundle issues a
// one-time prekey and when Channel.Decrypt consumes one; the caller must
// persist it (MarshalBinary) in the same transaction as the operation that
// changed it, or a one-time prekey could be issued or used twice.
//
// A KeyStore is not safe for concurrent use.
type KeyStore struct {
	edPub    [ed25519.PublicKeySize]byte
	idDH     keyPair
	idDHSig  [sigSize]byte
	nextSPK  uint32
	nextOTPK uint32
	spks     []signedPrekey  // current first, then older ones
	otpks    []oneTimePrekey // in id order, oldest first

	// Post-quantum (PQXDH) prekeys: signed ML-KEM-768 keys.
	nextKEM uint32
	lrks    []kemPrekey // last-resort keys: current first, then older ones
	okps    []kemPrekey // one-time keys, in id order, oldest first

	// spent are the base keys of accepted prekey messages that used no
	// one-time prekey (a link's bundle, or an exhausted pool), oldest
	// first, with the signed prekey they used: such a message would set up
	// its session again if replayed once the channel is gone (the contact
	// removed or the request declined), so it is refused as a replay while
	// its signed prekey is still accepted.
	spent []spentBase
}

type spentBase struct {
	base [keySize]byte
	spk  uint32
}

// MaxSpentBaseKeys bounds the remembered base keys of prekey messages that
// used no one-time prekey; beyond it the oldest is forgotten.
const MaxSpentBaseKeys = 1024

// isSpent reports whether a prekey message with base key base was already
// accepted without a one-time prekey.
func (ks *KeyStore) isSpent(base *[keySize]byte) bool {
	for i := range ks.spent {
		if ks.spent[i].base == *base {
			return true
		}
	}
	return false
}

func (ks *KeyStore) spend(base [keySize]byte, spk uint32) {
	ks.spent = append(ks.spent, spentBase{base, spk})
	if extra := len(ks.spent) - MaxSpentBaseKeys; extra > 0 {
		ks.spent = append(ks.spent[:0], ks.spent[extra:]...)
	}
}

// pruneSpent forgets the base keys whose signed prekey is gone: a replay
// of them fails with ErrUnknownPrekey anyway.
func (ks *KeyStore) pruneSpent() {
	keep := ks.spent[:0]
	for _, s := range ks.spent {
		for i := range ks.spks {
			if ks.spks[i].id == s.spk {
				keep = append(keep, s)
				break
			}
		}
	}
	clear(ks.spent[len(keep):])
	ks.spent = keep
}

// kemPrekey is a signed ML-KEM-768 prekey. Only its 64-byte seed is
// stored; the decapsulation key is derived from it on first use.
type kemPrekey struct {
	id      uint32
	kind    byte  // kemLastResort or kemOneTime
	issued  bool  // one-time keys: handed out in a bundle
	created int64 // Unix seconds
	seed    [kemSeedSize]byte
	sig     [sigSize]byte
	dk      *mlkem.DecapsulationKey768 // cache, never encoded
}

func (k *kemPrekey) key() (*mlkem.DecapsulationKey768, error) {
	if k.dk == nil {
		dk, err := mlkem.NewDecapsulationKey768(k.seed[:])
		if err != nil {
			return nil, fmt.Errorf("%w: KEM prekey seed: %v", ErrMalformed, err)
		}
		k.dk = dk
	}
	return k.dk, nil
}

func (k *kemPrekey) zero() { clear(k.seed[:]); k.dk = nil }

// newKEMPrekey reads a seed from rand and signs the resulting key.
func newKEMPrekey(id ed25519.PrivateKey, kid uint32, kind byte, rand io.Reader, now time.Time) (kemPrekey, error) {
	k := kemPrekey{id: kid, kind: kind, created: now.Unix()}
	if _, err := io.ReadFull(rand, k.seed[:]); err != nil {
		return kemPrekey{}, fmt.Errorf("e2e: read randomness: %w", err)
	}
	dk, err := k.key()
	if err != nil {
		return kemPrekey{}, err
	}
	copy(k.sig[:], ed25519.Sign(id, kemPrekeyMessage(kid, kind, dk.EncapsulationKey().Bytes())))
	return k, nil
}

// Post-quantum prekey pool sizes, applied by KeyStore.Maintain. The
// last-resort KEM prekey rotates with the signed prekey.
const (
	// OneTimeKEMPrekeyTarget is the number of unissued one-time KEM
	// prekeys that Maintain refills the pool to.
	OneTimeKEMPrekeyTarget = 50
	// OneTimeKEMPrekeyLow is the number of unissued one-time KEM prekeys
	// below which Maintain refills the pool.
	OneTimeKEMPrekeyLow = 15
	// MaxOneTimeKEMPrekeys caps the pool, issued keys included.
	MaxOneTimeKEMPrekeys = 200
)

type signedPrekey struct {
	id      uint32
	created int64 // Unix seconds
	kp      keyPair
	sig     [sigSize]byte
}

type oneTimePrekey struct {
	id     uint32
	issued bool
	kp     keyPair
}

// NewKeyStore creates the key material of the identity id: an X25519
// identity key, a signed prekey created at now and OneTimePrekeyTarget
// one-time prekeys.
func NewKeyStore(id ed25519.PrivateKey, rand io.Reader, now time.Time) (*KeyStore, error) {
	if len(id) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("e2e: new key store: %w: Ed25519 private key has %d bytes", ErrKeyMismatch, len(id))
	}
	ks := &KeyStore{nextSPK: 1, nextOTPK: 1}
	copy(ks.edPub[:], id.Public().(ed25519.PublicKey))
	kp, err := newKeyPair(rand)
	if err != nil {
		return nil, fmt.Errorf("e2e: new key store: %w", err)
	}
	ks.idDH = kp
	copy(ks.idDHSig[:], ed25519.Sign(id, identityDHMessage(&kp.pub)))
	if err := ks.rotate(id, rand, now); err != nil {
		return nil, fmt.Errorf("e2e: new key store: %w", err)
	}
	if _, err := ks.refill(rand); err != nil {
		return nil, fmt.Errorf("e2e: new key store: %w", err)
	}
	// The post-quantum keys come last, so the classical keys are the same
	// as those of a version 1 key store made from the same randomness.
	ks.nextKEM = 1
	if err := ks.rotateKEM(id, rand, now); err != nil {
		return nil, fmt.Errorf("e2e: new key store: %w", err)
	}
	if _, err := ks.refillKEM(id, rand, now); err != nil {
		return nil, fmt.Errorf("e2e: new key store: %w", err)
	}
	return ks, nil
}

// rotateKEM makes a new last-resort KEM prekey current.
func (ks *KeyStore) rotateKEM(id ed25519.PrivateKey, rand io.Reader, now time.Time) error {
	k, err := newKEMPrekey(id, ks.nextKEM, kemLastResort, rand, now)
	if err != nil {
		return err
	}
	ks.nextKEM++
	ks.lrks = append([]kemPrekey{k}, ks.lrks...)
	for len(ks.lrks) > maxSignedPrekeys {
		ks.lrks[len(ks.lrks)-1].zero()
		ks.lrks = ks.lrks[:len(ks.lrks)-1]
	}
	return nil
}

// refillKEM tops the unissued one-time KEM prekeys up to
// OneTimeKEMPrekeyTarget when fewer than OneTimeKEMPrekeyLow remain, then
// trims the pool to MaxOneTimeKEMPrekeys by dropping the oldest issued keys.
func (ks *KeyStore) refillKEM(id ed25519.PrivateKey, rand io.Reader, now time.Time) (bool, error) {
	unissued := 0
	for _, k := range ks.okps {
		if !k.issued {
			unissued++
		}
	}
	if unissued >= OneTimeKEMPrekeyLow {
		return false, nil
	}
	for ; unissued < OneTimeKEMPrekeyTarget; unissued++ {
		k, err := newKEMPrekey(id, ks.nextKEM, kemOneTime, rand, now)
		if err != nil {
			return false, err
		}
		ks.nextKEM++
		ks.okps = append(ks.okps, k)
	}
	for i := 0; len(ks.okps) > MaxOneTimeKEMPrekeys && i < len(ks.okps); {
		if ks.okps[i].issued {
			ks.okps[i].zero()
			ks.okps = append(ks.okps[:i], ks.okps[i+1:]...)
			continue
		}
		i++
	}
	return true, nil
}

func (ks *KeyStore) check(id ed25519.PrivateKey) error {
	if len(id) != ed25519.PrivateKeySize || len(ks.spks) == 0 {
		return fmt.Errorf("%w: key store is empty or the key is invalid", ErrKeyMismatch)
	}
	if subtle.ConstantTimeCompare(id[32:], ks.edPub[:]) != 1 {
		return fmt.Errorf("%w: key store belongs to another identity", ErrKeyMismatch)
	}
	return nil
}

// rotate makes a new signed prekey current.
func (ks *KeyStore) rotate(id ed25519.PrivateKey, rand io.Reader, now time.Time) error {
	kp, err := newKeyPair(rand)
	if err != nil {
		return err
	}
	spk := signedPrekey{id: ks.nextSPK, created: now.Unix(), kp: kp}
	ks.nextSPK++
	copy(spk.sig[:], ed25519.Sign(id, signedPrekeyMessage(spk.id, spk.created, &kp.pub)))
	ks.spks = append([]signedPrekey{spk}, ks.spks...)
	for len(ks.spks) > maxSignedPrekeys {
		ks.spks[len(ks.spks)-1].kp.zero()
		ks.spks = ks.spks[:len(ks.spks)-1]
	}
	return nil
}

// refill tops the unissued one-time prekeys up to OneTimePrekeyTarget when
// fewer than OneTimePrekeyLow remain, then trims the pool to
// MaxOneTimePrekeys by dropping the oldest issued keys.
func (ks *KeyStore) refill(rand io.Reader) (bool, error) {
	unissued := 0
	for _, k := range ks.otpks {
		if !k.issued {
			unissued++
		}
	}
	if unissued >= OneTimePrekeyLow {
		return false, nil
	}
	for ; unissued < OneTimePrekeyTarget; unissued++ {
		kp, err := newKeyPair(rand)
		if err != nil {
			return false, err
		}
		ks.otpks = append(ks.otpks, oneTimePrekey{id: ks.nextOTPK, kp: kp})
		ks.nextOTPK++
	}
	for i := 0; len(ks.otpks) > MaxOneTimePrekeys && i < len(ks.otpks); {
		if ks.otpks[i].issued {
			ks.otpks[i].kp.zero()
			ks.otpks = append(ks.otpks[:i], ks.otpks[i+1:]...)
			continue
		}
		i++
	}
	return true, nil
}

// Maintain applies the prekey schedule at now: it replaces the signed
// prekey once it is SignedPrekeyRotation old, deletes replaced signed
// prekeys SignedPrekeyGrace after their replacement, and refills the
// one-time prekey pool (see OneTimePrekeyLow). It reports whether the
// KeyStore changed and must be saved. Call it at start-up and periodically
// (hourly is plenty).
func (ks *KeyStore) Maintain(id ed25519.PrivateKey, rand io.Reader, now time.Time) (changed bool, err error) {
	if err := ks.check(id); err != nil {
		return false, fmt.Errorf("e2e: maintain key store: %w", err)
	}
	if now.Unix()-ks.spks[0].created >= int64(SignedPrekeyRotation/time.Second) {
		if err := ks.rotate(id, rand, now); err != nil {
			return false, fmt.Errorf("e2e: maintain key store: %w", err)
		}
		changed = true
	}
	// The last-resort KEM prekey follows the signed prekey's schedule; a
	// key store from before PQXDH has none yet.
	if len(ks.lrks) == 0 || now.Unix()-ks.lrks[0].created >= int64(SignedPrekeyRotation/time.Second) {
		if ks.nextKEM == 0 {
			ks.nextKEM = 1
		}
		if err := ks.rotateKEM(id, rand, now); err != nil {
			return false, fmt.Errorf("e2e: maintain key store: %w", err)
		}
		changed = true
	}
	for i := 1; i < len(ks.lrks); i++ {
		if now.Unix() >= ks.lrks[i-1].created+int64(SignedPrekeyGrace/time.Second) {
			for j := range ks.lrks[i:] {
				ks.lrks[i+j].zero()
			}
			ks.lrks = ks.lrks[:i]
			changed = true
			break
		}
	}
	refilledKEM, err := ks.refillKEM(id, rand, now)
	if err != nil {
		return changed, fmt.Errorf("e2e: maintain key store: %w", err)
	}
	changed = changed || refilledKEM
	for i := 1; i < len(ks.spks); i++ {
		if ks.spkExpired(i, now) {
			for j := range ks.spks[i:] {
				ks.spks[i+j].kp.zero() // in place: a range copy would leave the key
			}
			ks.spks = ks.spks[:i]
			ks.pruneSpent()
			changed = true
			break
		}
	}
	refilled, err := ks.refill(rand)
	if err != nil {
		return changed, fmt.Errorf("e2e: maintain key store: %w", err)
	}
	return changed || refilled, nil
}

// spkExpired reports whether the replaced signed prekey i is past its grace
// period: it was replaced when spks[i-1] was created.
func (ks *KeyStore) spkExpired(i int, now time.Time) bool {
	return i > 0 && now.Unix() >= ks.spks[i-1].created+int64(SignedPrekeyGrace/time.Second)
}

// signedPrekey returns the signed prekey with the given id if it still
// accepts new sessions at now.
func (ks *KeyStore) signedPrekey(id uint32, now time.Time) (*signedPrekey, error) {
	for i := range ks.spks {
		if ks.spks[i].id != id {
			continue
		}
		if ks.spkExpired(i, now) {
			return nil, fmt.Errorf("%w: signed prekey %d was replaced more than %v ago; the sender used a stale bundle", ErrExpiredPrekey, id, SignedPrekeyGrace)
		}
		return &ks.spks[i], nil
	}
	return nil, fmt.Errorf("%w: no signed prekey %d; the sender used a stale bundle", ErrUnknownPrekey, id)
}

// oneTimePrekey returns the index of the one-time prekey with the given id.
func (ks *KeyStore) oneTimePrekey(id uint32) (int, error) {
	for i := range ks.otpks {
		if ks.otpks[i].id == id {
			return i, nil
		}
	}
	return -1, fmt.Errorf("%w: one-time prekey %d is unknown or already used", ErrUnknownPrekey, id)
}

// consumeOneTimePrekey deletes the one-time prekey with the given id.
func (ks *KeyStore) consumeOneTimePrekey(id uint32) {
	if i, err := ks.oneTimePrekey(id); err == nil {
		ks.otpks[i].kp.zero()
		ks.otpks = append(ks.otpks[:i], ks.otpks[i+1:]...)
	}
}

// Bundle returns a version 1 (X3DH, classical) prekey bundle for a peer
// that wants to start a session with it and speaks only version 1, and
// marks the one-time prekey it contains as issued, so it is never handed
// out again; the caller must save the KeyStore before sending the bundle.
// When the pool is exhausted the bundle has no one-time prekey. Bundle fails
// with ErrExpiredPrekey if Maintain has not rotated the signed prekey in
// time. Peers that speak version 2 get BundlePQ.
func (ks *KeyStore) Bundle(id ed25519.PrivateKey, now time.Time) (Bundle, error) {
	b, err := ks.classicalBundle(id, now)
	if err != nil {
		return Bundle{}, fmt.Errorf("e2e: bundle: %w", err)
	}
	ks.issueOneTime(&b)
	return b, nil
}

func (ks *KeyStore) classicalBundle(id ed25519.PrivateKey, now time.Time) (Bundle, error) {
	if err := ks.check(id); err != nil {
		return Bundle{}, err
	}
	spk := &ks.spks[0]
	if now.Unix()-spk.created >= int64(SignedPrekeyMaxAge/time.Second) {
		return Bundle{}, fmt.Errorf("%w: signed prekey is older than %v; run Maintain", ErrExpiredPrekey, SignedPrekeyMaxAge)
	}
	return Bundle{
		Version:               1,
		IdentityDH:            ks.idDH.pub,
		IdentityDHSignature:   ks.idDHSig,
		SignedPrekeyID:        spk.id,
		SignedPrekeyCreated:   time.Unix(spk.created, 0),
		SignedPrekey:          spk.kp.pub,
		SignedPrekeySignature: spk.sig,
	}, nil
}

// issueOneTime adds the next unissued one-time X25519 prekey to b.
func (ks *KeyStore) issueOneTime(b *Bundle) {
	for i := range ks.otpks {
		if !ks.otpks[i].issued {
			ks.otpks[i].issued = true
			b.HasOneTimePrekey = true
			b.OneTimePrekeyID = ks.otpks[i].id
			b.OneTimePrekey = ks.otpks[i].kp.pub
			return
		}
	}
}

// setKEM puts the KEM prekey k into b and makes b a version 2 bundle.
func (b *Bundle) setKEM(k *kemPrekey) error {
	dk, err := k.key()
	if err != nil {
		return err
	}
	b.Version = 2
	b.KEMPrekeyID = k.id
	b.KEMPrekeyLastResort = k.kind == kemLastResort
	copy(b.KEMPrekey[:], dk.EncapsulationKey().Bytes())
	b.KEMPrekeySignature = k.sig
	return nil
}

// BundlePQ returns a version 2 (PQXDH) prekey bundle: the version 1
// content plus a signed ML-KEM-768 prekey, a one-time one while the pool
// lasts and the last-resort one after. It marks the one-time prekeys it
// hands out (X25519 and KEM) as issued, so neither is handed out again; the
// caller must save the KeyStore before sending the bundle.
func (ks *KeyStore) BundlePQ(id ed25519.PrivateKey, now time.Time) (Bundle, error) {
	b, err := ks.classicalBundle(id, now)
	if err != nil {
		return Bundle{}, fmt.Errorf("e2e: bundle: %w", err)
	}
	if len(ks.lrks) == 0 {
		return Bundle{}, fmt.Errorf("e2e: bundle: %w: no KEM prekey; run Maintain", ErrExpiredPrekey)
	}
	k := &ks.lrks[0]
	for i := range ks.okps {
		if !ks.okps[i].issued {
			k = &ks.okps[i]
			break
		}
	}
	if err := b.setKEM(k); err != nil {
		return Bundle{}, fmt.Errorf("e2e: bundle: %w", err)
	}
	if k.kind == kemOneTime {
		k.issued = true
	}
	ks.issueOneTime(&b)
	return b, nil
}

// LinkBundle returns the version 2 bundle a contact link carries: the
// signed prekey and the last-resort KEM prekey, no one-time prekey (a link
// may be used by several people, a one-time key only once). It does not
// change the KeyStore. The bundle is accepted for SignedPrekeyMaxAge after
// the signed prekey was made; after that a peer holding only the link must
// fetch a fresh bundle.
func (ks *KeyStore) LinkBundle(id ed25519.PrivateKey, now time.Time) (Bundle, error) {
	b, err := ks.classicalBundle(id, now)
	if err != nil {
		return Bundle{}, fmt.Errorf("e2e: link bundle: %w", err)
	}
	if len(ks.lrks) == 0 {
		return Bundle{}, fmt.Errorf("e2e: link bundle: %w: no KEM prekey; run Maintain", ErrExpiredPrekey)
	}
	if err := b.setKEM(&ks.lrks[0]); err != nil {
		return Bundle{}, fmt.Errorf("e2e: link bundle: %w", err)
	}
	return b, nil
}

// kemPrekey returns the KEM prekey of the given id and kind if it still
// accepts new sessions at now: a one-time key not yet used, or a
// last-resort key at most SignedPrekeyGrace past its replacement.
func (ks *KeyStore) kemPrekey(id uint32, kind byte, now time.Time) (*kemPrekey, error) {
	if kind == kemOneTime {
		for i := range ks.okps {
			if ks.okps[i].id == id {
				return &ks.okps[i], nil
			}
		}
		return nil, fmt.Errorf("%w: one-time KEM prekey %d is unknown or already used", ErrUnknownPrekey, id)
	}
	for i := range ks.lrks {
		if ks.lrks[i].id != id {
			continue
		}
		if i > 0 && now.Unix() >= ks.lrks[i-1].created+int64(SignedPrekeyGrace/time.Second) {
			return nil, fmt.Errorf("%w: last-resort KEM prekey %d was replaced more than %v ago; the sender used a stale bundle", ErrExpiredPrekey, id, SignedPrekeyGrace)
		}
		return &ks.lrks[i], nil
	}
	return nil, fmt.Errorf("%w: no last-resort KEM prekey %d; the sender used a stale bundle", ErrUnknownPrekey, id)
}

// consumeKEMPrekey deletes the one-time KEM prekey with the given id.
func (ks *KeyStore) consumeKEMPrekey(id uint32) {
	for i := range ks.okps {
		if ks.okps[i].id == id {
			ks.okps[i].zero()
			ks.okps = append(ks.okps[:i], ks.okps[i+1:]...)
			return
		}
	}
}

// KEMPrekeyCounts reports the one-time KEM prekeys not yet issued and the
// last-resort KEM prekeys kept (for status and tests).
func (ks *KeyStore) KEMPrekeyCounts() (unissuedOneTime, lastResort int) {
	for _, k := range ks.okps {
		if !k.issued {
			unissuedOneTime++
		}
	}
	return unissuedOneTime, len(ks.lrks)
}

const (
	keyStoreHeaderSize = 1 + ed25519.PublicKeySize + 2*keySize + sigSize + 4 + 4
	spkEntrySize       = 4 + 8 + 2*keySize + sigSize
	otpkEntrySize      = 4 + 1 + 2*keySize
	kemEntrySize       = 4 + 1 + 1 + 8 + kemSeedSize + sigSize
	// maxKeyStoreSize is the hard limit of an encoded KeyStore.
	maxKeyStoreSize = keyStoreHeaderSize + 1 + maxSignedPrekeys*spkEntrySize + 2 + MaxOneTimePrekeys*otpkEntrySize +
		4 + 1 + maxSignedPrekeys*kemEntrySize + 2 + MaxOneTimeKEMPrekeys*kemEntrySize +
		2 + MaxSpentBaseKeys*(keySize+4)
)

// keyStoreVersion is the version of the KeyStore encoding: 2 adds the KEM
// prekeys after the version 1 fields. Version 1 encodings still decode (with
// no KEM prekeys; Maintain adds them).
const keyStoreVersion = 2

func appendKEMPrekey(b []byte, k *kemPrekey) []byte {
	b = appendU32(b, k.id)
	b = append(b, k.kind)
	issued := byte(0)
	if k.issued {
		issued = 1
	}
	b = append(b, issued)
	b = appendU64(b, uint64(k.created))
	b = append(b, k.seed[:]...)
	return append(b, k.sig[:]...)
}

func readKEMPrekey(d *decoder, kind byte) (kemPrekey, error) {
	var k kemPrekey
	k.id = d.u32()
	k.kind = d.u8()
	switch d.u8() {
	case 0:
	case 1:
		k.issued = true
	default:
		return k, fmt.Errorf("%w: bad issued flag", ErrMalformed)
	}
	k.created = int64(d.u64())
	copy(k.seed[:], d.take(kemSeedSize))
	copy(k.sig[:], d.take(sigSize))
	if !d.failed && k.kind != kind {
		return k, fmt.Errorf("%w: KEM prekey of kind %d in the wrong list", ErrMalformed, k.kind)
	}
	return k, nil
}

// MarshalBinary encodes the KeyStore, private keys included: store it as
// secret data.
func (ks *KeyStore) MarshalBinary() ([]byte, error) {
	if len(ks.spks) == 0 {
		return nil, fmt.Errorf("e2e: marshal key store: %w: empty key store", ErrMalformed)
	}
	b := make([]byte, 0, keyStoreHeaderSize+1+len(ks.spks)*spkEntrySize+2+len(ks.otpks)*otpkEntrySize+
		7+(len(ks.lrks)+len(ks.okps))*kemEntrySize)
	b = append(b, keyStoreVersion)
	b = append(b, ks.edPub[:]...)
	b = append(b, ks.idDH.priv[:]...)
	b = append(b, ks.idDH.pub[:]...)
	b = append(b, ks.idDHSig[:]...)
	b = appendU32(b, ks.nextSPK)
	b = appendU32(b, ks.nextOTPK)
	b = append(b, byte(len(ks.spks)))
	for _, k := range ks.spks {
		b = appendU32(b, k.id)
		b = appendU64(b, uint64(k.created))
		b = append(b, k.kp.priv[:]...)
		b = append(b, k.kp.pub[:]...)
		b = append(b, k.sig[:]...)
	}
	b = appendU16(b, uint16(len(ks.otpks)))
	for _, k := range ks.otpks {
		b = appendU32(b, k.id)
		issued := byte(0)
		if k.issued {
			issued = 1
		}
		b = append(b, issued)
		b = append(b, k.kp.priv[:]...)
		b = append(b, k.kp.pub[:]...)
	}
	b = appendU32(b, ks.nextKEM)
	b = append(b, byte(len(ks.lrks)))
	for i := range ks.lrks {
		b = appendKEMPrekey(b, &ks.lrks[i])
	}
	b = appendU16(b, uint16(len(ks.okps)))
	for i := range ks.okps {
		b = appendKEMPrekey(b, &ks.okps[i])
	}
	b = appendU16(b, uint16(len(ks.spent)))
	for _, s := range ks.spent {
		b = append(b, s.base[:]...)
		b = appendU32(b, s.spk)
	}
	return b, nil
}

// UnmarshalBinary decodes a KeyStore encoded by MarshalBinary, replacing
// the receiver's contents only on success.
func (ks *KeyStore) UnmarshalBinary(data []byte) error {
	if len(data) > maxKeyStoreSize {
		return fmt.Errorf("e2e: unmarshal key store: %w: %d bytes", ErrTooLarge, len(data))
	}
	if len(data) > 0 && data[0] != 1 && data[0] != keyStoreVersion {
		return fmt.Errorf("e2e: unmarshal key store: %w %d", ErrUnknownVersion, data[0])
	}
	d := decoder{b: data}
	ver := d.u8()
	var n KeyStore
	copy(n.edPub[:], d.take(ed25519.PublicKeySize))
	d.key(&n.idDH.priv)
	d.key(&n.idDH.pub)
	copy(n.idDHSig[:], d.take(sigSize))
	n.nextSPK = d.u32()
	n.nextOTPK = d.u32()
	nspk := int(d.u8())
	if nspk == 0 || nspk > maxSignedPrekeys {
		return fmt.Errorf("e2e: unmarshal key store: %w: %d signed prekeys", ErrMalformed, nspk)
	}
	for range nspk {
		var k signedPrekey
		k.id = d.u32()
		k.created = int64(d.u64())
		d.key(&k.kp.priv)
		d.key(&k.kp.pub)
		copy(k.sig[:], d.take(sigSize))
		n.spks = append(n.spks, k)
	}
	notpk := int(d.u16())
	if notpk > MaxOneTimePrekeys {
		return fmt.Errorf("e2e: unmarshal key store: %w: %d one-time prekeys", ErrMalformed, notpk)
	}
	for range notpk {
		var k oneTimePrekey
		k.id = d.u32()
		switch d.u8() {
		case 0:
		case 1:
			k.issued = true
		default:
			return fmt.Errorf("e2e: unmarshal key store: %w: bad issued flag", ErrMalformed)
		}
		d.key(&k.kp.priv)
		d.key(&k.kp.pub)
		n.otpks = append(n.otpks, k)
	}
	if ver == keyStoreVersion {
		n.nextKEM = d.u32()
		nl := int(d.u8())
		if nl > maxSignedPrekeys {
			return fmt.Errorf("e2e: unmarshal key store: %w: %d last-resort KEM prekeys", ErrMalformed, nl)
		}
		for range nl {
			k, err := readKEMPrekey(&d, kemLastResort)
			if err != nil {
				return fmt.Errorf("e2e: unmarshal key store: %w", err)
			}
			n.lrks = append(n.lrks, k)
		}
		no := int(d.u16())
		if no > MaxOneTimeKEMPrekeys {
			return fmt.Errorf("e2e: unmarshal key store: %w: %d one-time KEM prekeys", ErrMalformed, no)
		}
		for range no {
			k, err := readKEMPrekey(&d, kemOneTime)
			if err != nil {
				return fmt.Errorf("e2e: unmarshal key store: %w", err)
			}
			n.okps = append(n.okps, k)
		}
		ns := int(d.u16())
		if ns > MaxSpentBaseKeys {
			return fmt.Errorf("e2e: unmarshal key store: %w: %d spent base keys", ErrMalformed, ns)
		}
		for range ns {
			var s spentBase
			d.key(&s.base)
			s.spk = d.u32()
			n.spent = append(n.spent, s)
		}
	}
	if !d.ok() {
		return fmt.Errorf("e2e: unmarshal key store: %w: wrong length", ErrMalformed)
	}
	*ks = n
	return nil
}
