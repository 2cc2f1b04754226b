package e2e

import (
	"bytes"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"
)

// sameSession reports whether a and b's current sessions are the same
// session (the same base key), each knowing the other's role.
func sameSession(a, b *party) bool {
	return a.ch.cur != nil && b.ch.cur != nil && a.ch.cur.baseKey == b.ch.cur.baseKey &&
		a.ch.cur.initiator != b.ch.cur.initiator
}

func TestSimultaneousInitiation(t *testing.T) {
	for _, order := range []string{"a first", "b first", "after replies"} {
		t.Run(order, func(t *testing.T) {
			a, b := newParty(t, 1), newParty(t, 2)
			a.initiate(t, b, t0) // same clock: the generation ties
			b.initiate(t, a, t0)
			ea := []string{"a1", "a2"}
			eb := []string{"b1", "b2"}
			var inA, inB [][]byte
			for _, m := range ea {
				inB = append(inB, a.send(t, m, t0))
			}
			for _, m := range eb {
				inA = append(inA, b.send(t, m, t0))
			}
			switch order {
			case "a first":
				a.recv(t, b, inA[0], "b1", t0)
				b.recv(t, a, inB[0], "a1", t0)
			case "b first":
				b.recv(t, a, inB[0], "a1", t0)
				a.recv(t, b, inA[0], "b1", t0)
			case "after replies":
				// b gets a's message, answers on it; a gets the answer
				// before b's own prekey message.
				b.recv(t, a, inB[0], "a1", t0)
				if bytes.Compare(a.pub, b.pub) < 0 {
					r := b.send(t, "on a's session", t0)
					a.recv(t, b, r, "on a's session", t0)
				}
				a.recv(t, b, inA[0], "b1", t0)
			}
			if !sameSession(a, b) {
				t.Fatal("the two sides did not converge on one session")
			}
			winner := a
			if bytes.Compare(b.pub, a.pub) < 0 {
				winner = b
			}
			if !winner.ch.cur.initiator {
				t.Fatal("the session of the larger identity won")
			}
			// Messages in flight on the losing session still decrypt.
			a.recv(t, b, inA[1], "b2", t0)
			b.recv(t, a, inB[1], "a2", t0)
			a.reload(t)
			b.reload(t)
			for i := range 10 {
				msg := fmt.Sprint("after ", i)
				b.recv(t, a, a.send(t, msg, t0), msg, t0)
				a.recv(t, b, b.send(t, msg, t0), msg, t0)
			}
			if !sameSession(a, b) {
				t.Fatal("the sides diverged")
			}
			if a.ch.cur.pending || b.ch.cur.pending {
				t.Fatal("the session is still pending")
			}
		})
	}
}

func TestSimultaneousInitiationDifferentClocks(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	a.initiate(t, b, t0)
	b.initiate(t, a, t0.Add(time.Second)) // later generation wins
	ma, mb := a.send(t, "a", t0), b.send(t, "b", t0)
	a.recv(t, b, mb, "b", t0)
	b.recv(t, a, ma, "a", t0)
	if !sameSession(a, b) || !b.ch.cur.initiator {
		t.Fatal("did not converge on the later session")
	}
}

func TestReset(t *testing.T) {
	for _, who := range []string{"initiator", "responder", "both"} {
		t.Run(who, func(t *testing.T) {
			a, b := established(t)
			inFlight := b.send(t, "in flight", t0)
			now := t0.Add(time.Minute)
			x, y := a, b
			if who == "responder" {
				x, y = b, a
			}
			x.ch.Reset()
			if x.ch.HasSession() {
				t.Fatal("HasSession after Reset")
			}
			if _, err := x.ch.Encrypt(x.id, x.ks, []byte("x"), x.rnd, now); !errors.Is(err, ErrNoSession) {
				t.Fatalf("Encrypt after Reset: %v", err)
			}
			x.initiate(t, y, now)
			if who == "both" {
				y.ch.Reset()
				y.initiate(t, x, now)
			}
			e := x.send(t, "new session", now)
			if e[1] != typePrekey {
				t.Fatal("first message after Reset is not a prekey message")
			}
			y.recv(t, x, e, "new session", now)
			if who == "both" {
				x.recv(t, y, y.send(t, "from y", now), "from y", now)
			}
			if !sameSession(x, y) {
				t.Fatal("sides did not converge after Reset")
			}
			// The message sent before the reset still decrypts.
			a.recv(t, b, inFlight, "in flight", now)
			for i := range 5 {
				msg := fmt.Sprint(i)
				x.recv(t, y, y.send(t, msg, now), msg, now)
				y.recv(t, x, x.send(t, msg, now), msg, now)
			}
			if !sameSession(x, y) || x.ch.cur.pending || y.ch.cur.pending {
				t.Fatal("sides diverged")
			}
		})
	}
}

func TestPreviousSessionsExpire(t *testing.T) {
	a, b := established(t)
	late := b.send(t, "late", t0)
	a.ch.Reset()
	a.initiate(t, b, t0)
	b.recv(t, a, a.send(t, "new", t0), "new", t0)
	mustFail(t, a, b, late, ErrAuthFailed, t0.Add(PreviousSessionMaxAge))
	a.recv(t, b, b.send(t, "tick", t0), "tick", t0.Add(PreviousSessionMaxAge+time.Second))
	if len(a.ch.old) != 0 {
		t.Fatalf("%d previous sessions kept past their age", len(a.ch.old))
	}
}

// TestProperty sends 1,000 messages in both directions, interleaved,
// delivered shuffled within a window smaller than MaxSkip, reloading state
// at random points; every message decrypts exactly once and every replay
// fails without changing the state.
func TestProperty(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	a, b := newParty(t, 1), newParty(t, 2)
	now := t0
	a.initiate(t, b, now)
	type msg struct {
		env  []byte
		text string
	}
	var toA, toB []msg
	delivered := map[string]bool{}
	deliver := func(to, from *party, q *[]msg, all bool) {
		for len(*q) > 0 && (all || rng.IntN(3) == 0) {
			i := rng.IntN(len(*q))
			m := (*q)[i]
			*q = append((*q)[:i], (*q)[i+1:]...)
			to.recv(t, from, m.env, m.text, now)
			if delivered[m.text] {
				t.Fatalf("%s delivered twice", m.text)
			}
			delivered[m.text] = true
			if rng.IntN(10) == 0 {
				snap := to.snapshot(t)
				if _, err := to.ch.Decrypt(to.id, to.ks, from.pub, m.env, to.rnd, now); !errors.Is(err, ErrReplay) {
					t.Fatalf("replay of %s: %v", m.text, err)
				}
				if !bytes.Equal(snap, to.snapshot(t)) {
					t.Fatal("replay changed the state")
				}
			}
		}
	}
	sent := 0
	bStarted := false
	for sent < 1000 {
		now = now.Add(time.Second)
		if rng.IntN(2) == 0 || !bStarted {
			text := fmt.Sprint("a", sent)
			toB = append(toB, msg{a.send(t, text, now), text})
			// b can only send once it has a session.
		} else {
			text := fmt.Sprint("b", sent)
			toA = append(toA, msg{b.send(t, text, now), text})
		}
		sent++
		if len(toB) > 50 {
			deliver(b, a, &toB, true)
		}
		if len(toA) > 50 {
			deliver(a, b, &toA, true)
		}
		deliver(b, a, &toB, false)
		deliver(a, b, &toA, false)
		bStarted = b.ch.HasSession()
		if rng.IntN(50) == 0 {
			a.reload(t)
		}
		if rng.IntN(50) == 0 {
			b.reload(t)
		}
	}
	deliver(b, a, &toB, true)
	deliver(a, b, &toA, true)
	if len(delivered) != 1000 {
		t.Fatalf("%d of 1000 delivered", len(delivered))
	}
	if len(a.ch.skipped) != 0 || len(b.ch.skipped) != 0 {
		t.Fatalf("skipped keys left: %d, %d", len(a.ch.skipped), len(b.ch.skipped))
	}
}

func TestSkippedKeyBounds(t *testing.T) {
	a, b := established(t)
	var kept [][]byte
	// Three chains of MaxSkip/2+1 lost messages each exceed MaxSkippedKeys
	// only after several ratchet steps; the oldest are evicted.
	for round := range 5 {
		for range MaxSkip / 2 {
			a.send(t, "lost", t0)
		}
		kept = append(kept, a.send(t, fmt.Sprint("kept", round), t0))
		b.recv(t, a, kept[round], fmt.Sprint("kept", round), t0)
		a.recv(t, b, b.send(t, "step", t0), "step", t0)
	}
	if len(b.ch.skipped) > MaxSkippedKeys {
		t.Fatalf("%d skipped keys stored", len(b.ch.skipped))
	}
	if len(b.ch.skipped) != MaxSkippedKeys {
		t.Fatalf("%d skipped keys stored, want the cap %d", len(b.ch.skipped), MaxSkippedKeys)
	}
	// Expiry.
	b.recv(t, a, a.send(t, "later", t0), "later", t0.Add(SkippedKeyMaxAge))
	if len(b.ch.skipped) != 0 {
		t.Fatalf("%d skipped keys kept past their age", len(b.ch.skipped))
	}
}
