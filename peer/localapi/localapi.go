// Package localapi is the daemon's control plane: HTTP+JSON on a unix socket
// in the node's home, so only the node's owner can drive it. The socket is
// private from the first byte (it is bound inside a directory of mode 0700
// and made 0600 before it gets its public name; see listenPrivate), and
// every connection's peer credentials (SO_PEERCRED) are checked: a process
// of another uid is refused and logged, whatever the file modes say.
//
// The server is transport only: the composition root (package peer) and the
// services register their routes with Handle. A stale socket left by a node
// that crashed is detected (nothing answers on it) and replaced; a live one is
// never touched.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/parley-im/parley/peer/apitype"
)

// SocketName is the socket's file name inside a node's home.
const SocketName = "api.sock"

// MaxSocketPath is the longest socket path the kernel accepts (sun_path
// holds 108 bytes including the terminating NUL).
const MaxSocketPath = 107

// ErrSocketPathTooLong is returned when home/api.sock does not fit sun_path.
var ErrSocketPathTooLong = errors.New("socket path too long")

// ErrInUse is returned when another live process answers on the socket.
var ErrInUse = errors.New("another node is already serving this home")

// SocketPath returns the socket path for a home, checking its length.
func SocketPath(home string) (string, error) {
	p := filepath.Join(home, SocketName)
	if len(p) > MaxSocketPath {
		return "", fmt.Errorf("%w: %s is %d bytes, the limit is %d; use a shorter --home", ErrSocketPathTooLong, p, len(p), MaxSocketPath)
	}
	return p, nil
}

// Server serves the local API.
type Server struct {
	mux  *http.ServeMux
	ln   net.Listener
	path string
	srv  *http.Server
	log  *slog.Logger
}

// Listen creates the socket in home, replacing a stale one.
func Listen(home string, log *slog.Logger) (*Server, error) {
	path, err := SocketPath(home)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: %s answers", ErrInUse, path)
		}
		log.Info("removing stale API socket", "path", path)
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := listenPrivate(home, path)
	if err != nil {
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EROFS) {
			return nil, fmt.Errorf("create API socket in %s: %w (is the home directory writable?)", home, err)
		}
		return nil, fmt.Errorf("create API socket: %w", err)
	}
	ln = &peerCredListener{UnixListener: ln.(*net.UnixListener), path: path, uid: os.Getuid(), log: log}
	s := &Server{mux: http.NewServeMux(), ln: ln, path: path, log: log}
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Handle registers a route, e.g. "GET /v1/status".
func (s *Server) Handle(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

// Run serves until ctx ends, then shuts down, waiting for requests in flight
// (streaming requests end with ctx).
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	s.srv.BaseContext = func(net.Listener) context.Context { return ctx }
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("local API: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
	}
	<-errc
	return nil
}

// Close closes the listener without serving (for a node that never ran).
func (s *Server) Close() error {
	err := s.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// WriteJSON writes v with status 200.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// WriteError writes an apitype.Error with the given status.
func WriteError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(apitype.Error{Error: err.Error()})
}

// MaxRequestBody bounds request bodies.
const MaxRequestBody = 1 << 20

// ReadJSON decodes a size-capped request body into v, refusing unknown fields.
func ReadJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, MaxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad request body: %w", err)
	}
	return nil
}
