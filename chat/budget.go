package chat

import (
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Budgets of the /parley/dm/1 handler. Untrusted input is priced before it
// is paid for:
//
//   - a blocked peer's stream is reset before a byte is read;
//   - a peer (or, for strangers, an address) whose failure budget is spent
//     has its streams reset before a byte is read, until it refills;
//   - a peer has at most dmStreamsPerPeer streams served at once, and its
//     batches are handled one at a time (its lane);
//   - every frame is checked for size, shape and duplication before any
//     crypto; a frame that then fails to authenticate costs its sender one
//     token of its failure budget, and a sender out of tokens gets
//     RETRY_LATER for the rest of the batch without any crypto;
//   - a stranger (not a contact) also spends one token per frame from a
//     small frame budget, per peer ID and per address, since peer IDs are
//     free to make;
//   - the crypto itself runs on a copy of the peer's session outside the
//     service's lock and outside any transaction; only frames that
//     authenticated reach the lock, to be committed;
//   - suspects (strangers, and peers that failed recently) decrypt one at
//     a time across the node: a flood of them holds at most one core, and
//     contacts in good standing never wait for them.
const (
	// A peer may fail to authenticate dmFailBurst frames at once and one
	// more every dmFailEvery. An honest sender fails only after a lost
	// session, and then restarts it: one failure per restart.
	dmFailBurst = 4
	dmFailEvery = 5 * time.Second
	// Strangers' failures are also counted per address.
	dmFailIPBurst = 64
	dmFailIPEvery = time.Second
	// A stranger may send dmStrangerBurst frames at once and one more
	// every dmStrangerEvery, per peer ID; per address, four times that.
	dmStrangerBurst = 32
	dmStrangerEvery = time.Second
	// dmStreamsPerPeer bounds the dm streams of one peer served at once.
	dmStreamsPerPeer = 4
)

// dmBudget holds the dm handler's token buckets and lanes.
type dmBudget struct {
	failPeer     *Limiter // failed frames per peer ID
	failIP       *Limiter // failed frames per address, strangers only
	strangerPeer *Limiter // frames per peer ID, strangers only
	strangerIP   *Limiter // frames per address, strangers only

	// suspects is a one-slot semaphore for suspects' trial decryption.
	suspects chan struct{}

	mu    sync.Mutex
	lanes map[peer.ID]*lane // guarded by mu
}

// lane serialises the batches of one peer: its session state is decrypted
// into and committed in order, whichever stream or path (a mailbox) the
// frames came by.
type lane struct {
	mu      sync.Mutex
	users   int // holders and waiters; guarded by dmBudget.mu
	streams int // dm streams being served; guarded by dmBudget.mu
}

func newDMBudget() *dmBudget {
	return &dmBudget{
		failPeer:     NewLimiter(dmFailBurst, dmFailEvery),
		failIP:       NewLimiter(dmFailIPBurst, dmFailIPEvery),
		strangerPeer: NewLimiter(dmStrangerBurst, dmStrangerEvery),
		strangerIP:   NewLimiter(4*dmStrangerBurst, dmStrangerEvery/4),
		suspects:     make(chan struct{}, 1),
		lanes:        make(map[peer.ID]*lane),
	}
}

// suspect reports whether src's frames are decrypted in the suspects'
// single slot: a stranger, or a peer that failed to authenticate a frame
// in the last dmFailBurst*dmFailEvery.
func (b *dmBudget) suspect(src source, contact bool, now time.Time) bool {
	return !contact || !b.failPeer.Full(string(src.peer), now)
}

// source is where a batch of frames came from: the peer, and the address
// key of its connection ("" when the frames came through a mailbox).
type source struct {
	peer peer.ID
	ip   string
}

// admit reports whether a new dm stream from src may be served at all,
// and if so counts it; the caller calls leave when the stream ends.
func (b *dmBudget) admit(src source, contact bool, now time.Time) bool {
	if !b.failPeer.Has(string(src.peer), now) {
		return false
	}
	if !contact && src.ip != "" && !b.failIP.Has(src.ip, now) {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.laneLocked(src.peer)
	if l.streams >= dmStreamsPerPeer {
		b.releaseLocked(src.peer, l)
		return false
	}
	l.streams++
	return true
}

// leave ends a stream counted by admit.
func (b *dmBudget) leave(p peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.lanes[p]
	l.streams--
	b.releaseLocked(p, l)
}

// enterLane waits for p's lane and returns its release.
func (b *dmBudget) enterLane(p peer.ID) func() {
	b.mu.Lock()
	l := b.laneLocked(p)
	b.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		b.mu.Lock()
		b.releaseLocked(p, l)
		b.mu.Unlock()
	}
}

func (b *dmBudget) laneLocked(p peer.ID) *lane {
	l, ok := b.lanes[p]
	if !ok {
		l = new(lane)
		b.lanes[p] = l
	}
	l.users++
	return l
}

func (b *dmBudget) releaseLocked(p peer.ID, l *lane) {
	l.users--
	if l.users == 0 {
		delete(b.lanes, p)
	}
}

// mayStart reports, without taking tokens, whether src has budget left
// for any frame at all.
func (b *dmBudget) mayStart(src source, contact bool, now time.Time) bool {
	if !b.failPeer.Has(string(src.peer), now) {
		return false
	}
	if contact {
		return true
	}
	if src.ip != "" && (!b.failIP.Has(src.ip, now) || !b.strangerIP.Has(src.ip, now)) {
		return false
	}
	return b.strangerPeer.Has(string(src.peer), now)
}

// mayTry reports whether src may have one more frame decrypted.
func (b *dmBudget) mayTry(src source, contact bool, now time.Time) bool {
	if !b.failPeer.Has(string(src.peer), now) {
		return false
	}
	if contact {
		return true
	}
	if src.ip != "" && (!b.failIP.Has(src.ip, now) || !b.strangerIP.AllowKey(src.ip, now)) {
		return false
	}
	return b.strangerPeer.AllowKey(string(src.peer), now)
}

// failed charges src for a frame that did not authenticate.
func (b *dmBudget) failed(src source, contact bool, now time.Time) {
	b.failPeer.Charge(string(src.peer), now)
	if !contact && src.ip != "" {
		b.failIP.Charge(src.ip, now)
	}
}

// addrKey is the budget key of a connection's remote address: the IPv4
// address, or the /64 of an IPv6 one (one host's share). A relayed
// connection is keyed by its relay's address.
func addrKey(a ma.Multiaddr) string {
	if a == nil {
		return ""
	}
	if v, err := a.ValueForProtocol(ma.P_IP4); err == nil {
		return v
	}
	v, err := a.ValueForProtocol(ma.P_IP6)
	if err != nil {
		return ""
	}
	ip := net.ParseIP(v)
	if ip == nil {
		return ""
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
