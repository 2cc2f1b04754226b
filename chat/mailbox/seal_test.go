package mailbox_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/parley-im/parley/chat/mailbox"
)

// vector is one known-answer test of the mailbox construction
// (testdata/seal.json). Regenerate with PARLEY_UPDATE_KAT=1 only when the
// construction changes, which needs a new protocol version.
type vector struct {
	Secret   string `json:"secret"`
	Day      int64  `json:"day"`
	FetchKey string `json:"fetch_key"`
	Tag      string `json:"tag"`
	FrameID  string `json:"frame_id"`
	Envelope string `json:"envelope"`
	Blob     string `json:"blob"`
}

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadVectors(t testing.TB) []vector {
	b, err := os.ReadFile(filepath.Join("testdata", "seal.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestSealKnownAnswers(t *testing.T) {
	if os.Getenv("PARLEY_UPDATE_KAT") != "" {
		var vs []vector
		for i, c := range []struct {
			day int64
			env []byte
		}{{0, []byte{1}}, {20000, []byte("an envelope")}, {20650, bytes.Repeat([]byte{0xab}, 300)}} {
			var s mailbox.Secret
			for j := range s {
				s[j] = byte(i*32 + j)
			}
			id := bytes.Repeat([]byte{byte(0xf0 + i)}, 16)
			fk := s.FetchKey(mailbox.Day(c.day))
			tag := s.Tag(mailbox.Day(c.day))
			blob, err := s.Seal(id, c.env)
			if err != nil {
				t.Fatal(err)
			}
			vs = append(vs, vector{hex.EncodeToString(s[:]), c.day, hex.EncodeToString(fk[:]), hex.EncodeToString(tag[:]),
				hex.EncodeToString(id), hex.EncodeToString(c.env), hex.EncodeToString(blob)})
		}
		b, _ := json.MarshalIndent(vs, "", "  ")
		if err := os.WriteFile(filepath.Join("testdata", "seal.json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range loadVectors(t) {
		var s mailbox.Secret
		copy(s[:], unhex(t, v.Secret))
		fk := s.FetchKey(mailbox.Day(v.Day))
		tag := s.Tag(mailbox.Day(v.Day))
		if hex.EncodeToString(fk[:]) != v.FetchKey || hex.EncodeToString(tag[:]) != v.Tag {
			t.Errorf("day %d: fetch key %x tag %x", v.Day, fk, tag)
		}
		if tt := mailbox.TagOf(fk[:]); hex.EncodeToString(tt[:]) != v.Tag {
			t.Errorf("TagOf(fetch key) = %x", tt)
		}
		blob, err := s.Seal(unhex(t, v.FrameID), unhex(t, v.Envelope))
		if err != nil || hex.EncodeToString(blob) != v.Blob {
			t.Errorf("seal = %x, %v; want %s", blob, err, v.Blob)
		}
		id, env, err := s.Open(unhex(t, v.Blob))
		if err != nil || hex.EncodeToString(id) != v.FrameID || hex.EncodeToString(env) != v.Envelope {
			t.Errorf("open = %x %x %v", id, env, err)
		}
	}
}

func TestOpenRefusesTampering(t *testing.T) {
	var s, other mailbox.Secret
	s[0], other[0] = 1, 2
	blob, err := s.Seal(make([]byte, 16), []byte("envelope"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":         nil,
		"truncated":     blob[:len(blob)-1],
		"other version": append([]byte{2}, blob[1:]...),
		"flipped":       append(append([]byte{}, blob[:len(blob)-1]...), blob[len(blob)-1]^1),
		"nonce changed": append([]byte{blob[0], blob[1] ^ 1}, blob[2:]...),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := s.Open(b); !errors.Is(err, mailbox.ErrOpen) {
				t.Fatalf("open = %v, want ErrOpen", err)
			}
		})
	}
	if _, _, err := other.Open(blob); !errors.Is(err, mailbox.ErrOpen) {
		t.Fatalf("open under another secret = %v", err)
	}
	if _, err := s.Seal(make([]byte, 15), []byte("x")); err == nil {
		t.Fatal("sealed a 15-byte frame id")
	}
	if _, err := s.Seal(make([]byte, 16), make([]byte, mailbox.MaxSealedEnvelope+1)); err == nil {
		t.Fatal("sealed an envelope too large for a deposit")
	}
	if a, b := s.Tag(1), s.Tag(2); a == b {
		t.Fatal("tags of two days are equal")
	}
}

func FuzzOpen(f *testing.F) {
	var s mailbox.Secret
	for _, v := range loadVectors(f) {
		f.Add(unhex(f, v.Blob))
		copy(s[:], unhex(f, v.Secret))
	}
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, env, err := s.Open(b)
		if err != nil {
			return
		}
		again, err := s.Seal(id, env)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("opened a blob that does not reseal to itself")
		}
	})
}
