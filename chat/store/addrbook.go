package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// maxBookAddrs bounds how many addresses are remembered per peer.
const maxBookAddrs = 16

// SeenPeer is an address book entry.
type SeenPeer struct {
	Info     peer.AddrInfo
	LastSeen time.Time
}

// RememberPeer records where a peer was seen, replacing older addresses.
func (db *DB) RememberPeer(ctx context.Context, info peer.AddrInfo, seen time.Time) error {
	if len(info.Addrs) == 0 {
		return nil
	}
	addrs := info.Addrs
	if len(addrs) > maxBookAddrs {
		addrs = addrs[:maxBookAddrs]
	}
	strs := make([]string, len(addrs))
	for i, a := range addrs {
		strs[i] = a.String()
	}
	_, err := db.sql.ExecContext(ctx, `INSERT INTO addrbook(peer_id, addrs, last_seen) VALUES(?, ?, ?)
		ON CONFLICT(peer_id) DO UPDATE SET addrs = excluded.addrs, last_seen = excluded.last_seen`,
		info.ID.String(), strings.Join(strs, "\n"), seen.UnixMilli())
	if err != nil {
		return fmt.Errorf("remember peer %s: %w", info.ID, err)
	}
	return nil
}

// LookupPeer returns the address book entry for id; ok is false if unknown.
func (db *DB) LookupPeer(ctx context.Context, id peer.ID) (SeenPeer, bool, error) {
	all, err := db.queryPeers(ctx, "WHERE peer_id = ?", id.String())
	if err != nil || len(all) == 0 {
		return SeenPeer{}, false, err
	}
	return all[0], true, nil
}

// RecentPeers returns up to limit peers, most recently seen first.
func (db *DB) RecentPeers(ctx context.Context, limit int) ([]SeenPeer, error) {
	return db.queryPeers(ctx, "ORDER BY last_seen DESC LIMIT ?", limit)
}

func (db *DB) queryPeers(ctx context.Context, tail string, args ...any) ([]SeenPeer, error) {
	rows, err := db.sql.QueryContext(ctx, "SELECT peer_id, addrs, last_seen FROM addrbook "+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("read address book: %w", err)
	}
	defer rows.Close()
	var out []SeenPeer
	for rows.Next() {
		var id, addrs string
		var seen int64
		if err := rows.Scan(&id, &addrs, &seen); err != nil {
			return nil, fmt.Errorf("read address book: %w", err)
		}
		pid, err := peer.Decode(id)
		if err != nil {
			continue // a row we cannot parse is skipped, not fatal
		}
		sp := SeenPeer{Info: peer.AddrInfo{ID: pid}, LastSeen: time.UnixMilli(seen)}
		for _, s := range strings.Split(addrs, "\n") {
			if a, err := ma.NewMultiaddr(s); err == nil {
				sp.Info.Addrs = append(sp.Info.Addrs, a)
			}
		}
		out = append(out, sp)
	}
	return out, rows.Err()
}

// Remembered looks a peer up in the address book, in the shape
// discovery.Reach takes.
func (db *DB) Remembered(ctx context.Context, id peer.ID) (peer.AddrInfo, bool) {
	sp, ok, err := db.LookupPeer(ctx, id)
	if err != nil || !ok {
		return peer.AddrInfo{}, false
	}
	return sp.Info, true
}
