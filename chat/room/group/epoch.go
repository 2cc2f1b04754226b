package group

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// Epoch is a member's derived state of one epoch: the commit (roster), the
// membership, rendezvous and sync keys, and each member's sender chain. It
// never holds the epoch secret. Seal and Open advance chains and erase used
// keys, so the caller must store the epoch (MarshalBinary) after each call
// before it publishes or acknowledges anything: reusing a generation after a
// restart would reuse a message key. An Epoch is safe for concurrent use.
type Epoch struct {
	commit *Commit

	mu            sync.Mutex
	membershipKey [SecretSize]byte
	rendezvousKey [SecretSize]byte
	syncKey       [SecretSize]byte
	init          [SecretSize]byte // the init secret; hasInit false once erased
	hasInit       bool
	chains        map[peer.ID]*chain // one per member
}

// chain is one author's hash ratchet: head is the chain key of generation
// gen; skipped holds unused message keys of generations in
// [gen-MaxSkip, gen).
type chain struct {
	gen     uint32
	head    [SecretSize]byte
	skipped map[uint32][SecretSize]byte
}

// expand is HKDF-Expand(prk, info, 32).
func expand(prk []byte, info string) (k [SecretSize]byte) {
	b, err := hkdf.Expand(sha256.New, prk, info, SecretSize)
	if err != nil {
		panic("group: hkdf: " + err.Error()) // unreachable: fixed length 32
	}
	copy(k[:], b)
	clear(b)
	return k
}

// The key schedule (RFC 9420 §8, without PSKs), HKDF-SHA256, where
// context is the commit context SHA-256("parley/room/2 commit body" ||
// 0x00 || body) and Expand(k, label, ctx) = HKDF-Expand(k, label || 0x00 ||
// ctx, 32):
//
//	joiner_secret = Expand(Extract(salt = init_secret[n-1], ikm = commit_secret), "parley/room/2 joiner", context)
//	epoch_secret  = Expand(Extract(salt = joiner_secret, ikm = 32 zero bytes), "parley/room/2 epoch", context)
//	init_secret[n], confirmation_key, membership, rendezvous, sync keys and
//	sender chains = HKDF-Expand(epoch_secret, label (|| peer ID), 32)
//
// init_secret[0] is 32 zero bytes (genesis).

// joinerSecret derives the joiner secret of a commit.
func joinerSecret(init, commitSecret []byte, ctx Hash) [SecretSize]byte {
	prk := extract(init, commitSecret)
	defer clear(prk)
	return expandCtx(prk, labelJoiner, ctx[:])
}

// epochSecret derives the epoch secret from the joiner secret.
func epochSecret(joiner [SecretSize]byte, ctx Hash) [SecretSize]byte {
	prk := extract(joiner[:], make([]byte, SecretSize))
	defer clear(prk)
	return expandCtx(prk, labelEpoch, ctx[:])
}

// confirmationTag is HMAC-SHA256(confirmation_key, context).
func confirmationTag(secret [SecretSize]byte, ctx Hash) (tag [SecretSize]byte) {
	k := expand(secret[:], labelConfirm)
	defer clear(k[:])
	h := hmac.New(sha256.New, k[:])
	h.Write(ctx[:])
	h.Sum(tag[:0])
	return tag
}

// deriveEpoch derives the epoch of c from its epoch secret. The caller
// erases secret.
func deriveEpoch(c *Commit, secret [SecretSize]byte) *Epoch {
	prk := secret[:]
	e := &Epoch{
		commit:        c,
		membershipKey: expand(prk, labelMembership),
		rendezvousKey: expand(prk, labelRendezvous),
		syncKey:       expand(prk, labelSync),
		init:          expand(prk, labelInit),
		hasInit:       true,
		chains:        make(map[peer.ID]*chain, len(c.Members)),
	}
	for _, m := range c.Members {
		e.chains[m.ID] = &chain{head: expand(prk, labelSender+string(m.ID))}
	}
	return e
}

// initSecret returns a copy of the init secret, false once erased.
func (e *Epoch) initSecret() ([]byte, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.hasInit {
		return nil, false
	}
	return append([]byte(nil), e.init[:]...), true
}

// EraseInit erases the epoch's init secret: no commit on this epoch can be
// followed or issued from it any more, and no later compromise re-derives
// the next epoch from it. State does it when the epoch after the next is
// applied; the epoch's message keys stay.
func (e *Epoch) EraseInit() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.init[:])
	e.hasInit = false
}

// Next follows c, a commit on this epoch, for self, a member of both: it
// unseals the commit secret with self's encryption key (the private key of
// self's key package in c), runs the key schedule from this epoch's init
// secret, checks the confirmation tag and returns the new epoch. When c adds
// self (re-added after leaving) it takes the Welcome (Commit.Open). Next
// does not check that c is a valid successor: call CheckSuccessor first (or
// use State).
func (e *Epoch) Next(c *Commit, self peer.ID, privs []*KeyPackagePrivate) (*Epoch, error) {
	if c.Parent != e.commit.hash || c.Room != e.commit.Room {
		return nil, fmt.Errorf("%w: commit %x is not on epoch %d", ErrNotSuccessor, c.hash[:8], e.commit.Epoch)
	}
	i, ok := c.index[self]
	if !ok {
		return nil, fmt.Errorf("%w: %s is not in epoch %d", ErrNoSecret, self, c.Epoch)
	}
	if c.welcome[self] {
		return c.Open(self, privs)
	}
	if err := c.verifyMembers(); err != nil {
		return nil, err
	}
	init, ok := e.initSecret()
	if !ok {
		return nil, fmt.Errorf("%w: the init secret of epoch %d is erased", ErrNoSecret, e.commit.Epoch)
	}
	defer clear(init)
	for _, p := range privs {
		if p == nil || !bytes.Equal(p.PublicKey, c.Members[i].KeyPackage.PublicKey) {
			continue
		}
		cs, err := c.openFrom(i, p.priv, commitSecretInfo(c.Room, c.Epoch))
		if err != nil {
			return nil, err
		}
		defer clear(cs)
		return c.finish(joinerSecret(init, cs, c.bodyHash))
	}
	return nil, fmt.Errorf("%w: no private key for our key package of epoch %d", ErrNoSecret, c.Epoch)
}

// ratchet returns the message key of a chain key and the next chain key:
// HMAC-SHA256(ck, 0x01) and HMAC-SHA256(ck, 0x02).
func ratchet(ck [SecretSize]byte) (mk, next [SecretSize]byte) {
	h := hmac.New(sha256.New, ck[:])
	h.Write([]byte{1})
	h.Sum(mk[:0])
	h.Reset()
	h.Write([]byte{2})
	h.Sum(next[:0])
	return mk, next
}

// Commit returns the commit that started the epoch.
func (e *Epoch) Commit() *Commit { return e.commit }

// Room returns the room id.
func (e *Epoch) Room() RoomID { return e.commit.Room }

// Number returns the epoch number.
func (e *Epoch) Number() uint64 { return e.commit.Epoch }

// Members returns the roster.
func (e *Epoch) Members() []Member { return e.commit.Members }

// Member returns the roster entry of id.
func (e *Epoch) Member(id peer.ID) (Member, bool) { return e.commit.Member(id) }

// RendezvousKey returns the epoch's 32-byte rendezvous key.
func (e *Epoch) RendezvousKey() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := e.rendezvousKey
	return k[:]
}

// Erase zeroes every key the epoch holds; the epoch is unusable afterwards.
func (e *Epoch) Erase() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.membershipKey[:])
	clear(e.rendezvousKey[:])
	clear(e.syncKey[:])
	clear(e.init[:])
	e.hasInit = false
	for id, ch := range e.chains {
		clear(ch.head[:])
		for g, k := range ch.skipped {
			clear(k[:])
			delete(ch.skipped, g)
		}
		delete(e.chains, id)
	}
}

// messageAD is the AEAD associated data of a message.
func messageAD(room RoomID, epoch uint64, author peer.ID, gen uint32, msgID []byte, hlc uint64) []byte {
	b := labelled(labelMessage)
	b = appendLP(b, room[:])
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = appendLP(b, []byte(author))
	b = binary.BigEndian.AppendUint32(b, gen)
	b = appendLP(b, msgID)
	return binary.BigEndian.AppendUint64(b, hlc)
}

// MACInput returns the bytes an AppMessage's membership_mac authenticates:
// "parley/room/2 membership mac" || 0x00 || lp(room id) || u64(epoch) ||
// lp(epoch hash) || lp(author) || u32(generation) || u64(hlc) ||
// lp(msg id) || lp(ciphertext), lp(x) = u32(len(x)) || x, integers
// big-endian.
func MACInput(room RoomID, author peer.ID, m *wirepb.AppMessage) []byte {
	b := labelled(labelMAC)
	b = appendLP(b, room[:])
	b = binary.BigEndian.AppendUint64(b, m.Epoch)
	b = appendLP(b, m.EpochHash)
	b = appendLP(b, []byte(author))
	b = binary.BigEndian.AppendUint32(b, m.Generation)
	b = binary.BigEndian.AppendUint64(b, m.Hlc)
	b = appendLP(b, m.MsgId)
	return appendLP(b, m.Ciphertext)
}

func (e *Epoch) mac(author peer.ID, m *wirepb.AppMessage) []byte {
	h := hmac.New(sha256.New, e.membershipKey[:])
	h.Write(MACInput(e.commit.Room, author, m))
	return h.Sum(nil)
}

// checkApp checks the fields of an AppMessage that need no key.
func (e *Epoch) checkApp(author peer.ID, m *wirepb.AppMessage) error {
	if m == nil || len(m.MsgId) != IDSize || m.Hlc == 0 || len(m.EpochHash) != EpochHashSize || len(m.Ciphertext) <= chacha20poly1305.Overhead ||
		len(m.Ciphertext) > MaxPlaintext+chacha20poly1305.Overhead || len(m.MembershipMac) != sha256.Size {
		return fmt.Errorf("%w: app message fields", ErrInvalid)
	}
	if m.Epoch > e.commit.Epoch {
		return fmt.Errorf("%w (%w): message claims epoch %d, this is %d", ErrNewerEpoch, ErrWrongEpoch, m.Epoch, e.commit.Epoch)
	}
	if m.Epoch != e.commit.Epoch {
		return fmt.Errorf("%w: message of epoch %d, this is %d", ErrWrongEpoch, m.Epoch, e.commit.Epoch)
	}
	if _, ok := e.commit.index[author]; !ok {
		return fmt.Errorf("%w: %s in epoch %d", ErrNotMember, author, e.commit.Epoch)
	}
	if subtle.ConstantTimeCompare(m.EpochHash, e.commit.hash[:EpochHashSize]) != 1 {
		return fmt.Errorf("%w: message of another branch of epoch %d", ErrWrongEpoch, m.Epoch)
	}
	return nil
}

// VerifyMAC checks that m is a well-formed message of this epoch by author,
// a member, with a valid membership MAC. ErrWrongEpoch means the message is
// of another epoch or of another branch of this one (a fork): not
// necessarily bad, so validators ignore it rather than refuse it. It uses no message key, so
// validators may call it on every message they forward.
func (e *Epoch) VerifyMAC(author peer.ID, m *wirepb.AppMessage) error {
	if err := e.checkApp(author, m); err != nil {
		return err
	}
	e.mu.Lock()
	want := e.mac(author, m)
	e.mu.Unlock()
	if subtle.ConstantTimeCompare(want, m.MembershipMac) != 1 {
		return fmt.Errorf("%w: from %s", ErrBadMAC, author)
	}
	return nil
}

// Seal encrypts plaintext as self's next message of this epoch, advancing
// self's chain, and returns the AppMessage with its membership MAC. msgID
// is 16 random bytes, hlc the room clock (never 0).
func (e *Epoch) Seal(self peer.ID, msgID []byte, hlc uint64, plaintext []byte) (*wirepb.AppMessage, error) {
	if len(msgID) != IDSize || hlc == 0 || len(plaintext) == 0 || len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("%w: seal: msg id %d bytes, hlc %d, %d bytes of text", ErrInvalid, len(msgID), hlc, len(plaintext))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := e.chains[self]
	if ch == nil {
		return nil, fmt.Errorf("%w: %s in epoch %d", ErrNotMember, self, e.commit.Epoch)
	}
	if ch.gen == math.MaxUint32 {
		return nil, fmt.Errorf("%w: chain exhausted", ErrKeyUsed)
	}
	gen := ch.gen
	mk, next := ratchet(ch.head)
	defer clear(mk[:])
	ch.head, ch.gen = next, gen+1
	aead, err := chacha20poly1305.New(mk[:])
	if err != nil {
		return nil, err
	}
	m := &wirepb.AppMessage{
		Epoch:      e.commit.Epoch,
		EpochHash:  append([]byte(nil), e.commit.hash[:EpochHashSize]...),
		Generation: gen,
		Hlc:        hlc,
		MsgId:      append([]byte(nil), msgID...),
		Ciphertext: aead.Seal(nil, make([]byte, chacha20poly1305.NonceSize), plaintext, messageAD(e.commit.Room, e.commit.Epoch, self, gen, msgID, hlc)),
	}
	m.MembershipMac = e.mac(self, m)
	return m, nil
}

// Open verifies m (as VerifyMAC) and decrypts it with author's message key
// of its generation, which is then erased: a second Open of the same
// generation fails with ErrKeyUsed. A generation more than MaxSkip ahead of
// the author's chain fails with ErrTooFarAhead; keys of skipped generations
// are kept (at most MaxSkip per author). A failed Open changes nothing.
// One's own messages cannot be opened (their keys are used when sealing).
func (e *Epoch) Open(author peer.ID, m *wirepb.AppMessage) ([]byte, error) {
	if err := e.VerifyMAC(author, m); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := e.chains[author]
	if ch == nil {
		return nil, fmt.Errorf("%w: epoch erased", ErrKeyUsed)
	}
	ad := messageAD(e.commit.Room, e.commit.Epoch, author, m.Generation, m.MsgId, m.Hlc)
	if m.Generation < ch.gen {
		mk, ok := ch.skipped[m.Generation]
		if !ok {
			return nil, fmt.Errorf("%w: %s generation %d", ErrKeyUsed, author, m.Generation)
		}
		pt, err := open(mk, m.Ciphertext, ad)
		if err != nil {
			return nil, err
		}
		clear(mk[:])
		delete(ch.skipped, m.Generation)
		return pt, nil
	}
	if m.Generation-ch.gen > MaxSkip || m.Generation == math.MaxUint32 {
		return nil, fmt.Errorf("%w: %s generation %d, chain at %d", ErrTooFarAhead, author, m.Generation, ch.gen)
	}
	head := ch.head
	var skipped [][SecretSize]byte
	for g := ch.gen; g < m.Generation; g++ {
		var mk [SecretSize]byte
		mk, head = ratchet(head)
		skipped = append(skipped, mk)
	}
	mk, next := ratchet(head)
	defer clear(mk[:])
	pt, err := open(mk, m.Ciphertext, ad)
	if err != nil {
		for i := range skipped {
			clear(skipped[i][:])
		}
		return nil, err
	}
	if ch.skipped == nil && len(skipped) > 0 {
		ch.skipped = make(map[uint32][SecretSize]byte, len(skipped))
	}
	for i, k := range skipped {
		ch.skipped[ch.gen+uint32(i)] = k
	}
	ch.head, ch.gen = next, m.Generation+1
	if ch.gen > MaxSkip {
		for g, k := range ch.skipped {
			if g < ch.gen-MaxSkip {
				clear(k[:])
				delete(ch.skipped, g)
			}
		}
	}
	return pt, nil
}

func open(mk [SecretSize]byte, ct, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.New(mk[:])
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), ct, ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// SyncProofInput returns the bytes a RoomFetchRequest's proof
// authenticates: "parley/room/2 sync proof" || 0x00 || lp(room id) ||
// u64(epoch) || u64(commits_after) || u64(after_hlc) || u32(limit) ||
// lp(requester) || lp(responder). The peer IDs come from the connection.
func SyncProofInput(requester, responder peer.ID, r *wirepb.RoomFetchRequest) []byte {
	b := labelled(labelSyncProof)
	b = appendLP(b, r.RoomId)
	b = binary.BigEndian.AppendUint64(b, r.Epoch)
	b = binary.BigEndian.AppendUint64(b, r.CommitsAfter)
	b = binary.BigEndian.AppendUint64(b, r.AfterHlc)
	b = binary.BigEndian.AppendUint32(b, r.Limit)
	b = appendLP(b, []byte(requester))
	return appendLP(b, []byte(responder))
}

// SyncProof returns the proof for a fetch request r (its room id and epoch
// must be this epoch's) that requester sends to responder.
func (e *Epoch) SyncProof(requester, responder peer.ID, r *wirepb.RoomFetchRequest) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := hmac.New(sha256.New, e.syncKey[:])
	h.Write(SyncProofInput(requester, responder, r))
	return h.Sum(nil)
}

// VerifySyncProof checks r's proof: r is for this room and epoch, the
// requester is a member of it, and the proof is SyncProof's.
func (e *Epoch) VerifySyncProof(requester, responder peer.ID, r *wirepb.RoomFetchRequest) error {
	if string(r.RoomId) != string(e.commit.Room[:]) {
		return ErrWrongRoom
	}
	if r.Epoch != e.commit.Epoch {
		return fmt.Errorf("%w: proof of epoch %d, this is %d", ErrWrongEpoch, r.Epoch, e.commit.Epoch)
	}
	if _, ok := e.commit.index[requester]; !ok {
		return fmt.Errorf("%w: %s in epoch %d", ErrNotMember, requester, e.commit.Epoch)
	}
	if !hmac.Equal(e.SyncProof(requester, responder, r), r.Proof) {
		return fmt.Errorf("%w: sync proof of %s", ErrBadMAC, requester)
	}
	return nil
}

// MarshalBinary returns the epoch for local storage (a serialized
// wirepb.EpochState). It holds secret keys: store it as such.
func (e *Epoch) MarshalBinary() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &wirepb.EpochState{
		Commit:        e.commit.raw,
		MembershipKey: e.membershipKey[:],
		RendezvousKey: e.rendezvousKey[:],
		SyncKey:       e.syncKey[:],
	}
	if e.hasInit {
		s.InitSecret = e.init[:]
	}
	for _, m := range e.commit.Members {
		ch := e.chains[m.ID]
		if ch == nil {
			return nil, fmt.Errorf("%w: epoch erased", ErrInvalid)
		}
		cs := &wirepb.ChainState{Author: []byte(m.ID), Generation: ch.gen, Head: append([]byte(nil), ch.head[:]...)}
		for g := ch.gen - min(ch.gen, MaxSkip); g < ch.gen; g++ {
			if k, ok := ch.skipped[g]; ok {
				cs.Skipped = append(cs.Skipped, &wirepb.SkippedKey{Generation: g, Key: append([]byte(nil), k[:]...)})
			}
		}
		s.Chains = append(s.Chains, cs)
	}
	return marshal(s), nil
}

// UnmarshalEpoch restores an epoch saved by MarshalBinary, checking every
// field (the commit's signatures included).
func UnmarshalEpoch(b []byte) (*Epoch, error) {
	var s wirepb.EpochState
	if err := unmarshal("epoch state", b, MaxEpochStateSize, &s); err != nil {
		return nil, err
	}
	c, err := ParseCommit(s.Commit)
	if err == nil {
		err = c.verifyMembers()
	}
	if err != nil {
		return nil, fmt.Errorf("epoch state: %w", err)
	}
	if len(s.MembershipKey) != SecretSize || len(s.RendezvousKey) != SecretSize || len(s.SyncKey) != SecretSize {
		return nil, fmt.Errorf("%w: epoch state: key sizes", ErrInvalid)
	}
	e := &Epoch{commit: c, chains: make(map[peer.ID]*chain, len(c.Members))}
	copy(e.membershipKey[:], s.MembershipKey)
	copy(e.rendezvousKey[:], s.RendezvousKey)
	copy(e.syncKey[:], s.SyncKey)
	switch len(s.InitSecret) {
	case 0:
	case SecretSize:
		copy(e.init[:], s.InitSecret)
		e.hasInit = true
	default:
		return nil, fmt.Errorf("%w: epoch state: init secret size", ErrInvalid)
	}
	if len(s.Chains) != len(c.Members) {
		return nil, fmt.Errorf("%w: epoch state: %d chains for %d members", ErrInvalid, len(s.Chains), len(c.Members))
	}
	for _, cs := range s.Chains {
		id, err := parsePeerID("chain author", cs.Author)
		if err != nil {
			return nil, fmt.Errorf("epoch state: %w", err)
		}
		if _, ok := c.index[id]; !ok || e.chains[id] != nil || len(cs.Head) != SecretSize || len(cs.Skipped) > MaxSkip {
			return nil, fmt.Errorf("%w: epoch state: chain of %s", ErrInvalid, id)
		}
		ch := &chain{gen: cs.Generation}
		copy(ch.head[:], cs.Head)
		for _, sk := range cs.Skipped {
			if sk.Generation >= ch.gen || ch.gen-sk.Generation > MaxSkip || len(sk.Key) != SecretSize {
				return nil, fmt.Errorf("%w: epoch state: skipped key of %s", ErrInvalid, id)
			}
			if ch.skipped == nil {
				ch.skipped = make(map[uint32][SecretSize]byte)
			}
			var k [SecretSize]byte
			copy(k[:], sk.Key)
			ch.skipped[sk.Generation] = k
		}
		e.chains[id] = ch
	}
	return e, nil
}
