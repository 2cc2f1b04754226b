package room

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// Log statuses of room_log rows.
const (
	statusWaiting = 0 // private message waiting for its author's sender key
	statusShown   = 1 // in the messages table
	statusFailed  = 2 // can never be decrypted (tampered, replayed)
)

// byName finds a joined room by its display name, with or without '#'.
func (s *Service) byName(name string) (*room, error) {
	name = strings.TrimPrefix(name, "#")
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.rooms {
		if strings.EqualFold(r.name, name) {
			return r, nil
		}
	}
	if id, err := hex.DecodeString(name); err == nil && len(id) == len(ID{}) {
		if r := s.rooms[ID(id)]; r != nil {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: #%s (see `parley rooms`)", ErrNoRoom, name)
}

// ConvKey returns the messages.conv value of a room: '#' and its hex id.
func (s *Service) ConvKey(ctx context.Context, name string) (string, error) {
	r, err := s.byName(name)
	if err != nil {
		return "", err
	}
	return r.id.conv(), nil
}

// MarkRead marks every message of a room read.
func (s *Service) MarkRead(ctx context.Context, name string) error {
	r, err := s.byName(name)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, nil, "UPDATE rooms SET read_upto = (SELECT coalesce(max(n), 0) FROM messages WHERE conv = ?) WHERE id = ?", r.id.conv(), r.id[:])
	return err
}

// Conversations lists the joined rooms with their unread counts.
func (s *Service) Conversations(ctx context.Context) ([]apitype.Conversation, error) {
	rows, err := s.db.Query(ctx, nil, `SELECT r.name,
		(SELECT count(*) FROM messages m WHERE m.conv = '#' || lower(hex(r.id)) AND m.outgoing = 0 AND m.n > r.read_upto),
		(SELECT max(received_at) FROM messages m WHERE m.conv = '#' || lower(hex(r.id)))
		FROM rooms r WHERE r.state = 'joined'`)
	if err != nil {
		return nil, fmt.Errorf("list rooms: %w", err)
	}
	defer rows.Close()
	var out []apitype.Conversation
	for rows.Next() {
		var (
			c    apitype.Conversation
			last sql.NullInt64
		)
		if err := rows.Scan(&c.Name, &c.Unread, &last); err != nil {
			return nil, err
		}
		c.Name = "#" + c.Name
		c.Room = true
		if last.Valid {
			c.Last = time.UnixMilli(last.Int64)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Send publishes text to a room.
func (s *Service) Send(ctx context.Context, name, text string) (apitype.Message, error) {
	if text == "" || !utf8.ValidString(text) {
		return apitype.Message{}, errors.New("room: message must be non-empty UTF-8")
	}
	if len(text) > wire.MaxTextSize {
		return apitype.Message{}, fmt.Errorf("room: message is %d bytes, the limit is %d", len(text), wire.MaxTextSize)
	}
	r, err := s.byName(name)
	if err != nil {
		return apitype.Message{}, err
	}
	m := &wirepb.RoomMessage{Version: wire.Version, RoomId: r.id[:], Hlc: s.hlc.next(), MsgId: make([]byte, wire.IDSize)}
	rand.Read(m.MsgId)
	ms, _ := wire.UnpackHLC(m.Hlc)
	msg := apitype.Message{
		ID: hex.EncodeToString(m.MsgId), Conv: "#" + r.name, From: s.self().String(), Outgoing: true,
		Text: text, SentAt: time.UnixMilli(ms), State: apitype.StateSent,
	}
	s.cryptoMu.Lock()
	defer s.cryptoMu.Unlock()
	s.mu.RLock()
	e := r.current()
	topic := r.topic
	s.mu.RUnlock()
	if topic == nil {
		return apitype.Message{}, fmt.Errorf("room: #%s is not running", r.name)
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if r.public {
			m.Text = text
		} else {
			if e == nil {
				return fmt.Errorf("room: no keys for #%s yet", r.name)
			}
			m.Epoch = e.n
			var state []byte
			if err := s.db.QueryRow(ctx, tx, "SELECT state FROM room_chains WHERE room = ? AND epoch = ?", r.id[:], e.n).Scan(&state); err != nil {
				return fmt.Errorf("room: sending chain of epoch %d: %w", e.n, err)
			}
			ct, next, err := seal(state, []byte(text), senderKeyAD(r.id, e.n, []byte(s.self()), m.MsgId, m.Hlc))
			if err != nil {
				return fmt.Errorf("room: encrypt: %w", err)
			}
			m.Ciphertext = ct
			m.MembershipMac = mac(e.macKey, wire.MembershipMACInput(m))
			if _, err := s.db.Exec(ctx, tx, "UPDATE room_chains SET state = ? WHERE room = ? AND epoch = ?", next, r.id[:], e.n); err != nil {
				return err
			}
		}
		return insertMessage(ctx, tx, r.id, m.MsgId, s.self(), true, text, ms, s.now())
	})
	if err != nil {
		return apitype.Message{}, err
	}
	data, err := proto.Marshal(m)
	if err != nil {
		return apitype.Message{}, err
	}
	if len(data) > wire.MaxRoomMessage {
		return apitype.Message{}, fmt.Errorf("room: message too large after encryption")
	}
	if err := topic.Publish(ctx, data); err != nil {
		return msg, fmt.Errorf("room: publish: %w", err)
	}
	s.chat.Publish(apitype.Event{Type: "message", Time: s.now(), Message: &msg})
	return msg, nil
}

func insertMessage(ctx context.Context, tx *sql.Tx, id ID, msgID []byte, from peer.ID, outgoing bool, text string, sentMS int64, now time.Time) error {
	state := apitype.StateReceived
	if outgoing {
		state = apitype.StateSent
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO messages(id, conv, sender, outgoing, body, sent_at, received_at, state)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING`,
		msgID, id.conv(), from.String(), outgoing, text, sentMS, now.UnixMilli(), state)
	return err
}

// readLoop stores what the room's subscription delivers.
func (s *Service) readLoop(ctx context.Context, r *room, sub *pubsub.Subscription) {
	// A reader feeds the loop so that messages which arrive together are
	// stored in one transaction (under load, one commit per burst instead of
	// one per message).
	recs := make(chan *wirepb.SyncedMessage, ingestBatch)
	go func() {
		defer close(recs)
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				return
			}
			recs <- &wirepb.SyncedMessage{From: msg.Message.From, Data: msg.Data, Seqno: msg.Seqno, Signature: msg.Signature, Key: msg.Key}
		}
	}()
	for rec := range recs {
		batch := []*wirepb.SyncedMessage{rec}
	more:
		for len(batch) < ingestBatch {
			select {
			case next, ok := <-recs:
				if !ok {
					break more
				}
				batch = append(batch, next)
			default:
				break more
			}
		}
		if err := s.ingest(ctx, r, batch...); err != nil && ctx.Err() == nil {
			s.log.Warn("store room message", "room", r.id, "err", err)
		}
	}
}

// ingestBatch bounds how many live messages share one transaction.
const ingestBatch = 64

// ingest stores verified messages in the room log, in one transaction, and,
// when their sender keys are known, decrypts them into the messages table
// and publishes events.
func (s *Service) ingest(ctx context.Context, r *room, recs ...*wirepb.SyncedMessage) error {
	type item struct {
		rec *wirepb.SyncedMessage
		m   *wirepb.RoomMessage
	}
	items := make([]item, 0, len(recs))
	for _, rec := range recs {
		m, err := wire.DecodeRoomMessage(rec.Data)
		if err != nil {
			s.log.Info("undecodable room message", "room", r.id, "err", err)
			continue
		}
		s.hlc.observe(m.Hlc)
		items = append(items, item{rec, m})
	}
	s.cryptoMu.Lock()
	defer s.cryptoMu.Unlock()
	var shown []*apitype.Message
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		shown = shown[:0]
		for _, it := range items {
			author := peer.ID(it.rec.From)
			res, err := s.db.Exec(ctx, tx, `INSERT INTO room_log(room, msg_id, hlc, epoch, sender, data, seqno, signature, key, status)
				VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				r.id[:], it.m.MsgId, it.m.Hlc, it.m.Epoch, author.String(), it.rec.Data, it.rec.Seqno, it.rec.Signature, it.rec.Key, statusWaiting)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 0 {
				continue // already logged
			}
			msg, err := s.showLocked(ctx, tx, r, author, it.m)
			if err != nil {
				return err
			}
			if msg != nil {
				shown = append(shown, msg)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.publish(shown)
	return nil
}

// showLocked turns a logged message into a row of the messages table if it
// can: public text, our own message, or a private message whose author's
// sender key we hold. It updates the log row's status. s.cryptoMu is held.
func (s *Service) showLocked(ctx context.Context, tx *sql.Tx, r *room, author peer.ID, m *wirepb.RoomMessage) (*apitype.Message, error) {
	ms, _ := wire.UnpackHLC(m.Hlc)
	setStatus := func(st int) error {
		_, err := s.db.Exec(ctx, tx, "UPDATE room_log SET status = ? WHERE room = ? AND msg_id = ?", st, r.id[:], m.MsgId)
		return err
	}
	var text string
	switch {
	case author == s.self():
		// Our own message, already in the messages table when sent (or
		// lost with an old database: it cannot be decrypted by its author).
		return nil, setStatus(statusShown)
	case m.Text != "":
		text = m.Text
	default:
		var state []byte
		err := s.db.QueryRow(ctx, tx, "SELECT state FROM room_senders WHERE room = ? AND epoch = ? AND sender = ?", r.id[:], m.Epoch, author.String()).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil // waiting for the sender key
		}
		if err != nil {
			return nil, err
		}
		plain, next, err := open(state, m.Ciphertext, senderKeyAD(r.id, m.Epoch, []byte(author), m.MsgId, m.Hlc))
		if err != nil {
			s.log.Info("undecryptable room message", "room", r.id, "author", author, "err", err)
			return nil, setStatus(statusFailed)
		}
		if !utf8.Valid(plain) || len(plain) == 0 || len(plain) > wire.MaxTextSize {
			return nil, setStatus(statusFailed)
		}
		if _, err := s.db.Exec(ctx, tx, "UPDATE room_senders SET state = ? WHERE room = ? AND epoch = ? AND sender = ?", next, r.id[:], m.Epoch, author.String()); err != nil {
			return nil, err
		}
		text = string(plain)
	}
	if err := insertMessage(ctx, tx, r.id, m.MsgId, author, false, text, ms, s.now()); err != nil {
		return nil, err
	}
	if err := setStatus(statusShown); err != nil {
		return nil, err
	}
	var fromName string
	s.db.QueryRow(ctx, tx, "SELECT name FROM contacts WHERE peer_id = ?", author.String()).Scan(&fromName)
	return &apitype.Message{
		ID: hex.EncodeToString(m.MsgId), Conv: "#" + r.name, From: author.String(), FromName: fromName,
		Text: text, SentAt: time.UnixMilli(ms), State: apitype.StateReceived,
	}, nil
}

// showWaiting decrypts the logged messages of an author that were waiting
// for the sender key of an epoch, in hlc order.
func (s *Service) showWaiting(ctx context.Context, r *room, ep uint64, author peer.ID) {
	s.cryptoMu.Lock()
	defer s.cryptoMu.Unlock()
	var shown []*apitype.Message
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		rows, err := s.db.Query(ctx, tx, "SELECT data FROM room_log WHERE room = ? AND epoch = ? AND sender = ? AND status = ? ORDER BY hlc, msg_id",
			r.id[:], ep, author.String(), statusWaiting)
		if err != nil {
			return err
		}
		var datas [][]byte
		for rows.Next() {
			var d []byte
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return err
			}
			datas = append(datas, d)
		}
		rows.Close()
		for _, d := range datas {
			m, err := wire.DecodeRoomMessage(d)
			if err != nil {
				continue
			}
			msg, err := s.showLocked(ctx, tx, r, author, m)
			if err != nil {
				return err
			}
			if msg != nil {
				shown = append(shown, msg)
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("show waiting room messages", "room", r.id, "err", err)
		return
	}
	s.publish(shown)
}

// publish announces messages newly shown to the user.
func (s *Service) publish(shown []*apitype.Message) {
	for _, m := range shown {
		s.chat.Publish(apitype.Event{Type: "message", Time: s.now(), Message: m})
	}
}
