package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// detEncapsulate makes ML-KEM encapsulation deterministic for the length
// of a test: the 32 bytes of randomness come from rand.
func detEncapsulate(t testing.TB) {
	t.Helper()
	old := encapsulate
	encapsulate = func(ek *mlkem.EncapsulationKey768, rand io.Reader) ([]byte, []byte, error) {
		var m [32]byte
		if _, err := io.ReadFull(rand, m[:]); err != nil {
			return nil, nil, err
		}
		return mlkemtest.Encapsulate768(ek, m[:])
	}
	t.Cleanup(func() { encapsulate = old })
}

// initiatePQ makes p start a PQXDH session with q from a fresh bundle.
func (p *party) initiatePQ(t testing.TB, q *party, now time.Time) Bundle {
	t.Helper()
	b, err := q.ks.BundlePQ(q.id, now)
	if err != nil {
		t.Fatal(err)
	}
	if !b.PostQuantum() {
		t.Fatal("BundlePQ returned a version 1 bundle")
	}
	if err := p.ch.Initiate(p.id, p.ks, q.pub, b, p.rnd, now); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPQConversation(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	a.initiatePQ(t, b, t0)
	if !a.ch.PostQuantum() {
		t.Fatal("initiator's session is not post-quantum")
	}
	e1 := a.send(t, "hello", t0)
	if e1[1] != typePrekeyPQ {
		t.Fatalf("first message has type %d, want %d", e1[1], typePrekeyPQ)
	}
	a.reload(t) // a pending PQXDH session survives its encoding
	e2 := a.send(t, "again", t0)
	if e2[1] != typePrekeyPQ {
		t.Fatal("pending session stopped repeating the PQXDH header")
	}
	b.recv(t, a, e2, "again", t0)
	b.recv(t, a, e1, "hello", t0)
	if !b.ch.PostQuantum() {
		t.Fatal("responder's session is not post-quantum")
	}
	b.reload(t)
	a.recv(t, b, b.send(t, "reply", t0), "reply", t0)
	e3 := a.send(t, "ratchet", t0)
	if e3[1] != typeMessage {
		t.Fatal("session still sends prekey messages after a reply")
	}
	b.recv(t, a, e3, "ratchet", t0)
	if !a.ch.PostQuantum() || !b.ch.PostQuantum() {
		t.Fatal("session lost its post-quantum mark")
	}
}

// TestPQOldPeerInterop: a version 1 bundle (what a peer from before PQXDH
// serves, and what this build serves to such a peer) still sets up an X3DH
// session in both directions.
func TestPQOldPeerInterop(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	a.initiate(t, b, t0) // version 1 bundle
	if a.ch.PostQuantum() {
		t.Fatal("X3DH session marked post-quantum")
	}
	e := a.send(t, "classic", t0)
	if e[1] != typePrekey {
		t.Fatalf("X3DH prekey message has type %d", e[1])
	}
	b.recv(t, a, e, "classic", t0)
	a.recv(t, b, b.send(t, "reply", t0), "reply", t0)
	if b.ch.PostQuantum() {
		t.Fatal("responder marked an X3DH session post-quantum")
	}
}

// TestTranscriptV1StillDecrypts: the prekey messages of the version 1
// transcript, made before PQXDH existed, still set up a session.
func TestTranscriptV1StillDecrypts(t *testing.T) {
	steps := readTranscript(t, "transcript-v1.json")
	a, b := newParty(t, 1), newParty(t, 2)
	for _, s := range steps[:2] {
		b.recv(t, a, mustHex(t, s.Envelope), s.Plaintext, t0)
	}
}

// TestPQTampering: every change an attacker can make to a PQXDH bundle or
// prekey message is refused, and a refused message changes nothing; the
// honest message still decrypts afterwards (positive control).
func TestPQTampering(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	bundle, err := b.ks.BundlePQ(b.id, t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("bundle", func(t *testing.T) {
		for name, mut := range map[string]func(*Bundle){
			"KEM key":       func(x *Bundle) { x.KEMPrekey[100] ^= 1 },
			"KEM signature": func(x *Bundle) { x.KEMPrekeySignature[0] ^= 1 },
			"KEM id":        func(x *Bundle) { x.KEMPrekeyID++ },
			"KEM kind":      func(x *Bundle) { x.KEMPrekeyLastResort = !x.KEMPrekeyLastResort },
			"signed prekey": func(x *Bundle) { x.SignedPrekey[0] ^= 1 },
		} {
			x := bundle
			mut(&x)
			var ch Channel
			err := ch.Initiate(a.id, a.ks, b.pub, x, a.rnd, t0)
			if !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s: Initiate = %v, want ErrBadSignature", name, err)
			}
			if ch.HasSession() {
				t.Errorf("%s: a session was made from a tampered bundle", name)
			}
		}
		var other Channel
		if err := other.Initiate(a.id, a.ks, a.pub, bundle, a.rnd, t0); !errors.Is(err, ErrBadSignature) {
			t.Errorf("bundle verified against another identity: %v", err)
		}
	})
	if err := a.ch.Initiate(a.id, a.ks, b.pub, bundle, a.rnd, t0); err != nil {
		t.Fatal(err)
	}
	env := a.send(t, "hello", t0)
	ctOff := 2 + prekeyHeaderSize + ed25519.PublicKeySize + 4 + 1
	for name, mut := range map[string]func([]byte) []byte{
		"KEM ciphertext": func(e []byte) []byte { e[ctOff+10] ^= 1; return e },
		"KEM ciphertext end": func(e []byte) []byte {
			e[ctOff+KEMCiphertextSize-1] ^= 0x80
			return e
		},
		"KEM id":       func(e []byte) []byte { e[ctOff-2]++; return e },
		"KEM kind":     func(e []byte) []byte { e[ctOff-1] = kemLastResort; return e },
		"initiator":    func(e []byte) []byte { e[2+prekeyHeaderSize] ^= 1; return e },
		"identity sig": func(e []byte) []byte { e[2+8+keySize] ^= 1; return e },
		"downgrade to X3DH": func(e []byte) []byte {
			// Strip the PQXDH part and call it a type 2 message.
			out := append([]byte{Version, typePrekey}, e[2:2+prekeyHeaderSize]...)
			return append(out, e[2+prekeyHeaderSize+pqHeaderSize:]...)
		},
	} {
		snap := b.snapshot(t)
		bad := mut(bytes.Clone(env))
		if _, err := b.ch.Decrypt(b.id, b.ks, a.pub, bad, b.rnd, t0); err == nil {
			t.Errorf("%s: tampered prekey message decrypted", name)
		}
		if !bytes.Equal(snap, b.snapshot(t)) {
			t.Errorf("%s: a refused message changed the stored state", name)
		}
	}
	// From another sender: the header names a as initiator.
	mallory := newParty(t, 3)
	if _, err := b.ch.Decrypt(b.id, b.ks, mallory.pub, env, b.rnd, t0); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("prekey message accepted from another sender: %v", err)
	}
	if got, err := PrekeyInitiator(env); err != nil || !bytes.Equal(got, a.pub) {
		t.Errorf("PrekeyInitiator = %x, %v", got, err)
	}
	b.recv(t, a, env, "hello", t0) // positive control
}

// TestKEMPrekeyPool: one-time KEM prekeys are issued once each, a used one
// cannot set up a second session, the last-resort key serves when the pool
// is empty, and Maintain refills the pool.
func TestKEMPrekeyPool(t *testing.T) {
	b := newParty(t, 2)
	seen := map[uint32]bool{}
	for i := range OneTimeKEMPrekeyTarget {
		x, err := b.ks.BundlePQ(b.id, t0)
		if err != nil {
			t.Fatal(err)
		}
		if x.KEMPrekeyLastResort {
			t.Fatalf("bundle %d has the last-resort key while one-time keys remain", i)
		}
		if seen[x.KEMPrekeyID] {
			t.Fatalf("one-time KEM prekey %d issued twice", x.KEMPrekeyID)
		}
		seen[x.KEMPrekeyID] = true
		b.reload(t) // issued marks survive the encoding
	}
	last, err := b.ks.BundlePQ(b.id, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !last.KEMPrekeyLastResort || seen[last.KEMPrekeyID] {
		t.Fatal("exhausted pool did not fall back to the last-resort key")
	}
	// Two sessions on the last-resort KEM key both work (the X25519
	// one-time prekey, used by the first, is left out).
	last.HasOneTimePrekey, last.OneTimePrekeyID, last.OneTimePrekey = false, 0, [32]byte{}
	for seed := byte(10); seed < 12; seed++ {
		a := newParty(t, seed)
		if err := a.ch.Initiate(a.id, a.ks, b.pub, last, a.rnd, t0); err != nil {
			t.Fatal(err)
		}
		var ch Channel
		if _, err := ch.Decrypt(b.id, b.ks, a.pub, a.send(t, "lr", t0), b.rnd, t0); err != nil {
			t.Fatalf("last-resort session %d: %v", seed, err)
		}
	}
	if changed, err := b.ks.Maintain(b.id, b.rnd, t0); err != nil || !changed {
		t.Fatalf("Maintain did not refill the KEM pool: %v %v", changed, err)
	}
	if n, _ := b.ks.KEMPrekeyCounts(); n != OneTimeKEMPrekeyTarget {
		t.Fatalf("%d unissued one-time KEM prekeys after refill, want %d", n, OneTimeKEMPrekeyTarget)
	}
	// A one-time key sets up one session; a second use is refused.
	one, _ := b.ks.BundlePQ(b.id, t0)
	for i, seed := range []byte{20, 21} {
		a := newParty(t, seed)
		if err := a.ch.Initiate(a.id, a.ks, b.pub, one, a.rnd, t0); err != nil {
			t.Fatal(err)
		}
		var ch Channel
		_, err := ch.Decrypt(b.id, b.ks, a.pub, a.send(t, "ot", t0), b.rnd, t0)
		if i == 0 && err != nil {
			t.Fatalf("first use of a one-time KEM prekey: %v", err)
		}
		if i == 1 && !errors.Is(err, ErrUnknownPrekey) {
			t.Fatalf("second use of a one-time KEM prekey: %v, want ErrUnknownPrekey", err)
		}
	}
}

// TestLinkBundle: a link's bundle has no one-time keys and does not change
// the key store; it keeps working through a rotation and its grace period
// and then fails clearly, on both sides.
func TestLinkBundle(t *testing.T) {
	b := newParty(t, 2)
	before := b.snapshot(t)
	lb, err := b.ks.LinkBundle(b.id, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, b.snapshot(t)) {
		t.Fatal("LinkBundle changed the key store")
	}
	if lb.HasOneTimePrekey || !lb.KEMPrekeyLastResort || !lb.PostQuantum() {
		t.Fatalf("link bundle: one-time %v, last-resort %v, pq %v", lb.HasOneTimePrekey, lb.KEMPrekeyLastResort, lb.PostQuantum())
	}
	// After one rotation, within the grace period: still works.
	t1 := t0.Add(SignedPrekeyRotation + time.Hour)
	if _, err := b.ks.Maintain(b.id, b.rnd, t1); err != nil {
		t.Fatal(err)
	}
	a := newParty(t, 1)
	if err := a.ch.Initiate(a.id, a.ks, b.pub, lb, a.rnd, t1); err != nil {
		t.Fatal(err)
	}
	b.recv(t, a, a.send(t, "via link", t1), "via link", t1)
	// Past the grace period the responder refuses, and names the cause.
	t2 := t1.Add(SignedPrekeyGrace + time.Hour)
	b.ks.Maintain(b.id, b.rnd, t2)
	c := newParty(t, 4)
	if err := c.ch.Initiate(c.id, c.ks, b.pub, lb, c.rnd, t0.Add(SignedPrekeyMaxAge-time.Hour)); err != nil {
		t.Fatal(err)
	}
	var ch Channel
	_, err = ch.Decrypt(b.id, b.ks, c.pub, c.send(t, "stale", t2), b.rnd, t2)
	if !errors.Is(err, ErrUnknownPrekey) && !errors.Is(err, ErrExpiredPrekey) {
		t.Fatalf("stale link bundle: %v, want ErrUnknownPrekey or ErrExpiredPrekey", err)
	}
	// And the initiator refuses a bundle past its age.
	var late Channel
	if err := late.Initiate(c.id, c.ks, b.pub, lb, c.rnd, t0.Add(SignedPrekeyMaxAge)); !errors.Is(err, ErrExpiredPrekey) {
		t.Fatalf("initiate from an expired link bundle: %v, want ErrExpiredPrekey", err)
	}
}

// TestStateVersion1StillLoads: key stores and channels saved before PQXDH
// load, and Maintain adds the KEM prekeys.
func TestStateVersion1StillLoads(t *testing.T) {
	a, b := newParty(t, 1), newParty(t, 2)
	a.initiate(t, b, t0)
	b.recv(t, a, a.send(t, "x", t0), "x", t0)
	ch, _ := b.ch.MarshalBinary()
	ch[0] = 1 // no session has flagPQ: the version 1 layout
	var c Channel
	if err := c.UnmarshalBinary(ch); err != nil {
		t.Fatalf("version 1 channel: %v", err)
	}
	ks, _ := b.ks.MarshalBinary()
	n := len(ks) - (4 + 1 + len(b.ks.lrks)*kemEntrySize + 2 + len(b.ks.okps)*kemEntrySize + 2 + len(b.ks.spent)*(keySize+4))
	v1 := append([]byte{1}, ks[1:n]...)
	var old KeyStore
	if err := old.UnmarshalBinary(v1); err != nil {
		t.Fatalf("version 1 key store: %v", err)
	}
	if _, err := old.BundlePQ(b.id, t0); err == nil {
		t.Fatal("a version 1 key store served a PQ bundle before Maintain")
	}
	if changed, err := old.Maintain(b.id, b.rnd, t0); err != nil || !changed {
		t.Fatalf("Maintain on a version 1 key store: %v %v", changed, err)
	}
	if _, err := old.BundlePQ(b.id, t0); err != nil {
		t.Fatalf("after Maintain: %v", err)
	}
}

type pqxdhVector struct {
	InitiatorIdentityDH, InitiatorEphemeral    hexKey // private keys
	ResponderIdentityDH, ResponderSignedPrekey hexKey // private keys
	ResponderOneTimePrekey                     hexKey // private key, empty for none
	ResponderEd25519Seed                       hexKey
	InitiatorEd25519, ResponderEd25519         hexKey // public keys
	KEMPrekeyID                                uint32
	KEMPrekeyKind                              byte
	KEMSeed                                    string // 64-byte d || z
	KEMPublicKey                               string
	KEMPrekeySignature                         string
	EncapsulationRandomness                    hexKey
	KEMCiphertext                              string
	KEMSharedSecret                            hexKey
	SK                                         hexKey
}

// computePQXDH derives the PQXDH vectors from fixed inputs with the
// standard library's primitives; testdata/pqxdh.json holds the result.
func computePQXDH(t *testing.T) []pqxdhVector {
	var out []pqxdhVector
	for i := range 3 {
		ika, eka, ikb, spkb, opkb := input("pq-ika", i), input("pq-eka", i), input("pq-ikb", i), input("pq-spkb", i), input("pq-opkb", i)
		edaSeed, edbSeed := input("pq-eda", i), input("pq-edb", i)
		eda := ed25519.NewKeyFromSeed(edaSeed[:]).Public().(ed25519.PublicKey)
		edbPriv := ed25519.NewKeyFromSeed(edbSeed[:])
		edb := edbPriv.Public().(ed25519.PublicKey)
		d, z := input("pq-kem-d", i), input("pq-kem-z", i)
		seed := append(d[:], z[:]...)
		dk, err := mlkem.NewDecapsulationKey768(seed)
		if err != nil {
			t.Fatal(err)
		}
		kemPub := dk.EncapsulationKey().Bytes()
		kind := byte(kemOneTime)
		if i == 1 {
			kind = kemLastResort
		}
		kid := uint32(7 + i)
		sig := ed25519.Sign(edbPriv, kemPrekeyMessage(kid, kind, kemPub))
		m := input("pq-m", i)
		ss, ct, err := mlkemtest.Encapsulate768(dk.EncapsulationKey(), m[:])
		if err != nil {
			t.Fatal(err)
		}
		pIKB, pSPKB, pOPKB := pub(ikb), pub(spkb), pub(opkb)
		dhs := [][32]byte{mustDH(t, &ika, &pSPKB), mustDH(t, &eka, &pIKB), mustDH(t, &eka, &pSPKB)}
		otpk := ""
		if i != 1 { // vector 1: no one-time prekeys, the last-resort KEM key
			dhs = append(dhs, mustDH(t, &eka, &pOPKB))
			otpk = h(opkb[:])
		}
		sk := pqxdhSecret(dhs, ss, kemPub, ct, eda, edb)
		out = append(out, pqxdhVector{
			InitiatorIdentityDH: h(ika[:]), InitiatorEphemeral: h(eka[:]),
			ResponderIdentityDH: h(ikb[:]), ResponderSignedPrekey: h(spkb[:]), ResponderOneTimePrekey: otpk,
			ResponderEd25519Seed: h(edbSeed[:]), InitiatorEd25519: h(eda), ResponderEd25519: h(edb),
			KEMPrekeyID: kid, KEMPrekeyKind: kind, KEMSeed: h(seed), KEMPublicKey: h(kemPub), KEMPrekeySignature: h(sig),
			EncapsulationRandomness: h(m[:]), KEMCiphertext: h(ct), KEMSharedSecret: h(ss), SK: h(sk[:]),
		})
	}
	return out
}

func mustDH(t *testing.T, a, b *[32]byte) [32]byte {
	t.Helper()
	o, err := dh(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestKnownAnswersPQXDH checks testdata/pqxdh.json (rewrite it with
// go test -run KnownAnswersPQXDH -update), then recomputes each vector
// from the responder's side: its DH outputs, the decapsulated KEM secret
// and the signature check must give the same SK.
func TestKnownAnswersPQXDH(t *testing.T) {
	vs := computePQXDH(t)
	checkGolden(t, "pqxdh.json", vs)
	for i, v := range vs {
		var ika, eka, ikb, spkb [32]byte
		copy(ika[:], mustHex(t, v.InitiatorIdentityDH))
		copy(eka[:], mustHex(t, v.InitiatorEphemeral))
		copy(ikb[:], mustHex(t, v.ResponderIdentityDH))
		copy(spkb[:], mustHex(t, v.ResponderSignedPrekey))
		pIKA, pEKA := pub(ika), pub(eka)
		dhs := [][32]byte{mustDH(t, &spkb, &pIKA), mustDH(t, &ikb, &pEKA), mustDH(t, &spkb, &pEKA)}
		if v.ResponderOneTimePrekey != "" {
			var opkb [32]byte
			copy(opkb[:], mustHex(t, v.ResponderOneTimePrekey))
			dhs = append(dhs, mustDH(t, &opkb, &pEKA))
		}
		dk, err := mlkem.NewDecapsulationKey768(mustHex(t, v.KEMSeed))
		if err != nil {
			t.Fatal(err)
		}
		ss, err := dk.Decapsulate(mustHex(t, v.KEMCiphertext))
		if err != nil || h(ss) != v.KEMSharedSecret {
			t.Fatalf("vector %d: decapsulation gives another secret (%v)", i, err)
		}
		edb := ed25519.PublicKey(mustHex(t, v.ResponderEd25519))
		if !ed25519.Verify(edb, kemPrekeyMessage(v.KEMPrekeyID, v.KEMPrekeyKind, mustHex(t, v.KEMPublicKey)), mustHex(t, v.KEMPrekeySignature)) {
			t.Fatalf("vector %d: KEM prekey signature does not verify", i)
		}
		sk := pqxdhSecret(dhs, ss, dk.EncapsulationKey().Bytes(), mustHex(t, v.KEMCiphertext), mustHex(t, v.InitiatorEd25519), edb)
		if h(sk[:]) != v.SK {
			t.Fatalf("vector %d: responder derives another SK", i)
		}
	}
}

// TestTranscriptPQ pins a whole PQXDH conversation (deterministic
// randomness, encapsulation included): testdata/transcript-pq.json.
func TestTranscriptPQ(t *testing.T) {
	detEncapsulate(t)
	a, b := newParty(t, 1), newParty(t, 2)
	a.initiatePQ(t, b, t0)
	var steps []transcriptStep
	send := func(from, to *party, name, text string) {
		env := from.send(t, text, t0)
		steps = append(steps, transcriptStep{name, text, h(env)})
		to.recv(t, from, env, text, t0)
	}
	send(a, b, "alice", "hello bob, post-quantum")
	for i := range 2 {
		send(b, a, "bob", fmt.Sprintf("reply %d", i))
		send(a, b, "alice", fmt.Sprintf("answer %d", i))
	}
	checkGolden(t, "transcript-pq.json", steps)
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readTranscript(t testing.TB, name string) []transcriptStep {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var steps []transcriptStep
	if err := json.Unmarshal(data, &steps); err != nil {
		t.Fatal(err)
	}
	return steps
}

// The known-answer files are generated by the tests that check them:
//go:generate go test -run "^(TestKnownAnswers|TestKnownAnswersPQXDH|TestTranscript|TestTranscriptPQ)$" -update .
