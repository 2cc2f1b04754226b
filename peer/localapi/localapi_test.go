package localapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a log sink that tests can read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func serve(t *testing.T, home string) (*Server, *syncBuffer) {
	t.Helper()
	logs := new(syncBuffer)
	s, err := Listen(home, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Handle("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, "pong") })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s, logs
}

func ping(path string) error {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://parley/v1/ping")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return err
}

// TestSocketPrivateUnderLooseUmask: with a umask that would leave the
// socket open to everyone, it is 0600 when Listen returns and was never
// bound under its public name with another mode (it is bound in a 0700
// directory); the owner can use it.
func TestSocketPrivateUnderLooseUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	home := t.TempDir()
	s, _ := serve(t, home)
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(home, privateDir)); !os.IsNotExist(err) {
		t.Fatalf("the private directory is left behind: %v", err)
	}
	if err := ping(s.Path()); err != nil {
		t.Fatalf("the owner cannot use the API: %v", err)
	}
}

// TestSocketClosedRemoves: closing the server removes the socket file.
func TestSocketClosedRemoves(t *testing.T) {
	home := t.TempDir()
	s, err := Listen(home, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
}

// nobody is the uid the foreign-user test switches to.
const nobody = 65534

// TestForeignUIDRefused: even with the socket and its directory opened to
// everyone by mistake, a process of another uid is refused (SO_PEERCRED)
// and the refusal is logged; the owner in the same setup is served
// (positive control). Switching uid needs root; without it the test skips.
func TestForeignUIDRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("switching to another uid needs root; run the tests as root to check the SO_PEERCRED refusal")
	}
	if os.Getenv("PARLEY_LOCALAPI_CHILD") != "" {
		t.Skip("child process")
	}
	// A home and a copy of this test binary that uid nobody can reach.
	dir, err := os.MkdirTemp("", "parley-uid")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "child.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	s, logs := serve(t, dir)
	if err := os.Chmod(s.Path(), 0o666); err != nil { // the mistake
		t.Fatal(err)
	}
	if err := ping(s.Path()); err != nil {
		t.Fatalf("control: the owner cannot use the API: %v", err)
	}
	cmd := exec.Command(bin, "-test.run=^TestChildPing$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PARLEY_LOCALAPI_CHILD="+s.Path())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refused as expected") {
		t.Fatalf("uid %d: err %v, output:\n%s", nobody, err, out)
	}
	if !strings.Contains(logs.String(), ErrForeignUID.Error()) || !strings.Contains(logs.String(), "uid=65534") {
		t.Fatalf("refusal not logged:\n%s", logs)
	}
}

// TestChildPing is the other uid's side of TestForeignUIDRefused.
func TestChildPing(t *testing.T) {
	path := os.Getenv("PARLEY_LOCALAPI_CHILD")
	if path == "" {
		t.Skip("run by TestForeignUIDRefused")
	}
	if err := ping(path); err != nil {
		t.Fatalf("refused as expected: %v", err)
	}
	t.Log("served a foreign uid")
}
