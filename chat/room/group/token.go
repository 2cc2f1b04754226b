package group

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// MaxTokenUses bounds a join token's uses.
const MaxTokenUses = 1000

// JoinToken is an admin's signed permission to join a room: anyone holding
// its link (token and join secret) or only Invitee (an invitation to a
// contact), until ExpiresAt, at most Uses times. Verification is here;
// counting uses and revocation are the issuing admin's node's (it alone
// commits the add).
type JoinToken struct {
	Room      RoomID
	ID        [IDSize]byte
	Issuer    peer.ID
	ExpiresAt time.Time // ms precision
	Uses      uint32
	Invitee   peer.ID // empty for a link
	// CommitHash and Epoch name the issuer's current commit when it issued
	// the token: the joiner checks the chain from it (CheckWelcome).
	CommitHash Hash
	Epoch      uint64
	// Secret is the 32-byte join secret: set by NewJoinToken, carried by
	// the link or invitation next to the token (never in it), nil after
	// ParseJoinToken. The issuer's node stores it to check join proofs.
	Secret []byte

	raw []byte // serialized SignedJoinToken
}

// MaxWelcomeDelay is how long after a token expires its joiner still takes
// a welcome issued before the expiry.
const MaxWelcomeDelay = 24 * time.Hour

// NewJoinToken makes and signs a token for the room of at, the issuer's
// current commit, issued by priv, with a random id and join secret. uses
// must be 1 to MaxTokenUses; invitee may be empty.
func NewJoinToken(priv crypto.PrivKey, at *Commit, uses int, expires time.Time, invitee peer.ID) (*JoinToken, error) {
	var id [IDSize]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	secret := make([]byte, SecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	return newJoinToken(priv, at, id, secret, uses, expires, invitee)
}

func newJoinToken(priv crypto.PrivKey, at *Commit, id [IDSize]byte, secret []byte, uses int, expires time.Time, invitee peer.ID) (*JoinToken, error) {
	issuer, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("group: join token: %w", err)
	}
	if uses < 1 || uses > MaxTokenUses {
		return nil, fmt.Errorf("%w: join token: %d uses", ErrInvalid, uses)
	}
	body := marshal(&wirepb.JoinToken{
		RoomId:      at.Room[:],
		TokenId:     id[:],
		Issuer:      []byte(issuer),
		ExpiresAtMs: expires.UnixMilli(),
		Uses:        uint32(uses),
		Invitee:     []byte(invitee),
		CommitHash:  at.hash[:],
		Epoch:       at.Epoch,
	})
	sig, err := sign(priv, labelJoinToken, body)
	if err != nil {
		return nil, fmt.Errorf("group: join token: %w", err)
	}
	t, err := ParseJoinToken(marshal(&wirepb.SignedJoinToken{Token: body, Signature: sig}))
	if err != nil {
		return nil, err
	}
	t.Secret = bytes.Clone(secret)
	return t, nil
}

// ParseJoinToken decodes a serialized SignedJoinToken and verifies the
// issuer's signature. It does not check expiry or the issuer's role: Check
// does.
func ParseJoinToken(b []byte) (*JoinToken, error) {
	var s wirepb.SignedJoinToken
	if err := unmarshal("join token", b, MaxTokenSize, &s); err != nil {
		return nil, err
	}
	var t wirepb.JoinToken
	if err := unmarshal("join token body", s.Token, MaxTokenSize, &t); err != nil {
		return nil, err
	}
	if len(t.RoomId) != RoomIDSize || len(t.TokenId) != IDSize || t.ExpiresAtMs <= 0 || t.Uses < 1 || t.Uses > MaxTokenUses ||
		len(t.CommitHash) != HashSize || t.Epoch == 0 {
		return nil, fmt.Errorf("%w: join token fields", ErrInvalid)
	}
	jt := &JoinToken{ExpiresAt: time.UnixMilli(t.ExpiresAtMs), Uses: t.Uses, Epoch: t.Epoch, raw: bytes.Clone(b)}
	copy(jt.Room[:], t.RoomId)
	copy(jt.ID[:], t.TokenId)
	copy(jt.CommitHash[:], t.CommitHash)
	var err error
	if jt.Issuer, err = parsePeerID("join token issuer", t.Issuer); err != nil {
		return nil, err
	}
	if len(t.Invitee) > 0 {
		if jt.Invitee, err = parsePeerID("join token invitee", t.Invitee); err != nil {
			return nil, err
		}
	}
	if err := verify(jt.Issuer, labelJoinToken, s.Token, s.Signature); err != nil {
		return nil, fmt.Errorf("join token: %w", err)
	}
	return jt, nil
}

// Marshal returns the serialized SignedJoinToken.
func (t *JoinToken) Marshal() []byte { return bytes.Clone(t.raw) }

// Check says whether t admits joiner into the room at epoch cur, at time
// now: same room, not expired, the issuer an admin or owner of cur, joiner
// the invitee if there is one. Uses, revocation and the join proof
// (VerifyJoinProof) are the issuer's node's.
func (t *JoinToken) Check(cur *Commit, joiner peer.ID, now time.Time) error {
	if t.Room != cur.Room {
		return fmt.Errorf("%w: token of another room", ErrWrongRoom)
	}
	if !now.Before(t.ExpiresAt) {
		return fmt.Errorf("%w: at %s", ErrExpired, t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if m, ok := cur.Member(t.Issuer); !ok || !m.Role.IsAdmin() {
		return fmt.Errorf("%w: token issuer %s in epoch %d", ErrNotAdmin, t.Issuer, cur.Epoch)
	}
	if t.Invitee != "" && t.Invitee != joiner {
		return fmt.Errorf("%w: %s", ErrNotInvitee, joiner)
	}
	return nil
}

// joinProof is HMAC-SHA256(secret, "parley/room/2 join proof" || 0x00 ||
// lp(token) || lp(joiner) || lp(key package)).
func joinProof(secret, token []byte, joiner peer.ID, kp []byte) []byte {
	b := labelled(labelJoinProof)
	b = appendLP(b, token)
	b = appendLP(b, []byte(joiner))
	b = appendLP(b, kp)
	h := hmac.New(sha256.New, secret)
	h.Write(b)
	return h.Sum(nil)
}

// NewJoinRequest makes the join request of the joiner priv with its key
// package kp, under the token t and its join secret (both from the link or
// invitation): the proof of the secret bound to the joiner and kp, and the
// joiner's consent to join t's room with kp.
func NewJoinRequest(priv crypto.PrivKey, t *JoinToken, secret []byte, kp *KeyPackage) (*wirepb.JoinRequest, error) {
	self, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("group: join request: %w", err)
	}
	if kp.Owner != self || len(secret) != SecretSize {
		return nil, fmt.Errorf("%w: join request: key package of %s, %d-byte secret", ErrInvalid, kp.Owner, len(secret))
	}
	consent, err := sign(priv, labelConsent, consentInput(t.Room, kp.raw))
	if err != nil {
		return nil, fmt.Errorf("group: join request: %w", err)
	}
	return &wirepb.JoinRequest{
		Token:      t.Marshal(),
		KeyPackage: kp.Marshal(),
		Proof:      joinProof(secret, t.raw, self, kp.raw),
		Consent:    consent,
	}, nil
}

// ParseJoinRequest decodes a join request published by author: its token
// (signature checked, not yet Check'ed), its key package, which must be
// author's own, and author's consent to join the token's room with it. The
// proof of the join secret only the issuer's node can check
// (VerifyJoinProof).
func ParseJoinRequest(author peer.ID, r *wirepb.JoinRequest) (*JoinToken, *KeyPackage, error) {
	if r == nil {
		return nil, nil, fmt.Errorf("%w: no join request", ErrInvalid)
	}
	if len(r.Proof) != sha256.Size || len(r.Consent) != 64 {
		return nil, nil, fmt.Errorf("%w: join request: proof or consent size", ErrInvalid)
	}
	t, err := ParseJoinToken(r.Token)
	if err != nil {
		return nil, nil, fmt.Errorf("join request: %w", err)
	}
	kp, err := ParseKeyPackage(r.KeyPackage)
	if err != nil {
		return nil, nil, fmt.Errorf("join request: %w", err)
	}
	if kp.Owner != author {
		return nil, nil, fmt.Errorf("%w: join request by %s carries the key package of %s", ErrBadSignature, author, kp.Owner)
	}
	if err := verify(author, labelConsent, consentInput(t.Room, kp.raw), r.Consent); err != nil {
		return nil, nil, fmt.Errorf("join request consent: %w", err)
	}
	return t, kp, nil
}

// VerifyJoinProof checks, on the issuer's node holding the token's join
// secret, that author's request r proves knowledge of it, bound to author
// and its key package: a request copied from the topic proves nothing for
// anyone else.
func VerifyJoinProof(secret []byte, author peer.ID, r *wirepb.JoinRequest) error {
	if len(secret) != SecretSize || r == nil || !hmac.Equal(joinProof(secret, r.Token, author, r.KeyPackage), r.Proof) {
		return fmt.Errorf("%w: from %s", ErrBadProof, author)
	}
	return nil
}

// CheckWelcome says whether a joiner that asked with token t may take
// welcome, a commit that adds it, as its first, given chain: the commits
// that members (not the welcome's sender) serve from t's commit on
// (chain[0] is the commit t names). The chain must verify link by link;
// welcome must be a valid successor of a commit in it and, if the chain
// holds another commit for the same parent, beat it (Wins); welcome must be
// by t's issuer, add joiner, and be issued before t expires, and now must
// be at most MaxWelcomeDelay after the expiry. A kicked admin's welcome
// into a branch of its own fails: the real chain removed it, and that
// commit beats its rival.
func CheckWelcome(welcome *Commit, chain []*Commit, joiner peer.ID, t *JoinToken, now time.Time) error {
	if welcome.Room != t.Room {
		return fmt.Errorf("%w: welcome of another room", ErrWrongRoom)
	}
	if welcome.Issuer != t.Issuer {
		return fmt.Errorf("%w: welcome by %s, token by %s", ErrNotAdmin, welcome.Issuer, t.Issuer)
	}
	if t.Invitee != "" && t.Invitee != joiner {
		return fmt.Errorf("%w: %s", ErrNotInvitee, joiner)
	}
	if !welcome.IssuedAt.Before(t.ExpiresAt) || now.After(t.ExpiresAt.Add(MaxWelcomeDelay)) {
		return fmt.Errorf("%w: welcome issued %s, token expired %s", ErrExpired,
			welcome.IssuedAt.UTC().Format(time.RFC3339), t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if !welcome.Welcomes(joiner) {
		return fmt.Errorf("%w: commit %d does not add %s", ErrNoSecret, welcome.Epoch, joiner)
	}
	if len(chain) == 0 || chain[0].hash != t.CommitHash {
		return fmt.Errorf("%w: the chain does not start at the token's commit", ErrNotSuccessor)
	}
	for i := 1; i < len(chain); i++ {
		if err := CheckSuccessor(chain[i-1], chain[i]); err != nil {
			return fmt.Errorf("chain epoch %d: %w", chain[i].Epoch, err)
		}
	}
	for i, c := range chain {
		if c.hash != welcome.Parent {
			continue
		}
		if err := CheckSuccessor(c, welcome); err != nil {
			return err
		}
		if i+1 < len(chain) && chain[i+1].hash != welcome.hash && !Wins(c, welcome, chain[i+1], false, i+2 < len(chain)) {
			return fmt.Errorf("%w: the room took commit %x for epoch %d, not this welcome", ErrFork, chain[i+1].hash[:8], welcome.Epoch)
		}
		return nil
	}
	return fmt.Errorf("%w: the welcome's parent is not in the room's chain", ErrUnknownParent)
}

// NewLeaveProposal makes priv's request to leave the room of cur, where it
// is a member: a signature over the room id and its key package in cur.
func NewLeaveProposal(priv crypto.PrivKey, cur *Commit) (*wirepb.LeaveProposal, error) {
	self, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("group: leave: %w", err)
	}
	m, ok := cur.Member(self)
	if !ok {
		return nil, fmt.Errorf("%w: %s in epoch %d", ErrNotMember, self, cur.Epoch)
	}
	sig, err := sign(priv, labelLeave, leaveInput(cur.Room, m.KeyPackage.Hash()))
	if err != nil {
		return nil, fmt.Errorf("group: leave: %w", err)
	}
	return &wirepb.LeaveProposal{Epoch: cur.Epoch, Signature: sig}, nil
}

// ParseLeaveProposal checks author's leave proposal against cur, the epoch
// an admin commits on: author is a member and signed for its key package
// there. The result goes into Proposal.Leave.
func ParseLeaveProposal(author peer.ID, cur *Commit, p *wirepb.LeaveProposal) (Leave, error) {
	if p == nil {
		return Leave{}, fmt.Errorf("%w: no leave proposal", ErrInvalid)
	}
	m, ok := cur.Member(author)
	if !ok {
		return Leave{}, fmt.Errorf("%w: %s in epoch %d", ErrNotMember, author, cur.Epoch)
	}
	if err := verify(author, labelLeave, leaveInput(cur.Room, m.KeyPackage.Hash()), p.Signature); err != nil {
		return Leave{}, fmt.Errorf("leave proposal: %w", err)
	}
	return Leave{Member: author, Signature: bytes.Clone(p.Signature)}, nil
}

// CheckChain checks commits from genesis: chain[0] passes CheckGenesis and
// each next one CheckSuccessor of the one before.
func CheckChain(chain []*Commit) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: empty chain", ErrInvalid)
	}
	if err := CheckGenesis(chain[0]); err != nil {
		return err
	}
	for i := 1; i < len(chain); i++ {
		if err := CheckSuccessor(chain[i-1], chain[i]); err != nil {
			return fmt.Errorf("epoch %d: %w", chain[i].Epoch, err)
		}
	}
	return nil
}
