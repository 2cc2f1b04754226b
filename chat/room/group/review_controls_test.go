package group

// Review (helper REVIEW): attacks the package resists. Each test passes
// today; it pins the defence so a later change cannot lose it. The last
// test in this file (TestReviewCommitParseCostForNonAdmin) is a finding.

import (
	"bytes"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// sealedOf decodes c's sealed list for editing.
func sealedOf(t testing.TB, c *Commit) *wirepb.SealedSecrets {
	t.Helper()
	var s wirepb.SealedSecrets
	if err := proto.Unmarshal(c.signed.Sealed, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// Re-ordering, truncating, duplicating or replacing the sealed list without
// the issuer's key breaks the signature; the issuer itself cannot move an
// entry to another member, room or epoch (HPKE info and aad).
func TestReviewSealedListTampering(t *testing.T) {
	a, b, c := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "carol")
	r := newRoom(t, a, b, c)
	cur := r.states["alice"].Commit
	next, _, err := newCommitT(cur, a.priv, Proposal{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	// Control: the untouched commit parses and opens for everyone.
	if _, err := ParseCommit(next.Marshal()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*ident{a, b, c} {
		if _, err := openAs(next, p.id, []*KeyPackagePrivate{p.kpp}); err != nil {
			t.Fatal(p.name, err)
		}
	}
	edit := func(f func(s *wirepb.SealedSecrets)) []byte {
		s := sealedOf(t, next)
		f(s)
		return marshal(&wirepb.SignedCommit{Body: next.signed.Body, Sealed: marshal(s), Signature: next.signed.Signature, ConfirmationTag: next.signed.ConfirmationTag})
	}
	cases := map[string]func(s *wirepb.SealedSecrets){
		"reorder":   func(s *wirepb.SealedSecrets) { s.Secrets[1], s.Secrets[2] = s.Secrets[2], s.Secrets[1] },
		"truncate":  func(s *wirepb.SealedSecrets) { s.Secrets = s.Secrets[:2] },
		"duplicate": func(s *wirepb.SealedSecrets) { s.Secrets[2] = s.Secrets[1] },
		"extra":     func(s *wirepb.SealedSecrets) { s.Secrets = append(s.Secrets, s.Secrets[0]) },
		"flip":      func(s *wirepb.SealedSecrets) { s.Secrets[1].Ciphertext[0] ^= 1 },
	}
	for name, f := range cases {
		if _, err := ParseCommit(edit(f)); err == nil {
			t.Errorf("%s: tampered sealed list accepted", name)
		}
	}
	// Another commit's sealed list under this body and signature.
	other, _, err := newCommitT(cur, a.priv, Proposal{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	swapped := marshal(&wirepb.SignedCommit{Body: next.signed.Body, Sealed: other.signed.Sealed, Signature: next.signed.Signature, ConfirmationTag: next.signed.ConfirmationTag})
	wantErr(t, func() error { _, err := ParseCommit(swapped); return err }(), ErrBadSignature)

	// The issuer re-signs with bob's entry taken from (1) another room that
	// uses the same key package, (2) an earlier epoch of this room.
	var room2 RoomID
	copy(room2[:], seed("room two"))
	g2, e2, err := Create(room2, a.priv, a.kp, t0)
	if err != nil {
		t.Fatal(err)
	}
	hold(g2, e2)
	add2, _, err := newCommitT(g2, a.priv, Proposal{Add: []Addition{b.addTo(room2, b.kp)}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	bobIdx := next.index[b.id]
	for name, src := range map[string]*wirepb.SealedSecret{
		"other room":    sealedOf(t, add2).Secrets[add2.index[b.id]],
		"earlier epoch": sealedOf(t, cur).Secrets[cur.index[b.id]],
	} {
		t.Run(name, func(t *testing.T) {
			s := sealedOf(t, next)
			s.Secrets[bobIdx] = src
			moved, err := ParseCommit(resign(t, a.priv, next.signed.Body, marshal(s), next))
			if err != nil {
				t.Fatal(err)
			}
			_, err = openAs(moved, b.id, []*KeyPackagePrivate{b.kpp})
			wantErr(t, err, ErrDecrypt)
		})
	}
}

// A key package names its owner under the owner's signature; a roster
// entry's peer ID is that owner, so A's package cannot stand for B, and a
// package whose owner field is edited does not verify.
func TestReviewKeyPackageMislabel(t *testing.T) {
	a, b := newIdent(t, "alice"), newIdent(t, "bob")
	// Control.
	if _, err := ParseKeyPackage(a.kp.Marshal()); err != nil {
		t.Fatal(err)
	}
	var s wirepb.SignedKeyPackage
	var k wirepb.KeyPackage
	if err := proto.Unmarshal(a.kp.Marshal(), &s); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(s.KeyPackage, &k); err != nil {
		t.Fatal(err)
	}
	k.Owner = []byte(b.id)
	s.KeyPackage = marshal(&k)
	_, err := ParseKeyPackage(marshal(&s))
	wantErr(t, err, ErrBadSignature)

	// A roster listing alice's package twice (as "alice" and "bob") is
	// refused: the peer ID comes from the package.
	r := newRoom(t, a)
	cur := r.states["alice"].Commit
	body := bodyOf(t, cur)
	body.Epoch, body.Parent = 2, cur.hash[:]
	body.Members = append(body.Members, &wirepb.CommitMember{Role: wirepb.Role_ROLE_MEMBER, KeyPackage: a.kp.Marshal()})
	body.Changes = []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_ADD, Subject: []byte(b.id), Actor: []byte(a.id), Role: wirepb.Role_ROLE_MEMBER}}
	sealed := sealedOf(t, cur)
	sealed.Secrets = append(sealed.Secrets, sealed.Secrets[0])
	_, err = ParseCommit(resign(t, a.priv, marshal(body), marshal(sealed)))
	wantErr(t, err, ErrInvalid)

	// Two packages of one peer (old and new) in one roster: refused.
	newer, _ := a.freshKP(t, t0.Add(time.Hour))
	body.Members[1].KeyPackage = newer.Marshal()
	_, err = ParseCommit(resign(t, a.priv, marshal(body), marshal(sealed)))
	wantErr(t, err, ErrInvalid)
}

// Commit replay and misdirection: a replayed current or previous commit is
// a duplicate, an older one stale, one of another room refused, one two
// epochs ahead needs its parent, a member's own commit is not an admin's.
func TestReviewCommitReplay(t *testing.T) {
	a, b, c := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "carol")
	r := newRoom(t, a, b, c)
	first := r.states["bob"].Commit
	mid := r.commit(a, Proposal{})
	last := r.commit(a, Proposal{})
	s := r.states["bob"]
	for _, tc := range []struct {
		c    *Commit
		want Outcome
	}{{last, Duplicate}, {mid, Duplicate}, {first, Stale}} {
		if out, err := s.Apply(tc.c, b.id, r.privs["bob"]); err != nil || out != tc.want {
			t.Fatalf("replay of epoch %d: %v %v", tc.c.Epoch, out, err)
		}
	}
	if s.Commit.Hash() != last.Hash() {
		t.Fatal("a replay moved the state")
	}
	// Control: alice's successor applies; bob's own does not.
	good, _, err := newCommitT(last, a.priv, Proposal{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	body := bodyOf(t, good)
	body.Issuer = []byte(b.id)
	body.Changes[0].Actor = body.Issuer
	_, err = s.Apply(craft(t, b.priv, body), b.id, r.privs["bob"])
	wantErr(t, err, ErrNotAdmin)
	// A removed member's leftover signature is not an admin's either.
	far, _, err := newCommitT(good, a.priv, Proposal{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Apply(far, b.id, r.privs["bob"])
	wantErr(t, err, ErrUnknownParent)
	if out, err := s.Apply(good, b.id, r.privs["bob"]); err != nil || out != Applied {
		t.Fatal(out, err)
	}
	var room2 RoomID
	copy(room2[:], seed("room two"))
	g2, _, err := Create(room2, a.priv, a.kp, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Apply(g2, b.id, r.privs["bob"])
	wantErr(t, err, ErrWrongRoom)
}

// App messages bind room, epoch, branch, author, generation, hlc and msg
// id: an outsider cannot move one (MAC); a member who re-MACs a moved copy
// passes VerifyMAC (validators forward it) but no receiver opens it.
func TestReviewAppMessageBinding(t *testing.T) {
	a, b, c := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "carol")
	r := newRoom(t, a, b, c)
	ea, eb, ec := r.epoch("alice"), r.epoch("bob"), r.epoch("carol")
	m, err := ea.Seal(a.id, msgID(1), 7, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	// Control: bob opens alice's message.
	if pt, err := eb.Open(a.id, proto.CloneOf(m)); err != nil || string(pt) != "hello" {
		t.Fatal(pt, err)
	}
	moves := map[string]func(x *wirepb.AppMessage) peer.ID{
		"author":     func(x *wirepb.AppMessage) peer.ID { return c.id },
		"generation": func(x *wirepb.AppMessage) peer.ID { x.Generation++; return a.id },
		"hlc":        func(x *wirepb.AppMessage) peer.ID { x.Hlc++; return a.id },
		"msg id":     func(x *wirepb.AppMessage) peer.ID { x.MsgId = msgID(2); return a.id },
	}
	for name, move := range moves {
		x := proto.CloneOf(m)
		author := move(x)
		if err := ec.VerifyMAC(author, x); err == nil {
			t.Errorf("%s: moved message keeps a valid MAC", name)
		}
		x.MembershipMac = ec.mac(author, x) // carol re-MACs it
		if _, err := ec.Open(author, x); err == nil {
			t.Errorf("%s: re-MACed moved message opens at carol", name)
		}
	}
	// Next epoch: the old message is of another epoch; a removed member's
	// message of the new epoch is refused by roster.
	r.commit(a, Proposal{Remove: []peer.ID{c.id}})
	_, err = r.epoch("bob").Open(a.id, m)
	wantErr(t, err, ErrWrongEpoch)
	y, err := ec.Seal(c.id, msgID(3), 8, []byte("still here"))
	if err != nil {
		t.Fatal(err)
	}
	y.Epoch = r.epoch("bob").Number()
	y.EpochHash = r.epoch("bob").commit.hash[:EpochHashSize]
	_, err = r.epoch("bob").Open(c.id, y)
	wantErr(t, err, ErrNotMember)
}

// After reading messages, the stored epoch holds neither a used message key
// nor an earlier chain key, nor the commit, joiner or epoch secret, nor the
// parent's init secret: only the unused skipped key, the heads and its own
// init secret.
func TestReviewStoredEpochHoldsNoUsedKey(t *testing.T) {
	a, b := newIdent(t, "alice"), newIdent(t, "bob")
	r := newRoom(t, a, b)
	cur := r.states["alice"].Commit
	body := bodyOf(t, cur)
	body.Epoch, body.Parent = cur.Epoch+1, cur.hash[:]
	body.Changes = []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_REKEY, Actor: []byte(a.id)}}
	c := craft(t, a.priv, body) // commit secret: 32 bytes of 7
	secret := bytes.Repeat([]byte{7}, SecretSize)
	ea, err := openAs(c, a.id, r.privs["alice"])
	if err != nil {
		t.Fatal(err)
	}
	eb, err := openAs(c, b.id, r.privs["bob"])
	if err != nil {
		t.Fatal(err)
	}
	var ms []*wirepb.AppMessage
	for i := range 4 {
		m, err := ea.Seal(a.id, msgID(i), uint64(i+1), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	for _, i := range []int{0, 2, 3} { // generation 1 skipped
		if _, err := eb.Open(a.id, ms[i]); err != nil {
			t.Fatal(err)
		}
	}
	st, err := eb.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Recompute alice's chain from the known commit secret and the
	// parent's init secret (the whole key schedule).
	init, _ := heldEpoch(cur.hash).initSecret()
	joiner := joinerSecret(init, secret, c.bodyHash)
	es := epochSecret(joiner, c.bodyHash)
	prk := es[:]
	ck := expand(prk, labelSender+string(a.id))
	var mks, cks [][SecretSize]byte
	for range 4 {
		mk, next := ratchet(ck)
		mks, cks = append(mks, mk), append(cks, ck)
		ck = next
	}
	// Control: the unused skipped key of generation 1 is (and must be) kept.
	if !bytes.Contains(st, mks[1][:]) {
		t.Fatal("control: skipped key not stored")
	}
	for name, v := range map[string][]byte{"commit secret": secret, "epoch secret": prk, "joiner secret": joiner[:], "parent init": init,
		"mk0": mks[0][:], "mk2": mks[2][:], "mk3": mks[3][:], "ck0": cks[0][:], "ck1": cks[1][:], "ck2": cks[2][:], "ck3": cks[3][:]} {
		if bytes.Contains(st, v) {
			t.Errorf("stored epoch holds %s", name)
		}
	}
	// Alice's own store holds no key of her sent messages either.
	sa, _ := ea.MarshalBinary()
	for i, mk := range mks {
		if bytes.Contains(sa, mk[:]) {
			t.Errorf("sender's store holds its message key %d", i)
		}
	}
}

// Token edges: the expiry instant, a member's self-issued token, an issuer
// field edited onto an admin, another room, a demoted issuer.
func TestReviewJoinTokenEdges(t *testing.T) {
	o, m, b, j := newIdent(t, "owner"), newIdent(t, "mallory"), newIdent(t, "bob"), newIdent(t, "joiner")
	r := newRoom(t, o, m, b)
	r.commit(o, Proposal{Roles: []RoleChange{{m.id, RoleAdmin}}})
	cur := r.states["owner"].Commit
	exp := t0.Add(time.Hour)
	tok, err := NewJoinToken(m.priv, cur, 1, exp, "")
	if err != nil {
		t.Fatal(err)
	}
	// Control.
	if err := tok.Check(cur, j.id, exp.Add(-time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, tok.Check(cur, j.id, exp), ErrExpired)
	own, err := NewJoinToken(b.priv, cur, 1, exp, "")
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, own.Check(cur, j.id, t0), ErrNotAdmin)
	var s wirepb.SignedJoinToken
	var body wirepb.JoinToken
	if err := proto.Unmarshal(own.Marshal(), &s); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(s.Token, &body); err != nil {
		t.Fatal(err)
	}
	body.Issuer = []byte(o.id)
	s.Token = marshal(&body)
	_, err = ParseJoinToken(marshal(&s))
	wantErr(t, err, ErrBadSignature)
	var room2 RoomID
	copy(room2[:], seed("room two"))
	g2, _, err := Create(room2, m.priv, m.kp, t0)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, tok.Check(g2, j.id, t0), ErrWrongRoom)
	demoted := r.commit(o, Proposal{Roles: []RoleChange{{m.id, RoleMember}}})
	wantErr(t, tok.Check(demoted, j.id, t0), ErrNotAdmin)
}

// FINDING (medium: CPU amplification by anyone on the topic). PROTOCOL.md
// orders the checks "the fields, then the issuer's signature, then every
// key package", and ParseCommit is the only entry point: a commit signed by
// a non-member with 1000 fresh key packages costs every receiver 1001
// Ed25519 verifications before CheckSuccessor can say "not an admin" (the
// memo does not help: the packages are new each time). At about 50 µs a
// verification, one 384 KiB message costs every node ~50 ms of CPU, and
// gossipsub forwards before the score catches up with fresh identities.
// The issuer's authority (admin in cur or prev, from room, epoch, parent
// and issuer alone) should be checked before any key package.
func TestReviewCommitParseCostForNonAdmin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 300 key packages")
	}
	a, b, eve := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "eve")
	r := newRoom(t, a, b)
	cur := r.states["alice"].Commit
	body := bodyOf(t, cur)
	body.Epoch, body.Parent, body.Issuer = cur.Epoch+1, cur.hash[:], []byte(eve.id)
	const n = 300
	body.Changes = nil
	for i := range n {
		p := newIdent(t, "sybil "+string(rune('a'+i%26))+string(rune('a'+i/26)))
		body.Members = append(body.Members, &wirepb.CommitMember{Role: wirepb.Role_ROLE_MEMBER, KeyPackage: p.kp.Marshal()})
		body.Changes = append(body.Changes, &wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_ADD, Subject: []byte(p.id), Actor: []byte(eve.id), Role: wirepb.Role_ROLE_MEMBER})
	}
	raw := craft(t, eve.priv, body).Marshal()
	// Control: an admin's small commit parses.
	if _, err := ParseCommit(cur.Marshal()); err != nil {
		t.Fatal(err)
	}
	verified.Lock()
	verified.m = nil // a receiver that has not seen these packages
	verified.Unlock()
	c, err := ParseCommit(raw)
	verified.Lock()
	checked := len(verified.m)
	verified.Unlock()
	if err == nil {
		err = CheckSuccessor(cur, c)
	}
	wantErr(t, err, ErrNotAdmin)
	if checked > 1 {
		t.Errorf("refusing a non-member's commit cost %d key package signature checks (plus its own): authority is checked last", checked)
	}
}

// FuzzReviewParse feeds every decoder arbitrary bytes; none may panic. The
// seeds are valid encodings (go test runs only the seeds).
func FuzzReviewParse(f *testing.F) {
	for _, b := range validInputs(f) {
		f.Add(b)
	}
	var room RoomID
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range parsers {
			_ = p(b)
		}
		_, _ = ParseEnvelope(room, b)
	})
}
