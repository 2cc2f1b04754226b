package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/subtle"
	"fmt"
	"io"
	"math"
	"time"
)

// Channel is the end-to-end state of our conversation with one contact: the
// current Double Ratchet session, up to MaxPreviousSessions replaced
// sessions kept to decrypt messages still in flight, and the keys of
// skipped messages. The zero value is an empty channel, ready for Initiate
// or for Decrypt of the contact's first (prekey) message.
//
// Session lifecycle:
//
//	(none) --Initiate--> current, pending --first reply decrypts--> current
//	(none) --Decrypt(prekey message)--> current
//	current --Reset / Initiate / outranked--> previous --age, count--> (gone)
//
// While a session we initiated is pending, every message we send on it
// repeats the X3DH header (a "prekey message"), so the contact can set up
// the session from whichever message arrives first.
//
// When both sides initiate, each ends up holding both sessions; both keep
// the one that ranks highest. Sessions rank by generation, a Lamport clock
// carried in the X3DH header (at least one more than any generation the
// channel has seen, and at least the initiator's clock in Unix
// milliseconds), then by the initiator's Ed25519 key, lexicographically
// smaller first. A session initiated after seeing the other (a reset)
// therefore always wins, and two concurrent ones resolve the same way on
// both sides. The losing session stays as a previous session so messages
// already sent on it still decrypt.
//
// Every failed Decrypt leaves the Channel (and the KeyStore) unchanged.
// A Channel is not safe for concurrent use.
type Channel struct {
	local, remote [ed25519.PublicKeySize]byte
	bound         bool   // local and remote are set
	maxGen        uint64 // highest session generation seen
	cur           *session
	old           []*session   // most recently retired first
	skipped       []skippedKey // oldest first
	seen          [][keySize]byte
	last          int64 // Unix seconds of the latest successful operation
	// pqOnly: the contact speaks PQXDH (a PQXDH session was set up with it,
	// either way, or it was added from a version 2 contact link). From then
	// on X3DH is refused both ways with ErrDowngrade: as initiator (a
	// version 1 bundle) and as responder (a type 2 prekey message).
	pqOnly bool
}

const (
	// maxPrevChains bounds the remembered receiving ratchet keys per
	// session, used to report replays on finished chains.
	maxPrevChains = 16
	// maxSeenBaseKeys bounds the remembered base keys of accepted prekey
	// messages, used to refuse a replayed prekey message after its session
	// is gone.
	maxSeenBaseKeys = 64
)

// session is the state of one Double Ratchet session.
type session struct {
	gen       uint64
	initiator bool          // we ran X3DH as initiator
	pending   bool          // initiator and no message received yet
	closed    bool          // retired by Reset or Initiate: never current again
	pq        bool          // set up with PQXDH (a KEM secret is in the root key)
	baseKey   [keySize]byte // initiator's ephemeral key: identifies the session
	rk        [keySize]byte
	dhs       keyPair
	dhr       [keySize]byte
	hasDHr    bool
	cks, ckr  [keySize]byte
	hasCKs    bool
	hasCKr    bool
	ns, nr    uint32
	pn        uint32
	retired   int64 // Unix seconds; set when the session stops being current
	pre       prekeyHeader
	prevRecv  [][keySize]byte // finished receiving chains, oldest first
}

func (s *session) zero() {
	s.dhs.zero()
	clear(s.rk[:])
	clear(s.cks[:])
	clear(s.ckr[:])
}

// skippedKey is the message key of a message not yet received.
type skippedKey struct {
	dh        [keySize]byte
	n         uint32
	mk        [keySize]byte
	created   int64 // Unix seconds
	initiator bool  // our role in the session, for the associated data
}

// HasSession reports whether the channel has a current session to encrypt
// with.
func (c *Channel) HasSession() bool { return c.cur != nil }

// PostQuantum reports whether the current session was set up with PQXDH,
// so that its root key mixes an ML-KEM-768 shared secret with the X25519
// ones. Sessions set up with X3DH (from a version 1 bundle, or with a peer
// from before PQXDH) report false.
func (c *Channel) PostQuantum() bool { return c.cur != nil && c.cur.pq }

// RequirePostQuantum records that the contact speaks PQXDH, without a
// session yet (a contact added from a version 2 link whose bundle is too
// old to use): every later session with it must be a PQXDH one. Setting up
// a PQXDH session records the same. It cannot be undone; a contact that
// really went back to an old release must be removed and added again.
func (c *Channel) RequirePostQuantum() { c.pqOnly = true }

// PostQuantumRequired reports whether X3DH is refused with this contact
// (see RequirePostQuantum).
func (c *Channel) PostQuantumRequired() bool { return c.pqOnly }

// Reset retires the current session: the next Encrypt fails with
// ErrNoSession until Initiate is called with a fresh bundle, and the
// contact replaces its session when it receives the resulting prekey
// message. Messages already in flight on the old session still decrypt for
// PreviousSessionMaxAge.
func (c *Channel) Reset() {
	if c.cur != nil {
		c.cur.closed = true
		c.retire(c.cur, c.last)
		c.cur = nil
	}
}

// retire moves s to the previous sessions, dropping the oldest beyond
// MaxPreviousSessions.
func (c *Channel) retire(s *session, now int64) {
	s.retired = now
	c.old = append([]*session{s}, c.old...)
	for len(c.old) > MaxPreviousSessions {
		c.old[len(c.old)-1].zero()
		c.old = c.old[:len(c.old)-1]
	}
}

func (c *Channel) bind(local ed25519.PrivateKey, remote ed25519.PublicKey) error {
	if len(local) != ed25519.PrivateKeySize || len(remote) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: invalid Ed25519 key length", ErrKeyMismatch)
	}
	if !c.bound {
		return nil
	}
	if subtle.ConstantTimeCompare(local[32:], c.local[:]) != 1 {
		return fmt.Errorf("%w: channel belongs to another local identity", ErrKeyMismatch)
	}
	if subtle.ConstantTimeCompare(remote, c.remote[:]) != 1 {
		return fmt.Errorf("%w: channel belongs to another contact", ErrKeyMismatch)
	}
	return nil
}

func (c *Channel) setBound(local ed25519.PrivateKey, remote ed25519.PublicKey) {
	copy(c.local[:], local[32:])
	copy(c.remote[:], remote)
	c.bound = true
}

// openMessage decrypts the ratchet message env under the message key mk.
func openMessage(mk *[keySize]byte, local, remote []byte, initiator bool, env *envelope) ([]byte, error) {
	k := getKDF()
	defer k.put()
	return openMessageWith(k, mk, local, remote, initiator, env)
}

func openMessageWith(k *kdfState, mk *[keySize]byte, local, remote []byte, initiator bool, env *envelope) ([]byte, error) {
	k.ad = appendAD(k.ad[:0], local, remote, initiator, env.head)
	return openWith(k, mk, labelMessageKey, env.ciphertext, k.ad)
}

// appendAD appends the associated data of a message to b: version ||
// initiator Ed25519 key || responder Ed25519 key || envelope head.
func appendAD(b, local, remote []byte, initiator bool, head []byte) []byte {
	b = append(b, Version)
	if initiator {
		b = append(b, local...)
		b = append(b, remote...)
	} else {
		b = append(b, remote...)
		b = append(b, local...)
	}
	return append(b, head...)
}

// initiatorKey returns the Ed25519 key of the initiator of s.
func (c *Channel) initiatorKey(s *session) []byte {
	if s.initiator {
		return c.local[:]
	}
	return c.remote[:]
}

// outranks reports whether a should replace b as the current session.
func (c *Channel) outranks(a, b *session) bool {
	if a.gen != b.gen {
		return a.gen > b.gen
	}
	if cmp := bytes.Compare(c.initiatorKey(a), c.initiatorKey(b)); cmp != 0 {
		return cmp < 0
	}
	return true
}

// promote makes s current if it outranks the current session; otherwise s
// is (or stays) a previous session.
func (c *Channel) promote(s *session, now int64) {
	if c.cur == s {
		return
	}
	for i, o := range c.old {
		if o == s {
			c.old = append(c.old[:i], c.old[i+1:]...)
			break
		}
	}
	if !s.closed && (c.cur == nil || c.outranks(s, c.cur)) {
		if c.cur != nil {
			c.retire(c.cur, now)
		}
		c.cur = s
		return
	}
	if s.retired == 0 {
		s.retired = now
	}
	c.retire(s, s.retired)
}

// Initiate starts a new session with the contact remote from its bundle b,
// as the initiator: it verifies every signature of b against remote,
// refuses a signed prekey older than SignedPrekeyMaxAge, and makes the new
// session current (the previous one, if any, is retired). A version 2
// bundle starts a PQXDH session: the initiator encapsulates to the bundle's
// KEM prekey and mixes the shared secret into the root key. A version 1
// bundle starts an X3DH session. Messages encrypted on the new session are
// prekey messages until the contact replies.
func (c *Channel) Initiate(local ed25519.PrivateKey, ks *KeyStore, remote ed25519.PublicKey, b Bundle, rand io.Reader, now time.Time) error {
	if err := ks.check(local); err != nil {
		return fmt.Errorf("e2e: initiate: %w", err)
	}
	if err := c.bind(local, remote); err != nil {
		return fmt.Errorf("e2e: initiate: %w", err)
	}
	if err := b.Verify(remote); err != nil {
		return fmt.Errorf("e2e: initiate: %w", err)
	}
	if c.pqOnly && !b.PostQuantum() {
		return fmt.Errorf("e2e: initiate: %w: the contact offered a version 1 (X3DH) bundle", ErrDowngrade)
	}
	if now.Sub(b.SignedPrekeyCreated) >= SignedPrekeyMaxAge {
		return fmt.Errorf("e2e: initiate: %w: bundle's signed prekey is older than %v; the contact must run Maintain", ErrExpiredPrekey, SignedPrekeyMaxAge)
	}
	ek, err := newKeyPair(rand)
	if err != nil {
		return fmt.Errorf("e2e: initiate: %w", err)
	}
	defer ek.zero()
	dhs, err := newKeyPair(rand)
	if err != nil {
		return fmt.Errorf("e2e: initiate: %w", err)
	}
	var dhOut [4][keySize]byte
	defer clear(dhOut[:])
	pairs := []struct{ priv, pub *[keySize]byte }{
		{&ks.idDH.priv, &b.SignedPrekey},
		{&ek.priv, &b.IdentityDH},
		{&ek.priv, &b.SignedPrekey},
		{&ek.priv, &b.OneTimePrekey},
	}
	if !b.HasOneTimePrekey {
		pairs = pairs[:3]
	}
	for i, p := range pairs {
		if dhOut[i], err = dh(p.priv, p.pub); err != nil {
			return fmt.Errorf("e2e: initiate: bundle: %w", err)
		}
	}
	localPub := local.Public().(ed25519.PublicKey)
	var sk [keySize]byte
	var kemCT []byte
	if b.PostQuantum() {
		ek, err := mlkem.NewEncapsulationKey768(b.KEMPrekey[:])
		if err != nil {
			return fmt.Errorf("e2e: initiate: bundle: %w: KEM prekey: %v", ErrMalformed, err)
		}
		ss, ct, err := encapsulate(ek, rand)
		if err != nil {
			return fmt.Errorf("e2e: initiate: %w", err)
		}
		sk = pqxdhSecret(dhOut[:len(pairs)], ss, b.KEMPrekey[:], ct, localPub, remote)
		clear(ss)
		kemCT = ct
	} else {
		sk = x3dhSecret(dhOut[:len(pairs)], localPub, remote)
	}
	defer clear(sk[:])
	first, err := dh(&dhs.priv, &b.SignedPrekey)
	if err != nil {
		return fmt.Errorf("e2e: initiate: bundle: %w", err)
	}
	defer clear(first[:])

	gen := c.maxGen
	if gen < math.MaxUint64 {
		gen++ // saturating: a peer's huge generation must not wrap ours to 0
	}
	if ms := now.UnixMilli(); ms > 0 && uint64(ms) > gen {
		gen = uint64(ms)
	}
	s := &session{gen: gen, initiator: true, pending: true, pq: b.PostQuantum(), baseKey: ek.pub, dhs: dhs, dhr: b.SignedPrekey, hasDHr: true, hasCKs: true}
	s.rk, s.cks = kdfRK(&sk, &first)
	s.pre = prekeyHeader{
		gen:         gen,
		identityDH:  ks.idDH.pub,
		identitySig: ks.idDHSig,
		ephemeral:   ek.pub,
		spkID:       b.SignedPrekeyID,
		hasOTPK:     b.HasOneTimePrekey,
	}
	if b.HasOneTimePrekey {
		s.pre.otpkID = b.OneTimePrekeyID
	}
	if b.PostQuantum() {
		s.pre.pq = true
		copy(s.pre.initiator[:], localPub)
		s.pre.kemID = b.KEMPrekeyID
		s.pre.kemKind = b.kemKind()
		s.pre.kemCT = kemCT
	}
	c.setBound(local, remote)
	c.pqOnly = c.pqOnly || s.pq
	if c.cur != nil {
		c.cur.closed = true
		c.retire(c.cur, now.Unix())
	}
	c.cur = s
	c.maxGen = gen
	c.prune(now.Unix())
	return nil
}

// encapsulate is ML-KEM-768 encapsulation. Production code draws its
// randomness from crypto/rand inside crypto/mlkem (the rand argument is
// not used); known-answer tests replace it with the derandomized
// encapsulation of crypto/mlkem/mlkemtest reading from rand.
var encapsulate = func(ek *mlkem.EncapsulationKey768, _ io.Reader) (sharedKey, ciphertext []byte, err error) {
	ss, ct := ek.Encapsulate()
	return ss, ct, nil
}

// Encrypt encrypts plaintext (at most MaxPlaintextSize bytes) on the
// current session and advances its sending chain. It fails with
// ErrNoSession if there is none. The caller must persist the Channel with
// the envelope it returns, or a message key could be reused after a crash.
// ks and rand are not used today; they keep the signature aligned with
// Decrypt.
func (c *Channel) Encrypt(local ed25519.PrivateKey, ks *KeyStore, plaintext []byte, rand io.Reader, now time.Time) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, fmt.Errorf("e2e: encrypt: %w: plaintext of %d bytes, limit %d", ErrTooLarge, len(plaintext), MaxPlaintextSize)
	}
	s := c.cur
	if s == nil || !s.hasCKs || !c.bound {
		return nil, fmt.Errorf("e2e: encrypt: %w: initiate a session first", ErrNoSession)
	}
	if len(local) != ed25519.PrivateKeySize || subtle.ConstantTimeCompare(local[32:], c.local[:]) != 1 {
		return nil, fmt.Errorf("e2e: encrypt: %w: channel belongs to another local identity", ErrKeyMismatch)
	}
	if s.ns == math.MaxUint32-1 {
		return nil, fmt.Errorf("e2e: encrypt: %w: reset the session", ErrChainExhausted)
	}
	size := 2 + headerSize + len(plaintext) + tagSize
	typ := byte(typeMessage)
	if s.pending {
		typ = typePrekey
		size += prekeyHeaderSize
		if s.pq {
			typ = typePrekeyPQ
			size += pqHeaderSize
		}
	}
	out := make([]byte, 0, size)
	out = append(out, Version, typ)
	if s.pending {
		out = s.pre.append(out)
	}
	h := header{dh: s.dhs.pub, pn: s.pn, n: s.ns}
	out = h.append(out)
	k := getKDF()
	defer k.put()
	mk, next := kdfCKWith(k, &s.cks)
	k.ad = appendAD(k.ad[:0], c.local[:], c.remote[:], s.initiator, out)
	out = sealWith(k, out, &mk, labelMessageKey, plaintext, k.ad)
	clear(mk[:])
	s.cks = next
	s.ns++
	c.prune(now.Unix())
	return out, nil
}

// Decrypt decrypts an envelope from the contact remote (the Ed25519 key of
// its peer ID). It accepts prekey messages, which set up a session as the
// X3DH responder, and ordinary messages on the current or a previous
// session, in any order within MaxSkip.
//
// A prekey message that sets up a session consumes the one-time prekey it
// names: the key is deleted from ks, so the caller must persist ks and the
// Channel in the same transaction as the decrypted message. Prekey messages
// may name a replaced signed prekey during its grace period.
//
// Errors wrap ErrReplay, ErrTooManySkipped, ErrAuthFailed, ErrMalformed,
// ErrUnknownVersion, ErrTooLarge, ErrBadSignature, ErrUnknownPrekey,
// ErrExpiredPrekey, ErrKeyMismatch or ErrNoSession. On any error neither the
// Channel nor ks has changed.
func (c *Channel) Decrypt(local ed25519.PrivateKey, ks *KeyStore, remote ed25519.PublicKey, envelope []byte, rand io.Reader, now time.Time) ([]byte, error) {
	pt, err := c.decrypt(local, ks, remote, envelope, rand, now)
	if err != nil {
		return nil, fmt.Errorf("e2e: decrypt: %w", err)
	}
	return pt, nil
}

func (c *Channel) decrypt(local ed25519.PrivateKey, ks *KeyStore, remote ed25519.PublicKey, data []byte, rand io.Reader, now time.Time) ([]byte, error) {
	if err := c.bind(local, remote); err != nil {
		return nil, err
	}
	env, err := parseEnvelope(data)
	if err != nil {
		return nil, err
	}
	if env.typ == typeMessage {
		if !c.bound {
			return nil, fmt.Errorf("%w: a message arrived before any session was set up; the contact must start a new one", ErrNoSession)
		}
		return c.decryptMessage(&env, rand, now)
	}
	var buf [1 + MaxPreviousSessions]*session
	for _, s := range c.sessions(buf[:0], now.Unix()) {
		if !s.initiator && s.baseKey == env.pre.ephemeral {
			pt, err := c.decryptMessage(&env, rand, now)
			if err != nil {
				return nil, err
			}
			c.maxGen = max(c.maxGen, env.pre.gen)
			c.promote(s, now.Unix())
			return pt, nil
		}
	}
	for _, k := range c.seen {
		if k == env.pre.ephemeral {
			return nil, fmt.Errorf("%w: prekey message of a session already closed", ErrReplay)
		}
	}
	return c.respond(local, ks, remote, &env, rand, now)
}

// sessions appends to all the current session, if any, then the previous
// ones not yet past PreviousSessionMaxAge at now. Callers pass a buffer of
// 1+MaxPreviousSessions on their stack.
func (c *Channel) sessions(all []*session, now int64) []*session {
	if c.cur != nil {
		all = append(all, c.cur)
	}
	for _, s := range c.old {
		if now < s.retired+int64(PreviousSessionMaxAge/time.Second) {
			all = append(all, s)
		}
	}
	return all
}

// respond sets up a session from a prekey message, as the X3DH responder.
func (c *Channel) respond(local ed25519.PrivateKey, ks *KeyStore, remote ed25519.PublicKey, env *envelope, rand io.Reader, now time.Time) ([]byte, error) {
	if ks == nil {
		return nil, fmt.Errorf("%w: no key store", ErrKeyMismatch)
	}
	if err := ks.check(local); err != nil {
		return nil, err
	}
	pre := &env.pre
	if c.pqOnly && !pre.pq {
		return nil, fmt.Errorf("%w: a type 2 (X3DH) prekey message", ErrDowngrade)
	}
	// Used no one-time prekey: nothing consumed stops a replay but this.
	noOneTime := !pre.hasOTPK && (!pre.pq || pre.kemKind != kemOneTime)
	if noOneTime && ks.isSpent(&pre.ephemeral) {
		return nil, fmt.Errorf("%w: prekey message already accepted (its session is gone)", ErrReplay)
	}
	if pre.pq && subtle.ConstantTimeCompare(pre.initiator[:], remote) != 1 {
		return nil, fmt.Errorf("%w: the prekey message names another initiator than its sender", ErrKeyMismatch)
	}
	if !ed25519.Verify(remote, identityDHMessage(&pre.identityDH), pre.identitySig[:]) {
		return nil, fmt.Errorf("%w: the sender's identity key is not signed by the contact", ErrBadSignature)
	}
	spk, err := ks.signedPrekey(pre.spkID, now)
	if err != nil {
		return nil, err
	}
	var dhOut [4][keySize]byte
	defer clear(dhOut[:])
	// An array, not an appended slice: a slice that grows moves to the
	// heap, and with it the envelope its pointers reach (on every Decrypt).
	all := [4]struct{ priv, pub *[keySize]byte }{
		{&spk.kp.priv, &pre.identityDH},
		{&ks.idDH.priv, &pre.ephemeral},
		{&spk.kp.priv, &pre.ephemeral},
	}
	pairs := all[:3]
	if pre.hasOTPK {
		i, err := ks.oneTimePrekey(pre.otpkID)
		if err != nil {
			return nil, err
		}
		all[3] = struct{ priv, pub *[keySize]byte }{&ks.otpks[i].kp.priv, &pre.ephemeral}
		pairs = all[:4]
	}
	for i, p := range pairs {
		if dhOut[i], err = dh(p.priv, p.pub); err != nil {
			return nil, err
		}
	}
	var sk [keySize]byte
	if pre.pq {
		kp, err := ks.kemPrekey(pre.kemID, pre.kemKind, now)
		if err != nil {
			return nil, err
		}
		dk, err := kp.key()
		if err != nil {
			return nil, err
		}
		// ML-KEM decapsulation rejects implicitly: a tampered ciphertext
		// yields an unrelated secret, so the AEAD below fails.
		ss, err := dk.Decapsulate(pre.kemCT)
		if err != nil {
			return nil, fmt.Errorf("%w: KEM ciphertext: %v", ErrMalformed, err)
		}
		sk = pqxdhSecret(dhOut[:len(pairs)], ss, dk.EncapsulationKey().Bytes(), pre.kemCT, remote, local.Public().(ed25519.PublicKey))
		clear(ss)
	} else {
		sk = x3dhSecret(dhOut[:len(pairs)], remote, local.Public().(ed25519.PublicKey))
	}
	defer clear(sk[:])
	s := session{gen: pre.gen, pq: pre.pq, baseKey: pre.ephemeral, rk: sk, dhs: spk.kp}
	r, err := c.dhStep(s, env, rand, local[32:], remote)
	if err != nil {
		return nil, err
	}
	// Success: commit.
	ns := r.s
	r.target = ns
	c.commit(&r, now.Unix())
	c.setBound(local, remote)
	c.pqOnly = c.pqOnly || pre.pq
	if pre.hasOTPK {
		ks.consumeOneTimePrekey(pre.otpkID)
	}
	if pre.pq && pre.kemKind == kemOneTime {
		ks.consumeKEMPrekey(pre.kemID)
	}
	if noOneTime {
		ks.spend(pre.ephemeral, pre.spkID)
	}
	c.seen = append(c.seen, pre.ephemeral)
	if len(c.seen) > maxSeenBaseKeys {
		c.seen = c.seen[len(c.seen)-maxSeenBaseKeys:]
	}
	c.maxGen = max(c.maxGen, pre.gen)
	c.promote(ns, now.Unix())
	return r.plaintext, nil
}

// recvResult is a successful decryption not yet committed to the Channel.
// A message on the current receiving chain of target only advances that
// chain (s is nil): the next chain key ckr and message number nr. A DH
// ratchet step replaces the whole session (s).
type recvResult struct {
	plaintext  []byte
	target     *session // the session updated; nil when a skipped key was used
	s          *session // the updated session, or nil
	ckr        [keySize]byte
	nr         uint32
	usedKey    int // index of the skipped key used, or -1
	newSkipped []skippedKey
}

// decryptMessage decrypts a ratchet message on whichever session it
// belongs to and commits the result.
func (c *Channel) decryptMessage(env *envelope, rand io.Reader, now time.Time) ([]byte, error) {
	r, err := c.tryDecrypt(env, rand, now.Unix())
	if err != nil {
		return nil, err
	}
	c.commit(&r, now.Unix())
	return r.plaintext, nil
}

func (c *Channel) tryDecrypt(env *envelope, rand io.Reader, now int64) (recvResult, error) {
	h := &env.hdr
	// 1. A skipped message.
	for i := range c.skipped {
		k := &c.skipped[i]
		if k.n != h.n || k.dh != h.dh || now >= k.created+int64(SkippedKeyMaxAge/time.Second) {
			continue
		}
		pt, err := openMessage(&k.mk, c.local[:], c.remote[:], k.initiator, env)
		if err != nil {
			return recvResult{}, fmt.Errorf("%w: tampered or truncated message", err)
		}
		return recvResult{plaintext: pt, usedKey: i}, nil
	}
	var buf [1 + MaxPreviousSessions]*session
	all := c.sessions(buf[:0], now)
	// 2. The current receiving chain of a session.
	for _, s := range all {
		if s.hasDHr && s.dhr == h.dh {
			r, err := c.sameChain(s, env)
			r.target = s
			return r, err
		}
	}
	// 3. A finished receiving chain: the key was used or discarded.
	for _, s := range all {
		for _, p := range s.prevRecv {
			if p == h.dh {
				return recvResult{}, fmt.Errorf("%w: message %d of a finished chain", ErrReplay, h.n)
			}
		}
	}
	// 4. A new ratchet key: a DH ratchet step on some session.
	if len(all) == 0 {
		return recvResult{}, fmt.Errorf("%w: no session; the contact must start a new one", ErrNoSession)
	}
	var first error
	for _, s := range all {
		r, err := c.dhStep(*s, env, rand, c.local[:], c.remote[:])
		if err == nil {
			r.target = s
			return r, nil
		}
		if first == nil {
			first = err
		}
	}
	return recvResult{}, first
}

// skip derives the message keys of chain ck from number from up to (not
// including) to, appending them to out.
func skip(ck *[keySize]byte, dhPub [keySize]byte, from, to uint32, initiator bool, out []skippedKey) []skippedKey {
	if from >= to {
		return out
	}
	k := getKDF()
	defer k.put()
	for n := from; n < to; n++ {
		mk, next := kdfCKWith(k, ck)
		*ck = next
		out = append(out, skippedKey{dh: dhPub, n: n, mk: mk, initiator: initiator})
	}
	return out
}

// sameChain decrypts a message on the current receiving chain of s,
// leaving s unchanged.
func (c *Channel) sameChain(s *session, env *envelope) (recvResult, error) {
	h := &env.hdr
	r := recvResult{usedKey: -1}
	if h.n < s.nr {
		return r, fmt.Errorf("%w: message %d was already received", ErrReplay, h.n)
	}
	if h.n-s.nr > MaxSkip {
		return r, fmt.Errorf("%w: message %d is %d ahead of the next expected one (limit %d); reset the session", ErrTooManySkipped, h.n, h.n-s.nr, MaxSkip)
	}
	if !s.hasCKr {
		return r, fmt.Errorf("%w: no receiving chain", ErrAuthFailed)
	}
	ck := s.ckr
	r.newSkipped = skip(&ck, h.dh, s.nr, h.n, s.initiator, nil)
	k := getKDF()
	defer k.put()
	mk, next := kdfCKWith(k, &ck)
	clear(ck[:])
	pt, err := openMessageWith(k, &mk, c.local[:], c.remote[:], s.initiator, env)
	clear(mk[:])
	if err != nil {
		zeroSkipped(r.newSkipped)
		return recvResult{usedKey: -1}, fmt.Errorf("%w: tampered or truncated message", err)
	}
	r.ckr = next
	r.nr = h.n + 1
	r.plaintext = pt
	return r, nil
}

// dhStep decrypts a message that starts a new receiving chain of s: the DH
// ratchet step of the Signal specification. The new sending key pair is
// generated only once the message has authenticated.
func (c *Channel) dhStep(s session, env *envelope, rand io.Reader, local, remote []byte) (recvResult, error) {
	h := &env.hdr
	r := recvResult{usedKey: -1}
	if s.hasCKr {
		if h.pn > s.nr && h.pn-s.nr > MaxSkip {
			return r, fmt.Errorf("%w: previous chain is %d ahead (limit %d); reset the session", ErrTooManySkipped, h.pn-s.nr, MaxSkip)
		}
	}
	if h.n > MaxSkip {
		return r, fmt.Errorf("%w: message %d of a new chain (limit %d); reset the session", ErrTooManySkipped, h.n, MaxSkip)
	}
	if s.hasCKr && h.pn > s.nr {
		ck := s.ckr
		r.newSkipped = skip(&ck, s.dhr, s.nr, h.pn, s.initiator, nil)
		clear(ck[:])
	}
	shared, err := dh(&s.dhs.priv, &h.dh)
	if err != nil {
		zeroSkipped(r.newSkipped)
		return recvResult{usedKey: -1}, err
	}
	rk, ckr := kdfRK(&s.rk, &shared)
	clear(shared[:])
	r.newSkipped = skip(&ckr, h.dh, 0, h.n, s.initiator, r.newSkipped)
	k := getKDF()
	defer k.put()
	mk, next := kdfCKWith(k, &ckr)
	pt, err := openMessageWith(k, &mk, local, remote, s.initiator, env)
	clear(mk[:])
	if err != nil {
		zeroSkipped(r.newSkipped)
		return recvResult{usedKey: -1}, fmt.Errorf("%w: tampered or truncated message, or not from this contact", err)
	}
	dhs, err := newKeyPair(rand)
	if err != nil {
		zeroSkipped(r.newSkipped)
		return recvResult{usedKey: -1}, err
	}
	shared, err = dh(&dhs.priv, &h.dh)
	if err != nil {
		zeroSkipped(r.newSkipped)
		return recvResult{usedKey: -1}, err
	}
	if s.hasDHr {
		prev := make([][keySize]byte, 0, len(s.prevRecv)+1)
		prev = append(prev, s.prevRecv...)
		prev = append(prev, s.dhr)
		if len(prev) > maxPrevChains {
			prev = prev[len(prev)-maxPrevChains:]
		}
		s.prevRecv = prev
	}
	s.pn = s.ns
	s.ns, s.nr = 0, h.n+1
	s.dhr, s.hasDHr = h.dh, true
	s.ckr, s.hasCKr = next, true
	s.rk, s.cks = kdfRK(&rk, &shared)
	s.hasCKs = true
	s.dhs = dhs
	s.pending = false
	clear(shared[:])
	clear(rk[:])
	r.plaintext = pt
	r.s = new(session)
	*r.s = s
	return r, nil
}

func zeroSkipped(ks []skippedKey) {
	for i := range ks {
		clear(ks[i].mk[:])
	}
}

// commit applies a successful decryption.
func (c *Channel) commit(r *recvResult, now int64) {
	if r.usedKey >= 0 {
		clear(c.skipped[r.usedKey].mk[:])
		c.skipped = append(c.skipped[:r.usedKey], c.skipped[r.usedKey+1:]...)
	}
	if t := r.target; t != nil {
		switch {
		case r.s == nil:
			t.ckr, t.nr = r.ckr, r.nr
			t.pending = false
			clear(r.ckr[:])
		case r.s != t:
			if t.dhs != r.s.dhs {
				t.dhs.zero()
			}
			*t = *r.s
			r.s.zero()
		}
	}
	for i := range r.newSkipped {
		r.newSkipped[i].created = now
	}
	c.skipped = append(c.skipped, r.newSkipped...)
	c.prune(now)
}

// prune drops expired skipped keys and previous sessions, and the oldest
// skipped keys beyond MaxSkippedKeys.
func (c *Channel) prune(now int64) {
	c.last = max(c.last, now)
	keep := c.skipped[:0]
	for _, k := range c.skipped {
		if now < k.created+int64(SkippedKeyMaxAge/time.Second) {
			keep = append(keep, k)
		} else {
			clear(k.mk[:])
		}
	}
	clear(c.skipped[len(keep):])
	c.skipped = keep
	if extra := len(c.skipped) - MaxSkippedKeys; extra > 0 {
		zeroSkipped(c.skipped[:extra])
		c.skipped = append(c.skipped[:0], c.skipped[extra:]...)
	}
	old := c.old[:0]
	for _, s := range c.old {
		if now < s.retired+int64(PreviousSessionMaxAge/time.Second) {
			old = append(old, s)
		} else {
			s.zero()
		}
	}
	clear(c.old[len(old):])
	c.old = old
}
