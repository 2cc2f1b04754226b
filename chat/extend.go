package chat

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// PayloadHandler receives, inside the transaction that commits the frame
// carrying it, a payload this package does not handle itself (room invites,
// sender keys, rosters). Whatever it writes with tx commits atomically with
// the ratchet step; it must not block.
type PayloadHandler func(ctx context.Context, tx *sql.Tx, from peer.ID, p *wirepb.Payload)

// SetRooms installs the room service: '#room' conversations are served by r
// and payloads other than text, receipts and resets go to h. Call it before Run.
func (s *Service) SetRooms(r Rooms, h PayloadHandler) {
	s.rooms = r
	s.onPayload = h
}

// SendPayload queues a payload for a contact over the end-to-end session,
// with the same durability as a text message. With tx non-nil the payload
// is queued inside the caller's transaction; delivery starts once it commits
// (call Kick after commit).
func (s *Service) SendPayload(ctx context.Context, tx *sql.Tx, to peer.ID, p *wirepb.Payload) error {
	if p.Version == 0 {
		p.Version = 1
	}
	payload, err := proto.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode payload: %w", err)
	}
	if tx != nil {
		return enqueue(ctx, tx, to, newID(), payload, s.now())
	}
	if err := s.db.Tx(ctx, func(tx *sql.Tx) error { return enqueue(ctx, tx, to, newID(), payload, s.now()) }); err != nil {
		return err
	}
	s.Kick(to)
	return nil
}

// Publish sends an event to every subscriber (`parley watch`, the TUI).
func (s *Service) Publish(ev apitype.Event) { s.events.publish(ev) }

// Host returns the libp2p host.
func (s *Service) Host() host.Host { return s.host }

// DB returns the node's database.
func (s *Service) DB() *store.DB { return s.db }

// ContactName returns the contact name of p, or "" if p is not a contact.
func (s *Service) ContactName(ctx context.Context, p peer.ID) string {
	c, err := s.contactByID(ctx, p)
	if err != nil {
		return ""
	}
	return c.Name
}
