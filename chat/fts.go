package chat

import (
	"context"
	"database/sql"
	"strconv"
	"time"
)

// ftsInterval is how often new messages are added to the full-text index.
// Indexing in batches keeps FTS5's per-transaction segment flush off the
// send and receive paths; Search indexes first, so it never misses a
// message, and the interval only sets how many messages share a segment
// (at a second, a busy room made a segment, and its merges, of a few
// messages every second).
const ftsInterval = 5 * time.Second

// indexMessages adds every message not yet indexed to messages_fts.
func (s *Service) indexMessages(ctx context.Context) error {
	// A read first: on an idle node there is nothing to index, and a write
	// transaction every second would only take the write lock.
	var pending bool
	err := s.db.QueryRow(ctx, nil, `SELECT coalesce(max(n), 0) > coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'fts_indexed'), 0) FROM messages`).Scan(&pending)
	if err != nil || !pending {
		return err
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		var done string
		if err := s.db.QueryRow(ctx, tx, "SELECT value FROM meta WHERE key = 'fts_indexed'").Scan(&done); err != nil {
			return err
		}
		upto, err := strconv.ParseInt(done, 10, 64)
		if err != nil {
			upto = 0
		}
		var last sql.NullInt64
		if err := s.db.QueryRow(ctx, tx, "SELECT max(n) FROM messages").Scan(&last); err != nil {
			return err
		}
		if !last.Valid || last.Int64 <= upto {
			return nil
		}
		if _, err := s.db.Exec(ctx, tx, "INSERT INTO messages_fts(rowid, body) SELECT n, body FROM messages WHERE n > ? AND n <= ?", upto, last.Int64); err != nil {
			return err
		}
		_, err = s.db.Exec(ctx, tx, "UPDATE meta SET value = ? WHERE key = 'fts_indexed'", strconv.FormatInt(last.Int64, 10))
		return err
	})
}
