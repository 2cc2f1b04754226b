package group

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// parsers are every decoder of untrusted bytes, wrapped alike.
var parsers = map[string]func([]byte) error{
	"commit":      func(b []byte) error { _, err := ParseCommit(b); return err },
	"key package": func(b []byte) error { _, err := ParseKeyPackage(b); return err },
	"join token":  func(b []byte) error { _, err := ParseJoinToken(b); return err },
	"epoch":       func(b []byte) error { _, err := UnmarshalEpoch(b); return err },
	"private key": func(b []byte) error { _, err := UnmarshalKeyPackagePrivate(b); return err },
}

// validInputs returns one valid encoding per parser.
func validInputs(t testing.TB) map[string][]byte {
	t.Helper()
	a, b := newIdent(t, "alice"), newIdent(t, "bob")
	r := newRoom(t, a, b)
	e, err := r.epoch("alice").MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewJoinToken(a.priv, r.states["alice"].Commit, 1, t0.Add(time.Hour), b.id)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := b.kpp.MarshalBinary() // init key erased by the Welcome: 32 bytes
	return map[string][]byte{
		"commit":      r.states["alice"].Commit.Marshal(),
		"key package": a.kp.Marshal(),
		"join token":  tok.Marshal(),
		"epoch":       e,
		"private key": priv,
	}
}

// Every parser refuses nil, every truncation, bit flips and random bytes
// with a typed error, and accepts the valid input (the control).
func TestParseGarbage(t *testing.T) {
	valid := validInputs(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for name, parse := range parsers {
		t.Run(name, func(t *testing.T) {
			in := valid[name]
			if err := parse(in); err != nil {
				t.Fatalf("control: %v", err)
			}
			typed := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s accepted", what)
				}
				if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrBadSignature) {
					t.Fatalf("%s: untyped error %v", what, err)
				}
			}
			typed("nil", parse(nil))
			step := 1 + len(in)/300
			for i := 0; i < len(in); i += step {
				typed("truncated", parse(in[:i]))
			}
			for range 50 {
				b := append([]byte(nil), in...)
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
				if err := parse(b); err != nil {
					typed("flipped", err)
				}
			}
			for range 50 {
				b := make([]byte, rng.IntN(2*len(in)+1))
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				if err := parse(b); err != nil {
					typed("random", err)
				}
			}
			typed("oversized", parse(make([]byte, MaxEpochStateSize+1)))
		})
	}
}

func TestParseProtoWrappers(t *testing.T) {
	_, err := CommitFromProto(nil)
	wantErr(t, err, ErrInvalid)
	_, err = KeyPackageFromProto(nil)
	wantErr(t, err, ErrInvalid)
	_, _, err = ParseJoinRequest(peer.ID("x"), nil)
	wantErr(t, err, ErrInvalid)
	_, _, err = ParseJoinRequest(peer.ID("x"), &wirepb.JoinRequest{})
	wantErr(t, err, ErrInvalid)
}

// seedCorpus adds the valid inputs and the vector files' encodings.
func seedCorpus(f *testing.F, name string) {
	f.Add(validInputs(f)[name])
	var cf commitFile
	if b, err := os.ReadFile(filepath.Join("testdata", "commit.json")); err == nil && json.Unmarshal(b, &cf) == nil {
		switch name {
		case "commit":
			for _, c := range cf.Commits {
				f.Add([]byte(c.Commit))
			}
		case "key package":
			for _, i := range cf.Identities {
				f.Add([]byte(i.KeyPackage))
			}
		case "join token":
			f.Add([]byte(cf.JoinToken.Token))
		}
	}
}

func fuzzParser(f *testing.F, name string) {
	seedCorpus(f, name)
	parse := parsers[name]
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := parse(b); err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("untyped error %v", err)
		}
	})
}

func FuzzParseCommit(f *testing.F)     { fuzzParser(f, "commit") }
func FuzzParseKeyPackage(f *testing.F) { fuzzParser(f, "key package") }
func FuzzParseJoinToken(f *testing.F)  { fuzzParser(f, "join token") }
func FuzzUnmarshalEpoch(f *testing.F)  { fuzzParser(f, "epoch") }

// FuzzOpen feeds arbitrary app messages to an epoch: no panic, and nothing
// but a member's genuine message opens.
func FuzzOpen(f *testing.F) {
	a, b := newIdent(f, "alice"), newIdent(f, "bob")
	r := newRoom(f, a, b)
	m, err := r.epoch("bob").Seal(b.id, msgID(1), 1, []byte("x"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(marshal(m))
	raw, _ := r.epoch("alice").MarshalBinary()
	f.Fuzz(func(t *testing.T, data []byte) {
		var am wirepb.AppMessage
		if unmarshal("app", data, 16<<10, &am) != nil {
			return
		}
		e, err := UnmarshalEpoch(raw)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := e.Open(b.id, &am)
		if err == nil && (string(pt) != "x" || am.Generation != 0) {
			t.Fatalf("opened a forged message: %q", pt)
		}
	})
}

func TestParseEnvelope(t *testing.T) {
	a, b := newIdent(t, "alice"), newIdent(t, "bob")
	r := newRoom(t, a, b)
	m, err := r.epoch("bob").Seal(b.id, msgID(1), 1, make([]byte, 100))
	if err != nil {
		t.Fatal(err)
	}
	env := func(body any) []byte {
		e := &wirepb.RoomEnvelope{Version: Version, RoomId: r.id[:]}
		switch v := body.(type) {
		case *wirepb.AppMessage:
			e.Body = &wirepb.RoomEnvelope_App{App: v}
		case *wirepb.SignedCommit:
			e.Body = &wirepb.RoomEnvelope_Commit{Commit: v}
		}
		return marshal(e)
	}
	if _, err := ParseEnvelope(r.id, env(m)); err != nil {
		t.Fatal("control:", err)
	}
	if _, err := ParseEnvelope(r.id, env(r.states["alice"].Commit.Proto())); err != nil {
		t.Fatal("control:", err)
	}
	_, err = ParseEnvelope(RoomID{1}, env(m))
	wantErr(t, err, ErrWrongRoom)
	_, err = ParseEnvelope(r.id, env(nil))
	wantErr(t, err, ErrInvalid)
	big := proto.CloneOf(m)
	big.Ciphertext = make([]byte, MaxEnvelopeSize)
	_, err = ParseEnvelope(r.id, env(big))
	wantErr(t, err, ErrInvalid)
	v1 := &wirepb.RoomEnvelope{Version: 1, RoomId: r.id[:], Body: &wirepb.RoomEnvelope_App{App: m}}
	_, err = ParseEnvelope(r.id, marshal(v1))
	wantErr(t, err, ErrInvalid)
	_, err = ParseEnvelope(r.id, []byte{0xff, 0xff})
	wantErr(t, err, ErrInvalid)
}

func FuzzParseEnvelope(f *testing.F) {
	var room RoomID
	copy(room[:], seed("room"))
	f.Add(marshal(&wirepb.RoomEnvelope{Version: Version, RoomId: room[:], Body: &wirepb.RoomEnvelope_Leave{Leave: &wirepb.LeaveProposal{Epoch: 3}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := ParseEnvelope(room, b)
		if err == nil && (env.Body == nil || env.Version != Version) {
			t.Fatal("accepted a malformed envelope")
		}
	})
}
