package chat

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// SetMailboxListHandler routes MailboxList payloads to h (chat/mailbox) and
// every other payload to the handler installed before it. Call it after
// SetRooms and before Run.
func (s *Service) SetMailboxListHandler(h PayloadHandler) {
	next := s.onPayload
	s.onPayload = func(ctx context.Context, tx *sql.Tx, from peer.ID, p *wirepb.Payload) {
		if p.GetMailboxes() != nil {
			h(ctx, tx, from, p)
			return
		}
		if next != nil {
			next(ctx, tx, from, p)
		}
	}
}

// maxPendingFrames bounds what PendingFrames returns.
const maxPendingFrames = 4096

// PendingFrames returns, in queue order, the frames for p that are already
// encrypted and still wait for a direct ack (at most 4096). The mailbox
// client deposits all of them, not only the first batch the deliverer
// hands to Deposit.
func (s *Service) PendingFrames(ctx context.Context, p peer.ID) ([]OutFrame, error) {
	rows, err := s.db.Query(ctx, nil, "SELECT frame_id, envelope FROM outbox WHERE peer_id = ? AND envelope IS NOT NULL ORDER BY n LIMIT ?",
		str(p), maxPendingFrames)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []OutFrame
	for rows.Next() {
		var f OutFrame
		if err := rows.Scan(&f.ID, &f.Envelope); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}
