package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Retention of the tables that would otherwise only grow. The mailbox
// tables (mailbox_items, mailbox_gone, mailbox_usage, mailbox_tags,
// mailbox_sent) are expired by chat/mailbox itself, after its TTL;
// messages, contacts and rooms are the user's own data and are kept.
const (
	// SeenFramesRetention is how long a received frame id is remembered
	// so that a retransmission is acked as a duplicate instead of read
	// again. It is far longer than a mailbox keeps an item (14 days) and
	// than a sender plausibly retries a frame whose ack it lost; a frame
	// retried later than that meets the ratchet again (its key is spent,
	// so it is refused and the sender resends it under a new session),
	// and the text it carries is still stored once: messages are unique
	// by id.
	SeenFramesRetention = 90 * 24 * time.Hour
	// AddrBookRetention is how long a peer that is not a contact stays in
	// the address book after it was last seen. Contacts stay as long as
	// they are contacts: restarts reconnect them from here.
	AddrBookRetention = 30 * 24 * time.Hour
	// MaxAddrBook bounds the address book's peers that are not contacts
	// (on the public DHT a node identifies thousands); beyond it the ones
	// seen longest ago go first.
	MaxAddrBook = 4096
)

// PruneStats says what Prune removed.
type PruneStats struct {
	SeenFrames int64
	AddrBook   int64
}

// Prune applies the retention rules above as of now.
func (db *DB) Prune(ctx context.Context, now time.Time) (PruneStats, error) {
	var st PruneStats
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM seen_frames WHERE at < ?", now.Add(-SeenFramesRetention).UnixMilli())
		if err != nil {
			return err
		}
		st.SeenFrames, _ = res.RowsAffected()
		res, err = tx.ExecContext(ctx, `DELETE FROM addrbook WHERE peer_id NOT IN (SELECT peer_id FROM contacts)
			AND (last_seen < ? OR peer_id IN (
				SELECT peer_id FROM addrbook WHERE peer_id NOT IN (SELECT peer_id FROM contacts)
				ORDER BY last_seen DESC LIMIT -1 OFFSET ?))`,
			now.Add(-AddrBookRetention).UnixMilli(), MaxAddrBook)
		if err != nil {
			return err
		}
		st.AddrBook, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("prune: %w", err)
	}
	return st, nil
}
