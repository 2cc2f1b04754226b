package group

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The fork rule's order: ousting, then role, then a verified child, then
// the tie-break no issuer can regrind.
func TestForkRuleOrder(t *testing.T) {
	o, p, q, m := newIdent(t, "owner"), newIdent(t, "padmin"), newIdent(t, "qadmin"), newIdent(t, "member")
	r := newRoom(t, o, p, q, m)
	base := r.commit(o, Proposal{Roles: []RoleChange{{p.id, RoleAdmin}, {q.id, RoleAdmin}}})
	mk := func(i *ident, pr Proposal, ms int) *Commit {
		c, _, err := newCommitT(base, i.priv, pr, t0.Add(time.Duration(ms)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	byP, byQ, byO := mk(p, Proposal{}, 0), mk(q, Proposal{}, 0), mk(o, Proposal{}, 0)
	// 2: the owner beats an admin, whatever else.
	for _, c := range []*Commit{byP, byQ} {
		if !Wins(base, byO, c, false, true) || Wins(base, c, byO, true, false) {
			t.Fatal("an admin's commit beats the owner's")
		}
	}
	// 1: an owner's commit ousting an admin beats it; an admin cannot oust
	// an admin, so take the owner ousting the owner's rival admin's issuer
	// versus that admin's commit with a child.
	kickP := mk(o, Proposal{Remove: []peer.ID{p.id}}, 1)
	if !Wins(base, kickP, byP, false, true) {
		t.Fatal("the commit removing the rival's issuer loses")
	}
	// 3: between equal admins, a child wins, both ways.
	if !Wins(base, byP, byQ, true, false) || !Wins(base, byQ, byP, true, false) {
		t.Fatal("a branch with a verified child loses to a childless one")
	}
	// 4: childless equal admins: the tie-break depends on parent and
	// issuer only; redrawing the commit changes nothing.
	want := Wins(base, byP, byQ, false, false)
	for ms := 1; ms < 50; ms++ {
		if Wins(base, mk(p, Proposal{}, ms), byQ, false, false) != want {
			t.Fatal("the tie-break changed with issued_at: the issuer can regrind it")
		}
	}
	if Wins(base, byP, byQ, false, false) == Wins(base, byQ, byP, false, false) {
		t.Fatal("both or neither win")
	}
}

// Two commits by one admin for one epoch: every member reports an
// equivocation and all stand on the same one, in either order.
func TestEquivocationDetected(t *testing.T) {
	o, p, a, b := newIdent(t, "owner"), newIdent(t, "padmin"), newIdent(t, "alice"), newIdent(t, "bob")
	r := newRoom(t, o, p, a, b)
	base := r.commit(o, Proposal{Roles: []RoleChange{{p.id, RoleAdmin}}})
	c1, _, err := newCommitT(base, p.priv, Proposal{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	c2, _, err := newCommitT(base, p.priv, Proposal{Remove: []peer.ID{b.id}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !Equivocates(c1, c2) || Equivocates(c1, c1) {
		t.Fatal("Equivocates")
	}
	// Control: one commit alone is simply applied.
	if out, err := r.apply("owner", c1); err != nil || out != Applied {
		t.Fatal(out, err)
	}
	final := map[string]Hash{}
	for name, order := range map[string][]*Commit{"owner": {c2}, "alice": {c1, c2}, "padmin": {c2, c1}} {
		for i, c := range order {
			out, err := r.apply(name, c)
			if err != nil {
				t.Fatal(name, err)
			}
			// The second commit of one issuer is an equivocation: reported
			// as such when ours stands, Healed (Equivocates with the rival)
			// when it wins and we switch.
			if (name == "owner" || i == 1) && out != Equivocation && (out != Healed || !Equivocates(c, r.states[name].Rival)) {
				t.Fatalf("%s: second commit by one issuer: %v, want equivocation", name, out)
			}
		}
		final[name] = r.states[name].Commit.Hash()
	}
	if final["owner"] != final["alice"] || final["alice"] != final["padmin"] {
		t.Fatalf("members disagree after an equivocation: %x", final)
	}
}
