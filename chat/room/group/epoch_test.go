package group

import (
	"bytes"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// threeMembers returns a room of alice (owner), bob and carol.
func threeMembers(t *testing.T) (*room, *ident, *ident, *ident) {
	t.Helper()
	a, b, c := newIdent(t, "alice"), newIdent(t, "bob"), newIdent(t, "carol")
	return newRoom(t, a, b, c), a, b, c
}

func TestSealOpen(t *testing.T) {
	r, a, b, _ := threeMembers(t)
	for i := range 3 {
		m, err := r.epoch("alice").Seal(a.id, msgID(i), uint64(i+1), []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		if m.Generation != uint32(i) {
			t.Fatalf("generation %d, want %d", m.Generation, i)
		}
		for _, to := range []string{"bob", "carol"} {
			if err := r.epoch(to).VerifyMAC(a.id, m); err != nil {
				t.Fatal(err)
			}
			pt, err := r.epoch(to).Open(a.id, m)
			if err != nil || !bytes.Equal(pt, []byte{byte(i)}) {
				t.Fatal(to, pt, err)
			}
		}
	}
	// One's own messages do not open: their keys went with sealing.
	m, _ := r.epoch("bob").Seal(b.id, msgID(9), 1, []byte("x"))
	_, err := r.epoch("bob").Open(b.id, m)
	wantErr(t, err, ErrKeyUsed)
}

// Another member copies Bob's message under its own name: the MAC covers
// the author, and a member who recomputes the MAC (it holds the membership
// key) still fails, since the author's chain and the AD bind the author.
func TestAuthorBinding(t *testing.T) {
	r, _, b, c := threeMembers(t)
	m, err := r.epoch("bob").Seal(b.id, msgID(1), 7, []byte("from bob"))
	if err != nil {
		t.Fatal(err)
	}
	alice := r.epoch("alice")
	wantErr(t, alice.VerifyMAC(c.id, m), ErrBadMAC)
	_, err = alice.Open(c.id, m)
	wantErr(t, err, ErrBadMAC)

	forged := proto.CloneOf(m)
	forged.MembershipMac = r.epoch("carol").mac(c.id, forged)
	if err := alice.VerifyMAC(c.id, forged); err != nil {
		t.Fatalf("a member's MAC over its own name should verify: %v", err)
	}
	_, err = alice.Open(c.id, forged)
	wantErr(t, err, ErrDecrypt)

	// Control: the original opens as Bob's, even after the failed attempts.
	if pt, err := alice.Open(b.id, m); err != nil || string(pt) != "from bob" {
		t.Fatal(pt, err)
	}
}

// Every field of a message is covered: a change fails the MAC, and a
// member who recomputes the MAC fails the AEAD.
func TestMessageTampering(t *testing.T) {
	r, _, b, _ := threeMembers(t)
	m, err := r.epoch("bob").Seal(b.id, msgID(1), 7, []byte("text"))
	if err != nil {
		t.Fatal(err)
	}
	edits := map[string]func(*wirepb.AppMessage){
		"hlc":        func(m *wirepb.AppMessage) { m.Hlc++ },
		"msg id":     func(m *wirepb.AppMessage) { m.MsgId = msgID(2) },
		"ciphertext": func(m *wirepb.AppMessage) { m.Ciphertext[0] ^= 1 },
		"generation": func(m *wirepb.AppMessage) { m.Generation = 1 },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			x := proto.CloneOf(m)
			edit(x)
			_, err := r.epoch("alice").Open(b.id, x)
			wantErr(t, err, ErrBadMAC)
			x.MembershipMac = r.epoch("carol").mac(b.id, x)
			_, err = r.epoch("alice").Open(b.id, x)
			wantErr(t, err, ErrDecrypt)
		})
	}
	t.Run("malformed", func(t *testing.T) {
		for _, x := range []*wirepb.AppMessage{nil, {}, {Epoch: m.Epoch, MsgId: m.MsgId, Hlc: 0, Ciphertext: m.Ciphertext, MembershipMac: m.MembershipMac}} {
			_, err := r.epoch("alice").Open(b.id, x)
			wantErr(t, err, ErrInvalid)
		}
	})
	if _, err := r.epoch("alice").Open(b.id, m); err != nil {
		t.Fatal("control:", err)
	}
}

func TestNonMember(t *testing.T) {
	r, _, b, _ := threeMembers(t)
	x := newIdent(t, "xavier")
	m, _ := r.epoch("bob").Seal(b.id, msgID(1), 1, []byte("x"))
	wantErr(t, r.epoch("alice").VerifyMAC(x.id, m), ErrNotMember)
	_, err := r.epoch("alice").Seal(x.id, msgID(2), 1, []byte("x"))
	wantErr(t, err, ErrNotMember)
	other := proto.CloneOf(m)
	other.Epoch++
	wantErr(t, r.epoch("alice").VerifyMAC(b.id, other), ErrWrongEpoch)
	if err := r.epoch("alice").VerifyMAC(b.id, m); err != nil {
		t.Fatal("control:", err)
	}
}

func TestReplayAndOrder(t *testing.T) {
	r, _, b, _ := threeMembers(t)
	var ms []*wirepb.AppMessage
	for i := range 4 {
		m, err := r.epoch("bob").Seal(b.id, msgID(i), uint64(i+1), []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	alice := r.epoch("alice")
	for _, i := range []int{2, 0, 3, 1} {
		if pt, err := alice.Open(b.id, ms[i]); err != nil || pt[0] != byte(i) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for i := range ms {
		_, err := alice.Open(b.id, ms[i])
		wantErr(t, err, ErrKeyUsed)
	}
	if n := len(alice.chains[b.id].skipped); n != 0 {
		t.Fatalf("%d skipped keys left after every message was read", n)
	}
}

func TestGenerationWindow(t *testing.T) {
	r, _, b, _ := threeMembers(t)
	var ms []*wirepb.AppMessage
	for i := range MaxSkip + 2 {
		m, err := r.epoch("bob").Seal(b.id, msgID(i), uint64(i+1), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	alice, carol := r.epoch("alice"), r.epoch("carol")
	_, err := alice.Open(b.id, ms[MaxSkip+1])
	wantErr(t, err, ErrTooFarAhead)
	// Control: exactly MaxSkip ahead opens, and keeps at most MaxSkip keys.
	if _, err := carol.Open(b.id, ms[MaxSkip]); err != nil {
		t.Fatal(err)
	}
	if n := len(carol.chains[b.id].skipped); n > MaxSkip {
		t.Fatalf("%d skipped keys", n)
	}
	if _, err := carol.Open(b.id, ms[MaxSkip+1]); err != nil {
		t.Fatal(err)
	}
	// The oldest key fell out of the window; a recent skipped one is there.
	_, err = carol.Open(b.id, ms[0])
	wantErr(t, err, ErrKeyUsed)
	if _, err := carol.Open(b.id, ms[MaxSkip-1]); err != nil {
		t.Fatal(err)
	}
	// A failed Open (bad ciphertext under a valid MAC) advances nothing.
	gen := alice.chains[b.id].gen
	x := proto.CloneOf(ms[5])
	x.Ciphertext[0] ^= 1
	x.MembershipMac = alice.mac(b.id, x)
	_, err = alice.Open(b.id, x)
	wantErr(t, err, ErrDecrypt)
	if alice.chains[b.id].gen != gen || len(alice.chains[b.id].skipped) != 0 {
		t.Fatal("a failed open moved the chain")
	}
}

func TestEpochMarshal(t *testing.T) {
	r, a, b, _ := threeMembers(t)
	var ms []*wirepb.AppMessage
	for i := range 3 {
		m, _ := r.epoch("bob").Seal(b.id, msgID(i), uint64(i+1), []byte{byte(i)})
		ms = append(ms, m)
	}
	alice := r.epoch("alice")
	if _, err := alice.Open(b.id, ms[2]); err != nil {
		t.Fatal(err)
	}
	raw, err := alice.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalEpoch(raw)
	if err != nil {
		t.Fatal(err)
	}
	if back.Number() != alice.Number() || back.Commit().Hash() != alice.Commit().Hash() || !bytes.Equal(back.RendezvousKey(), alice.RendezvousKey()) {
		t.Fatal("restored epoch differs")
	}
	_, err = back.Open(b.id, ms[2])
	wantErr(t, err, ErrKeyUsed)
	for _, i := range []int{0, 1} {
		if _, err := back.Open(b.id, ms[i]); err != nil {
			t.Fatal(err)
		}
	}
	// The restored sender continues its chain.
	m, err := back.Seal(a.id, msgID(5), 9, []byte("again"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.epoch("bob").Open(a.id, m); err != nil {
		t.Fatal(err)
	}
	t.Run("garbage", func(t *testing.T) {
		for i := 0; i < len(raw); i += 1 + len(raw)/200 {
			if _, err := UnmarshalEpoch(raw[:i]); err == nil {
				t.Fatalf("truncated to %d bytes: accepted", i)
			}
		}
		var s wirepb.EpochState
		_ = proto.Unmarshal(raw, &s)
		s.Chains[0].Skipped = append(s.Chains[0].Skipped, &wirepb.SkippedKey{Generation: 1 << 30, Key: make([]byte, 32)})
		_, err := UnmarshalEpoch(marshal(&s))
		wantErr(t, err, ErrInvalid)
	})
	t.Run("erase", func(t *testing.T) {
		back.Erase()
		_, err := back.Open(b.id, ms[0])
		if err == nil {
			t.Fatal("erased epoch opened a message")
		}
		if _, err := back.MarshalBinary(); err == nil {
			t.Fatal("erased epoch marshalled")
		}
	})
}

func TestSyncProof(t *testing.T) {
	r, a, b, c := threeMembers(t)
	req := &wirepb.RoomFetchRequest{Version: 2, RoomId: r.id[:], Epoch: r.epoch("bob").Number(), CommitsAfter: 1, AfterHlc: 5, Limit: 10}
	req.Proof = r.epoch("bob").SyncProof(b.id, a.id, req)
	if err := r.epoch("alice").VerifySyncProof(b.id, a.id, req); err != nil {
		t.Fatal("control:", err)
	}
	// Replayed to another responder, or by another requester.
	wantErr(t, r.epoch("carol").VerifySyncProof(b.id, c.id, req), ErrBadMAC)
	wantErr(t, r.epoch("alice").VerifySyncProof(c.id, a.id, req), ErrBadMAC)
	edited := proto.CloneOf(req)
	edited.AfterHlc = 0
	wantErr(t, r.epoch("alice").VerifySyncProof(b.id, a.id, edited), ErrBadMAC)
	x := newIdent(t, "xavier")
	wantErr(t, r.epoch("alice").VerifySyncProof(x.id, a.id, req), ErrNotMember)

	// Removed Carol's proof at her last epoch fails at the new one.
	old := r.epoch("carol")
	r.commit(a, Proposal{Remove: []peer.ID{c.id}})
	stale := &wirepb.RoomFetchRequest{Version: 2, RoomId: r.id[:], Epoch: old.Number()}
	stale.Proof = old.SyncProof(c.id, a.id, stale)
	wantErr(t, r.epoch("alice").VerifySyncProof(c.id, a.id, stale), ErrWrongEpoch)
	stale.Epoch++
	stale.Proof = old.SyncProof(c.id, a.id, stale)
	wantErr(t, r.epoch("alice").VerifySyncProof(c.id, a.id, stale), ErrNotMember)
}

// During a fork, a message of the other branch (same epoch number) is told
// apart from a forgery: ErrWrongEpoch, which validators ignore, not
// ErrBadMAC, which they refuse.
func TestOtherBranchMessage(t *testing.T) {
	r, a, b, _ := threeMembers(t)
	cur := r.states["alice"].Commit
	c1, e1, err := newCommitT(cur, a.priv, Proposal{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	c2, _, err := newCommitT(cur, a.priv, Proposal{}, t0.Add(1))
	if err != nil {
		t.Fatal(err)
	}
	bob1, err := openAs(c1, b.id, r.privs["bob"])
	if err != nil {
		t.Fatal(err)
	}
	bob2, err := openAs(c2, b.id, r.privs["bob"])
	if err != nil {
		t.Fatal(err)
	}
	m, err := e1.Seal(a.id, msgID(1), 1, []byte("branch 1"))
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, bob2.VerifyMAC(a.id, m), ErrWrongEpoch)
	if pt, err := bob1.Open(a.id, m); err != nil || string(pt) != "branch 1" {
		t.Fatal("control:", err)
	}
}
