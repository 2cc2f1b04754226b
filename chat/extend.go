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
		return s.enqueue(ctx, tx, to, newID(), payload, s.now())
	}
	if err := s.db.Tx(ctx, func(tx *sql.Tx) error { return s.enqueue(ctx, tx, to, newID(), payload, s.now()) }); err != nil {
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

// Mailbox is the offline-delivery client (chat/mailbox): when a peer cannot
// be reached, the deliverer hands it the frames already encrypted for that
// peer. The frames stay in the outbox until the peer acks them directly, so
// a deposit is an extra path, never the only copy; Deposit must be
// idempotent per frame id.
type Mailbox interface {
	Deposit(ctx context.Context, to peer.ID, frames []OutFrame) error
}

// OutFrame is an encrypted frame waiting in the outbox.
type OutFrame struct {
	ID       []byte // 16-byte frame id
	Envelope []byte // E2E envelope (chat/e2e)
}

// SetMailbox installs the offline-delivery client; call it before Run.
func (s *Service) SetMailbox(m Mailbox) { s.mailbox = m }

// ReceiveFrames commits frames from p that arrived by another path than a
// direct stream (a mailbox) exactly as if p had sent them directly:
// duplicates are recognised by frame id, each frame gets an ack status, and
// receipts go back to p inside the ratchet.
func (s *Service) ReceiveFrames(ctx context.Context, p peer.ID, frames []*wirepb.DMMessage) []*wirepb.DMAck {
	batch := make([]*wirepb.DMFrame, len(frames))
	for i, m := range frames {
		batch[i] = &wirepb.DMFrame{Body: &wirepb.DMFrame_Message{Message: m}}
	}
	return s.receiveBatch(ctx, source{peer: p}, batch)
}

// depositOffline gives the frames queued for an unreachable p to the
// mailbox, if p's session exists (a contact added from a link has one at
// once, from the link's bundle; one added by bare peer ID needs p online
// once, to fetch its prekey bundle).
func (s *Service) depositOffline(ctx context.Context, p peer.ID) {
	s.mu.Lock()
	ch, err := s.channelLocked(ctx, p)
	has := err == nil && ch.HasSession()
	s.mu.Unlock()
	if !has {
		return
	}
	if err := s.encryptQueued(ctx, p); err != nil {
		s.log.Warn("encrypt for mailbox", "peer", p, "err", err)
		return
	}
	// Every waiting frame, not only the next batch the deliverer would send.
	out, err := s.PendingFrames(ctx, p)
	if err != nil || len(out) == 0 {
		return
	}
	if err := s.mailbox.Deposit(ctx, p, out); err != nil {
		s.log.Info("mailbox deposit failed", "peer", p, "err", err)
	}
}

// Stats counts delivery outcomes since the service started.
type Stats struct {
	Acked      uint64 // frames the peer committed (OK or DUPLICATE)
	RetryLater uint64 // batches the peer could not commit
	Rejected   uint64 // frames the peer rejected (could not decrypt, or refused their payload)
}

// Stats returns the delivery counters.
func (s *Service) Stats() Stats {
	return Stats{Acked: s.stats.acked.Load(), RetryLater: s.stats.retryLater.Load(), Rejected: s.stats.rejected.Load()}
}
