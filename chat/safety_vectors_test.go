package chat_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat"
)

var updateVectors = flag.Bool("update", false, "rewrite testdata/safety.json")

// safetyIdentity is one side of a safety number vector.
type safetyIdentity struct {
	Ed25519Seed string // private: the identity's Ed25519 seed
	Ed25519     string // public: raw 32 bytes
	PeerID      string // binary peer ID (identity multihash), hex
	PeerIDText  string // its base58 text form
	H0          string // SHA-512("parley/v1 safety-number" || pub || id)
	H5199       string // after 5199 more rounds of SHA-512(h || pub)
	Fingerprint string // 30 digits
}

type safetyVector struct {
	A, B         safetyIdentity
	SafetyNumber string
}

// specFingerprint follows PROTOCOL.md §Safety numbers with crypto/sha512.
func specFingerprint(pub []byte, id peer.ID) (h0, h5199 []byte, fp string) {
	s := sha512.Sum512(append(append([]byte("parley/v1 safety-number"), pub...), id...))
	h0 = bytes.Clone(s[:])
	h := s[:]
	for range 5199 {
		n := sha512.Sum512(append(bytes.Clone(h), pub...))
		h = n[:]
	}
	var b strings.Builder
	for j := range 6 {
		var c [8]byte
		copy(c[3:], h[5*j:5*j+5])
		fmt.Fprintf(&b, "%05d", binary.BigEndian.Uint64(c[:])%100000)
	}
	return h0, h, b.String()
}

func computeSafety(t *testing.T) safetyVector {
	t.Helper()
	ident := func(label string) (safetyIdentity, peer.ID) {
		seed := sha256.Sum256([]byte("parley safety vector " + label))
		priv := ed25519.NewKeyFromSeed(seed[:])
		lk, err := crypto.UnmarshalEd25519PrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(lk)
		if err != nil {
			t.Fatal(err)
		}
		pub := priv.Public().(ed25519.PublicKey)
		h0, hn, fp := specFingerprint(pub, id)
		return safetyIdentity{hex.EncodeToString(seed[:]), hex.EncodeToString(pub), hex.EncodeToString([]byte(id)),
			id.String(), hex.EncodeToString(h0), hex.EncodeToString(hn), fp}, id
	}
	a, ida := ident("alice")
	b, idb := ident("bob")
	lo, hi := a.Fingerprint, b.Fingerprint
	if hi < lo {
		lo, hi = hi, lo
	}
	digits := lo + hi
	var groups []string
	for i := 0; i < 60; i += 5 {
		groups = append(groups, digits[i:i+5])
	}
	v := safetyVector{A: a, B: b, SafetyNumber: strings.Join(groups, " ")}
	for _, pair := range [][2]peer.ID{{ida, idb}, {idb, ida}} {
		got, err := chat.SafetyNumber(pair[0], pair[1])
		if err != nil || got != v.SafetyNumber {
			t.Fatalf("node computes %q (%v), PROTOCOL.md gives %q", got, err, v.SafetyNumber)
		}
	}
	return v
}

// TestKnownAnswersSafetyNumber checks testdata/safety.json (go generate
// in chat, or go test -run KnownAnswersSafetyNumber -update, rewrites it).
func TestKnownAnswersSafetyNumber(t *testing.T) {
	got := computeSafety(t)
	path := filepath.Join("testdata", "safety.json")
	if *updateVectors {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	var want safetyVector
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("safety number vector differs from %s; if intended, run go generate and review the diff", path)
	}
}
