// Package identity manages a node's long-term Ed25519 identity key.
//
// The key is the user's address: its libp2p peer ID is what contacts add and
// what every end-to-end signature is checked against. It is created once, on
// the first start in a node's home, and stored in the standard libp2p private
// key encoding (the protobuf form of crypto.MarshalPrivateKey) in a file that
// only its owner may read (mode 0600). A file that is unreadable, corrupted,
// of another key type or readable by others is refused with an error that
// says what to do; it is never overwritten.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// FileName is the identity file's name inside a node's home.
const FileName = "identity.key"

// maxFileSize bounds what LoadOrCreate reads: an Ed25519 key is 68 bytes.
const maxFileSize = 4096

// ErrInsecurePermissions is returned when the identity file can be read by
// users other than its owner.
var ErrInsecurePermissions = errors.New("identity file is readable by other users")

// ErrCorrupt is returned when the identity file does not hold an Ed25519 key.
var ErrCorrupt = errors.New("identity file is corrupted")

// Identity is a node's long-term key pair and the peer ID derived from it.
type Identity struct {
	priv crypto.PrivKey
	id   peer.ID
}

// PrivKey returns the libp2p private key.
func (i *Identity) PrivKey() crypto.PrivKey { return i.priv }

// PeerID returns the peer ID derived from the public key.
func (i *Identity) PeerID() peer.ID { return i.id }

// Ed25519 returns the key in crypto/ed25519 form, for the end-to-end layer.
func (i *Identity) Ed25519() ed25519.PrivateKey {
	raw, err := i.priv.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		// Unreachable: New and Load only accept Ed25519 keys.
		panic("identity: not an ed25519 key")
	}
	return ed25519.PrivateKey(raw)
}

// String returns the peer ID; it never prints key material.
func (i *Identity) String() string { return i.id.String() }

// Generate creates a new random identity without storing it.
func Generate() (*Identity, error) {
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity: %w", err)
	}
	return fromPrivKey(priv)
}

func fromPrivKey(priv crypto.PrivKey) (*Identity, error) {
	if priv.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: key type %s, want Ed25519", ErrCorrupt, priv.Type())
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("derive peer id: %w", err)
	}
	return &Identity{priv: priv, id: id}, nil
}

// LoadOrCreate loads the identity stored in dir, creating it on first use.
// created reports whether a new key was written.
func LoadOrCreate(dir string) (id *Identity, created bool, err error) {
	path := filepath.Join(dir, FileName)
	id, err = Load(path)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	id, err = Generate()
	if err != nil {
		return nil, false, err
	}
	if err := Save(path, id); err != nil {
		return nil, false, err
	}
	return id, true, nil
}

// Load reads an identity file, refusing one that others can read.
func Load(path string) (*Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open identity: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat identity: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run `chmod 600 %s` if the key is still secret",
			ErrInsecurePermissions, path, st.Mode().Perm(), path)
	}
	if st.Size() > maxFileSize {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrCorrupt, path, st.Size())
	}
	buf := make([]byte, maxFileSize+1)
	n, err := f.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	priv, err := crypto.UnmarshalPrivateKey(buf[:n])
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v (restore it from a backup; moving it away creates a new identity and a new peer ID)", ErrCorrupt, path, err)
	}
	id, err := fromPrivKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// Save writes the identity to path with mode 0600. It never replaces an
// existing file: the write goes to a temporary file that is linked into place
// only if path does not exist yet.
func Save(path string, id *Identity) error {
	data, err := crypto.MarshalPrivateKey(id.priv)
	if err != nil {
		return fmt.Errorf("encode identity: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".identity-*")
	if err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write identity: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	return nil
}
