package peer

import (
	"context"
	"log/slog"
	"time"

	"github.com/parley-im/parley/chat/store"
)

// retentionEvery is how often the node prunes its tables.
const retentionEvery = time.Hour

// retention prunes the tables that would otherwise only grow (store.Prune:
// seen frame ids after 90 days, strangers in the address book after 30
// days or beyond 4096), at start and every hour.
type retention struct {
	db  *store.DB
	log *slog.Logger
}

func (r retention) Run(ctx context.Context) error {
	t := time.NewTicker(retentionEvery)
	defer t.Stop()
	for {
		st, err := r.db.Prune(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("pruning the database failed", "err", err)
		case st.SeenFrames+st.AddrBook > 0:
			r.log.Info("pruned the database", "seen_frames", st.SeenFrames, "addrbook", st.AddrBook)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
