package group

import (
	"bytes"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// Role is a member's authority in a room.
type Role int

// Roles, in increasing authority.
const (
	RoleMember Role = Role(wirepb.Role_ROLE_MEMBER)
	RoleAdmin  Role = Role(wirepb.Role_ROLE_ADMIN)
	RoleOwner  Role = Role(wirepb.Role_ROLE_OWNER)
)

func (r Role) String() string {
	switch r {
	case RoleMember:
		return "member"
	case RoleAdmin:
		return "admin"
	case RoleOwner:
		return "owner"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// IsAdmin says whether the role may commit (admin or owner).
func (r Role) IsAdmin() bool { return r == RoleAdmin || r == RoleOwner }

func (r Role) valid() bool { return r == RoleMember || r == RoleAdmin || r == RoleOwner }

// Member is one member of an epoch's roster.
type Member struct {
	ID         peer.ID
	Role       Role
	KeyPackage *KeyPackage
}

// ChangeKind says what a Change did.
type ChangeKind int

// Change kinds, as in wirepb.ChangeKind.
const (
	ChangeCreate ChangeKind = ChangeKind(wirepb.ChangeKind_CHANGE_CREATE)
	ChangeAdd    ChangeKind = ChangeKind(wirepb.ChangeKind_CHANGE_ADD)
	ChangeRemove ChangeKind = ChangeKind(wirepb.ChangeKind_CHANGE_REMOVE)
	ChangeLeave  ChangeKind = ChangeKind(wirepb.ChangeKind_CHANGE_LEAVE)
	ChangeRole   ChangeKind = ChangeKind(wirepb.ChangeKind_CHANGE_ROLE)
	ChangeUpdate ChangeKind = ChangeKind(wirepb.ChangeKind_CHANGE_UPDATE)
	ChangeRekey  ChangeKind = ChangeKind(wirepb.ChangeKind_CHANGE_REKEY)
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeCreate:
		return "create"
	case ChangeAdd:
		return "add"
	case ChangeRemove:
		return "remove"
	case ChangeLeave:
		return "leave"
	case ChangeRole:
		return "role"
	case ChangeUpdate:
		return "update"
	case ChangeRekey:
		return "rekey"
	}
	return fmt.Sprintf("change(%d)", int(k))
}

// Change is one entry of a commit's history: Actor did Kind to Subject.
type Change struct {
	Kind    ChangeKind
	Subject peer.ID // empty for create and rekey
	Actor   peer.ID
	Role    Role // the new role for add and role; 0 otherwise
}

// Commit is a parsed, signature-checked commit. It is immutable.
type Commit struct {
	Room     RoomID
	Epoch    uint64
	Parent   Hash
	Issuer   peer.ID
	IssuedAt time.Time
	Members  []Member
	Changes  []Change

	hash     Hash
	bodyHash Hash // the commit context: HPKE aad and key schedule context
	tag      [SecretSize]byte
	sealed   []*wirepb.SealedSecret
	signed   *wirepb.SignedCommit
	raw      []byte
	index    map[peer.ID]int
	welcome  map[peer.ID]bool   // members this commit adds (or creates)
	consent  map[peer.ID][]byte // their consent signatures
	leave    map[peer.ID][]byte // LEAVE proofs by subject

	kpOnce sync.Once
	kpErr  error
}

// Hash returns the commit hash: SHA-256 of the signing input. The next
// commit names it as its parent.
func (c *Commit) Hash() Hash { return c.hash }

// Marshal returns the serialized SignedCommit.
func (c *Commit) Marshal() []byte { return bytes.Clone(c.raw) }

// Proto returns the SignedCommit, for a RoomEnvelope.
func (c *Commit) Proto() *wirepb.SignedCommit { return proto.CloneOf(c.signed) }

// Member returns the roster entry of id.
func (c *Commit) Member(id peer.ID) (Member, bool) {
	i, ok := c.index[id]
	if !ok {
		return Member{}, false
	}
	return c.Members[i], true
}

// commitSigningInput returns label || 0x00 || u32(len(body)) || body ||
// SHA-256(sealed) || confirmation tag.
func commitSigningInput(body, sealed, tag []byte) []byte {
	sh := sha256.Sum256(sealed)
	return labelled(labelCommit, binary.BigEndian.AppendUint32(nil, uint32(len(body))), body, sh[:], tag)
}

// welcomeInfo is the HPKE info for sealing a joiner secret of epoch n.
func welcomeInfo(room RoomID, epoch uint64) []byte {
	b := append([]byte(labelWelcome), room[:]...)
	return binary.BigEndian.AppendUint64(b, epoch)
}

// commitSecretInfo is the HPKE info for sealing a commit secret of epoch n.
func commitSecretInfo(room RoomID, epoch uint64) []byte {
	b := append([]byte(labelCommitSec), room[:]...)
	return binary.BigEndian.AppendUint64(b, epoch)
}

// consentInput is what a joiner signs to consent to being added to room
// with kp: room id || SHA-256(key package).
func consentInput(room RoomID, kp []byte) []byte {
	h := sha256.Sum256(kp)
	return append(room[:len(room):len(room)], h[:]...)
}

// leaveInput is what a leaving member signs: room id || SHA-256(its key
// package in the roster it leaves).
func leaveInput(room RoomID, kp Hash) []byte {
	return append(room[:len(room):len(room)], kp[:]...)
}

// ParseCommit decodes a serialized SignedCommit and checks everything that
// needs no other commit: sizes, fields, the issuer's signature, every key
// package's signature and owner, one sealed entry per member. It does not
// check that the issuer may commit: that is CheckSuccessor's (or
// CheckGenesis's) job.
func ParseCommit(b []byte) (*Commit, error) {
	var s wirepb.SignedCommit
	if err := unmarshal("commit", b, MaxCommitSize, &s); err != nil {
		return nil, err
	}
	return parseCommit(&s, b)
}

// CommitFromProto is ParseCommit for a decoded SignedCommit.
func CommitFromProto(s *wirepb.SignedCommit) (*Commit, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: no commit", ErrInvalid)
	}
	return ParseCommit(marshal(s))
}

func parseCommit(s *wirepb.SignedCommit, raw []byte) (*Commit, error) {
	var body wirepb.CommitBody
	if err := unmarshal("commit body", s.Body, MaxCommitSize, &body); err != nil {
		return nil, err
	}
	var sealed wirepb.SealedSecrets
	if err := unmarshal("commit sealed list", s.Sealed, MaxCommitSize, &sealed); err != nil {
		return nil, err
	}
	c := &Commit{
		Epoch:    body.Epoch,
		IssuedAt: time.UnixMilli(body.IssuedAtMs),
		sealed:   sealed.Secrets,
		signed:   s,
		raw:      bytes.Clone(raw),
	}
	if len(body.RoomId) != RoomIDSize || len(body.Parent) != HashSize {
		return nil, fmt.Errorf("%w: commit: room id or parent size", ErrInvalid)
	}
	copy(c.Room[:], body.RoomId)
	copy(c.Parent[:], body.Parent)
	if c.Epoch == 0 || body.IssuedAtMs <= 0 {
		return nil, fmt.Errorf("%w: commit: epoch %d, issued_at_ms %d", ErrInvalid, c.Epoch, body.IssuedAtMs)
	}
	if (c.Epoch == 1) != (c.Parent == Hash{}) {
		return nil, fmt.Errorf("%w: commit: epoch 1 alone has a zero parent", ErrInvalid)
	}
	var err error
	if c.Issuer, err = parsePeerID("commit issuer", body.Issuer); err != nil {
		return nil, err
	}
	if len(body.Members) == 0 || len(body.Members) > MaxMembers {
		return nil, fmt.Errorf("%w: commit: %d members", ErrInvalid, len(body.Members))
	}
	if len(body.Changes) == 0 || len(body.Changes) > MaxMembers {
		return nil, fmt.Errorf("%w: commit: %d changes", ErrInvalid, len(body.Changes))
	}
	if len(sealed.Secrets) != len(body.Members) {
		return nil, fmt.Errorf("%w: commit: %d sealed secrets for %d members", ErrInvalid, len(sealed.Secrets), len(body.Members))
	}
	for i, ss := range sealed.Secrets {
		if len(ss.Enc) != 32 || len(ss.Ciphertext) != SecretSize+16 {
			return nil, fmt.Errorf("%w: commit: sealed secret %d: sizes", ErrInvalid, i)
		}
	}
	if len(s.ConfirmationTag) != SecretSize {
		return nil, fmt.Errorf("%w: commit: confirmation tag of %d bytes", ErrInvalid, len(s.ConfirmationTag))
	}
	// The signature first: a forged commit costs one verification. Key
	// packages are decoded here but their signatures are checked only once
	// the issuer's authority is (CheckSuccessor, CheckGenesis).
	in := commitSigningInput(s.Body, s.Sealed, s.ConfirmationTag)
	if err := verify(c.Issuer, labelCommit, in[len(labelCommit)+1:], s.Signature); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	c.hash = sha256.Sum256(in)
	c.bodyHash = sha256.Sum256(labelled(labelBody, s.Body))
	copy(c.tag[:], s.ConfirmationTag)
	c.index = make(map[peer.ID]int, len(body.Members))
	c.welcome = make(map[peer.ID]bool)
	c.consent = make(map[peer.ID][]byte)
	c.leave = make(map[peer.ID][]byte)
	for i, m := range body.Members {
		r := Role(m.Role)
		if !r.valid() {
			return nil, fmt.Errorf("%w: commit: member %d: role %d", ErrInvalid, i, m.Role)
		}
		kp, err := decodeKeyPackage(m.KeyPackage)
		if err != nil {
			return nil, fmt.Errorf("commit: member %d: %w", i, err)
		}
		if _, dup := c.index[kp.Owner]; dup {
			return nil, fmt.Errorf("%w: commit: member %s twice", ErrInvalid, kp.Owner)
		}
		if len(m.Consent) != 0 {
			if len(m.Consent) != 64 {
				return nil, fmt.Errorf("%w: commit: member %d: consent size", ErrInvalid, i)
			}
			c.consent[kp.Owner] = m.Consent
		}
		c.index[kp.Owner] = i
		c.Members = append(c.Members, Member{ID: kp.Owner, Role: r, KeyPackage: kp})
	}
	for i, ch := range body.Changes {
		x := Change{Kind: ChangeKind(ch.Kind), Role: Role(ch.Role)}
		if (len(ch.Proof) != 0) != (x.Kind == ChangeLeave) || len(ch.Proof) != 0 && len(ch.Proof) != 64 {
			return nil, fmt.Errorf("%w: change %d: proof", ErrInvalid, i)
		}
		if x.Actor, err = parsePeerID("change actor", ch.Actor); err != nil {
			return nil, fmt.Errorf("change %d: %w", i, err)
		}
		switch x.Kind {
		case ChangeCreate, ChangeRekey:
			if len(ch.Subject) != 0 || ch.Role != 0 {
				return nil, fmt.Errorf("%w: change %d: %s with subject or role", ErrInvalid, i, x.Kind)
			}
		case ChangeAdd, ChangeRemove, ChangeLeave, ChangeRole, ChangeUpdate:
			if x.Subject, err = parsePeerID("change subject", ch.Subject); err != nil {
				return nil, fmt.Errorf("change %d: %w", i, err)
			}
			wantRole := x.Kind == ChangeAdd || x.Kind == ChangeRole
			if wantRole != x.Role.valid() || (!wantRole && ch.Role != 0) {
				return nil, fmt.Errorf("%w: change %d: %s with role %d", ErrInvalid, i, x.Kind, ch.Role)
			}
		default:
			return nil, fmt.Errorf("%w: change %d: kind %d", ErrInvalid, i, ch.Kind)
		}
		switch x.Kind {
		case ChangeAdd:
			c.welcome[x.Subject] = true
		case ChangeCreate:
			c.welcome[x.Actor] = true
		case ChangeLeave:
			c.leave[x.Subject] = ch.Proof
		}
		c.Changes = append(c.Changes, x)
	}
	for id := range c.consent {
		if !c.welcome[id] || c.Epoch == 1 {
			return nil, fmt.Errorf("%w: commit: consent of %s, who is not added", ErrInvalid, id)
		}
	}
	return c, nil
}

// verifyMembers checks every roster key package's signature and HPKE keys
// (once per commit), replacing the decoded packages by verified ones. It
// runs after the issuer's authority is established, so a commit by anyone
// else costs one signature check.
func (c *Commit) verifyMembers() error {
	c.kpOnce.Do(func() {
		for i, m := range c.Members {
			kp, err := ParseKeyPackage(m.KeyPackage.raw)
			if err != nil {
				c.kpErr = fmt.Errorf("commit: member %d: %w", i, err)
				return
			}
			c.Members[i].KeyPackage = kp
		}
	})
	return c.kpErr
}

// Welcomes says whether c adds id (or, at genesis, creates the room with
// it): its secret is then sealed to id's init key.
func (c *Commit) Welcomes(id peer.ID) bool { return c.welcome[id] }

// CheckGenesis checks that c is a valid first commit of its room: epoch 1,
// zero parent, its issuer the only member, as owner, and one create change
// by the issuer.
func CheckGenesis(c *Commit) error {
	if c.Epoch != 1 || c.Parent != (Hash{}) {
		return fmt.Errorf("%w: genesis at epoch %d", ErrNotSuccessor, c.Epoch)
	}
	if len(c.Members) != 1 || c.Members[0].ID != c.Issuer || c.Members[0].Role != RoleOwner {
		return fmt.Errorf("%w: genesis roster must be its issuer as owner", ErrBadChanges)
	}
	if len(c.Changes) != 1 || c.Changes[0] != (Change{Kind: ChangeCreate, Actor: c.Issuer}) {
		return fmt.Errorf("%w: genesis must record one create by its issuer", ErrBadChanges)
	}
	return c.verifyMembers()
}

// CheckSuccessor checks that next is a valid successor of cur: same room,
// epoch cur+1, parent = cur's hash, issued by an admin or the owner of cur,
// changes that account exactly for the roster difference, and each change
// allowed to its issuer (see the package doc, invariant 1).
func CheckSuccessor(cur, next *Commit) error {
	if next.Room != cur.Room {
		return fmt.Errorf("%w: commit of another room", ErrWrongRoom)
	}
	if next.Epoch != cur.Epoch+1 {
		return fmt.Errorf("%w: epoch %d after %d", ErrNotSuccessor, next.Epoch, cur.Epoch)
	}
	if next.Parent != cur.hash {
		return fmt.Errorf("%w: parent %x is not %x", ErrNotSuccessor, next.Parent[:8], cur.hash[:8])
	}
	issuer, ok := cur.Member(next.Issuer)
	if !ok || !issuer.Role.IsAdmin() {
		return fmt.Errorf("%w: issuer %s is not an admin of epoch %d", ErrNotAdmin, next.Issuer, cur.Epoch)
	}
	// Authority established: now the key packages.
	if err := next.verifyMembers(); err != nil {
		return err
	}
	owner := issuer.Role == RoleOwner
	seen := make(map[peer.ID]bool, len(next.Changes))
	for _, ch := range next.Changes {
		if ch.Kind == ChangeRekey {
			if len(next.Changes) != 1 || ch.Actor != next.Issuer {
				return fmt.Errorf("%w: rekey must be alone, by the issuer", ErrBadChanges)
			}
			continue
		}
		if ch.Kind == ChangeCreate {
			return fmt.Errorf("%w: create after genesis", ErrBadChanges)
		}
		if seen[ch.Subject] {
			return fmt.Errorf("%w: %s changed twice", ErrBadChanges, ch.Subject)
		}
		seen[ch.Subject] = true
		before, inCur := cur.Member(ch.Subject)
		after, inNext := next.Member(ch.Subject)
		switch ch.Kind {
		case ChangeAdd:
			if inCur || !inNext || after.Role != ch.Role || ch.Actor != next.Issuer {
				return fmt.Errorf("%w: add of %s", ErrBadChanges, ch.Subject)
			}
			if ch.Role == RoleOwner && !owner {
				return fmt.Errorf("%w: only an owner adds an owner", ErrNotAdmin)
			}
			if err := verify(ch.Subject, labelConsent, consentInput(next.Room, after.KeyPackage.raw), next.consent[ch.Subject]); err != nil {
				return fmt.Errorf("%w: add of %s without its consent to this room", ErrBadChanges, ch.Subject)
			}
			if after.KeyPackage.CreatedAt.After(next.IssuedAt.Add(MaxClockSkew)) {
				return fmt.Errorf("%w: key package of %s from the future", ErrBadChanges, ch.Subject)
			}
		case ChangeRemove, ChangeLeave:
			if !inCur || inNext {
				return fmt.Errorf("%w: %s of %s", ErrBadChanges, ch.Kind, ch.Subject)
			}
			if ch.Kind == ChangeRemove && ch.Actor != next.Issuer || ch.Kind == ChangeLeave && ch.Actor != ch.Subject {
				return fmt.Errorf("%w: %s of %s by %s", ErrBadChanges, ch.Kind, ch.Subject, ch.Actor)
			}
			if before.Role.IsAdmin() && !owner && ch.Subject != next.Issuer {
				return fmt.Errorf("%w: only an owner removes the %s %s", ErrNotAdmin, before.Role, ch.Subject)
			}
			if ch.Kind == ChangeLeave {
				if err := verify(ch.Subject, labelLeave, leaveInput(next.Room, before.KeyPackage.Hash()), next.leave[ch.Subject]); err != nil {
					return fmt.Errorf("%w: leave of %s without its signed proposal", ErrBadChanges, ch.Subject)
				}
			}
		case ChangeRole:
			if !inCur || !inNext || before.Role == after.Role || after.Role != ch.Role || ch.Actor != next.Issuer {
				return fmt.Errorf("%w: role of %s", ErrBadChanges, ch.Subject)
			}
			if (before.Role.IsAdmin() || ch.Role == RoleOwner) && !owner {
				return fmt.Errorf("%w: only an owner changes the %s %s to %s", ErrNotAdmin, before.Role, ch.Subject, ch.Role)
			}
		case ChangeUpdate:
			if !inCur || !inNext || ch.Actor != ch.Subject {
				return fmt.Errorf("%w: update of %s", ErrBadChanges, ch.Subject)
			}
		}
		if inCur && inNext {
			if ch.Kind != ChangeRole && before.Role != after.Role {
				return fmt.Errorf("%w: role of %s changed without a role change", ErrBadChanges, ch.Subject)
			}
			if err := checkKeyPackageChange(ch, before, after, next.IssuedAt); err != nil {
				return err
			}
		}
	}
	// Every difference must be listed.
	owners := 0
	for _, m := range next.Members {
		if m.Role == RoleOwner {
			owners++
		}
		if !seen[m.ID] {
			before, ok := cur.Member(m.ID)
			if !ok || before.Role != m.Role || !before.KeyPackage.Equal(m.KeyPackage) {
				return fmt.Errorf("%w: %s changed without a change", ErrBadChanges, m.ID)
			}
		}
	}
	for _, m := range cur.Members {
		if _, ok := next.Member(m.ID); !ok && !seen[m.ID] {
			return fmt.Errorf("%w: %s dropped without a change", ErrBadChanges, m.ID)
		}
	}
	if owners == 0 {
		return fmt.Errorf("%w: the roster keeps no owner", ErrNotAdmin)
	}
	return nil
}

// checkKeyPackageChange checks the key package of a member present before
// and after: replaced only by an update, with a newer package of its own,
// dated at most MaxClockSkew after the commit (a package from the future
// would block every later update of its owner).
func checkKeyPackageChange(ch Change, before, after Member, issued time.Time) error {
	same := before.KeyPackage.Equal(after.KeyPackage)
	if ch.Kind != ChangeUpdate {
		if !same {
			return fmt.Errorf("%w: key package of %s replaced without an update", ErrBadChanges, ch.Subject)
		}
		return nil
	}
	if same || !after.KeyPackage.CreatedAt.After(before.KeyPackage.CreatedAt) {
		return fmt.Errorf("%w: update of %s needs a newer key package", ErrBadChanges, ch.Subject)
	}
	if after.KeyPackage.CreatedAt.After(issued.Add(MaxClockSkew)) {
		return fmt.Errorf("%w: key package of %s from the future", ErrBadChanges, ch.Subject)
	}
	return nil
}

// MaxClockSkew bounds how far past a commit's issued_at a key package it
// adds or updates may be dated (a package from the future would block
// every later update of its owner).
const MaxClockSkew = 5 * time.Minute

// Wins says whether a beats b, two valid commits on the same parent
// (SameSlot), as every member decides it. childA and childB say whether a
// verified commit on a (on b) is held. The rule, first difference wins:
//
//  1. a commit that ousts the other's issuer (removes it, or lowers its
//     role below what it held in parent) wins;
//  2. the issuer with the higher role in parent (owner over admin) wins;
//  3. a commit with a verified child wins over a childless one;
//  4. the smaller SHA-256("parley/room/2 fork" || 0x00 || parent hash ||
//     issuer) wins: nothing the issuer can regrind.
//
// Two commits by one issuer are an equivocation (Equivocates): the smaller
// commit hash wins and the outcome is reported. parent may be nil when not
// held; each issuer's role in parent is then taken from its own commit.
func Wins(parent, a, b *Commit, childA, childB bool) bool {
	roleIn := func(c *Commit, id peer.ID) Role {
		if m, ok := c.Member(id); ok {
			return m.Role
		}
		return 0
	}
	if a.Issuer == b.Issuer {
		// An equivocation: the smaller hash, a total order every member
		// agrees on. (A rule that looked at the issuer's own role in each
		// commit, to hold a departed owner to its leave, was tried and
		// broken in review: two leaves tie again, and mixed with the
		// ousting rule it made cycles in which members diverged.)
		return bytes.Compare(a.hash[:], b.hash[:]) < 0
	}
	before := func(x *Commit) Role {
		if parent != nil {
			return roleIn(parent, x.Issuer)
		}
		return roleIn(x, x.Issuer)
	}
	oustA := roleIn(a, b.Issuer) < before(b)
	oustB := roleIn(b, a.Issuer) < before(a)
	if oustA != oustB {
		return oustA
	}
	if ra, rb := before(a), before(b); ra != rb {
		return ra > rb
	}
	if childA != childB {
		return childA
	}
	ka, kb := forkKey(a), forkKey(b)
	return bytes.Compare(ka[:], kb[:]) < 0
}

// forkKey is the tie-break of Wins: SHA-256("parley/room/2 fork" || 0x00 ||
// parent || issuer).
func forkKey(c *Commit) Hash {
	return sha256.Sum256(labelled(labelFork, c.Parent[:], []byte(c.Issuer)))
}

// Equivocates says whether a and b are two different commits by one issuer
// for one slot: the issuer signed two versions of the same epoch. Report it.
func Equivocates(a, b *Commit) bool {
	return SameSlot(a, b) && a.Issuer == b.Issuer && a.hash != b.hash
}

// SameSlot says whether a and b compete: same room, epoch and parent.
func SameSlot(a, b *Commit) bool {
	return a.Room == b.Room && a.Epoch == b.Epoch && a.Parent == b.Parent
}

// NewRoomID returns a random room id.
func NewRoomID() (RoomID, error) {
	var id RoomID
	_, err := rand.Read(id[:])
	return id, err
}

// Create makes the genesis commit of a new room, its creator (priv, whose
// key package is kp) the only member and owner, and returns the commit and
// the creator's epoch 1. The genesis key schedule starts from an all-zero
// init secret.
func Create(room RoomID, priv crypto.PrivKey, kp *KeyPackage, now time.Time) (*Commit, *Epoch, error) {
	return create(rand.Reader, room, priv, kp, now)
}

func create(r io.Reader, room RoomID, priv crypto.PrivKey, kp *KeyPackage, now time.Time) (*Commit, *Epoch, error) {
	self, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("group: create: %w", err)
	}
	if kp.Owner != self {
		return nil, nil, fmt.Errorf("%w: create: key package of %s", ErrInvalid, kp.Owner)
	}
	body := &wirepb.CommitBody{
		RoomId:     room[:],
		Epoch:      1,
		Parent:     make([]byte, HashSize),
		Issuer:     []byte(self),
		IssuedAtMs: now.UnixMilli(),
		Members:    []*wirepb.CommitMember{{Role: wirepb.Role_ROLE_OWNER, KeyPackage: kp.raw}},
		Changes:    []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_CREATE, Actor: []byte(self)}},
	}
	c, e, err := seal(r, priv, body, make([]byte, SecretSize), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("group: create: %w", err)
	}
	if err := CheckGenesis(c); err != nil {
		return nil, nil, fmt.Errorf("group: create: %w", err)
	}
	return c, e, nil
}

// Proposal is what an admin's node wants changed in one commit. An empty
// proposal is a rekey: a fresh commit secret, nothing else.
type Proposal struct {
	// Add adds members with their key packages and consent (from join
	// requests).
	Add []Addition
	// Remove removes members (a kick by the issuer).
	Remove []peer.ID
	// Leave removes members who asked to leave, with their signed
	// proposals (ParseLeaveProposal).
	Leave []Leave
	// Roles sets members' roles.
	Roles []RoleChange
	// Update replaces members' key packages with newer ones they published.
	Update []*KeyPackage
}

// Addition is one member to add.
type Addition struct {
	KeyPackage *KeyPackage
	Role       Role // RoleMember when zero
	// Consent is the joiner's signature from its JoinRequest
	// (JoinRequest.consent): it asked to join this room with KeyPackage.
	Consent []byte
}

// Leave is one member's signed request to leave.
type Leave struct {
	Member    peer.ID
	Signature []byte // LeaveProposal.signature
}

// RoleChange sets a member's role.
type RoleChange struct {
	ID   peer.ID
	Role Role
}

// NewCommit makes the successor of the epoch parent (the issuer's own view
// of it, which holds the init secret) with the changes of p, issued and
// signed by priv, with a fresh commit secret. It returns the commit and the
// issuer's view of the new epoch (nil if the issuer is no longer a member).
// The result passes CheckSuccessor(parent.Commit(), commit), or NewCommit
// fails.
func NewCommit(parent *Epoch, priv crypto.PrivKey, p Proposal, now time.Time) (*Commit, *Epoch, error) {
	return newCommit(rand.Reader, parent, priv, p, now)
}

func newCommit(r io.Reader, pe *Epoch, priv crypto.PrivKey, p Proposal, now time.Time) (*Commit, *Epoch, error) {
	if pe == nil {
		return nil, nil, fmt.Errorf("%w: commit: no parent epoch", ErrInvalid)
	}
	init, ok := pe.initSecret()
	if !ok {
		return nil, nil, fmt.Errorf("%w: commit: the parent epoch's init secret is erased", ErrNoSecret)
	}
	defer clear(init)
	parent := pe.commit
	self, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("group: commit: %w", err)
	}
	type entry struct {
		role    Role
		kp      *KeyPackage
		consent []byte
	}
	roster := make(map[peer.ID]*entry, len(parent.Members)+len(p.Add))
	order := make([]peer.ID, 0, len(parent.Members)+len(p.Add))
	for _, m := range parent.Members {
		roster[m.ID] = &entry{role: m.Role, kp: m.KeyPackage}
		order = append(order, m.ID)
	}
	var changes []*wirepb.Change
	change := func(k ChangeKind, subject, actor peer.ID, role Role) *wirepb.Change {
		ch := &wirepb.Change{Kind: wirepb.ChangeKind(k), Subject: []byte(subject), Actor: []byte(actor), Role: wirepb.Role(role)}
		changes = append(changes, ch)
		return ch
	}
	for _, l := range p.Leave {
		delete(roster, l.Member)
		change(ChangeLeave, l.Member, l.Member, 0).Proof = l.Signature
	}
	for _, id := range p.Remove {
		delete(roster, id)
		change(ChangeRemove, id, self, 0)
	}
	for _, rc := range p.Roles {
		if e := roster[rc.ID]; e != nil {
			e.role = rc.Role
		}
		change(ChangeRole, rc.ID, self, rc.Role)
	}
	for _, kp := range p.Update {
		if e := roster[kp.Owner]; e != nil {
			e.kp = kp
		}
		change(ChangeUpdate, kp.Owner, kp.Owner, 0)
	}
	for _, a := range p.Add {
		role := a.Role
		if role == 0 {
			role = RoleMember
		}
		if _, ok := roster[a.KeyPackage.Owner]; !ok {
			order = append(order, a.KeyPackage.Owner)
		}
		roster[a.KeyPackage.Owner] = &entry{role: role, kp: a.KeyPackage, consent: a.Consent}
		change(ChangeAdd, a.KeyPackage.Owner, self, role)
	}
	if len(changes) == 0 {
		changes = append(changes, &wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_REKEY, Actor: []byte(self)})
	}
	body := &wirepb.CommitBody{
		RoomId:     parent.Room[:],
		Epoch:      parent.Epoch + 1,
		Parent:     parent.hash[:],
		Issuer:     []byte(self),
		IssuedAtMs: now.UnixMilli(),
		Changes:    changes,
	}
	for _, id := range order {
		if e := roster[id]; e != nil {
			body.Members = append(body.Members, &wirepb.CommitMember{Role: wirepb.Role(e.role), KeyPackage: e.kp.raw, Consent: e.consent})
		}
	}
	if len(body.Members) == 0 {
		return nil, nil, fmt.Errorf("%w: commit: the roster would be empty", ErrInvalid)
	}
	c, e, err := seal(r, priv, body, init, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("group: commit: %w", err)
	}
	if err := CheckSuccessor(parent, c); err != nil {
		return nil, nil, fmt.Errorf("group: commit: %w", err)
	}
	return c, e, nil
}

// seal draws a fresh commit secret from r, runs the key schedule from the
// parent's init secret, seals the joiner secret to every member the commit
// adds (their init keys) and the commit secret to every other member (their
// encryption keys), computes the confirmation tag, signs the commit, and
// derives the issuer's epoch (nil if the issuer is not in the roster).
// tamper, for tests only, may replace the plaintext sealed to member i.
func seal(r io.Reader, priv crypto.PrivKey, body *wirepb.CommitBody, init []byte, tamper func(i int, secret []byte) []byte) (*Commit, *Epoch, error) {
	commitSecret := make([]byte, SecretSize)
	defer clear(commitSecret)
	if _, err := io.ReadFull(r, commitSecret); err != nil {
		return nil, nil, err
	}
	var room RoomID
	copy(room[:], body.RoomId)
	bodyBytes := marshal(body)
	ctx := sha256.Sum256(labelled(labelBody, bodyBytes))
	joiner := joinerSecret(init, commitSecret, ctx)
	defer clear(joiner[:])
	secret := epochSecret(joiner, ctx)
	defer clear(secret[:])
	tag := confirmationTag(secret, ctx)
	welcomes := make(map[string]bool)
	for _, ch := range body.Changes {
		switch ch.Kind {
		case wirepb.ChangeKind_CHANGE_ADD:
			welcomes[string(ch.Subject)] = true
		case wirepb.ChangeKind_CHANGE_CREATE:
			welcomes[string(ch.Actor)] = true
		}
	}
	sealed := &wirepb.SealedSecrets{Secrets: make([]*wirepb.SealedSecret, len(body.Members))}
	for i, m := range body.Members {
		kp, err := decodeKeyPackage(m.KeyPackage)
		if err != nil {
			return nil, nil, err
		}
		key, info, pt := kp.PublicKey, commitSecretInfo(room, body.Epoch), commitSecret
		if welcomes[string(kp.Owner)] {
			key, info, pt = kp.InitKey, welcomeInfo(room, body.Epoch), joiner[:]
		}
		if tamper != nil {
			pt = tamper(i, pt)
		}
		pub, err := hpkeKEM.NewPublicKey(key)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: member %d: %v", ErrInvalid, i, err)
		}
		enc, ct, err := sealTo(pub, info, ctx[:], pt)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: member %d: %v", ErrInvalid, i, err)
		}
		sealed.Secrets[i] = &wirepb.SealedSecret{Enc: enc, Ciphertext: ct}
	}
	sealedBytes := marshal(sealed)
	in := commitSigningInput(bodyBytes, sealedBytes, tag[:])
	sig, err := sign(priv, labelCommit, in[len(labelCommit)+1:])
	if err != nil {
		return nil, nil, err
	}
	c, err := CommitFromProto(&wirepb.SignedCommit{Body: bodyBytes, Sealed: sealedBytes, Signature: sig, ConfirmationTag: tag[:]})
	if err != nil {
		return nil, nil, err
	}
	if _, ok := c.Member(c.Issuer); !ok {
		return c, nil, nil
	}
	return c, deriveEpoch(c, secret), nil
}

// sealTo seals secret to pub with HPKE base mode.
func sealTo(pub hpke.PublicKey, info, aad, secret []byte) (enc, ct []byte, err error) {
	enc, s, err := hpke.NewSender(pub, hpkeKDF, hpkeAEAD, info)
	if err != nil {
		return nil, nil, err
	}
	ct, err = s.Seal(aad, secret)
	return enc, ct, err
}

// openFrom unseals member i's entry of c with k.
func (c *Commit) openFrom(i int, k hpke.PrivateKey, info []byte) ([]byte, error) {
	ss := c.sealed[i]
	rcp, err := hpke.NewRecipient(ss.Enc, k, hpkeKDF, hpkeAEAD, info)
	if err != nil {
		return nil, fmt.Errorf("%w: epoch %d: %v", ErrDecrypt, c.Epoch, err)
	}
	pt, err := rcp.Open(c.bodyHash[:], ss.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: epoch %d secret", ErrDecrypt, c.Epoch)
	}
	return pt, nil
}

// finish runs the key schedule from the joiner secret, checks the
// confirmation tag and derives the epoch.
func (c *Commit) finish(joiner [SecretSize]byte) (*Epoch, error) {
	defer clear(joiner[:])
	secret := epochSecret(joiner, c.bodyHash)
	defer clear(secret[:])
	tag := confirmationTag(secret, c.bodyHash)
	if !hmac.Equal(tag[:], c.tag[:]) {
		return nil, fmt.Errorf("%w: confirmation tag of epoch %d: our secret is not the issuer's", ErrBadMAC, c.Epoch)
	}
	return deriveEpoch(c, secret), nil
}

// Open takes the Welcome of a commit that adds self (Welcomes): it unseals
// the joiner secret with the init key of the matching key package private
// key, runs the key schedule, checks the confirmation tag, derives the epoch
// and erases the init key (store the private key again). A member already
// in the parent roster follows the commit with Epoch.Next instead. Open
// fails with ErrNoSecret when c does not add self or no init key matches.
// It does not check that the commit follows anything: call CheckSuccessor,
// CheckGenesis or CheckWelcome first (or use State).
func (c *Commit) Open(self peer.ID, privs []*KeyPackagePrivate) (*Epoch, error) {
	i, ok := c.index[self]
	if !ok {
		return nil, fmt.Errorf("%w: %s is not in epoch %d", ErrNoSecret, self, c.Epoch)
	}
	if !c.welcome[self] {
		return nil, fmt.Errorf("%w: epoch %d does not add %s: follow it from its parent epoch", ErrNoSecret, c.Epoch, self)
	}
	if err := c.verifyMembers(); err != nil {
		return nil, err
	}
	for _, p := range privs {
		if p == nil || !bytes.Equal(p.InitKey, c.Members[i].KeyPackage.InitKey) {
			continue
		}
		ik := p.initKey()
		if ik == nil {
			break
		}
		pt, err := c.openFrom(i, ik, welcomeInfo(c.Room, c.Epoch))
		if err != nil {
			return nil, err
		}
		var joiner [SecretSize]byte
		copy(joiner[:], pt)
		clear(pt)
		e, err := c.finish(joiner)
		if err != nil {
			return nil, err
		}
		p.EraseInit()
		return e, nil
	}
	return nil, fmt.Errorf("%w: no init key for our key package of epoch %d", ErrNoSecret, c.Epoch)
}
