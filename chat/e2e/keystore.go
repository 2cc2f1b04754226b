package e2e

import (
	"crypto/ed25519"
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
}

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
	return ks, nil
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
	for i := 1; i < len(ks.spks); i++ {
		if ks.spkExpired(i, now) {
			for _, k := range ks.spks[i:] {
				k.kp.zero()
			}
			ks.spks = ks.spks[:i]
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

// Bundle returns a prekey bundle for a peer that wants to start a session
// and marks the one-time prekey it contains as issued, so it is never handed
// out again; the caller must save the KeyStore before sending the bundle.
// When the pool is exhausted the bundle has no one-time prekey. Bundle fails
// with ErrExpiredPrekey if Maintain has not rotated the signed prekey in
// time.
func (ks *KeyStore) Bundle(id ed25519.PrivateKey, now time.Time) (Bundle, error) {
	if err := ks.check(id); err != nil {
		return Bundle{}, fmt.Errorf("e2e: bundle: %w", err)
	}
	spk := &ks.spks[0]
	if now.Unix()-spk.created >= int64(SignedPrekeyMaxAge/time.Second) {
		return Bundle{}, fmt.Errorf("e2e: bundle: %w: signed prekey is older than %v; run Maintain", ErrExpiredPrekey, SignedPrekeyMaxAge)
	}
	b := Bundle{
		IdentityDH:            ks.idDH.pub,
		IdentityDHSignature:   ks.idDHSig,
		SignedPrekeyID:        spk.id,
		SignedPrekeyCreated:   time.Unix(spk.created, 0),
		SignedPrekey:          spk.kp.pub,
		SignedPrekeySignature: spk.sig,
	}
	for i := range ks.otpks {
		if !ks.otpks[i].issued {
			ks.otpks[i].issued = true
			b.HasOneTimePrekey = true
			b.OneTimePrekeyID = ks.otpks[i].id
			b.OneTimePrekey = ks.otpks[i].kp.pub
			break
		}
	}
	return b, nil
}

const (
	keyStoreHeaderSize = 1 + ed25519.PublicKeySize + 2*keySize + sigSize + 4 + 4
	spkEntrySize       = 4 + 8 + 2*keySize + sigSize
	otpkEntrySize      = 4 + 1 + 2*keySize
	// maxKeyStoreSize is the hard limit of an encoded KeyStore.
	maxKeyStoreSize = keyStoreHeaderSize + 1 + maxSignedPrekeys*spkEntrySize + 2 + MaxOneTimePrekeys*otpkEntrySize
)

// MarshalBinary encodes the KeyStore, private keys included: store it as
// secret data.
func (ks *KeyStore) MarshalBinary() ([]byte, error) {
	if len(ks.spks) == 0 {
		return nil, fmt.Errorf("e2e: marshal key store: %w: empty key store", ErrMalformed)
	}
	b := make([]byte, 0, keyStoreHeaderSize+1+len(ks.spks)*spkEntrySize+2+len(ks.otpks)*otpkEntrySize)
	b = append(b, Version)
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
	return b, nil
}

// UnmarshalBinary decodes a KeyStore encoded by MarshalBinary, replacing
// the receiver's contents only on success.
func (ks *KeyStore) UnmarshalBinary(data []byte) error {
	if len(data) > maxKeyStoreSize {
		return fmt.Errorf("e2e: unmarshal key store: %w: %d bytes", ErrTooLarge, len(data))
	}
	if len(data) > 0 && data[0] != Version {
		return fmt.Errorf("e2e: unmarshal key store: %w %d", ErrUnknownVersion, data[0])
	}
	d := decoder{b: data}
	d.u8()
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
	if !d.ok() {
		return fmt.Errorf("e2e: unmarshal key store: %w: wrong length", ErrMalformed)
	}
	*ks = n
	return nil
}
