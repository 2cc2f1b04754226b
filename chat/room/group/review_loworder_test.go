package group

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// signedKeyPackage signs a key package for an arbitrary HPKE public key; nil
// if ParseKeyPackage refuses it.
func signedKeyPackage(t testing.TB, i *ident, pub, init []byte, at time.Time) (*KeyPackage, error) {
	t.Helper()
	body := marshal(&wirepb.KeyPackage{Owner: []byte(i.id), HpkePublicKey: pub, HpkeInitKey: init, CreatedAtMs: at.UnixMilli()})
	sig, err := sign(i.priv, labelKeyPackage, body)
	if err != nil {
		t.Fatal(err)
	}
	return ParseKeyPackage(marshal(&wirepb.SignedKeyPackage{KeyPackage: body, Signature: sig}))
}

// FINDING (medium-low: commit DoS by a poisoned key package).
// ParseKeyPackage accepts an HPKE public key that is a low-order X25519
// point (here 32 zero bytes): it checks the length and that NewPublicKey
// takes it, and X25519 NewPublicKey takes any 32 bytes. Nobody can seal to
// it: HPKE Encap fails. So (1) a joiner's JoinRequest with such a package
// passes every validator, and the admin's commit that batches it with
// other joins ("MAY share one commit") fails for all of them; (2) a
// malicious admin that lists such a member (with any 80 bytes as its
// sealed entry; only that member could notice) makes every later
// NewCommit of every honest admin fail (rekey, add, promote) until someone
// thinks of removing that member. Fix: in ParseKeyPackage, refuse a key
// Encap cannot use (e.g. run one Encap, or reject the known low-order
// points as RFC 7748 §6.1 suggests), so validators REJECT it.
func TestReviewLowOrderKeyPackage(t *testing.T) {
	a, b, c, eve := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "carol"), newIdent(t, "eve")
	r := newRoom(t, a, b)
	r.commit(a, Proposal{Roles: []RoleChange{{b.id, RoleAdmin}}})
	cur := r.states["alice"].Commit
	// Positive control: a normal package, re-signed the same way, parses
	// and batches.
	good, err := signedKeyPackage(t, eve, eve.kp.PublicKey, eve.kp.InitKey, t0)
	if err != nil {
		t.Fatalf("control: %v", err)
	}
	if _, _, err := newCommitT(cur, a.priv, Proposal{Add: []Addition{c.add(), eve.addTo(testRoom, good)}}, t0); err != nil {
		t.Fatalf("control: %v", err)
	}
	// A low-order point other than zero, and a low-order init key.
	one := make([]byte, 32)
	one[0] = 1
	if _, err := signedKeyPackage(t, eve, one, eve.kp.InitKey, t0); err == nil {
		t.Errorf("a key package with the low-order key %x parses", one)
	}
	if _, err := signedKeyPackage(t, eve, eve.kp.PublicKey, make([]byte, 32), t0); err == nil {
		t.Errorf("a key package with a low-order init key parses")
	}
	bad, err := signedKeyPackage(t, eve, make([]byte, 32), eve.kp.InitKey, t0.Add(time.Second))
	if err != nil {
		wantErr(t, err, ErrInvalid)
		return // refused at parse time: hole closed
	}
	t.Errorf("a key package with a low-order HPKE key (32 zero bytes) parses as valid")
	_, _, err = newCommitT(cur, a.priv, Proposal{Add: []Addition{{KeyPackage: c.kp}, {KeyPackage: bad}}}, t0)
	t.Logf("(1) the batch adding carol and eve's package fails: %v", err)

	// (2) bob, an admin, lists eve with the poisoned package; the entry is
	// junk of the right size.
	body := bodyOf(t, cur)
	body.Epoch, body.Parent, body.Issuer = cur.Epoch+1, cur.hash[:], []byte(b.id)
	body.Members = append(body.Members, &wirepb.CommitMember{Role: wirepb.Role_ROLE_MEMBER, KeyPackage: bad.Marshal()})
	body.Changes = []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_ADD, Subject: []byte(eve.id), Actor: []byte(b.id), Role: wirepb.Role_ROLE_MEMBER}}
	bodyBytes := marshal(body)
	bh := sha256.Sum256(labelled(labelBody, bodyBytes))
	info := welcomeInfo(cur.Room, body.Epoch)
	secret := bytes.Repeat([]byte{9}, SecretSize)
	sealed := &wirepb.SealedSecrets{}
	for _, m := range body.Members {
		kp, _ := ParseKeyPackage(m.KeyPackage)
		pub, err := hpkeKEM.NewPublicKey(kp.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		enc, ct, err := sealTo(pub, info, bh[:], secret)
		if err != nil {
			enc, ct = make([]byte, 32), make([]byte, SecretSize+16)
		}
		sealed.Secrets = append(sealed.Secrets, &wirepb.SealedSecret{Enc: enc, Ciphertext: ct})
	}
	poisoned, err := ParseCommit(resign(t, b.priv, bodyBytes, marshal(sealed)))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSuccessor(cur, poisoned); err != nil {
		t.Fatalf("poisoned commit refused: %v", err)
	}
	if _, _, err := newCommitT(poisoned, a.priv, Proposal{}, t0); err != nil && !errors.Is(err, ErrNotAdmin) {
		t.Logf("(2) after bob's commit, the owner cannot even rekey: %v", err)
	}
}
