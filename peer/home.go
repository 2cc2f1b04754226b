package peer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned when another process runs a node in the same home.
var ErrLocked = errors.New("another parley node is already running in this home")

// DefaultHome returns $PARLEY_HOME, else $XDG_DATA_HOME/parley, else
// ~/.local/share/parley.
func DefaultHome() (string, error) {
	if h := os.Getenv("PARLEY_HOME"); h != "" {
		return h, nil
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "parley"), nil
	}
	u, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home directory: %w (set PARLEY_HOME or --home)", err)
	}
	return filepath.Join(u, ".local", "share", "parley"), nil
}

// homeLock is an exclusive flock on home/lock, held for the node's lifetime.
// The kernel drops it if the process dies, so a crash never leaves a stale lock.
type homeLock struct{ f *os.File }

func lockHome(home string) (*homeLock, error) {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("create home %s: %w", home, err)
	}
	path := filepath.Join(home, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (is the home directory writable?)", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s); stop it first or use another --home", ErrLocked, home)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Fail early, before creating anything else, if the home is not writable.
	probe := filepath.Join(home, ".write-probe")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("home %s is not writable: %w", home, err)
	}
	os.Remove(probe)
	return &homeLock{f: f}, nil
}

func (l *homeLock) Unlock() error {
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	return l.f.Close()
}
