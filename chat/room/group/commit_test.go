package group

import (
	"bytes"
	"crypto/hpke"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

func TestKeyPackage(t *testing.T) {
	a, b := newIdent(t, "alice"), newIdent(t, "bob")
	t.Run("valid", func(t *testing.T) {
		kp, err := ParseKeyPackage(a.kp.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if kp.Owner != a.id || !bytes.Equal(kp.PublicKey, a.kpp.PublicKey) || !kp.CreatedAt.Equal(t0) {
			t.Fatalf("parsed %+v", kp)
		}
		if _, err := KeyPackageFromProto(a.kp.Proto()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("forged signature", func(t *testing.T) {
		s := a.kp.Proto()
		s.Signature[5] ^= 1
		_, err := KeyPackageFromProto(s)
		wantErr(t, err, ErrBadSignature)
	})
	t.Run("owner mismatch", func(t *testing.T) {
		// Bob signs a package naming Alice as owner.
		body := marshal(&wirepb.KeyPackage{Owner: []byte(a.id), HpkePublicKey: b.kpp.PublicKey, HpkeInitKey: b.kp.InitKey, CreatedAtMs: t0.UnixMilli()})
		sig, err := sign(b.priv, labelKeyPackage, body)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseKeyPackage(marshal(&wirepb.SignedKeyPackage{KeyPackage: body, Signature: sig}))
		wantErr(t, err, ErrBadSignature)
	})
	t.Run("bad hpke key", func(t *testing.T) {
		body := marshal(&wirepb.KeyPackage{Owner: []byte(a.id), HpkePublicKey: make([]byte, 31), CreatedAtMs: t0.UnixMilli()})
		sig, _ := sign(a.priv, labelKeyPackage, body)
		_, err := ParseKeyPackage(marshal(&wirepb.SignedKeyPackage{KeyPackage: body, Signature: sig}))
		wantErr(t, err, ErrInvalid)
	})
	t.Run("private key round trip", func(t *testing.T) {
		b, err := a.kpp.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		p, err := UnmarshalKeyPackagePrivate(b)
		if err != nil || !bytes.Equal(p.PublicKey, a.kpp.PublicKey) {
			t.Fatalf("%v %x", err, p.PublicKey)
		}
		_, err = UnmarshalKeyPackagePrivate([]byte{1, 2, 3})
		wantErr(t, err, ErrInvalid)
	})
}

func TestCommitSignature(t *testing.T) {
	a, b := newIdent(t, "alice"), newIdent(t, "bob")
	r := newRoom(t, a, b)
	c := r.states["alice"].Commit
	t.Run("control", func(t *testing.T) {
		if _, err := ParseCommit(c.Marshal()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("flipped signature", func(t *testing.T) {
		s := c.Proto()
		s.Signature[0] ^= 1
		_, err := CommitFromProto(s)
		wantErr(t, err, ErrBadSignature)
	})
	t.Run("edited body", func(t *testing.T) {
		body := bodyOf(t, c)
		body.IssuedAtMs++
		s := c.Proto()
		s.Body = marshal(body)
		_, err := CommitFromProto(s)
		wantErr(t, err, ErrBadSignature)
	})
	t.Run("signed by a non-issuer", func(t *testing.T) {
		s := c.Proto()
		_, err := ParseCommit(resign(t, b.priv, s.Body, s.Sealed))
		wantErr(t, err, ErrBadSignature)
	})
}

// A member rewrites another member's sealed entry with a secret of its own,
// keeping the issuer's signature: the signature covers the sealed list.
func TestSealedSecretReplaced(t *testing.T) {
	a, b, m := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "mallory")
	r := newRoom(t, a, b, m)
	c := r.commit(a, Proposal{}) // rekey
	i := c.index[b.id]
	// Mallory seals a secret she knows to Bob with the right info and aad.
	pub, err := hpkeKEM.NewPublicKey(b.kp.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	enc, ct, err := sealTo(pub, commitSecretInfo(c.Room, c.Epoch), c.bodyHash[:], make([]byte, SecretSize))
	if err != nil {
		t.Fatal(err)
	}
	var sealed wirepb.SealedSecrets
	if err := unmarshal("sealed", c.signed.Sealed, MaxCommitSize, &sealed); err != nil {
		t.Fatal(err)
	}
	sealed.Secrets[i] = &wirepb.SealedSecret{Enc: enc, Ciphertext: ct}
	s := c.Proto()
	s.Sealed = marshal(&sealed)
	_, err = CommitFromProto(s)
	wantErr(t, err, ErrBadSignature)
	// Control: the genuine commit opens for Bob.
	if _, err := openAs(c, b.id, r.privs["bob"]); err != nil {
		t.Fatal(err)
	}
}

// Sealed entries are bound to their member (the key), their commit (aad)
// and epoch (info): an issuer's node that swaps entries, or copies one from
// another commit, produces secrets nobody opens.
func TestSealedSecretSwapped(t *testing.T) {
	a, b, c := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "carol")
	r := newRoom(t, a, b, c)
	cur := r.states["alice"].Commit
	good, _, err := newCommitT(cur, a.priv, Proposal{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	var sealed wirepb.SealedSecrets
	if err := unmarshal("sealed", good.signed.Sealed, MaxCommitSize, &sealed); err != nil {
		t.Fatal(err)
	}
	ib, ic := good.index[b.id], good.index[c.id]
	sealed.Secrets[ib], sealed.Secrets[ic] = sealed.Secrets[ic], sealed.Secrets[ib]
	swapped, err := ParseCommit(resign(t, a.priv, good.signed.Body, marshal(&sealed)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = openAs(swapped, b.id, r.privs["bob"])
	wantErr(t, err, ErrDecrypt)

	// An entry for Bob from another commit (other body, same epoch).
	other, _, err := newCommitT(cur, a.priv, Proposal{}, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var sealed2 wirepb.SealedSecrets
	if err := unmarshal("sealed", good.signed.Sealed, MaxCommitSize, &sealed2); err != nil {
		t.Fatal(err)
	}
	sealed2.Secrets[ib] = other.sealed[other.index[b.id]]
	copied, err := ParseCommit(resign(t, a.priv, good.signed.Body, marshal(&sealed2)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = openAs(copied, b.id, r.privs["bob"])
	wantErr(t, err, ErrDecrypt)

	// Control: the genuine commit opens for both.
	for _, p := range []*ident{b, c} {
		if _, err := openAs(good, p.id, r.privs[p.name]); err != nil {
			t.Fatal(p.name, err)
		}
	}
}

func TestSuccessorRules(t *testing.T) {
	owner, admin, mem, other := newIdent(t, "owner"), newIdent(t, "admin"), newIdent(t, "member"), newIdent(t, "other")
	r := newRoom(t, owner, admin, mem)
	r.commit(owner, Proposal{Roles: []RoleChange{{admin.id, RoleAdmin}}})
	cur := r.states["owner"].Commit
	remove := func(id peer.ID) Proposal { return Proposal{Remove: []peer.ID{id}} }
	tests := []struct {
		name   string
		issuer *ident
		p      Proposal
		want   error // nil: allowed
	}{
		{"admin adds", admin, Proposal{Add: []Addition{other.add()}}, nil},
		{"member adds", mem, Proposal{Add: []Addition{other.add()}}, ErrNotAdmin},
		{"non-member rekeys", other, Proposal{}, ErrNotAdmin},
		{"admin removes member", admin, remove(mem.id), nil},
		{"admin removes owner", admin, remove(owner.id), ErrNotAdmin},
		{"admin demotes owner", admin, Proposal{Roles: []RoleChange{{owner.id, RoleMember}}}, ErrNotAdmin},
		{"admin forges owner's leave", admin, Proposal{Leave: []Leave{owner.leave(cur)}}, ErrNotAdmin},
		{"admin makes itself owner", admin, Proposal{Roles: []RoleChange{{admin.id, RoleOwner}}}, ErrNotAdmin},
		{"admin adds an owner", admin, Proposal{Add: []Addition{{KeyPackage: other.kp, Role: RoleOwner}}}, ErrNotAdmin},
		{"admin promotes member", admin, Proposal{Roles: []RoleChange{{mem.id, RoleAdmin}}}, nil},
		{"admin leaves", admin, Proposal{Leave: []Leave{admin.leave(cur)}}, nil},
		{"owner removes admin", owner, remove(admin.id), nil},
		{"owner demotes admin", owner, Proposal{Roles: []RoleChange{{admin.id, RoleMember}}}, nil},
		{"owner leaves with no owner left", owner, Proposal{Leave: []Leave{owner.leave(cur)}}, ErrNotAdmin},
		{"owner hands over and leaves", owner, Proposal{Leave: []Leave{owner.leave(cur)}, Roles: []RoleChange{{admin.id, RoleOwner}}}, nil},
		{"remove a non-member", owner, remove(other.id), ErrBadChanges},
		{"role unchanged", owner, Proposal{Roles: []RoleChange{{mem.id, RoleMember}}}, ErrBadChanges},
		{"add a member twice", owner, Proposal{Add: []Addition{mem.add()}}, ErrBadChanges},
		{"update with an older key package", owner, Proposal{Update: []*KeyPackage{mem.kp}}, ErrBadChanges},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, e, err := newCommitT(cur, tt.issuer.priv, tt.p, t0)
			wantErr(t, err, tt.want)
			if tt.want != nil {
				return
			}
			if err := CheckSuccessor(cur, c); err != nil {
				t.Fatal(err)
			}
			if _, stays := c.Member(tt.issuer.id); stays != (e != nil) {
				t.Fatalf("issuer epoch %v, issuer member %v", e, stays)
			}
		})
	}
}

// Commits made outside NewCommit (as an attacker would) meet CheckSuccessor.
func TestSuccessorCrafted(t *testing.T) {
	a, bob, x := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "xavier")
	r := newRoom(t, a, bob)
	cur := r.states["alice"].Commit
	base := func() *wirepb.CommitBody { return bodyOf(t, cur) }
	next := func(edit func(*wirepb.CommitBody)) *wirepb.CommitBody {
		body := base()
		body.Epoch++
		body.Parent = cur.hash[:]
		body.Changes = []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_REKEY, Actor: []byte(a.id)}}
		edit(body)
		return body
	}
	tests := []struct {
		name string
		body *wirepb.CommitBody
		want error
	}{
		{"control", next(func(*wirepb.CommitBody) {}), nil},
		{"wrong parent", next(func(b *wirepb.CommitBody) { b.Parent = seed("no such commit") }), ErrNotSuccessor},
		{"skipped epoch", next(func(b *wirepb.CommitBody) { b.Epoch++ }), ErrNotSuccessor},
		{"same epoch", next(func(b *wirepb.CommitBody) { b.Epoch-- }), ErrNotSuccessor},
		{"other room", next(func(b *wirepb.CommitBody) { b.RoomId = seed("other room") }), ErrWrongRoom},
		{"member added silently", next(func(b *wirepb.CommitBody) {
			b.Members = append(b.Members, &wirepb.CommitMember{Role: wirepb.Role_ROLE_MEMBER, KeyPackage: x.kp.Marshal()})
		}), ErrBadChanges},
		{"member dropped silently", next(func(b *wirepb.CommitBody) { b.Members = b.Members[:1] }), ErrBadChanges},
		{"role raised silently", next(func(b *wirepb.CommitBody) { b.Members[1].Role = wirepb.Role_ROLE_ADMIN }), ErrBadChanges},
		{"key package swapped silently", next(func(b *wirepb.CommitBody) {
			kp, _ := newIdent(t, "bob").freshKP(t, t0.Add(time.Hour))
			b.Members[1].KeyPackage = kp.Marshal()
		}), ErrBadChanges},
		{"rekey with another change", next(func(b *wirepb.CommitBody) {
			b.Changes = append(b.Changes, &wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_REMOVE, Subject: []byte(b.Issuer), Actor: []byte(a.id)})
		}), ErrBadChanges},
		{"create after genesis", next(func(b *wirepb.CommitBody) {
			b.Changes = []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_CREATE, Actor: []byte(a.id)}}
		}), ErrBadChanges},
		{"add claimed for nobody new", next(func(b *wirepb.CommitBody) {
			b.Changes = []*wirepb.Change{{Kind: wirepb.ChangeKind_CHANGE_ADD, Subject: []byte(x.id), Actor: []byte(a.id), Role: wirepb.Role_ROLE_MEMBER}}
		}), ErrBadChanges},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := craft(t, a.priv, tt.body)
			wantErr(t, CheckSuccessor(cur, c), tt.want)
		})
	}
	t.Run("issuer not admin", func(t *testing.T) {
		body := next(func(b *wirepb.CommitBody) {
			b.Issuer = []byte(bob.id)
			b.Changes[0].Actor = b.Issuer
		})
		wantErr(t, CheckSuccessor(cur, craft(t, bob.priv, body)), ErrNotAdmin)
	})
	t.Run("genesis", func(t *testing.T) {
		g := r.states["alice"].Prev
		if g.Epoch != 1 {
			t.Fatalf("previous epoch %d", g.Epoch)
		}
		if err := CheckGenesis(g); err != nil {
			t.Fatal(err)
		}
		wantErr(t, CheckGenesis(cur), ErrNotSuccessor)
		body := bodyOf(t, g)
		body.Members = append(body.Members, &wirepb.CommitMember{Role: wirepb.Role_ROLE_MEMBER, KeyPackage: x.kp.Marshal()})
		wantErr(t, CheckGenesis(craft(t, a.priv, body)), ErrBadChanges)
	})
}

// A removed member gets no sealed entry, cannot open the new epoch with any
// key it holds, and State reports its removal.
func TestRemovedMemberCannotOpen(t *testing.T) {
	a, b, c := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "carol")
	r := newRoom(t, a, b, c)
	old := r.epoch("carol")
	kick, _, err := newCommitT(r.states["alice"].Commit, a.priv, Proposal{Remove: []peer.ID{c.id}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if out := r.deliver(kick); out["carol"] != Removed || out["bob"] != Applied {
		t.Fatalf("outcomes %v", out)
	}
	if s := r.states["carol"]; s.Epoch != nil || s.Commit.Hash() != kick.Hash() {
		t.Fatal("carol still holds an epoch")
	}
	_, err = openAs(kick, c.id, r.privs["carol"])
	wantErr(t, err, ErrNoSecret)
	// No sealed entry opens with Carol's key, whatever its position.
	// (encryption key, and the init key had it kept it), under either info.
	ik, _ := hpkeKEM.NewPrivateKey(seed("hpke init carol"))
	for i, ss := range kick.sealed {
		for _, k := range []hpke.PrivateKey{c.kpp.priv, ik} {
			for _, info := range [][]byte{welcomeInfo(kick.Room, kick.Epoch), commitSecretInfo(kick.Room, kick.Epoch)} {
				rcp, err := hpke.NewRecipient(ss.Enc, k, hpkeKDF, hpkeAEAD, info)
				if err != nil {
					continue
				}
				if _, err := rcp.Open(kick.bodyHash[:], ss.Ciphertext); err == nil {
					t.Fatalf("sealed entry %d opens for the removed member", i)
				}
			}
		}
	}
	// Its init secret of the previous epoch derives nothing without an
	// entry: with a guessed (zero) commit secret the tag fails.
	init, _ := old.initSecret()
	if _, err := kick.finish(joinerSecret(init, make([]byte, SecretSize), kick.bodyHash)); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("removed member with the old init secret: %v", err)
	}
	// Carol's old keys make messages no one at the new epoch accepts.
	m, err := old.Seal(c.id, msgID(1), 1, []byte("still here"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.epoch("bob").Open(c.id, m)
	wantErr(t, err, ErrWrongEpoch)
	m.Epoch = kick.Epoch
	_, err = r.epoch("bob").Open(c.id, m)
	wantErr(t, err, ErrNotMember)
	// Control: Bob's message at the new epoch reaches Alice.
	mb, err := r.epoch("bob").Seal(b.id, msgID(2), 1, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := r.epoch("alice").Open(b.id, mb); err != nil || string(pt) != "hello" {
		t.Fatal(pt, err)
	}
}

// Two admins commit the same epoch at once; members receiving the commits
// in either order end on the same chain, and the loser re-proposes.
func TestConcurrentCommitsConverge(t *testing.T) {
	a, b, c, d, x := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "carol"), newIdent(t, "dave"), newIdent(t, "xavier")
	r := newRoom(t, a, b, c, d)
	r.commit(a, Proposal{Roles: []RoleChange{{b.id, RoleAdmin}}})
	cur := r.states["alice"].Commit
	ca, _, err := newCommitT(cur, a.priv, Proposal{Add: []Addition{x.add()}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	cb, _, err := newCommitT(cur, b.priv, Proposal{Remove: []peer.ID{d.id}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !SameSlot(ca, cb) || Wins(cur, ca, cb, false, false) == Wins(cur, cb, ca, false, false) {
		t.Fatal("commits do not compete, or both win")
	}
	winner, loser := ca, cb
	if Wins(cur, cb, ca, false, false) {
		winner, loser = cb, ca
	}
	order := map[string][]*Commit{"alice": {ca, cb}, "bob": {cb, ca}, "carol": {ca, cb}, "dave": {cb, ca}}
	for name, cs := range order {
		s := r.states[name]
		for i, c := range cs {
			pc, _ := ParseCommit(c.Marshal())
			o, err := s.Apply(pc, r.people[name].id, r.privs[name])
			if err != nil {
				t.Fatal(name, err)
			}
			switch {
			case i == 0 && o != Applied && o != Removed:
				t.Fatalf("%s first commit: %v", name, o)
			case i == 1 && c == winner && o != Healed && o != Removed:
				t.Fatalf("%s winner second: %v", name, o)
			case i == 1 && c == loser && o != Lost:
				t.Fatalf("%s loser second: %v", name, o)
			}
		}
		if s.Commit.Hash() != winner.Hash() {
			t.Fatalf("%s ended on %x, winner is %x", name, s.Commit.Hash(), winner.Hash())
		}
	}
	// Every member still in the winner's roster reads every other.
	var members []string
	for name, s := range r.states {
		if s.Epoch != nil {
			members = append(members, name)
		}
	}
	for i, from := range members {
		m, err := r.epoch(from).Seal(r.people[from].id, msgID(i), 1, []byte(from))
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range members {
			if to == from {
				continue
			}
			if pt, err := r.epoch(to).Open(r.people[from].id, m); err != nil || string(pt) != from {
				t.Fatal(from, to, err)
			}
		}
	}
	// The loser's issuer re-proposes on top of the winner.
	var loserIssuer *ident
	for _, p := range []*ident{a, b} {
		if p.id == loser.Issuer {
			loserIssuer = p
		}
	}
	var p Proposal
	if loser == ca {
		p = Proposal{Add: []Addition{x.add()}}
	} else {
		p = Proposal{Remove: []peer.ID{d.id}}
	}
	again := r.commit(loserIssuer, p)
	if again.Parent != winner.Hash() {
		t.Fatal("re-proposal not on the winner")
	}

	// A winner for an epoch we already moved past is a fork, not silent.
	t.Run("deep fork", func(t *testing.T) {
		s := r.states["carol"]
		rival, _, err := newCommitT(cur, b.priv, Proposal{}, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		o, err := s.Apply(rival, c.id, r.privs["carol"])
		if Wins(nil, rival, s.Prev, false, true) {
			wantErr(t, err, ErrFork)
		} else if err != nil || o != Lost {
			t.Fatalf("losing rival: %v %v", o, err)
		}
		if o, err := s.Apply(cur, c.id, r.privs["carol"]); err != nil || o != Stale {
			t.Fatalf("older commit: %v %v", o, err)
		}
		far := &Commit{Room: s.Commit.Room, Epoch: s.Commit.Epoch + 2, Issuer: a.id}
		_, err = s.Apply(far, c.id, r.privs["carol"])
		wantErr(t, err, ErrUnknownParent)
	})
}

// A member publishes a newer key package; the next commit carries it and
// the member opens it with the new private key.
func TestKeyPackageUpdate(t *testing.T) {
	a, b := newIdent(t, "alice"), newIdent(t, "bob")
	r := newRoom(t, a, b)
	future, _ := b.freshKP(t, t0.Add(time.Hour))
	if _, _, err := newCommitT(r.states["alice"].Commit, a.priv, Proposal{Update: []*KeyPackage{future}}, t0); !errors.Is(err, ErrBadChanges) {
		t.Fatalf("a key package dated an hour after the commit: %v", err)
	}
	kp, kpp := b.freshKP(t, t0.Add(time.Minute))
	r.privs["bob"] = append(r.privs["bob"], kpp)
	c := r.commit(a, Proposal{Update: []*KeyPackage{kp}})
	if m, _ := c.Member(b.id); !m.KeyPackage.Equal(kp) || c.Changes[0].Actor != b.id {
		t.Fatal("update not recorded")
	}
	if _, err := openAs(c, b.id, []*KeyPackagePrivate{b.kpp}); err == nil {
		t.Fatal("old key opened a commit sealed to the new one")
	}
	if _, err := openAs(c, b.id, []*KeyPackagePrivate{kpp}); err != nil {
		t.Fatal(err)
	}
}

func TestJoinToken(t *testing.T) {
	owner, admin, mem, joiner, other := newIdent(t, "owner"), newIdent(t, "admin"), newIdent(t, "member"), newIdent(t, "joiner"), newIdent(t, "other")
	r := newRoom(t, owner, admin, mem)
	r.commit(owner, Proposal{Roles: []RoleChange{{admin.id, RoleAdmin}}})
	cur := r.states["owner"].Commit
	exp := t0.Add(time.Hour)
	tok, err := NewJoinToken(admin.priv, cur, 3, exp, "")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseJoinToken(tok.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Issuer != admin.id || parsed.Uses != 3 || !parsed.ExpiresAt.Equal(exp) || parsed.ID != tok.ID {
		t.Fatalf("parsed %+v", parsed)
	}
	t.Run("control", func(t *testing.T) {
		if err := parsed.Check(cur, joiner.id, t0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("expired", func(t *testing.T) { wantErr(t, parsed.Check(cur, joiner.id, exp), ErrExpired) })
	t.Run("forged", func(t *testing.T) {
		var s wirepb.SignedJoinToken
		if err := unmarshal("t", tok.Marshal(), MaxTokenSize, &s); err != nil {
			t.Fatal(err)
		}
		var body wirepb.JoinToken
		if err := unmarshal("t", s.Token, MaxTokenSize, &body); err != nil {
			t.Fatal(err)
		}
		body.Uses = 1000
		s.Token = marshal(&body)
		_, err := ParseJoinToken(marshal(&s))
		wantErr(t, err, ErrBadSignature)
	})
	t.Run("issued by a member", func(t *testing.T) {
		bad, err := NewJoinToken(mem.priv, cur, 1, exp, "")
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, bad.Check(cur, joiner.id, t0), ErrNotAdmin)
	})
	t.Run("issuer demoted", func(t *testing.T) {
		demote, _, err := newCommitT(cur, owner.priv, Proposal{Roles: []RoleChange{{admin.id, RoleMember}}}, t0)
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, parsed.Check(demote, joiner.id, t0), ErrNotAdmin)
	})
	t.Run("other room", func(t *testing.T) {
		bad, _ := NewJoinToken(admin.priv, &Commit{Room: RoomID{1}, Epoch: 1}, 1, exp, "")
		wantErr(t, bad.Check(cur, joiner.id, t0), ErrWrongRoom)
	})
	t.Run("invitee", func(t *testing.T) {
		inv, err := NewJoinToken(admin.priv, cur, 1, exp, joiner.id)
		if err != nil {
			t.Fatal(err)
		}
		if err := inv.Check(cur, joiner.id, t0); err != nil {
			t.Fatal(err)
		}
		wantErr(t, inv.Check(cur, other.id, t0), ErrNotInvitee)
	})
	t.Run("uses out of range", func(t *testing.T) {
		for _, n := range []int{0, MaxTokenUses + 1} {
			_, err := NewJoinToken(admin.priv, cur, n, exp, "")
			wantErr(t, err, ErrInvalid)
		}
	})
	t.Run("join request", func(t *testing.T) {
		req, err := NewJoinRequest(joiner.priv, parsed, tok.Secret, joiner.kp)
		if err != nil {
			t.Fatal(err)
		}
		jt, kp, err := ParseJoinRequest(joiner.id, req)
		if err != nil || kp.Owner != joiner.id || jt.ID != tok.ID {
			t.Fatal(err)
		}
		if err := VerifyJoinProof(tok.Secret, joiner.id, req); err != nil {
			t.Fatal(err)
		}
		wantErr(t, VerifyJoinProof(seed("wrong secret"), joiner.id, req), ErrBadProof)
		// Someone else publishing the joiner's request (or its own request
		// with the joiner's package) is refused.
		_, _, err = ParseJoinRequest(other.id, req)
		wantErr(t, err, ErrBadSignature)
		// The admin commits the add.
		c, _, err := newCommitT(cur, admin.priv, Proposal{Add: []Addition{{KeyPackage: kp, Consent: req.Consent}}}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := openAs(c, joiner.id, []*KeyPackagePrivate{joiner.kpp}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWelcomeAndChain(t *testing.T) {
	owner, admin, joiner, other := newIdent(t, "owner"), newIdent(t, "admin"), newIdent(t, "joiner"), newIdent(t, "other")
	r := newRoom(t, owner, admin)
	g := r.states["owner"].Prev
	promote := r.commit(owner, Proposal{Roles: []RoleChange{{admin.id, RoleAdmin}}})
	tok, err := NewJoinToken(admin.priv, promote, 1, t0.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	add, _, err := newCommitT(promote, admin.priv, Proposal{Add: []Addition{joiner.add()}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	chain := []*Commit{promote}
	if err := CheckWelcome(add, chain, joiner.id, tok, t0); err != nil {
		t.Fatal("control:", err)
	}
	// The members moved on with the add: the chain they serve holds it.
	if err := CheckWelcome(add, []*Commit{promote, add}, joiner.id, tok, t0); err != nil {
		t.Fatal("control:", err)
	}
	wantErr(t, CheckWelcome(add, chain, other.id, tok, t0), ErrNoSecret)
	byOwner, _, err := newCommitT(promote, owner.priv, Proposal{Add: []Addition{joiner.add()}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, CheckWelcome(byOwner, chain, joiner.id, tok, t0), ErrNotAdmin)
	// A chain that does not start at the token's commit.
	wantErr(t, CheckWelcome(add, []*Commit{g}, joiner.id, tok, t0), ErrNotSuccessor)
	// Too late to take it.
	wantErr(t, CheckWelcome(add, chain, joiner.id, tok, t0.Add(time.Hour+MaxWelcomeDelay+time.Second)), ErrExpired)

	// The whole chain: genesis, add admin, promote, add joiner.
	full := []*Commit{g, r.states["owner"].Prev, promote, add}
	if err := CheckChain(full); err != nil {
		t.Fatal("control:", err)
	}
	wantErr(t, CheckChain([]*Commit{full[0], full[1], add}), ErrNotSuccessor)
	wantErr(t, CheckChain(full[1:]), ErrNotSuccessor)
	wantErr(t, CheckChain(nil), ErrInvalid)
}

// A joiner whose adding commit loses a fork to a concurrent commit is out
// of the winner (Removed, not an error), then in again once the admin
// re-adds it on top with a fresh key package.
func TestJoinerHealsFork(t *testing.T) {
	a, b, j := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "joiner")
	r := newRoom(t, a, b)
	parent := r.commit(a, Proposal{Roles: []RoleChange{{b.id, RoleAdmin}}})
	// bob, an admin, adds the joiner; alice, the owner, rekeys at once and
	// wins (owner over admin).
	add, _, err := newCommitT(parent, b.priv, Proposal{Add: []Addition{j.add()}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	rival, _, err := newCommitT(parent, a.priv, Proposal{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !Wins(parent, rival, add, false, false) {
		t.Fatal("the owner's commit does not win")
	}
	privs := []*KeyPackagePrivate{j.kpp}
	first, err := add.Open(j.id, privs)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("without the parent", func(t *testing.T) {
		s := &State{Commit: add, Epoch: first}
		_, err := s.Apply(rival, j.id, privs)
		wantErr(t, err, ErrFork)
	})
	s := &State{Commit: add, Epoch: first, Prev: parent}
	if o, err := s.Apply(rival, j.id, privs); err != nil || o != Removed || s.Epoch != nil {
		t.Fatalf("rival: %v %v", o, err)
	}
	kp, kpp := j.freshKP(t, t0.Add(time.Second))
	privs = append(privs, kpp)
	again, _, err := newCommitT(rival, a.priv, Proposal{Add: []Addition{j.addTo(testRoom, kp)}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if o, err := s.Apply(again, j.id, privs); err != nil || o != Applied || s.Epoch == nil {
		t.Fatalf("re-add: %v %v", o, err)
	}
}

// Rounds of one to three admins committing at once, delivered to every
// member in a random order: after each round every member holds the same
// commit, the one with the smallest hash, and everyone in it reads
// everyone else.
func TestConvergenceRandomized(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	owner, a1, a2 := newIdent(t, "owner"), newIdent(t, "admin 1"), newIdent(t, "admin 2")
	var plain []*ident
	for i := range 4 {
		plain = append(plain, newIdent(t, fmt.Sprint("plain ", i)))
	}
	r := newRoom(t, owner, append([]*ident{a1, a2}, plain...)...)
	r.commit(owner, Proposal{Roles: []RoleChange{{a1.id, RoleAdmin}, {a2.id, RoleAdmin}}})
	admins := []*ident{owner, a1, a2}
	joined := 0
	outcomes := map[Outcome]int{}
	for round := range 25 {
		cur := r.states["owner"].Commit
		issuers := append([]*ident(nil), admins...)
		rng.Shuffle(len(issuers), func(i, j int) { issuers[i], issuers[j] = issuers[j], issuers[i] })
		issuers = issuers[:1+rng.IntN(3)]
		var commits []*Commit
		newcomers := map[Hash]*ident{}
		for i, is := range issuers {
			var p Proposal
			switch rng.IntN(4) {
			case 1:
				kp, kpp := is.freshKP(t, t0.Add(time.Duration(round*10+i+1)*time.Millisecond))
				r.privs[is.name] = append(r.privs[is.name], kpp)
				p.Update = []*KeyPackage{kp}
			case 2:
				var members []peer.ID
				for _, m := range cur.Members {
					if m.Role == RoleMember {
						members = append(members, m.ID)
					}
				}
				if len(members) > 1 {
					p.Remove = []peer.ID{members[rng.IntN(len(members))]}
				}
			case 3:
				joined++
				n := newIdent(t, fmt.Sprint("joiner ", joined))
				p.Add = []Addition{n.add()}
				c, _, err := newCommitT(cur, is.priv, p, t0.Add(time.Duration(i)*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				newcomers[c.Hash()] = n
				commits = append(commits, c)
				continue
			}
			c, _, err := newCommitT(cur, is.priv, p, t0.Add(time.Duration(i)*time.Millisecond))
			if err != nil {
				t.Fatalf("round %d: %s: %v", round, is.name, err)
			}
			commits = append(commits, c)
		}
		winner := commits[0]
		for _, c := range commits[1:] {
			if Wins(cur, c, winner, false, false) {
				winner = c
			}
		}
		for name, s := range r.states {
			order := append([]*Commit(nil), commits...)
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			for _, c := range order {
				o, err := s.Apply(c, r.people[name].id, r.privs[name])
				if err != nil {
					t.Fatalf("round %d: %s: %v", round, name, err)
				}
				outcomes[o]++
			}
			if s.Commit.Hash() != winner.Hash() {
				t.Fatalf("round %d: %s on %x, winner %x", round, name, s.Commit.Hash(), winner.Hash())
			}
			if s.Epoch == nil {
				delete(r.states, name)
			}
		}
		if n := newcomers[winner.Hash()]; n != nil {
			e, err := openAs(winner, n.id, []*KeyPackagePrivate{n.kpp})
			if err != nil {
				t.Fatal(err)
			}
			r.people[n.name], r.privs[n.name] = n, []*KeyPackagePrivate{n.kpp}
			r.states[n.name] = &State{Commit: winner, Epoch: e, Prev: cur}
		}
		if len(r.states) != len(winner.Members) {
			t.Fatalf("round %d: %d states for %d members", round, len(r.states), len(winner.Members))
		}
		for from, fs := range r.states {
			m, err := fs.Epoch.Seal(r.people[from].id, msgID(round), uint64(round+1), []byte(from))
			if err != nil {
				t.Fatal(err)
			}
			for to, ts := range r.states {
				if to == from {
					continue
				}
				if pt, err := ts.Epoch.Open(r.people[from].id, m); err != nil || string(pt) != from {
					t.Fatalf("round %d: %s to %s: %v", round, from, to, err)
				}
			}
		}
	}
	if outcomes[Healed] == 0 || outcomes[Lost] == 0 || outcomes[Removed] == 0 {
		t.Fatalf("the rounds never healed, lost or removed: %v", outcomes)
	}
	t.Logf("outcomes %v, %d members at the end", outcomes, len(r.states))
}
