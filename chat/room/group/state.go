package group

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// State is a member's position on a room's commit chain: the current commit
// and epoch, the previous ones (kept for late messages and to heal a fork of
// the current slot), and the best losing rival of the current commit (kept
// so that a child of it can make it win). Its fields are exported so the
// caller can store and restore them (Commit.Marshal, Epoch.MarshalBinary);
// State does no locking: the caller serialises Apply per room and erases
// the epochs it drops. Apply erases the init secret of an epoch once the
// epoch after the next is applied (it can no longer be needed to heal).
//
// Apply's outcomes, for a commit c arriving while at commit cur (epoch n),
// with previous commit prev (epoch n-1) and rival r (epoch n):
//
//	c is cur, prev or r                          -> Duplicate
//	c's issuer is an admin in no commit we hold  -> ErrNotAdmin (refuse)
//	epoch n+1 on cur                             -> Applied (prev = cur, cur = c)
//	epoch n+1 on r, r+child beats cur (Wins)     -> Healed (prev = r, cur = c)
//	epoch n+1 on r, cur still wins               -> Lost
//	epoch n on prev, c beats cur                 -> Healed (cur = c, r = old cur)
//	epoch n on prev, cur beats c                 -> Lost (r = c if c beats r)
//	  (either by cur's own issuer)               -> Equivocation instead
//	                                                (when c wins it is still
//	                                                Healed/Removed: the caller
//	                                                tells an equivocation by
//	                                                Equivocates(c, Rival))
//	epoch n-1 rival of prev, loses (prev has a child) -> Lost
//	epoch n-1 rival of prev, wins                -> ErrFork (cannot rewind twice)
//	epoch n, parent not held                     -> ErrFork
//	epoch > n, parent not held                   -> ErrUnknownParent (fetch from members)
//	older than prev                              -> Stale (check against the stored chain)
//
// Applied and Healed become Removed when self is not in c's roster; Epoch
// is then nil. A commit that fails validation changes nothing.
//
// A joiner starts from the commit that added it (CheckWelcome) with Prev
// set to that commit's parent, fetched from a member (PrevEpoch nil): if a
// rival of its first commit wins, the joiner is in it only if it adds it
// too; otherwise the outcome is Removed and it asks again.
type State struct {
	Commit    *Commit
	Epoch     *Epoch // nil when self is not in Commit's roster
	Prev      *Commit
	PrevEpoch *Epoch
	// Rival is the best commit seen competing with Commit for the same
	// parent that lost so far, or nil. Store it with the rest.
	Rival *Commit
	// Displaced is the commit the last Healed outcome moved us off (the
	// first commit of the branch that lost), for the caller to re-make
	// and re-send what it carried; a heal through a rival's child leaves
	// it nowhere else. Not stored.
	Displaced *Commit
}

// Outcome says what Apply did.
type Outcome int

// Outcomes of State.Apply.
const (
	// Duplicate: the commit is our current, previous or rival one.
	Duplicate Outcome = iota + 1
	// Applied: the commit is our new current epoch.
	Applied
	// Healed: the commit's branch beat our current commit (Wins); we
	// rewound one epoch and applied it. If we issued the loser, re-propose
	// its change on top of the winner.
	Healed
	// Lost: the commit competes with ours and loses; it is not forwarded
	// further than once, and a child of it may still make it win.
	Lost
	// Removed: the commit was applied and does not include us.
	Removed
	// Stale: the commit is older than the previous epoch; State cannot
	// judge it (compare its hash with the stored chain).
	Stale
	// Equivocation: the commit and our current (or previous) one are two
	// commits by one issuer for one epoch, and ours stands (the smaller
	// commit hash, as everywhere). Report it (the issuer is faulty). When
	// the new commit wins instead, the outcome is Healed or Removed, and
	// Equivocates(commit, Rival) says it was an equivocation.
	Equivocation
)

func (o Outcome) String() string {
	switch o {
	case Duplicate:
		return "duplicate"
	case Applied:
		return "applied"
	case Healed:
		return "healed"
	case Lost:
		return "lost"
	case Removed:
		return "removed"
	case Stale:
		return "stale"
	case Equivocation:
		return "equivocation"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// adminIn says whether id is an admin or owner in one of cs.
func adminIn(id peer.ID, cs ...*Commit) bool {
	for _, c := range cs {
		if c == nil {
			continue
		}
		if m, ok := c.Member(id); ok && m.Role.IsAdmin() {
			return true
		}
	}
	return false
}

// Apply validates c against the state and applies it as the table in State's
// doc says. self and privs open the new epoch's secret.
func (s *State) Apply(c *Commit, self peer.ID, privs []*KeyPackagePrivate) (Outcome, error) {
	cur := s.Commit
	if c.Room != cur.Room {
		return 0, fmt.Errorf("%w: commit of another room", ErrWrongRoom)
	}
	for _, h := range []*Commit{cur, s.Prev, s.Rival} {
		if h != nil && c.hash == h.hash {
			return Duplicate, nil
		}
	}
	oldest := cur.Epoch
	if s.Prev != nil {
		oldest = s.Prev.Epoch
	}
	if c.Epoch < oldest {
		return Stale, nil
	}
	// Authority first: a commit whose issuer is an admin in no commit we
	// hold is refused, whatever its epoch and parent (never a fork alarm,
	// never a reason to fetch).
	if !adminIn(c.Issuer, cur, s.Prev, s.Rival) {
		return 0, fmt.Errorf("%w: issuer %s is an admin in no commit we hold", ErrNotAdmin, c.Issuer)
	}
	switch {
	case c.Epoch == cur.Epoch+1 && c.Parent == cur.hash:
		if err := CheckSuccessor(cur, c); err != nil {
			return 0, err
		}
		e, out, err := openNext(s.Epoch, c, self, privs, Applied)
		if err != nil {
			return 0, err
		}
		if s.PrevEpoch != nil {
			s.PrevEpoch.EraseInit()
		}
		s.Prev, s.PrevEpoch = cur, s.Epoch
		s.Commit, s.Epoch, s.Rival = c, e, nil
		return out, nil
	case c.Epoch == cur.Epoch+1 && s.Rival != nil && c.Parent == s.Rival.hash:
		if err := CheckSuccessor(s.Rival, c); err != nil {
			return 0, err
		}
		if !Wins(s.Prev, s.Rival, cur, true, false) {
			return Lost, nil
		}
		re, rout, err := openNext(s.PrevEpoch, s.Rival, self, privs, Healed)
		if err != nil {
			return 0, err
		}
		e, out, err := openNext(re, c, self, privs, Healed)
		if err != nil {
			return 0, err
		}
		if rout == Removed {
			out = Removed
		}
		if s.PrevEpoch != nil {
			s.PrevEpoch.EraseInit()
		}
		s.Prev, s.PrevEpoch = s.Rival, re
		s.Commit, s.Epoch, s.Rival, s.Displaced = c, e, nil, cur
		return out, nil
	case c.Epoch > cur.Epoch:
		return 0, fmt.Errorf("%w: epoch %d on a parent we do not hold, we are at %d", ErrUnknownParent, c.Epoch, cur.Epoch)
	case c.Epoch == cur.Epoch:
		if s.Prev == nil || c.Parent != s.Prev.hash {
			return 0, fmt.Errorf("%w: another commit for epoch %d on a parent we do not hold", ErrFork, c.Epoch)
		}
		if err := CheckSuccessor(s.Prev, c); err != nil {
			return 0, err
		}
		equivocation := Equivocates(c, cur)
		if !Wins(s.Prev, c, cur, false, false) {
			if s.Rival == nil || Wins(s.Prev, c, s.Rival, false, false) {
				s.Rival = c
			}
			if equivocation {
				return Equivocation, nil
			}
			return Lost, nil
		}
		e, out, err := openNext(s.PrevEpoch, c, self, privs, Healed)
		if err != nil {
			return 0, err
		}
		s.Rival, s.Displaced = cur, cur
		s.Commit, s.Epoch = c, e
		// Even when it is an equivocation (Equivocates(c, Rival) tells):
		// we switched, and the caller must act on the switch.
		return out, nil
	case s.Prev != nil && c.Epoch == s.Prev.Epoch:
		if !SameSlot(c, s.Prev) {
			return 0, fmt.Errorf("%w: another commit for epoch %d on a parent we do not hold", ErrFork, c.Epoch)
		}
		if Equivocates(c, s.Prev) {
			return Equivocation, nil
		}
		if Wins(nil, c, s.Prev, false, true) {
			return 0, fmt.Errorf("%w: a winning commit for epoch %d arrived after we moved on", ErrFork, c.Epoch)
		}
		return Lost, nil
	}
	return 0, fmt.Errorf("%w: epoch %d", ErrNotSuccessor, c.Epoch) // unreachable
}

// openNext derives c's epoch for self from its parent epoch pe (nil when
// not held); ok is the outcome when self is a member.
func openNext(pe *Epoch, c *Commit, self peer.ID, privs []*KeyPackagePrivate, ok Outcome) (*Epoch, Outcome, error) {
	if _, member := c.Member(self); !member {
		return nil, Removed, nil
	}
	var e *Epoch
	var err error
	switch {
	case c.Welcomes(self):
		e, err = c.Open(self, privs)
	case pe == nil:
		err = fmt.Errorf("%w: epoch %d: we hold no parent epoch", ErrNoSecret, c.Epoch)
	default:
		e, err = pe.Next(c, self, privs)
	}
	if err != nil {
		return nil, 0, err
	}
	return e, ok, nil
}
