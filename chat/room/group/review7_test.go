package group

// Review of 7417a49 / 392e560 (branch review7).

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestReview7ChildHealForgetsLostCommit: the service re-makes the changes
// of our own commit that lost a fork (remakeLost) and re-sends our
// messages sealed under it (resendBranch), and both find that commit only
// in State.Rival after a Healed outcome. When the heal comes through a
// child of the rival (rule 3, "epoch n+1, parent = hash(r)"), Apply sets
// Rival to nil: the commit that lost (our kick of mallory) is nowhere in
// the state, so afterApply re-made nothing and re-sent nothing, and the
// kick the user was told is done silently did not hold (fixed: Apply
// keeps it in State.Displaced, which both read) (PROTOCOL.md
// "Fork choice": "The admin whose commit lost re-makes its change on top
// of the winner").
//
// Control: the same race healed directly ("epoch n, parent = hash(prev)",
// the winner arriving while ours is cur) leaves our lost kick in Rival.
func TestReview7ChildHealForgetsLostCommit(t *testing.T) {
	O, X, Y, M, V := newIdent(t, "owner"), newIdent(t, "xadmin"), newIdent(t, "yadmin"), newIdent(t, "mallory"), newIdent(t, "victor")
	r := newRoom(t, O, X, Y, M, V)
	base := r.commit(O, Proposal{Roles: []RoleChange{{X.id, RoleAdmin}, {Y.id, RoleAdmin}}})
	// Kick (by x) against a rekey (by y); x's wins childless (swap the
	// two admins' parts if the tie-break says otherwise).
	mk := func(i *ident, p Proposal) *Commit {
		c, _, err := NewCommit(r.states[i.name].Epoch, i.priv, p, t0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	kick := mk(X, Proposal{Remove: []peer.ID{M.id}})
	other := mk(Y, Proposal{})
	if !Wins(base, kick, other, false, false) {
		X, Y = Y, X
		kick = mk(X, Proposal{Remove: []peer.ID{M.id}})
		other = mk(Y, Proposal{})
	}
	if !Wins(base, kick, other, false, false) {
		t.Fatal("setup: the kick does not win childless")
	}

	// Control: x on the rekey, then the kick wins: no remake needed. And
	// y (issuer of the rekey) on its rekey, the kick heals it: y's lost
	// commit stays in Rival for remakeLost/resendBranch.
	if out, err := r.apply(Y.name, other); err != nil || out != Applied {
		t.Fatalf("y applies its rekey: %v %v", out, err)
	}
	if out, err := r.apply(Y.name, kick); err != nil || out != Healed {
		t.Fatalf("control: y, on its rekey, receives the winning kick: %v %v", out, err)
	}
	if rv := r.states[Y.name].Displaced; rv == nil || rv.Hash() != other.Hash() {
		t.Fatal("control: after a direct heal, y's lost commit is not the displaced one")
	}

	// Attack (an honest race): x applies its own kick; the rekey arrives
	// and loses (Rival). The owner, who got the rekey first, commits on it
	// before the kick reaches it: that child makes the rekey win (rule 3).
	if out, err := r.apply(X.name, kick); err != nil || out != Applied {
		t.Fatalf("x applies its kick: %v %v", out, err)
	}
	if out, err := r.apply(X.name, other); err != nil || out != Lost {
		t.Fatalf("x receives the rekey: %v %v", out, err)
	}
	if out, err := r.apply(O.name, other); err != nil || out != Applied {
		t.Fatalf("owner applies the rekey: %v %v", out, err)
	}
	child, _, err := NewCommit(r.states[O.name].Epoch, O.priv, Proposal{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.apply(X.name, child)
	if err != nil || out != Healed {
		t.Fatalf("x receives the rekey's child: %v %v", out, err)
	}
	st := r.states[X.name]
	if _, in := st.Commit.Member(M.id); !in {
		t.Fatal("setup: mallory not in the winning branch")
	}
	// remakeLost and resendBranch read State.Displaced: the lost kick must
	// be there (before the fix it was nowhere in the state).
	if st.Displaced == nil || st.Displaced.Hash() != kick.Hash() {
		t.Errorf("x healed (Healed) onto the rekey's branch through its child, but State.Displaced is %v, not x's lost kick: x's node would never re-make the kick of mallory (still a member at epoch %d) nor re-send x's messages sealed under the kick", st.Displaced, st.Commit.Epoch)
	}
}
