package localapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// privateDir is the directory, inside the home, where the socket is bound
// before it is renamed to its public name. Its path is shorter than the
// socket's ("/.apid/s" against "/api.sock"), so it fits sun_path whenever
// the socket's path does.
const privateDir = ".apid"

// listenPrivate binds the unix socket at path so that no other uid can
// ever connect to it, whatever the process umask is.
//
// The socket is bound in a fresh directory of mode 0700 (a umask can only
// remove bits from that, and connect(2) needs search permission on every
// directory of the path), made 0600 there, and only then renamed to path,
// atomically replacing a stale socket. So there is no moment at which the
// file is reachable with a looser mode. This is the effect of setting the
// umask around listen, without its hazard: the umask is process-wide, and
// a goroutine creating a file or a directory at the same moment (another
// node in the same process, in tests) would get the restrictive mask too.
// The home is locked by the node, so the private directory is ours.
func listenPrivate(home, path string) (net.Listener, error) {
	dir := filepath.Join(home, privateDir)
	if err := os.RemoveAll(dir); err != nil { // left by a node that crashed
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, err
	}
	ul := ln.(*net.UnixListener)
	// Close must not unlink the bound path (it is renamed): peerCredListener
	// removes the public name instead.
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ul.Close()
		return nil, fmt.Errorf("chmod API socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ul.Close()
		return nil, err
	}
	return ul, nil
}

// peerCredListener accepts only connections from processes of uid (the
// node's own), read from the kernel with SO_PEERCRED; any other is closed
// at once and logged. Close removes the socket file.
type peerCredListener struct {
	*net.UnixListener
	path      string
	uid       int
	log       *slog.Logger
	closeOnce sync.Once
}

// ErrForeignUID is logged for a connection from another user.
var ErrForeignUID = errors.New("API connection from another user refused")

func (l *peerCredListener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		cred, err := peerCred(c)
		if err == nil && int(cred.Uid) == l.uid {
			return c, nil
		}
		if err != nil {
			l.log.Warn("API connection refused: cannot read its credentials", "err", err)
		} else {
			l.log.Warn(ErrForeignUID.Error(), "uid", cred.Uid, "pid", cred.Pid, "want_uid", l.uid)
		}
		c.Close()
	}
}

func (l *peerCredListener) Close() error {
	err := l.UnixListener.Close()
	l.closeOnce.Do(func() { os.Remove(l.path) })
	return err
}

// peerCred returns the credentials of the process at the other end of c.
func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}
