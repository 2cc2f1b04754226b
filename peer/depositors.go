package peer

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"

	"github.com/parley-im/parley/chat/mailbox"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/internal/budget"
)

// Depositors on an allowlisted network.
//
// Deposits reach a mailbox from throwaway identities (chat/mailbox), which
// no allowlist can name. A node that serves a mailbox on a network with an
// allowlist (--allow) therefore admits inbound connections from peers not
// on the list as depositors, and nothing more:
//
//   - only while it serves a mailbox (`parley bootstrap --mailbox`, or a
//     user node after `parley mailbox enable`), only inbound (the node
//     never dials a stranger), and only on the private network (the swarm
//     key still keeps out everyone without it);
//   - a depositor's streams may speak only /parley/mailbox/1 and identify
//     (which libp2p runs on every connection); any other protocol, in
//     either direction, is refused by the resource manager when the
//     stream's protocol is set, before a handler runs;
//   - admissions are budgeted per IP address (depositorIPBurst, one more
//     every depositorIPEvery) and globally (depositorGlobalBurst, one more
//     every depositorGlobalEvery), at most maxDepositors are connected at
//     once, and the mailbox protocol has its own resource-manager limits
//     (mailboxProtocolLimits) on top of the mailbox's request budgets and
//     quotas.
//
// The trade-off, written in the README: a node that serves a mailbox on an
// allowlisted network accepts connections from anyone holding the swarm
// key, for that one protocol. What such a peer can do is what a depositor
// can do on an open network: deposit within quotas.
const (
	depositorIPBurst     = 32
	depositorIPEvery     = 2 * time.Second
	depositorGlobalBurst = 256
	depositorGlobalEvery = 50 * time.Millisecond
	maxDepositors        = 128
)

// depositorProtocols are what an admitted depositor may speak.
var depositorProtocols = map[protocol.ID]bool{
	wire.ProtocolMailbox: true,
	identify.ID:          true,
	identify.IDPush:      true,
}

// depositorGate is the allowlist gater's record of admitted depositors.
type depositorGate struct {
	// serving reports whether the node serves a mailbox now; nil until the
	// node wires its mailbox (then no stranger is admitted).
	serving atomic.Pointer[func() bool]
	ip      *budget.Keyed[string]
	global  *budget.Keyed[struct{}]

	mu       sync.Mutex
	admitted map[lpeer.ID]time.Time // guarded by mu: depositors and when admitted
}

func newDepositorGate() *depositorGate {
	return &depositorGate{
		ip:       budget.New[string](depositorIPBurst, depositorIPEvery),
		global:   budget.New[struct{}](depositorGlobalBurst, depositorGlobalEvery),
		admitted: make(map[lpeer.ID]time.Time),
	}
}

// admit decides on an inbound stranger p from addrs.
func (g *depositorGate) admit(p lpeer.ID, addrs network.ConnMultiaddrs) bool {
	f := g.serving.Load()
	if f == nil || !(*f)() {
		return false
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.admitted[p]; ok {
		return true // a second connection of an admitted depositor
	}
	if len(g.admitted) >= maxDepositors {
		// Forget admissions that never became a connection (a handshake
		// that failed after the gater): the disconnect that would remove
		// them never comes.
		for q, at := range g.admitted {
			if now.Sub(at) > 10*time.Minute {
				delete(g.admitted, q)
			}
		}
		if len(g.admitted) >= maxDepositors {
			return false
		}
	}
	var ip string
	if addrs != nil {
		ip = budget.IPKey(addrs.RemoteMultiaddr())
	}
	if ip != "" && !g.ip.Allow(ip, now) || !g.global.Allow(struct{}{}, now) {
		return false
	}
	g.admitted[p] = now
	return true
}

// isDepositor reports whether p was admitted as a depositor.
func (g *depositorGate) isDepositor(p lpeer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.admitted[p]
	return ok
}

// disconnected forgets p once its last connection is gone.
func (g *depositorGate) disconnected(n network.Network, c network.Conn) {
	p := c.RemotePeer()
	if n.Connectedness(p) == network.Connected {
		return
	}
	g.mu.Lock()
	delete(g.admitted, p)
	g.mu.Unlock()
}

// depositorRM wraps the resource manager: a depositor's streams may only
// be set to depositorProtocols.
type depositorRM struct {
	network.ResourceManager
	gate *depositorGate
}

func (r *depositorRM) OpenStream(p lpeer.ID, dir network.Direction) (network.StreamManagementScope, error) {
	s, err := r.ResourceManager.OpenStream(p, dir)
	if err != nil || !r.gate.isDepositor(p) {
		return s, err
	}
	return depositorStream{s, p}, nil
}

type depositorStream struct {
	network.StreamManagementScope
	peer lpeer.ID
}

func (s depositorStream) SetProtocol(proto protocol.ID) error {
	if !depositorProtocols[proto] {
		return fmt.Errorf("peer %s is admitted only as a mailbox depositor: protocol %s refused", s.peer, proto)
	}
	return s.StreamManagementScope.SetProtocol(proto)
}

// watchDepositors has the allowlist gater forget depositors that are gone.
func (n *Node) watchDepositors() {
	if n.gater == nil {
		return
	}
	n.host.Network().Notify(&network.NotifyBundle{DisconnectedF: n.gater.dep.disconnected})
}

// admitDepositors lets the allowlist gater admit depositors while mb
// serves a mailbox.
func (n *Node) admitDepositors(mb *mailbox.Service) {
	if n.gater == nil {
		return
	}
	serving := func() bool {
		s, _ := mb.Serving()
		return s != mailbox.ServeOff
	}
	n.gater.dep.serving.Store(&serving)
}
