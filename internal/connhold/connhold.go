// Package connhold keeps the connections of peers a task needs out of the
// connection manager's reach while the task lasts: a room join waiting for
// its welcome, an admin serving one, a 1:1 exchange under way.
//
// A user node trims its connections to a few (peer.LowWater) once their
// grace period has passed; a connection a task still needs is protected
// (connmgr.ConnManager.Protect) under the holder's tag, until the task
// releases it or, for a hold with a duration, until that long after the
// last Hold of the peer. One timer serves all of a holder's deadlines.
package connhold

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Holds protects peers from a connection manager under one tag. The zero
// value is not usable; use New.
type Holds struct {
	cm  connmgr.ConnManager
	tag string

	mu     sync.Mutex
	until  map[peer.ID]time.Time // zero: until Release
	timer  *time.Timer           // fires at the earliest deadline; nil if none
	at     time.Time             // when timer fires
	closed bool
}

// New returns the holds of cm under tag.
func New(cm connmgr.ConnManager, tag string) *Holds {
	return &Holds{cm: cm, tag: tag, until: make(map[peer.ID]time.Time)}
}

// Hold protects p for d after now (extending an earlier hold with a
// duration), or until Release if d is 0.
func (h *Holds) Hold(p peer.ID, d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	prev, held := h.until[p]
	var until time.Time
	switch {
	case held && prev.IsZero():
		return // held until Release
	case d > 0:
		until = time.Now().Add(d)
	}
	h.until[p] = until
	if !held {
		h.cm.Protect(p, h.tag)
	}
	if !until.IsZero() {
		h.armLocked(until)
	}
}

// Release ends the hold of p, if any.
func (h *Holds) Release(p peer.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, held := h.until[p]; held {
		delete(h.until, p)
		h.cm.Unprotect(p, h.tag)
	}
}

// Held reports whether p is held.
func (h *Holds) Held(p peer.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, held := h.until[p]
	return held
}

// Close releases every hold and stops the timer; later Holds do nothing.
func (h *Holds) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	for p := range h.until {
		h.cm.Unprotect(p, h.tag)
	}
	clear(h.until)
}

// armLocked makes the timer fire at t at the latest.
func (h *Holds) armLocked(t time.Time) {
	if h.timer != nil && !h.at.After(t) {
		return
	}
	if h.timer != nil {
		h.timer.Stop()
	}
	h.at = t
	h.timer = time.AfterFunc(time.Until(t), h.expire)
}

// expire releases the holds whose deadline has passed and arms the timer
// for the next one.
func (h *Holds) expire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.timer = nil
	now := time.Now()
	var next time.Time
	for p, t := range h.until {
		switch {
		case t.IsZero():
		case !t.After(now):
			delete(h.until, p)
			h.cm.Unprotect(p, h.tag)
		case next.IsZero() || t.Before(next):
			next = t
		}
	}
	if !next.IsZero() {
		h.armLocked(next)
	}
}
