package peer

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"
)

// ErrBadSwarmKey is returned for a swarm key file that is not in the libp2p
// PSK v1 format.
var ErrBadSwarmKey = errors.New("malformed swarm key")

// swarmKeyHint ends every ErrBadSwarmKey message.
const swarmKeyHint = "(create one with `parley net new > swarm.key`)"

// NewSwarmKey returns a new random 256-bit swarm key in the standard libp2p
// PSK file format (/key/swarm/psk/1.0.0/, base16), readable by go-libp2p,
// js-libp2p, Kubo and IPFS Cluster.
func NewSwarmKey() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "/key/swarm/psk/1.0.0/\n/base16/\n%s\n", hex.EncodeToString(key)), nil
}

// LoadSwarmKey reads and decodes a swarm key file.
func LoadSwarmKey(path string) (pnet.PSK, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read swarm key: %w", err)
	}
	return ParseSwarmKey(data)
}

// ParseSwarmKey decodes a swarm key in the libp2p PSK v1 format.
func ParseSwarmKey(data []byte) (pnet.PSK, error) {
	if len(data) > 4096 {
		return nil, fmt.Errorf("%w: %d bytes is far too long %s", ErrBadSwarmKey, len(data), swarmKeyHint)
	}
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = errors.New("key is shorter than 32 bytes")
		}
		return nil, fmt.Errorf("%w: %v %s", ErrBadSwarmKey, err, swarmKeyHint)
	}
	// DecodeV1PSK ignores what follows the 32 bytes; a longer hex key is a
	// mistake the user should hear about.
	lines := strings.Fields(string(data))
	if len(lines) == 3 && lines[1] == "/base16/" && len(lines[2]) != 64 {
		return nil, fmt.Errorf("%w: base16 key has %d hex digits, want 64 %s", ErrBadSwarmKey, len(lines[2]), swarmKeyHint)
	}
	return psk, nil
}

// LoadAllowlist reads a file of peer IDs, one per line; blank lines and
// lines starting with # are ignored.
func LoadAllowlist(path string) (map[lpeer.ID]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read allowlist: %w", err)
	}
	defer f.Close()
	allow := make(map[lpeer.ID]bool)
	sc := bufio.NewScanner(io.LimitReader(f, 4<<20))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		id, err := lpeer.Decode(line)
		if err != nil {
			return nil, fmt.Errorf("allowlist %s line %d: %q is not a peer ID: %w", path, n, line, err)
		}
		allow[id] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read allowlist: %w", err)
	}
	if len(allow) == 0 {
		return nil, fmt.Errorf("allowlist %s lists no peers", path)
	}
	return allow, nil
}

// allowGater refuses connections to and from peers not on the allowlist.
// The peer ID of an inbound connection is known only after the security
// handshake, so inbound strangers are cut at InterceptSecured, unless the
// node serves a mailbox: then dep may admit them as depositors, which can
// speak only the mailbox protocol (see depositors.go).
type allowGater struct {
	self  lpeer.ID
	allow map[lpeer.ID]bool
	dep   *depositorGate
}

var _ connmgr.ConnectionGater = (*allowGater)(nil)

func (g *allowGater) ok(p lpeer.ID) bool { return p == g.self || g.allow[p] }

func (g *allowGater) InterceptPeerDial(p lpeer.ID) bool                 { return g.ok(p) }
func (g *allowGater) InterceptAddrDial(p lpeer.ID, _ ma.Multiaddr) bool { return g.ok(p) }
func (g *allowGater) InterceptAccept(network.ConnMultiaddrs) bool       { return true }
func (g *allowGater) InterceptSecured(dir network.Direction, p lpeer.ID, addrs network.ConnMultiaddrs) bool {
	if g.ok(p) {
		return true
	}
	return dir == network.DirInbound && g.dep != nil && g.dep.admit(p, addrs)
}
func (g *allowGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
