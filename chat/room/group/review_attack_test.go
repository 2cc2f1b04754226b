package group

// Review of chat/room/group as an attacker would read it (helper REVIEW).
// Each test states the attack, runs a positive control (the honest case
// succeeds), then the attack. A test that FAILS here is a finding: the
// attack works. Tests that pass document attacks the package resists.

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// sealSplit signs body as issuer, sealing secrets[i] (when not nil)
// instead of the commit's own secret to member i: an issuer that gives
// different members different secrets.
func sealSplit(t testing.TB, issuer *ident, body *wirepb.CommitBody, secrets [][]byte) *Commit {
	t.Helper()
	init, ok := heldEpoch(Hash(body.Parent)).initSecret()
	if !ok {
		t.Fatal("no init secret")
	}
	c, _, err := seal(constReader(3), issuer.priv, body, init, func(i int, s []byte) []byte {
		if secrets[i] != nil {
			return secrets[i]
		}
		return s
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// apply parses c afresh and applies it to name's state.
func (r *room) apply(name string, c *Commit) (Outcome, error) {
	r.t.Helper()
	pc, err := ParseCommit(c.Marshal())
	if err != nil {
		r.t.Fatal(err)
	}
	return r.states[name].Apply(pc, r.people[name].id, r.privs[name])
}

// beat returns a commit by issuer on parent with proposal p whose hash is
// smaller than target's, varying only issued_at: under the old rule (the
// smaller commit hash wins) fork choice was a lottery the issuer could
// re-draw at will. tries is how many draws it took.
func beat(t testing.TB, parent *Commit, issuer *ident, p Proposal, target *Commit) (c *Commit, tries int) {
	t.Helper()
	for tries = 1; tries <= 1<<16; tries++ {
		c, _, err := newCommitT(parent, issuer.priv, p, t0.Add(time.Duration(tries)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Compare(c.hash[:], target.hash[:]) < 0 {
			return c, tries
		}
	}
	t.Fatal("no winning commit found")
	return nil, 0
}

// FINDING (split view, no key confirmation). The signature covers the
// sealed list, but nothing proves that every entry holds the same secret.
// A malicious (or buggy) issuer seals S1 to bob and S2 to carol; both
// accept the commit as valid and stand on the "same" epoch (same commit
// hash, same epoch_hash) with different keys: each then refuses the other's
// messages as bad MACs (REJECT, lowering honest peers' scores) and nothing
// says why. MLS closes this with the confirmation tag (RFC 9420 §8.1, §6.1:
// every member that accepts a commit verifies MAC(confirmation_key,
// confirmed_transcript_hash), so all acceptors hold the same epoch secret).
func TestReviewSplitViewSecrets(t *testing.T) {
	a, b, c := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "carol")
	r := newRoom(t, a, b, c)
	parent := r.states["alice"].Commit

	// Positive control: an honest commit gives everyone one key.
	r.commit(a, Proposal{})
	if r.epoch("bob").membershipKey != r.epoch("carol").membershipKey {
		t.Fatal("control: honest commit gave bob and carol different keys")
	}

	// Attack: same body shape, different secrets per member.
	body := &wirepb.CommitBody{
		RoomId: parent.Room[:], Epoch: parent.Epoch + 1, Parent: parent.hash[:],
		Issuer: []byte(a.id), IssuedAtMs: t0.UnixMilli() + 1,
		Changes: []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_REKEY, Actor: []byte(a.id)}},
	}
	for _, m := range parent.Members {
		body.Members = append(body.Members, &wirepb.CommitMember{Role: wirepb.Role(m.Role), KeyPackage: m.KeyPackage.raw})
	}
	secrets := make([][]byte, len(body.Members))
	for i, m := range parent.Members {
		if m.ID == c.id {
			secrets[i] = seed("split secret for carol")
		}
	}
	split := sealSplit(t, a, body, secrets)
	if err := CheckSuccessor(parent, split); err != nil {
		t.Fatalf("split commit is not even a valid successor: %v", err)
	}
	eb, errB := openAs(split, b.id, r.privs["bob"])
	ec, errC := openAs(split, c.id, r.privs["carol"])
	if errB != nil {
		t.Fatalf("bob, who got the issuer's secret, refused: %v", errB)
	}
	if errC != nil {
		wantErr(t, errC, ErrBadMAC) // the confirmation tag: hole closed
		return
	}
	if eb.membershipKey != ec.membershipKey {
		t.Errorf("split view: bob and carol both accept commit %x of epoch %d but hold different epoch secrets (no confirmation tag / epoch authenticator)", split.hash[:8], split.Epoch)
		m, err := eb.Seal(b.id, msgID(1), 1, []byte("hi"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("carol on bob's message of the same epoch and epoch_hash: %v", ec.VerifyMAC(b.id, m))
	}
}

// FINDING (fork choice undoes a removal; a removed or demoted admin
// resurrects itself). The owner removes admin mallory at epoch n+1. Mallory
// still holds commit n, where it was an admin, so any commit it signs on
// parent n is a valid competitor for slot n+1 (CheckSuccessor(prev, c)).
// The smaller hash wins, and mallory can redraw its hash freely (issued_at,
// the epoch secret): members "heal" onto mallory's branch, in which it was
// never removed. The owner re-makes the removal on top of the winner, and
// mallory does it again, every time. There is no time limit either: until
// the next commit, a stale competitor for the current slot wins whenever
// its hash is smaller. Design (ROOMS2 fork choice) and code agree: the hole
// is in the rule, not the implementation.
func TestReviewRemovedAdminUndoesRemovalByFork(t *testing.T) {
	for _, demote := range []bool{false, true} {
		name := "remove"
		if demote {
			name = "demote"
		}
		t.Run(name, func(t *testing.T) {
			o, m, b := newIdent(t, "owner"), newIdent(t, "mallory"), newIdent(t, "bob")
			r := newRoom(t, o, m, b)
			r.commit(o, Proposal{Roles: []RoleChange{{m.id, RoleAdmin}}})
			p := Proposal{Remove: []peer.ID{m.id}}
			if demote {
				p = Proposal{Roles: []RoleChange{{m.id, RoleMember}}}
			}
			// Positive control: the owner's change sticks when mallory does
			// nothing, and mallory cannot commit after it directly.
			kick := r.commit(o, p)
			if mm, ok := r.states["bob"].Commit.Member(m.id); ok && mm.Role.IsAdmin() {
				t.Fatal("control: mallory still admin after the owner's commit")
			}
			if _, _, err := newCommitT(kick, m.priv, Proposal{}, t0); !errors.Is(err, ErrNotAdmin) {
				t.Fatalf("control: mallory committed after its %s: %v", name, err)
			}
			// Attack: three rounds of mallory drawing a rival for the slot of
			// the owner's change, each with a smaller commit hash (the old
			// rule's lottery). The owner's commit ousts mallory: it wins.
			for round := 0; round < 3; round++ {
				prev := r.states["bob"].Prev
				rival, tries := beat(t, prev, m, Proposal{}, kick)
				out, err := r.apply("bob", rival)
				if err != nil {
					t.Fatalf("round %d: bob: %v", round, err)
				}
				for _, n := range []string{"owner", "mallory"} {
					if _, err := r.apply(n, rival); err != nil {
						t.Fatal(n, err)
					}
				}
				mm, ok := r.states["bob"].Commit.Member(m.id)
				if out == Healed && ok && mm.Role.IsAdmin() {
					t.Errorf("round %d: mallory, already %sd by the owner, undid it with a competing commit (won fork choice after %d draws); bob healed onto it", round, name, tries)
				}
				if out != Lost || r.states["bob"].Commit.Hash() != kick.Hash() {
					t.Errorf("round %d: mallory's rival: %v, want lost", round, out)
				}
			}
		})
	}
}

// FINDING (honest race + delay = permanent split). Admins P and Q commit
// at the same time; Q's commit X wins by hash but reaches part of the room
// late. Meanwhile everyone applied P's Y and the owner committed Z on Y,
// which reached alice. When X arrives: alice (at Z, prev Y) reports ErrFork
// and changes nothing; bob (at Y) heals onto X; Z can never be applied on
// X (ErrUnknownParent, and fetching Y then gives Lost). Alice and bob stay
// on different branches for good, both honest. The issue asks for forks
// "detected, reported and healed"; ROOMS2 only heals one epoch deep.
func TestReviewLateWinnerSplitsRoomForGood(t *testing.T) {
	o, p, q, a, b := newIdent(t, "owner"), newIdent(t, "padmin"), newIdent(t, "qadmin"), newIdent(t, "alice"), newIdent(t, "bob")
	setup := func() (r *room, x, y *Commit) {
		// Fresh private keys: a Welcome erases its init key.
		o, p, q, a, b = newIdent(t, "owner"), newIdent(t, "padmin"), newIdent(t, "qadmin"), newIdent(t, "alice"), newIdent(t, "bob")
		r = newRoom(t, o, p, q, a, b)
		r.commit(o, Proposal{Roles: []RoleChange{{p.id, RoleAdmin}, {q.id, RoleAdmin}}})
		base := r.states["owner"].Commit
		cp, _, err := newCommitT(base, p.priv, Proposal{}, t0)
		if err != nil {
			t.Fatal(err)
		}
		cq, _, err := newCommitT(base, q.priv, Proposal{}, t0)
		if err != nil {
			t.Fatal(err)
		}
		// x wins while both are childless; y reaches everyone first.
		x, y = cp, cq
		if Wins(base, cq, cp, false, false) {
			x, y = cq, cp
		}
		return r, x, y
	}

	// Positive control (same setup, X arrives before Z exists): converge.
	t.Run("control", func(t *testing.T) {
		r, x, y := setup()
		r.deliver(y)
		r.deliver(x)
		for n, s := range r.states {
			if s.Commit.Hash() != x.Hash() {
				t.Fatalf("control: %s not on the winner", n)
			}
		}
	})

	r, x, y := setup()
	r.deliver(y)
	z, _, err := newCommitT(y, o.priv, Proposal{}, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"owner", "padmin", "alice"} {
		if out, err := r.apply(n, z); err != nil || out != Applied {
			t.Fatal(n, out, err)
		}
	}
	outcome := map[string]string{}
	for _, n := range []string{"owner", "padmin", "qadmin", "alice", "bob"} {
		out, err := r.apply(n, x)
		outcome[n] = out.String()
		if err != nil {
			outcome[n] = err.Error()
		}
	}
	// bob catches up the way the spec says: fetch and apply Y, then Z.
	for _, c := range []*Commit{y, z} {
		out, err := r.apply("bob", c)
		t.Logf("bob applying epoch %d after healing: %v %v", c.Epoch, out, err)
	}
	ha, hb := r.states["alice"].Commit.Hash(), r.states["bob"].Commit.Hash()
	if ha != hb {
		t.Errorf("room split for good: alice on %x (epoch %d), bob on %x (epoch %d); outcomes of the late winner: %v",
			ha[:8], r.states["alice"].Commit.Epoch, hb[:8], r.states["bob"].Commit.Epoch, outcome)
	}
}

// FINDING (forward secrecy within an epoch is void while the key package
// private key is held). Epoch keeps no epoch secret and erases used message
// keys; but a member must keep its key package private key until a commit
// sealed to a newer package is final, i.e. for the whole epoch at least,
// and the commit (with its sealed list) is public and stored. Stored state
// after a message was read (EpochState + KeyPackagePrivate, both of which
// the caller must persist) re-derives the epoch secret, hence every used
// message key of every author. MLS avoids this by chaining the key
// schedule (RFC 9420 §8: epoch_secret depends on init_secret[n-1], deleted
// with the epoch) and one-time KeyPackage init keys (§10, §16.4).
func TestReviewStoredStateRederivesUsedKeys(t *testing.T) {
	a, b := newIdent(t, "alice"), newIdent(t, "bob")
	r := newRoom(t, a, b)
	m, err := r.epoch("alice").Seal(a.id, msgID(1), 1, []byte("secret text"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.epoch("bob").Open(a.id, m); err != nil {
		t.Fatal(err)
	}
	// What bob's store holds after reading the message.
	epochBytes, err := r.epoch("bob").MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	kppBytes, err := b.kpp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Positive control: the stored epoch alone cannot reopen the message.
	e, err := UnmarshalEpoch(epochBytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Open(a.id, m); !errors.Is(err, ErrKeyUsed) {
		t.Fatalf("control: stored epoch reopened a used message: %v", err)
	}
	// Attack: stored epoch's commit + stored key package private key. The
	// Welcome that added bob was sealed to its one-time init key, erased
	// once taken.
	priv, err := UnmarshalKeyPackagePrivate(kppBytes)
	if err != nil {
		t.Fatal(err)
	}
	privs := []*KeyPackagePrivate{priv}
	if again, err := e.Commit().Open(b.id, privs); err == nil {
		if pt, err := again.Open(a.id, m); err == nil {
			t.Errorf("forward secrecy: bob's stored state (epoch state + key package private key) re-derives a used message key and reads %q again", pt)
		}
	}

	// Across epochs: three rekeys later, with every old epoch erased, the
	// same private key and the public commits (topic, sync) reopen none.
	old := r.states["bob"].Commit
	var rekeys []*Commit
	for range 3 {
		rekeys = append(rekeys, r.commit(a, Proposal{}))
	}
	if _, err := old.Open(b.id, privs); err == nil {
		t.Errorf("forward secrecy across epochs: the key package private key still held at epoch %d opens epoch %d's Welcome", r.states["bob"].Commit.Epoch, old.Epoch)
	}
	// The encryption key does open a later commit's commit secret (it
	// must, to follow the chain), but that is not enough: the epoch also
	// needs the previous epoch's init secret. Bob's store holds only the
	// current epoch's (and the previous one's, until the next commit).
	stored, err := r.epoch("bob").MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	se, err := UnmarshalEpoch(stored)
	if err != nil {
		t.Fatal(err)
	}
	target := rekeys[0]
	cs, err := target.openFrom(target.index[b.id], priv.priv, commitSecretInfo(target.Room, target.Epoch))
	if err != nil {
		t.Fatal(err)
	}
	// Control: with the init secret bob held at the time, it opens.
	then, _ := heldEpoch(target.Parent).initSecret()
	if _, err := target.finish(joinerSecret(then, cs, target.bodyHash)); err != nil {
		t.Fatalf("control: %v", err)
	}
	now, _ := se.initSecret()
	if _, err := target.finish(joinerSecret(now, cs, target.bodyHash)); err == nil {
		t.Errorf("forward secrecy across epochs: the stored epoch %d with the encryption key re-derives epoch %d", se.Number(), target.Epoch)
	}
	if r.states["bob"].Prev != nil && r.states["bob"].PrevEpoch != nil {
		// The epoch before the previous one was dropped and its init
		// secret erased.
		if _, ok := heldEpoch(rekeys[0].hash).initSecret(); !ok {
			t.Fatal("test registry lost an init secret")
		}
	}
}

// FINDING (bearer link tokens are published on the topic). A link token has
// no invitee, and JoinRequest carries it in clear on the room topic, which
// any subscriber sees: every current and former member (a kicked member
// knows the room id and can stay subscribed) and any relay. Anyone who saw
// one join request can reuse its token while uses remain: the issuer's node
// counts uses, not joiners, so it admits the eavesdropper. ROOMS2 says the
// link carries the token; nothing says the topic may.
func TestReviewLinkTokenReplayedFromTopic(t *testing.T) {
	a, b, j, eve := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "joiner"), newIdent(t, "eve")
	r := newRoom(t, a, b)
	cur := r.states["alice"].Commit
	// Positive control: an invitation token bound to an invitee refuses
	// anyone else, even one holding its secret.
	inv, err := NewJoinToken(a.priv, cur, 1, t0.Add(time.Hour), j.id)
	if err != nil {
		t.Fatal(err)
	}
	stolen, err := NewJoinRequest(eve.priv, inv, inv.Secret, eve.kp)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := ParseJoinRequest(eve.id, stolen)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, tok.Check(cur, eve.id, t0), ErrNotInvitee)

	// The joiner's request for a 5-use link, as seen on the topic, is good
	// at the issuer's node (control).
	link, err := NewJoinToken(a.priv, cur, 5, t0.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	seen, err := NewJoinRequest(j.priv, link, link.Secret, j.kp)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ParseJoinRequest(j.id, seen); err != nil {
		t.Fatal(err)
	}
	if err := VerifyJoinProof(link.Secret, j.id, seen); err != nil {
		t.Fatalf("control: %v", err)
	}
	// Attack: eve re-publishes the token with her own key package and
	// consent, and the joiner's proof.
	consent, err := sign(eve.priv, labelConsent, consentInput(r.id, eve.kp.raw))
	if err != nil {
		t.Fatal(err)
	}
	replay := &wirepb.JoinRequest{Token: seen.Token, KeyPackage: eve.kp.Marshal(), Proof: seen.Proof, Consent: consent}
	tok, _, err = ParseJoinRequest(eve.id, replay)
	if err != nil {
		return
	}
	if tok.Check(cur, eve.id, t0) == nil && VerifyJoinProof(link.Secret, eve.id, replay) == nil {
		t.Errorf("a link token copied from someone else's join request on the topic admits a third peer (eve); the token is not bound to its holder")
	}
	// Verbatim, under eve's name: the key package is the joiner's.
	_, _, err = ParseJoinRequest(eve.id, seen)
	wantErr(t, err, ErrBadSignature)
}

// FINDING (a kicked admin welcomes joiners into a branch of its own).
// CheckWelcome trusts any commit signed by the token's issuer that lists
// the issuer as admin and adds the joiner; it does not relate the commit
// to the room's real chain, nor check the token's expiry. An admin who was
// kicked keeps its links; a joiner using one is welcomed by the kicked
// admin into a fabricated epoch (here: a valid-looking successor of the
// last commit where it was admin, and one with an invented parent), with
// the real members' real key packages in the roster. The joiner believes
// it is in the room with them; only the kicked admin reads it. ROOMS2: "a
// kicked admin's tokens die with its role".
func TestReviewKickedAdminWelcomesJoiner(t *testing.T) {
	o, m, b, j := newIdent(t, "owner"), newIdent(t, "mallory"), newIdent(t, "bob"), newIdent(t, "joiner")
	r := newRoom(t, o, m, b)
	r.commit(o, Proposal{Roles: []RoleChange{{m.id, RoleAdmin}}})
	lastAdmin := r.states["owner"].Commit
	link, err := NewJoinToken(m.priv, lastAdmin, 5, t0.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	// Positive control: before the kick, mallory's honest welcome passes
	// against the chain members serve from the token's commit.
	honest, _, err := newCommitT(lastAdmin, m.priv, Proposal{Add: []Addition{j.add()}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckWelcome(honest, []*Commit{lastAdmin}, j.id, link, t0); err != nil {
		t.Fatalf("control: %v", err)
	}
	kick := r.commit(o, Proposal{Remove: []peer.ID{m.id}})
	// Honest members refuse the token now (control of the topic side).
	wantErr(t, link.Check(kick, j.id, t0), ErrNotAdmin)
	// What the joiner fetches from members (not from mallory).
	chain := []*Commit{lastAdmin, kick}

	t.Run("successor of its last admin epoch", func(t *testing.T) {
		fake, _, err := newCommitT(lastAdmin, m.priv, Proposal{Add: []Addition{j.add()}}, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckWelcome(fake, chain, j.id, link, t0.Add(time.Minute)); err == nil {
			t.Errorf("kicked admin's welcome accepted: epoch %d parent %x (the room is at %d, %x)", fake.Epoch, fake.Parent[:8], kick.Epoch, kick.hash[:8])
		}
	})
	t.Run("invented parent, long after expiry", func(t *testing.T) {
		body := &wirepb.CommitBody{
			RoomId: r.id[:], Epoch: 50, Parent: seed("no such commit"), Issuer: []byte(m.id),
			IssuedAtMs: t0.Add(48 * time.Hour).UnixMilli(),
			Members: []*wirepb.CommitMember{
				{Role: wirepb.Role_ROLE_OWNER, KeyPackage: o.kp.Marshal()},
				{Role: wirepb.Role_ROLE_ADMIN, KeyPackage: m.kp.Marshal()},
				{Role: wirepb.Role_ROLE_MEMBER, KeyPackage: b.kp.Marshal()},
				{Role: wirepb.Role_ROLE_MEMBER, KeyPackage: j.kp.Marshal(), Consent: j.add().Consent},
			},
			Changes: []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_ADD, Subject: []byte(j.id), Actor: []byte(m.id), Role: wirepb.Role_ROLE_MEMBER}},
		}
		fake := craft(t, m.priv, body)
		if err := CheckWelcome(fake, chain, j.id, link, t0.Add(48*time.Hour)); err == nil {
			t.Errorf("kicked admin's welcome into a fabricated epoch %d (invented parent, issued 48h after the token expired) accepted", fake.Epoch)
		}
		// Even within the token's validity, the parent must be the room's.
		body.IssuedAtMs = t0.UnixMilli()
		fake = craft(t, m.priv, body)
		wantErr(t, CheckWelcome(fake, chain, j.id, link, t0), ErrUnknownParent)
	})
}

// FINDING (low: history forgery). A LEAVE change needs actor = subject, but
// nothing the subject signed: any admin can drop a member and record that
// the member left. The "why" every member shows is the issuer's word. The
// LeaveProposal the subject published is not carried in the commit.
func TestReviewAdminForgesLeave(t *testing.T) {
	o, m, b := newIdent(t, "owner"), newIdent(t, "mallory"), newIdent(t, "bob")
	r := newRoom(t, o, m, b)
	r.commit(o, Proposal{Roles: []RoleChange{{m.id, RoleAdmin}}})
	cur := r.states["owner"].Commit
	// Positive control: a leave that bob asked for (signed) commits fine;
	// a leave of the owner is refused (owner-only).
	if _, _, err := newCommitT(cur, m.priv, Proposal{Leave: []Leave{b.leave(cur)}}, t0); err != nil {
		t.Fatalf("control: %v", err)
	}
	if _, _, err := newCommitT(cur, m.priv, Proposal{Leave: []Leave{o.leave(cur)}}, t0); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("control: admin recorded the owner's leave: %v", err)
	}
	// Attack: bob never asked; mallory signs the "proposal" itself, or
	// leaves it empty.
	forged, err := sign(m.priv, labelLeave, leaveInput(cur.Room, cur.Members[cur.index[b.id]].KeyPackage.Hash()))
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range [][]byte{forged, make([]byte, 64)} {
		c, _, err := newCommitT(cur, m.priv, Proposal{Leave: []Leave{{Member: b.id, Signature: sig}}}, t0)
		if err == nil {
			t.Errorf("an admin records %q for bob without any statement signed by bob; members will show bob as having left", c.Changes[0].Kind)
		}
	}
	// bob's proposal for another room (same key package) does not carry.
	var other RoomID
	copy(other[:], seed("other room"))
	elsewhere, err := sign(b.priv, labelLeave, leaveInput(other, cur.Members[cur.index[b.id]].KeyPackage.Hash()))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := newCommitT(cur, m.priv, Proposal{Leave: []Leave{{Member: b.id, Signature: elsewhere}}}, t0); err == nil {
		t.Errorf("bob's leave of another room removes him from this one")
	}
}

// FINDING (low/medium: ghost members). Key packages are not bound to a
// room or to a consent: an admin can list, as a member, any peer whose key
// package it has seen anywhere (another room's roster, an old commit). The
// roster every member shows then says that peer is in the room; it never
// consented and never runs the room. ROOMS2 wants consent for adds
// (invites wait for `room accept`); the commit cannot show it.
func TestReviewGhostMemberWithoutConsent(t *testing.T) {
	a, b, ceo := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "ceo")
	r := newRoom(t, a, b)
	cur := r.states["alice"].Commit
	// Positive control: an honest add (the joiner asked, with consent).
	if _, _, err := newCommitT(cur, a.priv, Proposal{Add: []Addition{ceo.add()}}, t0); err != nil {
		t.Fatalf("control: %v", err)
	}
	// Attack: ceo's key package as published in another room.
	var other RoomID
	copy(other[:], seed("other room"))
	g, _, err := Create(other, ceo.priv, ceo.kp, t0)
	if err != nil {
		t.Fatal(err)
	}
	kp := g.Members[0].KeyPackage
	// Without consent, and with ceo's consent to join the other room.
	for _, consent := range [][]byte{nil, ceo.addTo(other, kp).Consent} {
		c, _, err := newCommitT(cur, a.priv, Proposal{Add: []Addition{{KeyPackage: kp, Role: RoleAdmin, Consent: consent}}}, t0)
		if err != nil {
			continue
		}
		if err := CheckSuccessor(cur, c); err == nil {
			t.Errorf("ceo's key package lifted from another room's genesis makes ceo an admin of this room in every member's roster, without ceo's consent")
		}
	}
}

// FINDING (low, defence in depth). The key schedule is bound to the room id
// only: PRK = Extract(salt = room id, S). Two commits with the same secret
// (an issuer reusing S across the two branches of a fork, or a buggy RNG)
// derive the same sender chains, and with the zero nonce, a member sending
// generation g on both branches reuses (key, nonce). MLS binds the
// GroupContext (group id, epoch, tree hash, confirmed transcript hash) into
// every epoch's key schedule (RFC 9420 §8).
func TestReviewKeyScheduleBindsCommit(t *testing.T) {
	a, b := newIdent(t, "alice"), newIdent(t, "bob")
	r := newRoom(t, a, b)
	cur := r.states["alice"].Commit
	mk := func(ms int64) *Commit {
		body := bodyOf(t, cur)
		body.Epoch, body.Parent, body.IssuedAtMs = cur.Epoch+1, cur.hash[:], ms
		body.Changes = []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_REKEY, Actor: []byte(a.id)}}
		return craft(t, a.priv, body) // craft draws S from a constant reader
	}
	x, y := mk(t0.UnixMilli()+1), mk(t0.UnixMilli()+2)
	ex, err := openAs(x, b.id, r.privs["bob"])
	if err != nil {
		t.Fatal(err)
	}
	ey, err := openAs(y, b.id, r.privs["bob"])
	if err != nil {
		t.Fatal(err)
	}
	// Positive control: alice, opening the same commit, derives bob's
	// view of her chain.
	ea, err := openAs(x, a.id, r.privs["alice"])
	if err != nil {
		t.Fatal(err)
	}
	if ea.chains[a.id].head != ex.chains[a.id].head {
		t.Fatal("control: two members of one commit disagree")
	}
	if x.hash != y.hash && ex.chains[a.id].head == ey.chains[a.id].head {
		t.Errorf("two different commits (%x, %x) with one secret give alice the same sender chain: the key schedule does not bind the commit", x.hash[:8], y.hash[:8])
	}
}

// FINDING (spec mismatch, low). PROTOCOL.md: "The text is UTF-8, 1 byte to
// 12 KiB". Seal and Open accept an empty text (16-byte ciphertext).
func TestReviewEmptyTextRefused(t *testing.T) {
	a, b := newIdent(t, "alice"), newIdent(t, "bob")
	r := newRoom(t, a, b)
	if _, err := r.epoch("alice").Seal(a.id, msgID(1), 1, []byte("x")); err != nil {
		t.Fatalf("control: %v", err)
	}
	m, err := r.epoch("alice").Seal(a.id, msgID(2), 2, nil)
	if err != nil {
		// Sealing refuses it; a crafted one (16-byte ciphertext) is
		// refused on receipt too.
		wantErr(t, err, ErrInvalid)
		m, err = r.epoch("alice").Seal(a.id, msgID(2), 2, []byte("y"))
		if err != nil {
			t.Fatal(err)
		}
		m.Ciphertext = m.Ciphertext[1:]
		m.MembershipMac = r.epoch("alice").mac(a.id, m)
		if _, err := r.epoch("bob").Open(a.id, m); !errors.Is(err, ErrInvalid) {
			t.Errorf("a 16-byte ciphertext (empty text) is not refused as invalid: %v", err)
		}
		return
	}
	if _, err := r.epoch("bob").Open(a.id, m); err == nil {
		t.Errorf("an empty text seals and opens; PROTOCOL.md says 1 byte to 12 KiB")
	}
}

// FINDING (outsiders raise fork alarms and get unknown-parent commits
// forwarded). ParseCommit checks only the issuer's own signature; State
// reports ErrFork for any commit of our epoch on a parent we do not hold,
// and of the previous epoch on the previous parent when it "wins", and
// ErrUnknownParent for any later epoch, all before anything ties the
// issuer to the room. PROTOCOL.md makes the first a reported fork event
// and the last "accepted for forwarding and fetched around" from the
// sender. So eve, who was never a member, signs junk commits (up to
// 384 KiB) that every node forwards without a score penalty, that make
// every member report forks, and that make members open sync streams to
// eve. A commit whose issuer is not an admin of any commit we hold should
// be refused (REJECT), or at least ignored and never reported as a fork.
func TestReviewOutsiderRaisesForkAlarm(t *testing.T) {
	a, b, eve := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "eve")
	r := newRoom(t, a, b)
	r.commit(a, Proposal{})
	s := r.states["bob"]
	cur, prev := s.Commit, s.Prev
	junk := func(epoch uint64, parent []byte, ms int64) *Commit {
		return craft(t, eve.priv, &wirepb.CommitBody{
			RoomId: r.id[:], Epoch: epoch, Parent: parent, Issuer: []byte(eve.id), IssuedAtMs: ms,
			Members: []*wirepb.CommitMember{{Role: wirepb.Role_ROLE_OWNER, KeyPackage: eve.kp.Marshal()}},
			Changes: []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_REKEY, Actor: []byte(eve.id)}},
		})
	}
	// Control: where the parent is held, a non-admin's commit is refused
	// and blamed on its issuer.
	_, err := s.Apply(junk(cur.Epoch, prev.hash[:], t0.UnixMilli()), b.id, r.privs["bob"])
	wantErr(t, err, ErrNotAdmin)
	_, err = s.Apply(junk(cur.Epoch+1, cur.hash[:], t0.UnixMilli()), b.id, r.privs["bob"])
	wantErr(t, err, ErrNotAdmin)

	_, err = s.Apply(junk(cur.Epoch, seed("nowhere"), t0.UnixMilli()), b.id, r.privs["bob"])
	if errors.Is(err, ErrFork) {
		t.Errorf("a never-member's junk commit for our epoch is reported as a fork: %v", err)
	}
	_, err = s.Apply(junk(cur.Epoch+5, seed("nowhere"), t0.UnixMilli()), b.id, r.privs["bob"])
	if errors.Is(err, ErrUnknownParent) {
		t.Errorf("a never-member's junk commit for a later epoch is an unknown parent (forward, fetch from eve): %v", err)
	}
	for ms := int64(1); ms < 1<<12; ms++ {
		c := junk(prev.Epoch, prev.Parent[:], t0.UnixMilli()+ms)
		if bytes.Compare(c.hash[:], prev.hash[:]) >= 0 {
			continue
		}
		_, err = s.Apply(c, b.id, r.privs["bob"])
		if errors.Is(err, ErrFork) {
			t.Errorf("a never-member's junk commit competing with our previous epoch is reported as a fork: %v", err)
		}
		break
	}
	if s.Commit.Hash() != cur.Hash() {
		t.Fatal("junk moved the state")
	}
}

// FINDING (spec, medium: anyone can mute a room). PROTOCOL.md "Removal"
// said: "A member that sees a message or commit of an epoch newer than its
// own stops sending and fetches". An app message of an epoch we do not
// hold cannot be authenticated (its MAC is under keys we lack), so the
// package cannot tell a real member's message of the next epoch from a
// never-member's junk: both are ErrNewerEpoch, an unauthenticated claim.
// The fixed rule (PROTOCOL.md): a claim only triggers a rate-limited fetch
// from members; a member stops sending at its epoch only once a fetched
// commit chain applies (State.Apply), which junk never does. This test
// checks what the package can: the claim is flagged as unauthenticated,
// eve's junk commit for the newer epoch is refused and moves nothing, and
// the member keeps sending until the real commit applies.
func TestReviewOutsiderClaimsNewerEpoch(t *testing.T) {
	a, b, eve := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "eve")
	r := newRoom(t, a, b)
	s := r.states["bob"]
	lagging := r.epoch("bob") // bob misses the next commit
	next, ae, err := newCommitT(r.states["alice"].Commit, a.priv, Proposal{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ae.Seal(a.id, msgID(1), 1, []byte("epoch 3"))
	if err != nil {
		t.Fatal(err)
	}
	errHonest := lagging.VerifyMAC(a.id, m)
	wantErr(t, errHonest, ErrNewerEpoch)
	// eve's junk: made-up epoch, hash and MAC. Same answer: a claim.
	junk := &wirepb.AppMessage{Epoch: lagging.Number() + 1, EpochHash: seed("x")[:EpochHashSize], Generation: 0, Hlc: 1,
		MsgId: msgID(2), Ciphertext: make([]byte, 32), MembershipMac: seed("mac")}
	wantErr(t, lagging.VerifyMAC(eve.id, junk), ErrNewerEpoch)
	// What would make bob stop: a commit of the newer epoch. eve's is
	// refused and moves nothing; bob still sends at its epoch.
	fake := craft(t, eve.priv, &wirepb.CommitBody{
		RoomId: r.id[:], Epoch: s.Commit.Epoch + 1, Parent: s.Commit.hash[:], Issuer: []byte(eve.id), IssuedAtMs: t0.UnixMilli(),
		Members: []*wirepb.CommitMember{{Role: wirepb.Role_ROLE_OWNER, KeyPackage: eve.kp.Marshal()}},
		Changes: []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_REKEY, Actor: []byte(eve.id)}},
	})
	_, err = s.Apply(fake, b.id, r.privs["bob"])
	wantErr(t, err, ErrNotAdmin)
	if s.Commit.Epoch != lagging.Number() {
		t.Fatal("junk moved bob's state")
	}
	if _, err := s.Epoch.Seal(b.id, msgID(3), 2, []byte("still here")); err != nil {
		t.Errorf("bob cannot send after eve's claims: %v", err)
	}
	// Control: the real commit, fetched from a member, applies; then
	// alice's message opens.
	if out, err := r.apply("bob", next); err != nil || out != Applied {
		t.Fatalf("control: %v %v", out, err)
	}
	if _, err := r.states["bob"].Epoch.Open(a.id, m); err != nil {
		t.Fatalf("control: %v", err)
	}
}
