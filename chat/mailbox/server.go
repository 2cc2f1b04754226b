package mailbox

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/internal/budget"
)

// Limits are a mailbox's quotas. The zero value of a field means its
// default.
type Limits struct {
	// TTL is how long an item is kept if nobody deletes it (default 14
	// days), and how long a recipient's tag registration lasts.
	TTL time.Duration
	// TagItems and TagBytes bound what may be deposited under one
	// recipient tag (one sender-recipient pair, one UTC day; defaults 1000
	// items, 16 MiB). Depositors are anonymous, so the quota follows the
	// tag, not the depositor. Deleting items does not give quota back: the
	// count is of deposits, so deposit-delete cycles cannot flood.
	TagItems int
	TagBytes int64
	// TotalItems and TotalBytes bound everything stored (defaults 100,000
	// items, 1 GiB).
	TotalItems int
	TotalBytes int64
	// RequestBurst and RequestEvery are the request budget (one request
	// per stream) of each peer and of each IP address (an IPv6 /64): a
	// burst of RequestBurst, one more every RequestEvery (defaults 256
	// and 20ms, 50/s). All peers together get 8 times that. A request
	// over budget is answered RETRY_LATER before it is read or touches
	// the database. Depositors are throwaway identities, so the per-IP
	// budget is the one that bounds a flood of deposits.
	RequestBurst int
	RequestEvery time.Duration
}

// Defaults of Limits.
const (
	DefaultTTL        = 14 * 24 * time.Hour
	DefaultTagItems   = 1000
	DefaultTagBytes   = 16 << 20
	DefaultTotalItems = 100_000
	DefaultTotalBytes = 1 << 30
	DefaultReqBurst   = 256
	DefaultReqEvery   = 20 * time.Millisecond
)

func (l Limits) withDefaults() Limits {
	if l.TTL <= 0 {
		l.TTL = DefaultTTL
	}
	if l.TagItems <= 0 {
		l.TagItems = DefaultTagItems
	}
	if l.TagBytes <= 0 {
		l.TagBytes = DefaultTagBytes
	}
	if l.TotalItems <= 0 {
		l.TotalItems = DefaultTotalItems
	}
	if l.TotalBytes <= 0 {
		l.TotalBytes = DefaultTotalBytes
	}
	if l.RequestBurst <= 0 {
		l.RequestBurst = DefaultReqBurst
	}
	if l.RequestEvery <= 0 {
		l.RequestEvery = DefaultReqEvery
	}
	return l
}

func (l Limits) ttlDays() int64 { return int64((l.TTL + 24*time.Hour - 1) / (24 * time.Hour)) }

// responseBudget keeps a Fetch response under wire.MaxMailboxResponse with
// room for the protobuf framing of each item.
const responseBudget = wire.MaxMailboxResponse - 8<<10

// server answers /parley/mailbox/1 from the node's database. It stores for
// each item a random id, the tag, the blob, its digest and the time; it
// never learns who deposited it, since depositors connect under throwaway
// identities. Quota usage is counted per HMAC of the tag under a key kept
// in the database (meta mailbox.usage_key) and per day, in a table that no
// item refers to.
type server struct {
	host   host.Host
	db     *store.DB
	log    *slog.Logger
	now    func() time.Time
	limits atomic.Pointer[Limits]
	// allow decides who may fetch and delete, and whose fetches register
	// tags; nil allows every peer that can connect and accepts deposits
	// under any tag (a bootstrap node on a private network). When it is
	// set (a user node serving its contacts), deposits are accepted only
	// under registered tags.
	allow    func(ctx context.Context, p peer.ID) bool
	usageKey []byte
	on       atomic.Bool
	// gate is the request budget (Limits.RequestBurst), set by start.
	gate atomic.Pointer[budget.Gate]
	// onStream, when set (tests), sees the remote peer of every stream.
	onStream atomic.Pointer[func(peer.ID)]
}

func (s *server) loadKey(ctx context.Context) error {
	v, ok, err := s.db.GetMeta(ctx, "mailbox.usage_key")
	if err != nil {
		return err
	}
	if ok {
		if s.usageKey, err = hex.DecodeString(v); err == nil && len(s.usageKey) == 32 {
			return nil
		}
	}
	s.usageKey = make([]byte, 32)
	rand.Read(s.usageKey)
	return s.db.SetMeta(ctx, "mailbox.usage_key", hex.EncodeToString(s.usageKey))
}

// start offers the protocol; stop withdraws it.
func (s *server) start(ctx context.Context) {
	if s.on.Swap(true) {
		return
	}
	if s.gate.Load() == nil {
		lim := s.limits.Load()
		s.gate.Store(budget.NewGate(lim.RequestBurst, lim.RequestEvery, 1, 8))
	}
	s.host.SetStreamHandler(wire.ProtocolMailbox, func(st network.Stream) { s.handle(ctx, st) })
}

func (s *server) stop() {
	if s.on.Swap(false) {
		s.host.RemoveStreamHandler(wire.ProtocolMailbox)
	}
}

func (s *server) handle(ctx context.Context, st network.Stream) {
	defer st.Close()
	remote := st.Conn().RemotePeer()
	if f := s.onStream.Load(); f != nil {
		(*f)(remote)
	}
	var resp *wirepb.MailboxResponse
	if over := s.gate.Load().Allow(string(remote), budget.IPKey(st.Conn().RemoteMultiaddr()), s.now()); over != "" {
		// Refused unread; logged at debug level, so a flood does not
		// also flood the log.
		resp = refuse(wirepb.MailboxStatus_MAILBOX_STATUS_RETRY_LATER, "busy: over the %s request budget; retry later", over)
		s.log.Debug("mailbox request over budget", "peer", remote, "budget", over)
	} else {
		st.SetReadDeadline(time.Now().Add(wire.ReadTimeout))
		resp = s.serve(ctx, remote, st)
	}
	if resp.Status != wirepb.MailboxStatus_MAILBOX_STATUS_OK && resp.Status != wirepb.MailboxStatus_MAILBOX_STATUS_RETRY_LATER {
		s.log.Info("mailbox request refused", "peer", remote, "status", resp.Status.String(), "reason", resp.Error)
	}
	st.SetWriteDeadline(time.Now().Add(wire.WriteTimeout))
	if err := wire.WriteFrame(st, resp); err != nil {
		st.Reset()
	}
}

func refuse(status wirepb.MailboxStatus, format string, args ...any) *wirepb.MailboxResponse {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > wire.MaxReasonSize {
		msg = msg[:wire.MaxReasonSize]
	}
	return &wirepb.MailboxResponse{Status: status, Error: strings.ToValidUTF8(msg, "?")}
}

func (s *server) serve(ctx context.Context, remote peer.ID, st io.Reader) *wirepb.MailboxResponse {
	var req wirepb.MailboxRequest
	if err := wire.ReadFrame(st, wire.MaxMailboxRequest, &req); err != nil {
		switch {
		case errors.Is(err, wire.ErrFrameTooLarge):
			return refuse(wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "request too large: the limit is %d bytes", wire.MaxMailboxRequest)
		case errors.Is(err, wire.ErrMalformed):
			return refuse(wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "malformed request")
		}
		return refuse(wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "unreadable request: %v", err)
	}
	if err := wire.ValidateMailboxRequest(&req); err != nil {
		if errors.Is(err, wire.ErrUnsupportedVersion) {
			return refuse(wirepb.MailboxStatus_MAILBOX_STATUS_UNSUPPORTED, "%v", err)
		}
		return refuse(wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "invalid request: %v", err)
	}
	if _, dep := req.Op.(*wirepb.MailboxRequest_Deposit); !dep && s.allow != nil && !s.allow(ctx, remote) {
		return refuse(wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "not served: this mailbox serves only its owner's contacts")
	}
	var resp *wirepb.MailboxResponse
	var err error
	switch op := req.Op.(type) {
	case *wirepb.MailboxRequest_Deposit:
		resp, err = s.deposit(ctx, op.Deposit)
	case *wirepb.MailboxRequest_Fetch:
		resp, err = s.fetch(ctx, op.Fetch)
	case *wirepb.MailboxRequest_Delete:
		resp, err = s.delete(ctx, op.Delete)
	}
	if err != nil {
		s.log.Error("mailbox storage error", "err", err)
		return refuse(wirepb.MailboxStatus_MAILBOX_STATUS_RETRY_LATER, "mailbox storage busy; retry later")
	}
	return resp
}

var okResponse = &wirepb.MailboxResponse{Status: wirepb.MailboxStatus_MAILBOX_STATUS_OK}

// who is the quota key of a tag.
func (s *server) who(tag []byte) []byte {
	m := hmac.New(sha256.New, s.usageKey)
	m.Write(tag)
	return m.Sum(nil)
}

// deposit stores a blob under a tag. The depositor is anonymous: on a
// contacts-only mailbox the tag must have been registered by a served
// recipient (see register), elsewhere any tag is taken; either way within
// the per-tag quota and the global caps.
func (s *server) deposit(ctx context.Context, d *wirepb.Deposit) (*wirepb.MailboxResponse, error) {
	lim := s.limits.Load()
	now := s.now()
	digest := sha256.Sum256(d.Blob)
	who := s.who(d.Tag)
	day := DayOf(now)
	var resp *wirepb.MailboxResponse
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var one int
		if s.allow != nil {
			err := s.db.QueryRow(ctx, tx, "SELECT 1 FROM mailbox_tags WHERE tag = ? AND until >= ?", d.Tag, int64(day)).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				resp = refuse(wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED,
					"unregistered tag: this mailbox keeps deposits only for its owner's contacts, under tags they registered")
				return nil
			}
			if err != nil {
				return err
			}
		}
		err := s.db.QueryRow(ctx, tx, `SELECT 1 FROM mailbox_items WHERE digest = ?
			UNION ALL SELECT 1 FROM mailbox_gone WHERE digest = ?`, digest[:], digest[:]).Scan(&one)
		if err == nil {
			resp = okResponse // already stored, or already delivered: idempotent
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var items, bytes int64
		if err := s.db.QueryRow(ctx, tx, `SELECT coalesce(sum(items), 0), coalesce(sum(bytes), 0) FROM mailbox_usage
			WHERE who = ? AND day > ?`, who, int64(day)-lim.ttlDays()).Scan(&items, &bytes); err != nil {
			return err
		}
		if items+1 > int64(lim.TagItems) || bytes+int64(len(d.Blob)) > lim.TagBytes {
			resp = refuse(wirepb.MailboxStatus_MAILBOX_STATUS_QUOTA_EXCEEDED,
				"quota exceeded: each recipient tag may receive %d items or %d bytes here; deposit elsewhere or retry later",
				lim.TagItems, lim.TagBytes)
			return nil
		}
		var total, totalBytes int64
		if err := s.db.QueryRow(ctx, tx, "SELECT count(*), coalesce(sum(length(blob)), 0) FROM mailbox_items").Scan(&total, &totalBytes); err != nil {
			return err
		}
		if total+1 > int64(lim.TotalItems) || totalBytes+int64(len(d.Blob)) > lim.TotalBytes {
			resp = refuse(wirepb.MailboxStatus_MAILBOX_STATUS_QUOTA_EXCEEDED, "mailbox full; deposit elsewhere or retry later")
			return nil
		}
		id := make([]byte, wire.IDSize)
		rand.Read(id)
		if _, err := s.db.Exec(ctx, tx, "INSERT INTO mailbox_items(id, tag, digest, blob, received_at) VALUES(?, ?, ?, ?, ?)",
			id, d.Tag, digest[:], d.Blob, now.UnixMilli()); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO mailbox_usage(who, day, items, bytes) VALUES(?, ?, 1, ?)
			ON CONFLICT(who, day) DO UPDATE SET items = items + 1, bytes = bytes + excluded.bytes`, who, int64(day), len(d.Blob)); err != nil {
			return err
		}
		resp = okResponse
		return nil
	})
	return resp, err
}

// fetch returns the items under the tags that the fetch keys name. A
// request that presents a stored tag itself instead of its preimage is
// refused: only the recipient (and the one contact sharing the secret)
// knows the preimages. On a contacts-only mailbox a fetch also registers
// the tags of its keys (register).
func (s *server) fetch(ctx context.Context, f *wirepb.Fetch) (*wirepb.MailboxResponse, error) {
	limit := int(f.Limit)
	if limit <= 0 || limit > wire.MaxFetchItems {
		limit = wire.MaxFetchItems
	}
	args := make([]any, 0, len(f.Tags))
	raw := make([]any, 0, len(f.Tags))
	for _, k := range f.Tags {
		t := TagOf(k)
		args = append(args, t[:])
		raw = append(raw, k)
	}
	in := "(" + strings.Repeat("?, ", len(args)-1) + "?)"
	var one int
	err := s.db.QueryRow(ctx, nil, "SELECT 1 FROM mailbox_items WHERE tag IN "+in+" LIMIT 1", raw...).Scan(&one)
	if err == nil {
		return refuse(wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED,
			"fetch refused: present the fetch keys (tag preimages) of the recipient, not the tags"), nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if s.allow != nil {
		if err := s.register(ctx, args); err != nil {
			return nil, err
		}
	}
	rows, err := s.db.Query(ctx, nil, "SELECT id, tag, blob, received_at FROM mailbox_items WHERE tag IN "+in+
		" ORDER BY received_at, rowid LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	resp := &wirepb.MailboxResponse{Status: wirepb.MailboxStatus_MAILBOX_STATUS_OK}
	size := 0
	for rows.Next() {
		it := new(wirepb.MailboxItem)
		if err := rows.Scan(&it.Id, &it.Tag, &it.Blob, &it.ReceivedAtMs); err != nil {
			return nil, err
		}
		size += len(it.Blob) + 128
		if size > responseBudget && len(resp.Items) > 0 {
			break
		}
		resp.Items = append(resp.Items, it)
	}
	return resp, rows.Err()
}

// register lets deposits in under tags, until TTL days from today. Only
// served recipients reach it (fetch after allow), over their own
// authenticated connection, and only by presenting preimages, so a
// registered tag is one that a recipient can fetch. Rows hold the tag and
// a day, nothing that groups the tags of one recipient.
func (s *server) register(ctx context.Context, tags []any) error {
	until := int64(DayOf(s.now())) + s.limits.Load().ttlDays()
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, t := range tags {
			if _, err := s.db.Exec(ctx, tx, `INSERT INTO mailbox_tags(tag, until) VALUES(?, ?)
				ON CONFLICT(tag) DO UPDATE SET until = max(until, excluded.until)`, t, until); err != nil {
				return err
			}
		}
		return nil
	})
}

// delete removes items by id. Ids are random 128-bit capabilities handed
// only to fetchers, so knowing one proves the item was fetched. The digest
// of each deleted item is kept until the item would have expired, so a
// sender that deposits the same frame again is answered OK and nothing is
// stored twice.
func (s *server) delete(ctx context.Context, d *wirepb.Delete) (*wirepb.MailboxResponse, error) {
	ttl := s.limits.Load().TTL
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, id := range d.Ids {
			var digest []byte
			var at int64
			err := s.db.QueryRow(ctx, tx, "DELETE FROM mailbox_items WHERE id = ? RETURNING digest, received_at", id).Scan(&digest, &at)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if _, err := s.db.Exec(ctx, tx, "INSERT OR IGNORE INTO mailbox_gone(digest, until) VALUES(?, ?)",
				digest, at+ttl.Milliseconds()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return okResponse, nil
}

// expire drops items older than TTL, stale tombstones, expired tag
// registrations and usage rows that left the quota window.
func (s *server) expire(ctx context.Context) error {
	lim := s.limits.Load()
	now := s.now()
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.db.Exec(ctx, tx, "DELETE FROM mailbox_items WHERE received_at < ?", now.Add(-lim.TTL).UnixMilli()); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, "DELETE FROM mailbox_gone WHERE until < ?", now.UnixMilli()); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, "DELETE FROM mailbox_tags WHERE until < ?", int64(DayOf(now))); err != nil {
			return err
		}
		_, err := s.db.Exec(ctx, tx, "DELETE FROM mailbox_usage WHERE day <= ?", int64(DayOf(now))-lim.ttlDays())
		return err
	})
}

// stored reports what the mailbox holds.
func (s *server) stored(ctx context.Context) (items int, bytes int64, err error) {
	err = s.db.QueryRow(ctx, nil, "SELECT count(*), coalesce(sum(length(blob)), 0) FROM mailbox_items").Scan(&items, &bytes)
	return items, bytes, err
}
