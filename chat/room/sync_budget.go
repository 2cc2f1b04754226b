package room

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/internal/budget"
)

// Budgets of /parley/roomsync/1 beyond the per-peer one (the room rate
// limiter, keyed "sync/"+peer, checked in serveSync). A peer ID costs
// nothing to make, so each IP address (an IPv6 /64) is budgeted too, and
// everyone together; both are checked before the request is read:
//
//   - per IP: syncIPBurst requests, one more every syncIPEvery (20/s);
//   - global: syncGlobalBurst requests, one more every syncGlobalEvery
//     (200/s).
const (
	syncIPBurst     = 200
	syncIPEvery     = 50 * time.Millisecond
	syncGlobalBurst = 1000
	syncGlobalEvery = 5 * time.Millisecond
)

type syncBudgets struct {
	ip     *budget.Keyed[string]
	global *budget.Keyed[struct{}]
}

func newSyncBudgets() syncBudgets {
	return syncBudgets{
		ip:     budget.New[string](syncIPBurst, syncIPEvery),
		global: budget.New[struct{}](syncGlobalBurst, syncGlobalEvery),
	}
}

// syncRefused takes a token for one sync request from the remote IP's and
// the global budget. Over budget it answers the stream with "rate
// limited" and returns true; the handler then stops (issue 11: the
// handler lives in sync.go and calls it first).
func (s *Service) syncRefused(st network.Stream) bool {
	b := &s.budgets
	now := s.now()
	ip := budget.IPKey(st.Conn().RemoteMultiaddr())
	if (ip == "" || b.ip.Allow(ip, now)) && b.global.Allow(struct{}{}, now) {
		return false
	}
	st.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := wire.WriteFrame(st, &wirepb.RoomSyncResponse{Error: "rate limited"}); err != nil {
		st.Reset()
	}
	return true
}
