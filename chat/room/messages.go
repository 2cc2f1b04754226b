package room

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// Log statuses of room_log rows.
const (
	statusShown  = 1 // in the messages table
	statusFailed = 2 // can never be decrypted (a key used already, or erased)
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

// joined finds a room we are in by name: a private room we only asked to
// join is "waiting".
func (s *Service) joined(name string) (*room, error) {
	r, err := s.byName(name)
	if err != nil {
		return nil, err
	}
	if r.public {
		return r, nil
	}
	r.gmu.Lock()
	ok := r.g != nil && r.g.cur() != nil
	leaving := r.leaving
	r.gmu.Unlock()
	switch {
	case leaving:
		return nil, fmt.Errorf("room: %s is read-only: you left the room", r.name)
	case !ok:
		return nil, fmt.Errorf("room: #%s: waiting for an admin to admit us (see `parley rooms`)", r.name)
	}
	return r, nil
}

// ConvKey returns the messages.conv value of a room: '#' and its hex id.
func (s *Service) ConvKey(ctx context.Context, name string) (string, error) {
	r, err := s.byName(name)
	if err != nil {
		// A room we left or were removed from keeps its history.
		if g, gerr := s.gone(ctx, name); gerr == nil {
			return "#" + g.ID, nil
		}
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

// Send publishes text to a room. The message is stored as pending with
// the exact bytes to publish, then published, then marked sent; a message
// whose publication failed (or was cut by a crash) is published again at
// the next start.
func (s *Service) Send(ctx context.Context, name, text string) (apitype.Message, error) {
	if text == "" || !utf8.ValidString(text) {
		return apitype.Message{}, errors.New("room: message must be non-empty UTF-8")
	}

	r, err := s.byName(name)
	if err != nil {
		if g, gerr := s.gone(ctx, name); gerr == nil {
			return apitype.Message{}, fmt.Errorf("room: %s is read-only: %s", g.Name, g.Detail)
		}
		return apitype.Message{}, err
	}
	limit := wire.MaxRoomText
	if !r.public {
		if _, err := s.joined(name); err != nil {
			return apitype.Message{}, err
		}
		limit = group.MaxPlaintext
	}
	if len(text) > limit {
		return apitype.Message{}, fmt.Errorf("room: message is %d bytes, the limit is %d", len(text), limit)
	}
	msgID := make([]byte, wire.IDSize)
	rand.Read(msgID)
	hlc := r.clock.next()
	ms, _ := wire.UnpackHLC(hlc)
	msg := apitype.Message{
		ID: hex.EncodeToString(msgID), Conv: "#" + r.name, From: s.self().String(), Outgoing: true,
		Text: text, SentAt: time.UnixMilli(ms), State: apitype.StatePending,
	}
	s.mu.RLock()
	topic := r.topic
	s.mu.RUnlock()
	if topic == nil {
		return apitype.Message{}, fmt.Errorf("room: #%s is not running", r.name)
	}
	// Until Send has published it, the message is Send's: republish (a
	// peer appearing meanwhile) leaves it alone, so it goes out once.
	s.mu.Lock()
	s.sending[string(msgID)] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sending, string(msgID))
		s.mu.Unlock()
	}()
	store := func(tx *sql.Tx, data []byte) error {
		if _, err := s.db.Exec(ctx, tx, "INSERT INTO room_outbox(room, msg_id, data, at) VALUES(?, ?, ?, ?)", r.id[:], msgID, data, s.now().UnixMilli()); err != nil {
			return err
		}
		return insertMessage(ctx, tx, r.id, msgID, s.self(), true, text, ms, s.now(), apitype.StatePending)
	}
	var data []byte
	if r.public {
		m := &wirepb.RoomMessage{Version: wire.Version, RoomId: r.id[:], Hlc: hlc, MsgId: msgID, Text: text}
		if data, err = proto.Marshal(m); err != nil {
			return apitype.Message{}, err
		}
		if len(data) > wire.MaxRoomMessage {
			return apitype.Message{}, errors.New("room: message too large")
		}
		err = s.db.Tx(ctx, func(tx *sql.Tx) error { return store(tx, data) })
	} else {
		// Seal under the group lock, and store the chain step with the
		// message: both commit, or neither does. As in ingest, the lock
		// goes once the transaction has begun (every later transaction,
		// one storing the whole epoch included, comes after this one), so
		// the room's validators do not wait for our inserts.
		r.gmu.Lock()
		locked := true
		e := r.g.cur()
		if e == nil {
			r.gmu.Unlock()
			return apitype.Message{}, ErrNotMember
		}
		var (
			am    *wirepb.AppMessage
			chain []byte
		)
		am, err = e.Seal(s.self(), msgID, hlc, []byte(text))
		if err == nil {
			data, err = proto.Marshal(&wirepb.RoomEnvelope{Version: group.Version, RoomId: r.id[:], Body: &wirepb.RoomEnvelope_App{App: am}})
		}
		if err == nil {
			chain, err = e.MarshalChain(s.self())
		}
		if err == nil {
			h := e.Commit().Hash()
			err = s.db.Tx(ctx, func(tx *sql.Tx) error {
				r.gmu.Unlock()
				locked = false
				if _, err := s.db.Exec(ctx, tx, "INSERT OR REPLACE INTO room_chain_states(room, epoch_hash, author, state) VALUES(?, ?, ?, ?)",
					r.id[:], h[:], s.self().String(), chain); err != nil {
					return err
				}
				return store(tx, data)
			})
		}
		if err != nil {
			if !locked {
				r.gmu.Lock()
				locked = true
			}
			s.reloadLocked(r)
		}
		if locked {
			r.gmu.Unlock()
		}
	}
	if err != nil {
		return apitype.Message{}, fmt.Errorf("room: send: %w", err)
	}
	switch err := s.publishOwn(ctx, r, topic, msgID, hlc, data); {
	case errors.Is(err, errNoPeers):
		// Kept, and published as soon as a member appears on the topic.
		return msg, nil
	case err != nil:
		return msg, fmt.Errorf("room: publish (kept; it is sent again when the node restarts): %w", err)
	}
	msg.State = apitype.StateSent
	s.chat.Publish(apitype.Event{Type: "message", Time: s.now(), Message: &msg})
	return msg, nil
}

// errNoPeers: a publication while the topic has no peer reaches nobody
// (gossipsub v0.19 returns nil all the same); the message stays in the
// outbox and is published again for the first peer.
var errNoPeers = errors.New("no peer on the room's topic yet")

// publishOwn publishes one of our stored messages and marks it sent. A
// message older than live validators accept (a retry after a long
// outage) is published to our own log only: members fetch it by sync.
func (s *Service) publishOwn(ctx context.Context, r *room, topic *pubsub.Topic, msgID []byte, hlc uint64, data []byte) error {
	if s.cfg.beforePublish != nil {
		if err := s.cfg.beforePublish(); err != nil {
			return err
		}
	}
	var opts []pubsub.PubOpt
	if ms, _ := wire.UnpackHLC(hlc); ms < s.now().Add(-MaxSkew+time.Minute).UnixMilli() {
		opts = append(opts, pubsub.WithLocalPublication(true))
	}
	alone := len(opts) == 0 && len(s.ps.ListPeers(topic.String())) == 0
	if err := topic.Publish(ctx, data, opts...); err != nil {
		return err
	}
	if alone {
		// Published to our own log (sync serves it, also to members we
		// reach only through a relay), but to no peer: it stays pending
		// and is published again when the first peer appears.
		return errNoPeers
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.db.Exec(ctx, tx, "DELETE FROM room_outbox WHERE room = ? AND msg_id = ?", r.id[:], msgID); err != nil {
			return err
		}
		_, err := s.db.Exec(ctx, tx, "UPDATE messages SET state = ? WHERE conv = ? AND sender = ? AND id = ? AND state = ?",
			apitype.StateSent, r.id.conv(), s.self().String(), msgID, apitype.StatePending)
		return err
	})
}

// republish publishes our messages still pending in running rooms (in
// room only, if only is not nil).
func (s *Service) republish(ctx context.Context, only *room) {
	type pending struct {
		room ID
		id   []byte
		data []byte
	}
	q, args := "SELECT room, msg_id, data FROM room_outbox ORDER BY at", []any{}
	if only != nil {
		q, args = "SELECT room, msg_id, data FROM room_outbox WHERE room = ? ORDER BY at", []any{only.id[:]}
	}
	rows, err := s.db.Query(ctx, nil, q, args...)
	if err != nil {
		return
	}
	var ps []pending
	for rows.Next() {
		var (
			p    pending
			room []byte
		)
		if rows.Scan(&room, &p.id, &p.data) == nil && len(room) == len(p.room) {
			copy(p.room[:], room)
			ps = append(ps, p)
		}
	}
	rows.Close()
	for _, p := range ps {
		r := s.room(p.room)
		s.mu.RLock()
		busy := s.sending[string(p.id)]
		s.mu.RUnlock()
		if r == nil || busy {
			continue
		}
		if !r.public {
			// Sealed at an epoch the room has left: every member would
			// ignore it. Seal it again at the current one.
			if data, err := s.reseal(ctx, r, p.id, p.data); err == nil {
				p.data = data
			} else {
				s.log.Info("reseal pending room message", "room", r.id, "err", err)
				continue
			}
		}
		hlc, err := s.outboxHLC(r, p.data)
		if err != nil {
			continue
		}
		s.mu.RLock()
		topic := r.topic
		s.mu.RUnlock()
		if topic == nil {
			continue
		}
		if err := s.publishOwn(ctx, r, topic, p.id, hlc, p.data); err != nil {
			if !errors.Is(err, errNoPeers) {
				s.log.Info("publish pending room message", "room", r.id, "err", err)
			}
			continue
		}
		s.chat.Publish(apitype.Event{Type: "receipt", Time: s.now(), Message: &apitype.Message{
			ID: hex.EncodeToString(p.id), Conv: "#" + r.name, From: s.self().String(), Outgoing: true, State: apitype.StateSent,
		}})
	}
}

// reseal returns a pending message of a private room as it is if it is
// sealed at our current epoch (on our branch), else sealed again at that
// epoch, with the same id and a new hlc, and stored so.
func (s *Service) reseal(ctx context.Context, r *room, msgID, data []byte) ([]byte, error) {
	env, err := group.ParseEnvelope(group.RoomID(r.id), data)
	if err != nil || env.GetApp() == nil {
		return nil, errors.New("not an app message")
	}
	r.gmu.Lock()
	defer r.gmu.Unlock()
	e := r.g.cur()
	if e == nil {
		return nil, ErrNotMember
	}
	h := e.Commit().Hash()
	if am := env.GetApp(); am.GetEpoch() == e.Number() && len(am.GetEpochHash()) <= len(h) && string(am.GetEpochHash()) == string(h[:len(am.GetEpochHash())]) {
		return data, nil
	}
	var text string
	if err := s.db.QueryRow(ctx, nil, "SELECT body FROM messages WHERE conv = ? AND sender = ? AND id = ?", r.id.conv(), s.self().String(), msgID).Scan(&text); err != nil {
		return nil, err
	}
	am, err := e.Seal(s.self(), msgID, r.clock.next(), []byte(text))
	if err != nil {
		return nil, err
	}
	out, err := proto.Marshal(&wirepb.RoomEnvelope{Version: group.Version, RoomId: r.id[:], Body: &wirepb.RoomEnvelope_App{App: am}})
	if err != nil {
		return nil, err
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.saveChainsLocked(ctx, tx, r, e, s.self()); err != nil {
			return err
		}
		// Our log keeps what members can open: the stale sealing goes.
		if _, err := s.db.Exec(ctx, tx, "DELETE FROM room_log WHERE room = ? AND sender = ? AND msg_id = ?", r.id[:], s.self().String(), msgID); err != nil {
			return err
		}
		_, err := s.db.Exec(ctx, tx, "UPDATE room_outbox SET data = ? WHERE room = ? AND msg_id = ?", out, r.id[:], msgID)
		return err
	})
	if err != nil {
		s.reloadLocked(r)
		return nil, err
	}
	return out, nil
}

// outboxHLC returns the hlc of one of our stored publications.
func (s *Service) outboxHLC(r *room, data []byte) (uint64, error) {
	if r.public {
		m, err := wire.DecodeRoomMessage(data)
		if err != nil {
			return 0, err
		}
		return m.Hlc, nil
	}
	env, err := group.ParseEnvelope(group.RoomID(r.id), data)
	if err != nil {
		return 0, err
	}
	if env.GetApp() == nil {
		return 0, errors.New("not an app message")
	}
	return env.GetApp().GetHlc(), nil
}

func insertMessage(ctx context.Context, tx *sql.Tx, id ID, msgID []byte, from peer.ID, outgoing bool, text string, sentMS int64, now time.Time, state string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO messages(id, conv, sender, outgoing, body, sent_at, received_at, state)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		msgID, id.conv(), from.String(), outgoing, text, sentMS, now.UnixMilli(), state)
	return err
}

// readLoop stores what the room's subscription delivers.
func (s *Service) readLoop(ctx context.Context, r *room, sub *pubsub.Subscription) {
	// A reader feeds the loop, so that the messages which arrived while
	// the previous transaction ran are stored together in the next one:
	// under load, one commit per burst instead of one per message, and no
	// timer adds latency to a lone message.
	recs := make(chan *pubsub.Message, ingestBatch)
	go func() {
		defer close(recs)
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				return
			}
			recs <- msg
		}
	}()
	if err := s.loadLogIndex(ctx, r); err != nil && ctx.Err() == nil {
		// The validators keep asking the database.
		s.log.Warn("room: load the log index", "room", r.id, "err", err)
	}
	batch := make([]ingestItem, 0, ingestBatch)
	for msg := range recs {
		batch = s.appendLive(batch[:0], r, msg)
	more:
		for len(batch) < ingestBatch {
			select {
			case next, ok := <-recs:
				if !ok {
					break more
				}
				batch = s.appendLive(batch, r, next)
			default:
				break more
			}
		}
		if _, err := s.store(ctx, r, batch); err != nil && ctx.Err() == nil {
			s.log.Warn("store room message", "room", r.id, "err", err)
		}
		clear(batch)
	}
}

// appendLive appends a message the room's subscription delivered to
// items: an app message of a private room as the validator decoded it,
// anything else decoded here.
func (s *Service) appendLive(items []ingestItem, r *room, msg *pubsub.Message) []ingestItem {
	rec := &wirepb.SyncedMessage{From: msg.Message.From, Data: msg.Data, Seqno: msg.Seqno, Signature: msg.Signature, Key: msg.Key}
	if am, ok := msg.ValidatorData.(*wirepb.AppMessage); ok && !r.public {
		r.clock.observe(am.GetHlc())
		return append(items, ingestItem{rec: rec, author: peer.ID(rec.From), status: statusShown,
			app: am, msgID: am.GetMsgId(), hlc: am.GetHlc(), epoch: am.GetEpoch()})
	}
	return s.appendParsed(items, r, rec)
}

// ingestBatch bounds how many live messages share one transaction.
const ingestBatch = 64

// ingestItem is one message on its way into the log.
type ingestItem struct {
	rec    *wirepb.SyncedMessage
	author peer.ID
	msgID  []byte
	hlc    uint64
	epoch  uint64
	app    *wirepb.AppMessage // private rooms
	status int                // of its room_log row
	text   string
	show   bool // goes to the messages table (and to the user)
}

// ingest stores validated messages in the room log and the messages
// table, all in one transaction, and publishes events once it commits:
// a message is shown only once it is stored. Each message stands alone in
// the batch: one that is logged already, or that breaks a constraint of
// its row, is skipped (INSERT OR IGNORE), and the others are stored all
// the same; only a failure of the database itself fails the batch, which
// then leaves nothing behind (sync brings the messages again: its cursor
// comes from what the log holds).
//
// A private room's messages are opened under r.gmu, before the
// transaction, and the chains they moved are saved in it. r.gmu is let go
// as soon as the transaction has begun: the database's one connection
// orders every later transaction (one that stores the whole group state,
// moved chains included) after this one, so disk never holds a chain
// that moved past a message it does not hold, even across a crash, and
// validators meanwhile need not wait for the inserts. If the transaction
// fails, the group state is read again from disk (a commit applied
// meanwhile may have stored the moved chains first: those messages are
// then marked undecryptable when sync brings them again).
func (s *Service) ingest(ctx context.Context, r *room, recs ...*wirepb.SyncedMessage) (int, error) {
	items := make([]ingestItem, 0, len(recs))
	for _, rec := range recs {
		items = s.appendParsed(items, r, rec)
	}
	return s.store(ctx, r, items)
}

// appendParsed decodes rec and appends it to items, unless it is not a
// message to log (a commit, or the rest the validator handles).
func (s *Service) appendParsed(items []ingestItem, r *room, rec *wirepb.SyncedMessage) []ingestItem {
	it := ingestItem{rec: rec, author: peer.ID(rec.From), status: statusShown}
	if r.public {
		m, err := wire.DecodeRoomMessage(rec.Data)
		if err != nil {
			s.log.Info("undecodable room message", "room", r.id, "err", err)
			return items
		}
		it.msgID, it.hlc, it.text = m.MsgId, m.Hlc, m.Text
		it.show = it.author != s.self() // ours: in the messages table since sent
	} else {
		env, err := group.ParseEnvelope(group.RoomID(r.id), rec.Data)
		if err != nil || env.GetApp() == nil {
			return items // commits and the rest are handled by the validator
		}
		it.app = env.GetApp()
		it.msgID, it.hlc, it.epoch = it.app.GetMsgId(), it.app.GetHlc(), it.app.GetEpoch()
	}
	r.clock.observe(it.hlc)
	return append(items, it)
}

// store is ingest for decoded messages. It returns how many it logged.
func (s *Service) store(ctx context.Context, r *room, items []ingestItem) (int, error) {
	r.imu.Lock()
	defer r.imu.Unlock()
	items = s.unlogged(ctx, r, items)
	if len(items) == 0 {
		return 0, nil
	}
	var (
		chains []chainState
		locked bool
	)
	if !r.public {
		r.gmu.Lock()
		locked = true
		defer func() {
			if locked {
				r.gmu.Unlock()
			}
		}()
		if r.g == nil || r.g.cur() == nil {
			return 0, nil
		}
		var err error
		if chains, err = s.openLocked(r, items); err != nil {
			s.reloadLocked(r)
			return 0, err
		}
	}
	var (
		shown  []*apitype.Message
		logged int
	)
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if locked {
			// The connection is ours: every later transaction comes after
			// this one.
			r.gmu.Unlock()
			locked = false
		}
		shown, logged = shown[:0], 0
		var names map[peer.ID]string
		now, conv := s.now().UnixMilli(), r.id.conv()
		for i := range items {
			it := &items[i]
			author := it.author.String()
			res, err := s.db.Exec(ctx, tx, `INSERT OR IGNORE INTO room_log(room, msg_id, hlc, epoch, sender, data, seqno, signature, key, status)
				VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.id[:], it.msgID, it.hlc, it.epoch, author, it.rec.Data, it.rec.Seqno, it.rec.Signature, it.rec.Key, it.status)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 0 {
				continue
			}
			logged++
			if !it.show {
				continue
			}
			ms, _ := wire.UnpackHLC(it.hlc)
			res, err = s.db.Exec(ctx, tx, `INSERT OR IGNORE INTO messages(id, conv, sender, outgoing, body, sent_at, received_at, state)
				VALUES(?, ?, ?, 0, ?, ?, ?, ?)`,
				it.msgID, conv, author, it.text, ms, now, apitype.StateReceived)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 0 {
				continue
			}
			// Only a contact has a name (chat.Service.IsContact answers
			// from memory, as the contacts table stands).
			name, ok := names[it.author]
			if !ok && s.chat.IsContact(it.author) {
				s.db.QueryRow(ctx, tx, "SELECT name FROM contacts WHERE peer_id = ?", author).Scan(&name)
				if names == nil {
					names = make(map[peer.ID]string)
				}
				names[it.author] = name
			}
			shown = append(shown, &apitype.Message{
				ID: hex.EncodeToString(it.msgID), Conv: "#" + r.name, From: author, FromName: name,
				Text: it.text, SentAt: time.UnixMilli(ms), State: apitype.StateReceived,
			})
		}
		for _, c := range chains {
			if _, err := s.db.Exec(ctx, tx, "INSERT OR REPLACE INTO room_chain_states(room, epoch_hash, author, state) VALUES(?, ?, ?, ?)",
				r.id[:], c.epoch[:], c.author.String(), c.state); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if !r.public {
			if !locked {
				r.gmu.Lock()
				locked = true
			}
			s.reloadLocked(r)
		}
		return 0, err
	}
	for i := range items {
		r.logIdx.add(items[i].author, items[i].msgID)
	}
	s.publish(shown)
	return logged, nil
}

// unlogged returns the items whose message the room log does not hold yet
// and the first of each (author, msg_id) in the batch: a logged message
// is not opened again (its key is used). The log index answers for most;
// the database for those it may hold. r.imu is held, so what is missing
// now is still missing when the caller stores it.
func (s *Service) unlogged(ctx context.Context, r *room, items []ingestItem) []ingestItem {
	out := items[:0]
	for _, it := range items {
		dup := false
		for _, o := range out {
			if o.author == it.author && string(o.msgID) == string(it.msgID) {
				dup = true
				break
			}
		}
		if dup || (r.logIdx.mayHold(it.author, it.msgID) && s.logged(r.id, it.author, it.msgID)) {
			continue
		}
		out = append(out, it)
	}
	clear(items[len(out):])
	return out
}

// chainState is a sender chain that ingest moved, to store with its
// messages.
type chainState struct {
	epoch  group.Hash // of the commit that started the epoch
	author peer.ID
	state  []byte
}

// openLocked decrypts the private room messages of items, setting their
// text and status, and returns the chains they moved. r.gmu is held.
func (s *Service) openLocked(r *room, items []ingestItem) ([]chainState, error) {
	type chainKey struct {
		e      *group.Epoch
		author peer.ID
	}
	var touched []chainKey
	for i := range items {
		it := &items[i]
		if it.author == s.self() {
			continue // ours: in the messages table since it was sent
		}
		e := r.g.epochFor(it.app)
		plain, err := []byte(nil), errors.New("no keys for its epoch any more")
		if e != nil {
			plain, err = e.Open(it.author, it.app)
		}
		if err != nil {
			s.log.Info("undecryptable room message", "room", r.id, "author", it.author, "err", err)
			it.status = statusFailed
			continue
		}
		sawGeneration(r, e.Number(), it.author, it.app.GetGeneration())
		if k := (chainKey{e, it.author}); !slices.Contains(touched, k) {
			touched = append(touched, k)
		}
		if len(plain) == 0 || !utf8.Valid(plain) {
			continue
		}
		it.text, it.show = string(plain), true
	}
	out := make([]chainState, 0, len(touched))
	for _, k := range touched {
		b, err := k.e.MarshalChain(k.author)
		if err != nil {
			return nil, err
		}
		out = append(out, chainState{epoch: k.e.Commit().Hash(), author: k.author, state: b})
	}
	return out, nil
}

// publish announces messages newly shown to the user.
func (s *Service) publish(shown []*apitype.Message) {
	for _, m := range shown {
		s.chat.Publish(apitype.Event{Type: "message", Time: s.now(), Message: m})
	}
}
