package chat

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/peer/apitype"
)

// MaxLogLimit bounds how many messages one Log or Search call returns.
const MaxLogLimit = 10000

// messageCols and messageFrom select messages with the conversation's
// display name (the contact's name, or '#' and the room's name) and the
// sender's contact name.
const (
	messageCols = "m.n, m.id, m.conv, m.sender, m.outgoing, m.body, m.sent_at, m.seq, m.state, " +
		"coalesce(c.name, (SELECT '#' || r.name FROM rooms r WHERE '#' || lower(hex(r.id)) = m.conv), m.conv), coalesce(cs.name, '')"
	messageFrom = " FROM messages m LEFT JOIN contacts c ON c.peer_id = m.conv LEFT JOIN contacts cs ON cs.peer_id = m.sender"
)

func (s *Service) scanMessages(rows *sql.Rows) ([]apitype.Message, error) {
	defer rows.Close()
	var out []apitype.Message
	for rows.Next() {
		var (
			m        apitype.Message
			n        int64
			id       []byte
			conv     string
			sentAt   int64
			convName string
			fromName string
		)
		if err := rows.Scan(&n, &id, &conv, &m.From, &m.Outgoing, &m.Text, &sentAt, &m.Seq, &m.State, &convName, &fromName); err != nil {
			return nil, err
		}
		m.ID = hex.EncodeToString(id)
		m.Conv = convName
		m.SentAt = time.UnixMilli(sentAt)
		if !m.Outgoing {
			m.FromName = fromName
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (s *Service) messageByID(ctx context.Context, id []byte) (apitype.Message, error) {
	ms, err := s.messagesByIDs(ctx, [][]byte{id})
	if err != nil {
		return apitype.Message{}, err
	}
	if len(ms) == 0 {
		return apitype.Message{}, errors.New("no such message")
	}
	return ms[0], nil
}

// messagesByIDs returns the stored messages with these ids (any order).
func (s *Service) messagesByIDs(ctx context.Context, ids [][]byte) ([]apitype.Message, error) {
	var out []apitype.Message
	for len(ids) > 0 {
		n := min(len(ids), 256)
		args := make([]any, n)
		for i := range n {
			args[i] = ids[i]
		}
		q := "SELECT " + messageCols + messageFrom + " WHERE m.id IN (?" +
			strings.Repeat(",?", n-1) + ")"
		// Not through the statement cache: the text varies with n.
		rows, err := s.db.SQL().QueryContext(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		ms, err := s.scanMessages(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
		ids = ids[n:]
	}
	return out, nil
}

// convKey maps a contact name, peer ID or '#room' to the conv column.
func (s *Service) convKey(ctx context.Context, conv string) (string, error) {
	if strings.HasPrefix(conv, "#") && s.rooms != nil {
		return s.rooms.ConvKey(ctx, conv)
	}
	c, err := s.Resolve(ctx, conv)
	if err == nil {
		return c.ID.String(), nil
	}
	// A message request is readable by its peer ID or handle, and a
	// removed contact's history by its peer ID.
	if id, rerr := s.requestByArg(ctx, conv); rerr == nil {
		return id.String(), nil
	}
	if id, perr := peer.Decode(conv); perr == nil {
		var n int
		if s.db.QueryRow(ctx, nil, "SELECT count(*) FROM (SELECT 1 FROM messages WHERE conv = ? LIMIT 1)", id.String()).Scan(&n) == nil && n > 0 {
			return id.String(), nil
		}
	}
	return "", err
}

// Log returns the last limit messages of a conversation, oldest first, with
// gaps in the peer's sequence numbers marked on the message after each gap.
func (s *Service) Log(ctx context.Context, conv string, limit int) ([]apitype.Message, error) {
	if limit <= 0 || limit > MaxLogLimit {
		limit = MaxLogLimit
	}
	key, err := s.convKey(ctx, conv)
	if err != nil {
		return nil, err
	}
	// Messages are shown in the order they were written (the sender's
	// clock, then arrival), so a message that arrives late (from a mailbox,
	// or retransmitted after a gap) takes its place instead of the end.
	rows, err := s.db.Query(ctx, nil, "SELECT * FROM (SELECT "+messageCols+
		messageFrom+" WHERE m.conv = ? ORDER BY m.sent_at DESC, m.n DESC LIMIT ?) ORDER BY sent_at, n",
		key, limit)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	ms, err := s.scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	markGaps(ms)
	return ms, nil
}

// LogBefore returns up to limit messages of a conversation that come
// before the message with id (in Log's order), oldest first: the page
// before the one a client shows, so it can scroll through the whole
// history.
func (s *Service) LogBefore(ctx context.Context, conv string, id []byte, limit int) ([]apitype.Message, error) {
	if limit <= 0 || limit > MaxLogLimit {
		limit = MaxLogLimit
	}
	key, err := s.convKey(ctx, conv)
	if err != nil {
		return nil, err
	}
	var sentAt, n int64
	err = s.db.QueryRow(ctx, nil, "SELECT sent_at, n FROM messages WHERE id = ? AND conv = ?", id, key).Scan(&sentAt, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("no message %x in %s", id, conv)
	}
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	rows, err := s.db.Query(ctx, nil, "SELECT * FROM (SELECT "+messageCols+
		messageFrom+" WHERE m.conv = ? AND (m.sent_at < ? OR m.sent_at = ? AND m.n < ?) ORDER BY m.sent_at DESC, m.n DESC LIMIT ?) ORDER BY sent_at, n",
		key, sentAt, sentAt, n, limit)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	ms, err := s.scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	markGaps(ms)
	return ms, nil
}

// MessagesSince returns, as "message" events in the order they were
// stored, the messages this node stored after t (at most MaxLogLimit): what
// `parley watch --since` replays before the live events. Each event's Time
// is when the message was stored, so a client can resume from the last
// one it saw.
func (s *Service) MessagesSince(ctx context.Context, t time.Time) ([]apitype.Event, error) {
	rows, err := s.db.SQL().QueryContext(ctx, "SELECT id, received_at FROM messages WHERE received_at > ? ORDER BY received_at, n LIMIT ?", t.UnixMilli(), MaxLogLimit)
	if err != nil {
		return nil, fmt.Errorf("messages since %s: %w", t, err)
	}
	var ids [][]byte
	var times []int64
	for rows.Next() {
		var id []byte
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return nil, err
		}
		ids, times = append(ids, id), append(times, at)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	ms, err := s.messagesByIDs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("messages since %s: %w", t, err)
	}
	byID := make(map[string]*apitype.Message, len(ms))
	for i := range ms {
		byID[ms[i].ID] = &ms[i]
	}
	out := make([]apitype.Event, 0, len(ids))
	for i, id := range ids {
		if m := byID[hex.EncodeToString(id)]; m != nil {
			out = append(out, apitype.Event{Type: "message", Time: time.UnixMilli(times[i]), Message: m})
		}
	}
	return out, nil
}

// markGaps sets Gap on each incoming message whose sequence number skips
// numbers after the next lower one of the same sender in ms: a number is
// missing only if no message of ms carries it, whatever the display order
// (texts written in the same millisecond are shown in arrival order, so a
// late one may follow a higher number).
func markGaps(ms []apitype.Message) {
	seqs := map[string][]uint64{}
	for _, m := range ms {
		if !m.Outgoing && m.Seq != 0 {
			seqs[m.From] = append(seqs[m.From], m.Seq)
		}
	}
	for _, s := range seqs {
		slices.Sort(s)
	}
	for i := range ms {
		m := &ms[i]
		if m.Outgoing || m.Seq == 0 {
			continue
		}
		s := seqs[m.From]
		if j, _ := slices.BinarySearch(s, m.Seq); j > 0 && m.Seq > s[j-1]+1 {
			m.Gap = int(m.Seq - s[j-1] - 1)
		}
	}
}

// Search runs a full-text query over all messages, newest first.
func (s *Service) Search(ctx context.Context, q string, limit int) ([]apitype.Message, error) {
	if strings.TrimSpace(q) == "" {
		return nil, errors.New("empty search")
	}
	if limit <= 0 || limit > MaxLogLimit {
		limit = 100
	}
	if err := s.indexMessages(ctx); err != nil {
		return nil, fmt.Errorf("search: index: %w", err)
	}
	rows, err := s.db.Query(ctx, nil, "SELECT "+messageCols+
		" FROM messages_fts f JOIN messages m ON m.n = f.rowid LEFT JOIN contacts c ON c.peer_id = m.conv LEFT JOIN contacts cs ON cs.peer_id = m.sender WHERE messages_fts MATCH ? ORDER BY m.n DESC LIMIT ?",
		ftsQuery(q), limit)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return s.scanMessages(rows)
}

// ftsQuery turns what a user typed into an FTS5 query: every word must
// match, each as a prefix ("lin" finds "linux"). Every term is quoted, so
// user input is never parsed as FTS5 syntax.
func ftsQuery(q string) string {
	var terms []string
	for _, t := range strings.Fields(q) {
		terms = append(terms, `"`+strings.ReplaceAll(t, `"`, `""`)+`"*`)
	}
	return strings.Join(terms, " ")
}

func (s *Service) unread(ctx context.Context, conv string, upto int64) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, nil, "SELECT count(*) FROM messages WHERE conv = ? AND outgoing = 0 AND n > ?", conv, upto).Scan(&n)
	return n, err
}

// MarkRead marks every message of a conversation read.
func (s *Service) MarkRead(ctx context.Context, conv string) error {
	if strings.HasPrefix(conv, "#") && s.rooms != nil {
		return s.rooms.MarkRead(ctx, conv)
	}
	c, err := s.Resolve(ctx, conv)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, nil, "UPDATE contacts SET read_upto = (SELECT coalesce(max(n), 0) FROM messages WHERE conv = ?) WHERE peer_id = ?", c.ID.String(), c.ID.String())
	return err
}

// Conversations lists contacts (and rooms) with unread counts, most recent first.
func (s *Service) Conversations(ctx context.Context) ([]apitype.Conversation, error) {
	contacts, err := s.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	var out []apitype.Conversation
	for _, c := range contacts {
		conv := apitype.Conversation{Name: c.Name, PeerID: c.PeerID, Unread: c.Unread, Online: c.Online, Verified: c.Verified}
		var last sql.NullInt64
		s.db.QueryRow(ctx, nil, "SELECT max(received_at) FROM messages WHERE conv = ?", c.PeerID).Scan(&last)
		if last.Valid {
			conv.Last = time.UnixMilli(last.Int64)
		}
		out = append(out, conv)
	}
	if s.rooms != nil {
		rooms, err := s.rooms.Conversations(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, rooms...)
	}
	sortConversations(out)
	return out, nil
}

func sortConversations(cs []apitype.Conversation) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Last.After(cs[j].Last) })
}

// Rooms is what the room service offers the history and API layers.
type Rooms interface {
	ConvKey(ctx context.Context, name string) (string, error)
	MarkRead(ctx context.Context, name string) error
	Conversations(ctx context.Context) ([]apitype.Conversation, error)
	Send(ctx context.Context, name, text string) (apitype.Message, error)
}
