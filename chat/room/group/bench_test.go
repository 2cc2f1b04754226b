package group

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// bigRoom returns the genesis of a room owned by the first of n identities
// and a commit adding the other n-1 at once.
func bigRoom(tb testing.TB, n int) (idents []*ident, genesis, full *Commit) {
	tb.Helper()
	for i := range n {
		idents = append(idents, newIdent(tb, fmt.Sprint("member ", i)))
	}
	var room RoomID
	copy(room[:], seed("big room"))
	g, e, err := Create(room, idents[0].priv, idents[0].kp, t0)
	if err != nil {
		tb.Fatal(err)
	}
	hold(g, e)
	var p Proposal
	for _, m := range idents[1:] {
		p.Add = append(p.Add, m.addTo(room, m.kp))
	}
	c, _, err := newCommitT(g, idents[0].priv, p, t0)
	if err != nil {
		tb.Fatal(err)
	}
	return idents, g, c
}

// A commit adding MaxMembers-1 members at once, in a RoomEnvelope, fits
// the MaxCommitSize envelope cap.
func TestCommitSizeAtMaxMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 1000 identities")
	}
	idents, _, c := bigRoom(t, MaxMembers)
	env := &wirepb.RoomEnvelope{Version: 2, RoomId: c.Room[:], Body: &wirepb.RoomEnvelope_Commit{Commit: c.Proto()}}
	n := proto.Size(env)
	t.Logf("commit for %d members: %d bytes (envelope %d)", MaxMembers, len(c.Marshal()), n)
	if n > MaxCommitSize {
		t.Fatalf("envelope of %d bytes over the %d cap", n, MaxCommitSize)
	}
	rekey, _, err := newCommitT(c, idents[0].priv, Proposal{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rekey of %d members: %d bytes", MaxMembers, len(rekey.Marshal()))
	last := idents[len(idents)-1]
	if _, err := openAs(c, last.id, []*KeyPackagePrivate{last.kpp}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkCommit100: an admin's rekey of a 100-member room (100 HPKE
// seals, one signature).
func BenchmarkCommit100(b *testing.B) {
	idents, _, c := bigRoom(b, 100)
	b.ReportAllocs()
	b.ResetTimer()
	var size int
	for b.Loop() {
		next, _, err := newCommitT(c, idents[0].priv, Proposal{}, t0)
		if err != nil {
			b.Fatal(err)
		}
		size = len(next.Marshal())
	}
	b.ReportMetric(float64(size), "bytes/commit")
}

// BenchmarkParseCommit100: what every member's validator does with a
// 100-member commit (signature, 100 key package signatures).
func BenchmarkParseCommit100(b *testing.B) {
	_, _, c := bigRoom(b, 100)
	raw := c.Marshal()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ParseCommit(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenCommit: one member unseals and derives the epoch of a
// 100-member commit (one HPKE open, 103 HKDF expansions).
func BenchmarkOpenCommit(b *testing.B) {
	idents, _, c := bigRoom(b, 100)
	me := idents[50]
	privs := []*KeyPackagePrivate{me.kpp}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := openAs(c, me.id, privs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealOpen1KiB: one 1 KiB message sealed by one member and opened
// by another, MAC included.
func BenchmarkSealOpen1KiB(b *testing.B) {
	a, bob := newIdent(b, "alice"), newIdent(b, "bob")
	r := newRoom(b, a, bob)
	send, recv := r.epoch("alice"), r.epoch("bob")
	pt := make([]byte, 1024)
	id := msgID(1)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m, err := send.Seal(a.id, id, 1, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := recv.Open(a.id, m); err != nil {
			b.Fatal(err)
		}
	}
}
