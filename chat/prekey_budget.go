package chat

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/parley-im/parley/internal/budget"
)

// Budgets of /parley/prekeys/1 beyond the per-peer one (prekeyBurst per
// prekeyEvery, chat/limiter.go). A peer ID costs nothing to make, so the
// per-peer budget alone let throwaway identities drain the one-time prekey
// pool, and new sessions then started without a one-time prekey until the
// hourly maintenance refilled it. Now:
//
//   - each IP address (an IPv6 /64) may fetch prekeyIPBurst bundles and
//     one more every prekeyIPEvery, and everyone together
//     prekeyGlobalBurst and one more every prekeyGlobalEvery; these checks
//     run before any key is issued or saved;
//   - a bundle that is handed out first has the pool topped up if it fell
//     below e2e.OneTimePrekeyLow (the same maintenance the hourly timer
//     runs: a few milliseconds of key generation, at most once per 75
//     bundles), so every bundle carries a one-time prekey.
//
// The budgets bound how fast anyone can make the node generate keys and
// churn its pool (issued keys beyond e2e.MaxOneTimePrekeys are dropped
// oldest first, which costs an honest initiator that waited that long one
// retry under a new session).
const (
	prekeyIPEvery     = time.Minute
	prekeyGlobalEvery = 10 * time.Second
)

// The bursts are variables only so that a test can lift them.
var (
	prekeyIPBurst     = 20
	prekeyGlobalBurst = 60
)

// prekeyConnBudgets are the per-IP and global budgets of a Service's prekey
// endpoint, next to its per-peer Limiter.
type prekeyConnBudgets struct {
	ip     *budget.Keyed[string]
	global *budget.Keyed[struct{}]
}

func newPrekeyConnBudgets() *prekeyConnBudgets {
	return &prekeyConnBudgets{
		ip:     budget.New[string](prekeyIPBurst, prekeyIPEvery),
		global: budget.New[struct{}](prekeyGlobalBurst, prekeyGlobalEvery),
	}
}

// prekeyAllowed takes a token from the peer's, its IP's and the global
// budget for one bundle, and logs a refusal; when it allows, it tops the
// one-time prekey pool up first if needed. It is the prekey handler's only
// rate check (the handler in prekeys.go calls it).
func (s *Service) prekeyAllowed(ctx context.Context, st network.Stream) bool {
	now := s.now()
	remote := st.Conn().RemotePeer()
	b := s.prekeyConns
	var over string
	switch ip := budget.IPKey(st.Conn().RemoteMultiaddr()); {
	case !s.prekeyLimit.Allow(remote, now):
		over = "peer"
	case ip != "" && !b.ip.Allow(ip, now):
		over = "ip"
	case !b.global.Allow(struct{}{}, now):
		over = "global"
	default:
		s.maintainKeys(ctx)
		return true
	}
	s.log.Warn("prekey request over budget", "peer", remote, "budget", over)
	return false
}
