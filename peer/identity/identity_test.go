package identity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreateIsStable(t *testing.T) {
	dir := t.TempDir()
	a, created, err := LoadOrCreate(dir)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate = %v, %v", created, err)
	}
	st, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %04o, want 0600", st.Mode().Perm())
	}
	b, created, err := LoadOrCreate(dir)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate = %v, %v", created, err)
	}
	if a.PeerID() != b.PeerID() {
		t.Errorf("peer id changed: %s != %s", a.PeerID(), b.PeerID())
	}
	if len(a.Ed25519()) != 64 {
		t.Errorf("Ed25519 key length %d", len(a.Ed25519()))
	}
}

// TestBadIdentityFile tries a corrupted file, a truncated file, a file
// readable by others and a file that is too large: each is refused with the
// right error and the file is left exactly as it was.
func TestBadIdentityFile(t *testing.T) {
	good, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup func(path string)
		want  error
	}{
		{"garbage", func(p string) { os.WriteFile(p, []byte("not a key at all"), 0o600) }, ErrCorrupt},
		{"truncated", func(p string) {
			Save(p, good)
			data, _ := os.ReadFile(p)
			os.WriteFile(p, data[:len(data)/2], 0o600)
		}, ErrCorrupt},
		{"world readable", func(p string) { Save(p, good); os.Chmod(p, 0o644) }, ErrInsecurePermissions},
		{"too large", func(p string) { os.WriteFile(p, bytes.Repeat([]byte{1}, 10000), 0o600) }, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			tc.setup(path)
			before, _ := os.ReadFile(path)
			_, _, err := LoadOrCreate(dir)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Error("identity file was modified")
			}
		})
	}
}

func TestSaveNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	a, _ := Generate()
	b, _ := Generate()
	if err := Save(path, a); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, b); err == nil {
		t.Fatal("Save replaced an existing identity")
	}
	got, err := Load(path)
	if err != nil || got.PeerID() != a.PeerID() {
		t.Fatalf("Load = %v, %v", got, err)
	}
}
