package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestConversation(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	now := t0
	a.initiate(t, b, now)
	if !a.ch.HasSession() || b.ch.HasSession() {
		t.Fatal("HasSession wrong after Initiate")
	}
	e1 := a.send(t, "hello", now)
	e2 := a.send(t, "again", now)
	if e1[1] != typePrekey || e2[1] != typePrekey {
		t.Fatal("first messages are not prekey messages")
	}
	b.recv(t, a, e2, "again", now)
	b.recv(t, a, e1, "hello", now)
	for i := range 5 {
		msg := fmt.Sprintf("reply %d", i)
		a.recv(t, b, b.send(t, msg, now), msg, now)
	}
	e3 := a.send(t, "after reply", now)
	if e3[1] != typeMessage {
		t.Fatal("initiator still sends prekey messages after a reply")
	}
	b.reload(t)
	a.reload(t)
	b.recv(t, a, e3, "after reply", now)
	for i := range 20 {
		from, to := a, b
		if i%3 == 0 {
			from, to = b, a
		}
		msg := fmt.Sprintf("m%d", i)
		to.recv(t, from, from.send(t, msg, now), msg, now)
	}
}

func TestReplay(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	a.initiate(t, b, t0)
	e1 := a.send(t, "one", t0)
	b.recv(t, a, e1, "one", t0)
	snap := b.snapshot(t)
	_, err := b.ch.Decrypt(b.id, b.ks, a.pub, e1, b.rnd, t0)
	if !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: got %v", err)
	}
	if !bytes.Equal(snap, b.snapshot(t)) {
		t.Fatal("failed decrypt changed the state")
	}
}
