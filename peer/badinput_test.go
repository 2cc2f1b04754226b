package peer_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/client"
	"github.com/parley-im/parley/peer/identity"
	"github.com/parley-im/parley/peer/localapi"
	"github.com/parley-im/parley/peer/peertest"
)

// newNode calls peer.New and closes the node if it starts.
func newNode(t *testing.T, cfg peer.Config) error {
	t.Helper()
	n, err := peer.New(context.Background(), cfg)
	if err == nil {
		n.Close()
	}
	return err
}

// snapshot is a file's content and mode.
type snapshot struct {
	data []byte
	mode fs.FileMode
}

func snap(t *testing.T, path string) snapshot {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{data, st.Mode()}
}

func (s snapshot) check(t *testing.T, path string) {
	t.Helper()
	now := snap(t, path)
	if !bytes.Equal(now.data, s.data) || now.mode != s.mode {
		t.Errorf("%s changed (mode %v -> %v, %d -> %d bytes)", filepath.Base(path), s.mode, now.mode, len(s.data), len(now.data))
	}
}

// initHome starts and stops a node once in a new home, leaving an identity
// and a database behind.
func initHome(t *testing.T) string {
	t.Helper()
	home := peertest.Home(t)
	if err := newNode(t, peertest.Config(t, home)); err != nil {
		t.Fatal(err)
	}
	return home
}

func wantErr(t *testing.T, err error, target error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatal("peer.New succeeded, want an error")
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q is not %v", err, target)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Errorf("error %q does not mention %q", err, substr)
	}
}

func TestCorruptIdentityRefused(t *testing.T) {
	home := peertest.Home(t)
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, identity.FileName)
	if err := os.WriteFile(path, []byte("\x08\x01\x12\x05trunc"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snap(t, path)
	wantErr(t, newNode(t, peertest.Config(t, home)), identity.ErrCorrupt, "backup")
	before.check(t, path)
}

func TestInsecureIdentityRefused(t *testing.T) {
	home := initHome(t)
	path := filepath.Join(home, identity.FileName)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	before := snap(t, path)
	wantErr(t, newNode(t, peertest.Config(t, home)), identity.ErrInsecurePermissions, "chmod 600")
	before.check(t, path)
}

func TestBadConfigRefused(t *testing.T) {
	goodKey := newSwarmKeyFile(t)
	badKey := writeFile(t, "swarm.key", []byte("/key/swarm/psk/1.0.0/\n/base16/\nnot-hex\n"))
	tests := []struct {
		name   string
		edit   func(*peer.Config)
		target error
		substr string
	}{
		{"malformed swarm key", func(c *peer.Config) { c.SwarmKey = badKey }, peer.ErrBadSwarmKey, "parley net new"},
		{"missing swarm key", func(c *peer.Config) { c.SwarmKey = filepath.Join(t.TempDir(), "none") }, fs.ErrNotExist, "swarm key"},
		{"invalid listen address", func(c *peer.Config) { c.Listen = []string{"/ip4/127.0.0.1/tcp/notaport"} }, nil, "invalid listen address"},
		{"invalid bootstrap address", func(c *peer.Config) { c.Bootstrap = []string{"/ip4/1.2.3/tcp/4001"} }, nil, "invalid bootstrap address"},
		{"bootstrap without /p2p/", func(c *peer.Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001"} }, nil, "/p2p/<peer-id>"},
		{"QUIC on a private network", func(c *peer.Config) {
			c.SwarmKey = goodKey
			c.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
		}, nil, "QUIC cannot run on a private network"},
		{"allowlist on the public network", func(c *peer.Config) { c.Allowlist = goodKey }, nil, "needs a private network"},
		{"bad allowlist", func(c *peer.Config) {
			c.SwarmKey = goodKey
			c.Allowlist = writeFile(t, "allow", []byte("nobody\n"))
		}, nil, "not a peer ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := peertest.Config(t, peertest.Home(t))
			tt.edit(&cfg)
			wantErr(t, newNode(t, cfg), tt.target, tt.substr)
		})
	}
}

// TestNewerDatabaseRefused opens a home whose database was written by a
// newer parley: the node must refuse it and leave it untouched.
func TestNewerDatabaseRefused(t *testing.T) {
	home := initHome(t)
	path := filepath.Join(home, store.FileName)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 9999"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before := snap(t, path)
	wantErr(t, newNode(t, peertest.Config(t, home)), store.ErrNewerVersion, "newer version")
	before.check(t, path)
}

func TestCorruptDatabaseRefused(t *testing.T) {
	home := initHome(t)
	path := filepath.Join(home, store.FileName)
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snap(t, path)
	wantErr(t, newNode(t, peertest.Config(t, home)), store.ErrCorrupt, "corrupted")
	before.check(t, path)
}

// TestSocketPathTooLong uses a home whose api.sock cannot fit in sun_path:
// the node must say so, before it creates anything in the home.
func TestSocketPathTooLong(t *testing.T) {
	home := filepath.Join(peertest.Home(t), strings.Repeat("d", 120))
	wantErr(t, newNode(t, peertest.Config(t, home)), localapi.ErrSocketPathTooLong, "too long")
	if _, err := os.Stat(home); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("home was created (stat: %v)", err)
	}
}

func TestHomeNotWritable(t *testing.T) {
	if os.Geteuid() != 0 {
		home := peertest.Home(t)
		if err := os.MkdirAll(home, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(home, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(home, 0o700) })
		wantErr(t, newNode(t, peertest.Config(t, home)), fs.ErrPermission, "writable")
		return
	}
	// Root bypasses permission bits: use a home below a regular file, which
	// no one can create.
	file := peertest.Home(t)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantErr(t, newNode(t, peertest.Config(t, filepath.Join(file, "h"))), nil, "create home")
}

// TestSecondNodeSameHome starts a second node on a running node's home: it
// must fail at once with ErrLocked, and the first must keep serving.
func TestSecondNodeSameHome(t *testing.T) {
	first := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	wantErr(t, newNode(t, peertest.Config(t, first.Home)), peer.ErrLocked, "already running")
	id, err := client.New(first.Home).ID(context.Background())
	if err != nil {
		t.Fatalf("first node stopped answering: %v", err)
	}
	if id.PeerID != first.Host().ID().String() {
		t.Errorf("first node answers as %s, want %s", id.PeerID, first.Host().ID())
	}
}

// TestStaleSocketReplaced leaves an api.sock that no one listens on, as a
// crashed node would: the next node replaces it and serves.
func TestStaleSocketReplaced(t *testing.T) {
	home := peertest.Home(t)
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(home, localapi.SocketName)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	n := peertest.Start(t, peertest.Config(t, home), nil)
	id, err := client.New(home).ID(context.Background())
	if err != nil {
		t.Fatalf("node on a stale socket: %v", err)
	}
	if id.PeerID != n.Host().ID().String() {
		t.Errorf("socket answers as %s, want %s", id.PeerID, n.Host().ID())
	}
}
