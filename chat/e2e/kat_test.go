package e2e

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/crypto/curve25519"
)

var update = flag.Bool("update", false, "rewrite the known-answer files in testdata")

// hexKey is a 32-byte value in hex.
type hexKey = string

type katFile struct {
	RootKDF []struct {
		RK, DHOut, NewRK, CK hexKey
	}
	ChainKDF []struct {
		CK, MK, NextCK hexKey
	}
	MessageKey []struct {
		MK, Key, Nonce string
	}
	X3DH []struct {
		InitiatorIdentityDH, InitiatorEphemeral    hexKey // private keys
		ResponderIdentityDH, ResponderSignedPrekey hexKey // private keys
		ResponderOneTimePrekey                     hexKey // private key, empty for none
		InitiatorEd25519, ResponderEd25519         hexKey // public keys
		SK                                         hexKey
	}
	SenderChain []struct {
		CK, Seed, NextCK, Key, Nonce string
	}
}

// input returns a deterministic 32-byte test input.
func input(label string, i int) [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "parley kat %s %d", label, i))
}

func h(b []byte) string { return hex.EncodeToString(b) }

func pub(priv [32]byte) [32]byte {
	var p [32]byte
	out, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		panic(err)
	}
	copy(p[:], out)
	return p
}

func computeKAT() katFile {
	var k katFile
	for i := range 3 {
		rk, d := input("rk", i), input("dh", i)
		nrk, ck := kdfRK(&rk, &d)
		k.RootKDF = append(k.RootKDF, struct{ RK, DHOut, NewRK, CK hexKey }{h(rk[:]), h(d[:]), h(nrk[:]), h(ck[:])})
		cki := input("ck", i)
		mk, next := kdfCK(&cki)
		k.ChainKDF = append(k.ChainKDF, struct{ CK, MK, NextCK hexKey }{h(cki[:]), h(mk[:]), h(next[:])})
		mki := input("mk", i)
		ak := expandMessageKey(&mki, labelMessageKey)
		k.MessageKey = append(k.MessageKey, struct{ MK, Key, Nonce string }{h(mki[:]), h(ak.key[:]), h(ak.nonce[:])})
		sck := input("sender", i)
		seed, snext := senderStep(&sck)
		smk := expandMessageKey(&seed, labelSenderMessage)
		k.SenderChain = append(k.SenderChain, struct{ CK, Seed, NextCK, Key, Nonce string }{h(sck[:]), h(seed[:]), h(snext[:]), h(smk.key[:]), h(smk.nonce[:])})

		ika, eka, ikb, spkb, opkb := input("ika", i), input("eka", i), input("ikb", i), input("spkb", i), input("opkb", i)
		eda := ed25519.NewKeyFromSeed(func() []byte { s := input("eda", i); return s[:] }()).Public().(ed25519.PublicKey)
		edb := ed25519.NewKeyFromSeed(func() []byte { s := input("edb", i); return s[:] }()).Public().(ed25519.PublicKey)
		pIKB, pSPKB, pOPKB := pub(ikb), pub(spkb), pub(opkb)
		mustDH := func(a, b *[32]byte) [32]byte {
			o, err := dh(a, b)
			if err != nil {
				panic(err)
			}
			return o
		}
		dhs := [][32]byte{mustDH(&ika, &pSPKB), mustDH(&eka, &pIKB), mustDH(&eka, &pSPKB)}
		otpk := ""
		if i != 1 { // vector 1 has no one-time prekey
			dhs = append(dhs, mustDH(&eka, &pOPKB))
			otpk = h(opkb[:])
		}
		sk := x3dhSecret(dhs, eda, edb)
		k.X3DH = append(k.X3DH, struct {
			InitiatorIdentityDH, InitiatorEphemeral    hexKey
			ResponderIdentityDH, ResponderSignedPrekey hexKey
			ResponderOneTimePrekey                     hexKey
			InitiatorEd25519, ResponderEd25519         hexKey
			SK                                         hexKey
		}{h(ika[:]), h(eka[:]), h(ikb[:]), h(spkb[:]), otpk, h(eda), h(edb), h(sk[:])})
	}
	return k
}

// checkGolden compares got with the JSON file name in testdata, or
// rewrites it with -update.
func checkGolden(t *testing.T, name string, got any) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	want := reflect.New(reflect.TypeOf(got)).Interface()
	if err := json.Unmarshal(b, want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(reflect.ValueOf(want).Elem().Interface(), got) {
		t.Fatalf("%s does not match the implementation", path)
	}
}

func TestKnownAnswers(t *testing.T) {
	checkGolden(t, "kdf.json", computeKAT())
}

// The X3DH vectors must also hold when computed from the responder's side.
func TestKnownAnswersX3DHResponder(t *testing.T) {
	for i, v := range computeKAT().X3DH {
		dec := func(s string) [32]byte {
			var k [32]byte
			b, _ := hex.DecodeString(s)
			copy(k[:], b)
			return k
		}
		ika, eka, ikb, spkb := dec(v.InitiatorIdentityDH), dec(v.InitiatorEphemeral), dec(v.ResponderIdentityDH), dec(v.ResponderSignedPrekey)
		pIKA, pEKA := pub(ika), pub(eka)
		d1, _ := dh(&spkb, &pIKA)
		d2, _ := dh(&ikb, &pEKA)
		d3, _ := dh(&spkb, &pEKA)
		dhs := [][32]byte{d1, d2, d3}
		if v.ResponderOneTimePrekey != "" {
			opkb := dec(v.ResponderOneTimePrekey)
			d4, _ := dh(&opkb, &pEKA)
			dhs = append(dhs, d4)
		}
		ea, _ := hex.DecodeString(v.InitiatorEd25519)
		eb, _ := hex.DecodeString(v.ResponderEd25519)
		if sk := x3dhSecret(dhs, ea, eb); h(sk[:]) != v.SK {
			t.Fatalf("vector %d: responder derives another SK", i)
		}
	}
}

type transcriptStep struct {
	From      string // "alice" or "bob"
	Plaintext string
	Envelope  string // hex
}

// transcript runs a fixed conversation with deterministic randomness and
// clock: a prekey exchange, out-of-order delivery and several ratchet steps.
func transcript(t *testing.T) []transcriptStep {
	a, b := newParty(t, 1), newParty(t, 2)
	a.initiate(t, b, t0)
	var steps []transcriptStep
	send := func(from, to *party, name, text string) []byte {
		env := from.send(t, text, t0)
		steps = append(steps, transcriptStep{name, text, h(env)})
		return env
	}
	e1 := send(a, b, "alice", "hello bob")
	e2 := send(a, b, "alice", "are you there?")
	b.recv(t, a, e2, "are you there?", t0)
	b.recv(t, a, e1, "hello bob", t0)
	for i := range 3 {
		r := send(b, a, "bob", fmt.Sprintf("reply %d", i))
		a.recv(t, b, r, fmt.Sprintf("reply %d", i), t0)
		m := send(a, b, "alice", fmt.Sprintf("answer %d", i))
		b.recv(t, a, m, fmt.Sprintf("answer %d", i), t0)
	}
	return steps
}

func TestTranscript(t *testing.T) {
	checkGolden(t, "transcript.json", transcript(t))
}
