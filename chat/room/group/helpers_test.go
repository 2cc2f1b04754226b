package group

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// t0 is the clock of every test.
var t0 = time.UnixMilli(1_800_000_000_000)

// ident is a test identity with one key package.
type ident struct {
	name string
	priv crypto.PrivKey
	id   peer.ID
	kp   *KeyPackage
	kpp  *KeyPackagePrivate
}

// seed returns 32 bytes derived from a label.
func seed(label string) []byte {
	s := sha256.Sum256([]byte("parley group test " + label))
	return s[:]
}

// identKey returns the Ed25519 identity key named name.
func identKey(t testing.TB, name string) crypto.PrivKey {
	t.Helper()
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed("identity " + name)))
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// newIdent makes a deterministic identity and key package.
func newIdent(t testing.TB, name string) *ident {
	t.Helper()
	priv := identKey(t, name)
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := hpkeKEM.NewPrivateKey(seed("hpke " + name))
	if err != nil {
		t.Fatal(err)
	}
	ik, err := hpkeKEM.NewPrivateKey(seed("hpke init " + name))
	if err != nil {
		t.Fatal(err)
	}
	kp, kpp, err := newKeyPackage(priv, hk, ik, t0)
	if err != nil {
		t.Fatal(err)
	}
	return &ident{name: name, priv: priv, id: id, kp: kp, kpp: kpp}
}

// freshKP gives i a newer key package, keeping the old private key too.
func (i *ident) freshKP(t testing.TB, at time.Time) (*KeyPackage, *KeyPackagePrivate) {
	t.Helper()
	kp, kpp, err := NewKeyPackage(i.priv, at)
	if err != nil {
		t.Fatal(err)
	}
	return kp, kpp
}

// room is a test room: the chain of commits and each member's state.
type room struct {
	t      testing.TB
	id     RoomID
	people map[string]*ident
	states map[string]*State
	privs  map[string][]*KeyPackagePrivate
}

// newRoom creates a room owned by owner; others join one by one (each
// commit issued by owner), with the given roles.
func newRoom(t testing.TB, owner *ident, members ...*ident) *room {
	t.Helper()
	r := &room{t: t, people: map[string]*ident{owner.name: owner}, states: map[string]*State{}, privs: map[string][]*KeyPackagePrivate{}}
	copy(r.id[:], seed("room"))
	g, e, err := Create(r.id, owner.priv, owner.kp, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckGenesis(g); err != nil {
		t.Fatal(err)
	}
	hold(g, e)
	r.states[owner.name] = &State{Commit: g, Epoch: e}
	r.privs[owner.name] = []*KeyPackagePrivate{owner.kpp}
	for _, m := range members {
		r.people[m.name] = m
		r.privs[m.name] = []*KeyPackagePrivate{m.kpp}
		r.commit(owner, Proposal{Add: []Addition{m.add()}})
		// The new member starts from the commit that added it.
		cur := r.states[owner.name].Commit
		e, err := cur.Open(m.id, r.privs[m.name])
		if err != nil {
			t.Fatal(err)
		}
		r.states[m.name] = &State{Commit: cur, Epoch: e, Prev: r.states[owner.name].Prev}
	}
	return r
}

// commit makes issuer commit p and delivers it to every member; it fails
// the test on any error.
func (r *room) commit(issuer *ident, p Proposal) *Commit {
	r.t.Helper()
	c, _, err := NewCommit(r.states[issuer.name].Epoch, issuer.priv, p, t0)
	if err != nil {
		r.t.Fatal(err)
	}
	r.deliver(c)
	return c
}

// deliver applies c at every member holding a state, after a round trip
// through its encoding.
func (r *room) deliver(c *Commit) map[string]Outcome {
	r.t.Helper()
	out := map[string]Outcome{}
	for name, s := range r.states {
		pc, err := ParseCommit(c.Marshal())
		if err != nil {
			r.t.Fatal(err)
		}
		o, err := s.Apply(pc, r.people[name].id, r.privs[name])
		if err != nil {
			r.t.Fatalf("%s applying epoch %d: %v", name, c.Epoch, err)
		}
		hold(s.Commit, s.Epoch)
		out[name] = o
	}
	return out
}

// epoch returns name's current epoch.
func (r *room) epoch(name string) *Epoch { return r.states[name].Epoch }

// msgID returns a 16-byte message id.
func msgID(n int) []byte { return seed(fmt.Sprint("msg ", n))[:IDSize] }

// wantErr fails unless errors.Is(err, want).
func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

// resign builds a SignedCommit from body and sealed as priv signs it,
// whatever they hold, with the confirmation tag of tagFrom (or zeros).
func resign(t testing.TB, priv crypto.PrivKey, body, sealed []byte, tagFrom ...*Commit) []byte {
	t.Helper()
	tag := make([]byte, SecretSize)
	if len(tagFrom) > 0 {
		tag = tagFrom[0].tag[:]
	}
	in := commitSigningInput(body, sealed, tag)
	sig, err := sign(priv, labelCommit, in[len(labelCommit)+1:])
	if err != nil {
		t.Fatal(err)
	}
	return marshal(&wirepb.SignedCommit{Body: body, Sealed: sealed, Signature: sig, ConfirmationTag: tag})
}

// craft signs a commit with the given body as priv, sealing a fresh secret
// to every member of body, without checking that the commit is allowed.
func craft(t testing.TB, priv crypto.PrivKey, body *wirepb.CommitBody) *Commit {
	t.Helper()
	init := make([]byte, SecretSize)
	if pe := heldEpoch(Hash(body.Parent)); pe != nil {
		init, _ = pe.initSecret()
	}
	c, e, err := seal(constReader(7), priv, body, init, nil)
	if err != nil {
		t.Fatal(err)
	}
	hold(c, e)
	return c
}

// heldEpochs holds a copy of one member's epoch of every commit the tests
// made or applied, by commit hash: every member's init secret of an epoch
// is the same, so tests issue and follow commits from any copy.
var heldEpochs sync.Map

// hold records a copy of e, the epoch of c (nil: nothing).
func hold(c *Commit, e *Epoch) {
	if c == nil || e == nil {
		return
	}
	if _, ok := heldEpochs.Load(c.hash); ok {
		return
	}
	e.mu.Lock()
	x := &Epoch{commit: e.commit, membershipKey: e.membershipKey, rendezvousKey: e.rendezvousKey, syncKey: e.syncKey,
		init: e.init, hasInit: e.hasInit, chains: map[peer.ID]*chain{}}
	for id, ch := range e.chains {
		x.chains[id] = &chain{gen: ch.gen, head: ch.head}
	}
	e.mu.Unlock()
	if x.hasInit {
		heldEpochs.Store(c.hash, x)
	}
}

// heldEpoch returns the recorded epoch of the commit hash h, or nil.
func heldEpoch(h Hash) *Epoch {
	e, ok := heldEpochs.Load(h)
	if !ok {
		return nil
	}
	return e.(*Epoch)
}

// newCommitT is NewCommit on the recorded epoch of parent.
func newCommitT(parent *Commit, priv crypto.PrivKey, p Proposal, now time.Time) (*Commit, *Epoch, error) {
	pe := heldEpoch(parent.hash)
	if pe == nil {
		return nil, nil, fmt.Errorf("test: no epoch held for commit %x", parent.hash[:8])
	}
	c, e, err := NewCommit(pe, priv, p, now)
	if err == nil {
		hold(c, e)
	}
	return c, e, err
}

// openAs derives c's epoch for id: the Welcome if c adds id, else from the
// recorded parent epoch.
func openAs(c *Commit, id peer.ID, privs []*KeyPackagePrivate) (*Epoch, error) {
	if c.Welcomes(id) {
		return c.Open(id, privs)
	}
	pe := heldEpoch(c.Parent)
	if pe == nil {
		return nil, fmt.Errorf("%w: test: no epoch held for parent %x", ErrNoSecret, c.Parent[:8])
	}
	return pe.Next(c, id, privs)
}

// testRoom is the id of every room newRoom makes.
var testRoom = RoomID(seed("room"))

// add returns i's addition to testRoom with its consent.
func (i *ident) add() Addition { return i.addTo(testRoom, i.kp) }

// addTo returns the addition of kp (i's) to room with i's consent.
func (i *ident) addTo(room RoomID, kp *KeyPackage) Addition {
	sig, err := sign(i.priv, labelConsent, consentInput(room, kp.raw))
	if err != nil {
		panic(err)
	}
	return Addition{KeyPackage: kp, Consent: sig}
}

// leave returns i's signed leave of the room at cur.
func (i *ident) leave(cur *Commit) Leave {
	p, err := NewLeaveProposal(i.priv, cur)
	if err != nil {
		panic(err)
	}
	return Leave{Member: i.id, Signature: p.Signature}
}

// bodyOf decodes c's body for editing.
func bodyOf(t testing.TB, c *Commit) *wirepb.CommitBody {
	t.Helper()
	var b wirepb.CommitBody
	if err := unmarshal("body", c.signed.Body, MaxCommitSize, &b); err != nil {
		t.Fatal(err)
	}
	for _, m := range b.Members {
		m.Consent = nil // an add's consent belongs to that commit only
	}
	return &b
}

// constReader yields the same byte forever.
type constReader byte

func (r constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
