package chat

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/peer/apitype"
)

// Limits and timings of direct messaging.
const (
	// MaxTextLen is the longest message body accepted (bytes of UTF-8).
	MaxTextLen = wire.MaxTextSize
	// sendBatch is how many frames a deliverer writes before reading acks.
	sendBatch = 128
	// recvBatch is how many frames a receiver commits in one transaction.
	recvBatch = 256
	// streamIdle closes a dm stream on which nothing arrives for this long.
	streamIdle = 60 * time.Second
	// writeTimeout bounds every write on a stream.
	writeTimeout = 10 * time.Second
	// ackTimeout bounds the wait for the acks of one batch.
	ackTimeout = 30 * time.Second
	// retryInterval is how often the outbox is looked at for peers whose
	// backoff has expired; backoff doubles from minBackoff to maxBackoff.
	retryInterval = 5 * time.Second
	minBackoff    = 2 * time.Second
	maxBackoff    = 5 * time.Minute
	// dialTimeout bounds finding and connecting to a peer.
	dialTimeout = 30 * time.Second
)

// ErrEmptyMessage and ErrTooLong are returned by Send for bodies it refuses.
var (
	ErrEmptyMessage = errors.New("empty message")
	ErrTooLong      = fmt.Errorf("message longer than %d bytes", MaxTextLen)
)

func newID() []byte {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return id
}

func edPub(p peer.ID) (ed25519.PublicKey, error) {
	pub, err := p.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("peer %s: no embedded key: %w", p, err)
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("peer %s: not an Ed25519 identity", p)
	}
	return ed25519.PublicKey(raw), nil
}

// Send stores a message to a contact and queues it for delivery. It returns
// once the message is committed; delivery happens in the background.
func (s *Service) Send(ctx context.Context, to, text string) (apitype.Message, error) {
	return s.SendWithID(ctx, to, text, nil)
}

// SendWithID is Send with a caller-chosen 16-byte id (nil: random). If a
// message with that id is already stored, it is returned and nothing is
// queued, which makes retries idempotent.
func (s *Service) SendWithID(ctx context.Context, to, text string, id []byte) (apitype.Message, error) {
	if id != nil && len(id) != 16 {
		return apitype.Message{}, errors.New("message id must be 16 bytes (32 hex digits)")
	}
	if strings.TrimSpace(text) == "" {
		return apitype.Message{}, ErrEmptyMessage
	}
	if len(text) > MaxTextLen {
		return apitype.Message{}, ErrTooLong
	}
	if !utf8.ValidString(text) {
		return apitype.Message{}, errors.New("message is not valid UTF-8")
	}
	c, err := s.resolveCached(ctx, to)
	if err != nil {
		return apitype.Message{}, err
	}
	if id == nil {
		id = newID()
	} else if m, err := s.messageByID(ctx, id); err == nil {
		if !m.Outgoing || m.Text != text {
			return apitype.Message{}, errors.New("message id already used for another message")
		}
		return m, nil
	}
	return s.commitSend(ctx, c, text, id)
}

// nextSeqLocked assigns the next outgoing sequence number of conv from the
// in-memory counter (loaded from conv_seq on first use); the batch writes
// the counters back with flushSeqs in the same transaction. s.mu is held.
func (s *Service) nextSeqLocked(ctx context.Context, tx *sql.Tx, conv string) (uint64, error) {
	next, ok := s.seqs[conv]
	if !ok {
		err := s.db.QueryRow(ctx, tx, "SELECT next_out FROM conv_seq WHERE conv = ?", conv).Scan(&next)
		if errors.Is(err, sql.ErrNoRows) {
			next = 1
		} else if err != nil {
			return 0, fmt.Errorf("next sequence number: %w", err)
		}
	}
	s.seqs[conv] = next + 1
	return next, nil
}

// flushSeqs stores the counters of the convs a batch used.
func (s *Service) flushSeqs(ctx context.Context, tx *sql.Tx, convs map[string]bool) error {
	for conv := range convs {
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO conv_seq(conv, next_out) VALUES(?, ?)
			ON CONFLICT(conv) DO UPDATE SET next_out = excluded.next_out`, conv, s.seqs[conv]); err != nil {
			return fmt.Errorf("store sequence number: %w", err)
		}
	}
	return nil
}

// enqueue queues a plaintext payload for to; encryptQueued encrypts it
// before it is sent.
func (s *Service) enqueue(ctx context.Context, tx *sql.Tx, to peer.ID, frameID, payload []byte, now time.Time) error {
	s.plainQueued.Store(to, struct{}{})
	_, err := s.db.Exec(ctx, tx, "INSERT INTO outbox(peer_id, frame_id, payload, created) VALUES(?, ?, ?, ?)",
		to.String(), frameID, payload, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("queue frame: %w", err)
	}
	return nil
}

// queueLocked queues payload for p in tx. Like Send, it encrypts it at
// once on ch, the live session, which the caller saves in the same
// transaction, where a session exists and nothing older waits for
// encryption (so frames leave in order); otherwise it queues the
// plaintext for encryptQueued. Either way the frame is sent by the
// deliverer. s.mu is held.
func (s *Service) queueLocked(ctx context.Context, tx *sql.Tx, p peer.ID, ch *e2e.Channel, payload []byte, now time.Time) error {
	if ch == nil || !ch.HasSession() || s.mayHavePlainLocked(p) {
		return s.enqueue(ctx, tx, p, newID(), payload, now)
	}
	env, err := ch.Encrypt(s.idKey, s.keys, payload, rand.Reader, now)
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	_, err = s.db.Exec(ctx, tx, "INSERT INTO outbox(peer_id, frame_id, payload, envelope, created) VALUES(?, ?, ?, ?, ?)",
		str(p), newID(), payload, env, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("queue frame: %w", err)
	}
	return nil
}

// receiptDelay is how long receipts wait for company: receipts queued
// within it travel in one burst (and the ratchet steps its DH once per
// burst, not once per message). Anything else queued meanwhile takes them along.
const receiptDelay = 25 * time.Millisecond

// kickSoon starts p's deliverer after receiptDelay, once per window.
func (s *Service) kickSoon(p peer.ID) {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	d, ok := s.deliverers[p]
	if !ok {
		d = &deliverer{}
		s.deliverers[p] = d
	}
	if d.soon {
		return
	}
	d.soon = true
	time.AfterFunc(receiptDelay, func() {
		s.dmu.Lock()
		d.soon = false
		s.dmu.Unlock()
		s.Kick(p)
	})
}

// deliverer is the state of one peer's delivery loop.
type deliverer struct {
	soon    bool // a kickSoon timer is pending
	running bool

	// The open dm stream, reused while fresh; only the running delivery
	// loop touches these.
	st      network.Stream
	r       *wire.Reader
	used    time.Time
	again   bool
	backoff time.Duration
	next    time.Time // no automatic retry before this
}

// startDeliverer runs the delivery loop of p unless it is already running
// (then it runs once more when done).
func (s *Service) startDeliverer(ctx context.Context, p peer.ID) {
	if p == s.host.ID() || ctx.Err() != nil {
		return
	}
	s.dmu.Lock()
	d, ok := s.deliverers[p]
	if !ok {
		d = &deliverer{}
		s.deliverers[p] = d
	}
	if d.running {
		d.again = true
		s.dmu.Unlock()
		return
	}
	d.running = true
	s.dmu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			err := s.deliver(ctx, p, d)
			s.dmu.Lock()
			if err != nil {
				d.failed(s.now())
				if ctx.Err() == nil {
					s.log.Debug("delivery paused", "peer", p, "err", err, "retry_in", d.backoff)
				}
			} else {
				d.backoff, d.next = 0, time.Time{}
			}
			// A kick that came during a failed attempt (the peer just
			// connected, or announced the dm protocol) gets its attempt.
			if d.again && ctx.Err() == nil {
				d.again = false
				s.dmu.Unlock()
				continue
			}
			d.again = false
			d.running = false
			s.dmu.Unlock()
			return
		}
	}()
}

// failed records a failed delivery attempt at now. The backoff grows only
// when the attempt was the automatic retry (the previous backoff had run
// out): attempts that kicks start in the meantime (every message sent, every
// connection) fail without growing it, or a burst of sends to a peer that is
// down for a second would push the next automatic retry minutes away.
// s.dmu is held.
func (d *deliverer) failed(now time.Time) {
	if now.Before(d.next) {
		return
	}
	d.backoff = min(max(2*d.backoff, minBackoff), maxBackoff)
	d.next = now.Add(d.backoff)
}

// due reports whether the automatic retry of p may run now.
func (s *Service) due(p peer.ID) bool {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	d, ok := s.deliverers[p]
	return !ok || !s.now().Before(d.next)
}

// deliver sends everything queued for p, returning nil when the queue is empty.
func (s *Service) deliver(ctx context.Context, p peer.ID, d *deliverer) error {
	if n, err := s.queued(ctx, p); err != nil || n == 0 {
		return err
	}
	if err := s.reach(ctx, p); err != nil {
		if s.mailbox != nil {
			s.depositOffline(ctx, p)
		}
		return err
	}
	// The connection manager trims all but a few connections: keep this
	// one while the exchange lasts, and a while after (receipts, replies).
	s.exchanges.Hold(p, exchangeHold)
	defer s.exchanges.Hold(p, exchangeHold)
	if err := s.ensureSession(ctx, p); err != nil {
		return err
	}
	st, r, err := s.stream(ctx, p, d)
	if err != nil {
		return err
	}
	// Two batches in flight: the next one is written while the peer commits
	// the previous one, so neither side waits for the other.
	var inflight []outFrame
	after := int64(0)
	for {
		if err := s.encryptQueued(ctx, p); err != nil {
			d.dropStream()
			return err
		}
		batch, err := s.readyFrames(ctx, p, after)
		if err != nil {
			d.dropStream()
			return err
		}
		if len(batch) > 0 {
			if err := writeFrames(st, batch); err != nil {
				d.dropStream()
				return err
			}
			after = batch[len(batch)-1].n
		}
		if inflight != nil {
			if err := s.readAcks(ctx, st, r, p, inflight); err != nil {
				d.dropStream()
				return err
			}
		}
		if len(batch) == 0 && inflight == nil {
			d.used = time.Now()
			return nil
		}
		inflight = batch
		if len(inflight) == 0 {
			inflight = nil
		}
	}
}

// exchangeHold is how long the connection of a peer we deliver to, or of
// a contact that delivers to us, is protected from the connection manager
// after the last batch: the dm streams of a conversation, its receipts and
// replies keep their connection, and an idle one goes a minute later.
const exchangeHold = time.Minute

// streamReuse is how long an idle dm stream is kept for the next batch
// (the receiver closes idle streams after streamIdle).
const streamReuse = 20 * time.Second

// stream returns the deliverer's open dm stream to p, opening one if needed.
func (s *Service) stream(ctx context.Context, p peer.ID, d *deliverer) (network.Stream, *wire.Reader, error) {
	if d.st != nil && time.Since(d.used) < streamReuse && !d.st.Conn().IsClosed() {
		return d.st, d.r, nil
	}
	d.dropStream()
	sctx := network.WithAllowLimitedConn(ctx, "parley-dm")
	st, err := s.host.NewStream(sctx, p, wire.ProtocolDM)
	if err != nil {
		return nil, nil, fmt.Errorf("open dm stream: %w", err)
	}
	d.st, d.r, d.used = st, wire.NewReader(st), time.Now()
	return d.st, d.r, nil
}

// dropStream resets the deliverer's stream (after an error or when stale).
func (d *deliverer) dropStream() {
	if d.st != nil {
		d.st.Reset()
		d.st, d.r = nil, nil
	}
}

// queued reports whether anything waits in p's outbox (1) or not (0).
func (s *Service) queued(ctx context.Context, p peer.ID) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, nil, "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE peer_id = ? LIMIT 1)", str(p)).Scan(&n)
	return n, err
}

// reach makes sure there is a connection to p: known addresses first, then
// the address book, then a DHT lookup.
func (s *Service) reach(ctx context.Context, p peer.ID) error {
	return discovery.Reach(ctx, s.host, s.db.Remembered, s.router, p, dialTimeout, "parley-dm")
}

// ensureSession starts an E2E session with p from its prekey bundle if none exists.
func (s *Service) ensureSession(ctx context.Context, p peer.ID) error {
	s.mu.Lock()
	ch, err := s.channelLocked(ctx, p)
	has := err == nil && ch.HasSession()
	s.mu.Unlock()
	if err != nil || has {
		return err
	}
	remote, err := edPub(p)
	if err != nil {
		return err
	}
	bundle, err := s.fetchBundle(ctx, p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err = s.channelLocked(ctx, p)
	if err != nil || ch.HasSession() {
		return err
	}
	if err := ch.Initiate(s.idKey, s.keys, remote, bundle, rand.Reader, s.now()); err != nil {
		s.dropChannelLocked(p)
		return fmt.Errorf("start session with %s: %w", p, err)
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error { return s.saveChannel(ctx, tx, p, ch) })
	if err != nil {
		s.dropChannelLocked(p)
		return err
	}
	s.log.Info("e2e session started", "peer", p)
	return nil
}

// encryptQueued encrypts, in queue order, the payloads for p that have no
// envelope yet; each ratchet step commits with its envelope.
func (s *Service) encryptQueued(ctx context.Context, p peer.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channelLocked(ctx, p)
	if err != nil {
		return err
	}
	if !ch.HasSession() {
		return errors.New("no session")
	}
	if !s.mayHavePlainLocked(p) {
		return nil // no transaction: nothing waits for encryption
	}
	for {
		n := 0
		// Cleared before the transaction: a payload queued by a
		// transaction that holds the one connection now is committed
		// before this one reads, and one queued later sets it again.
		s.plainQueued.Delete(p)
		err := s.db.Tx(ctx, func(tx *sql.Tx) error {
			// A text's payload is not stored (textPayload): it is made
			// again from its message.
			rows, err := s.db.Query(ctx, tx, `SELECT o.n, o.payload, m.id, m.body, m.sent_at, m.seq FROM outbox o
				LEFT JOIN messages m ON length(o.payload) = 0 AND m.conv = o.peer_id AND m.sender = ? AND m.id = o.frame_id
				WHERE o.peer_id = ? AND o.envelope IS NULL ORDER BY o.n LIMIT ?`, str(s.host.ID()), str(p), recvBatch)
			if err != nil {
				return err
			}
			type row struct {
				n       int64
				payload []byte
			}
			var todo []row
			var gone []any
			for rows.Next() {
				var (
					r      row
					id     []byte
					body   sql.NullString
					sentAt sql.NullInt64
					seq    sql.NullInt64
				)
				if err := rows.Scan(&r.n, &r.payload, &id, &body, &sentAt, &seq); err != nil {
					rows.Close()
					return err
				}
				if len(r.payload) == 0 {
					if id == nil {
						gone = append(gone, r.n) // its message was deleted: nothing to send
						continue
					}
					if r.payload, err = textPayload(id, body.String, sentAt.Int64, uint64(seq.Int64)); err != nil {
						rows.Close()
						return err
					}
				}
				todo = append(todo, r)
			}
			rows.Close()
			if len(gone) > 0 {
				if _, err := s.db.Exec(ctx, tx, "DELETE FROM outbox WHERE n IN ("+placeholders(len(gone))+")", gone...); err != nil {
					return err
				}
			}
			for _, r := range todo {
				env, err := ch.Encrypt(s.idKey, s.keys, r.payload, rand.Reader, s.now())
				if err != nil {
					return fmt.Errorf("encrypt: %w", err)
				}
				if _, err := s.db.Exec(ctx, tx, "UPDATE outbox SET envelope = ? WHERE n = ?", env, r.n); err != nil {
					return err
				}
			}
			n = len(todo)
			if n == 0 {
				return nil
			}
			return s.saveChannel(ctx, tx, p, ch)
		})
		if err != nil {
			s.plainQueued.Store(p, struct{}{}) // look again next time
			s.dropChannelLocked(p)
			return fmt.Errorf("encrypt queued messages for %s: %w", p, err)
		}
		if n < recvBatch {
			s.plainPending[p] = false
			return nil
		}
	}
}

// mayHavePlainLocked reports whether outbox rows for p may wait for
// encryption: unless encryptQueued found none and nothing was queued in
// plaintext since. s.mu is held.
func (s *Service) mayHavePlainLocked(p peer.ID) bool {
	if plain, known := s.plainPending[p]; !known || plain {
		return true
	}
	_, queued := s.plainQueued.Load(p)
	return queued
}

type outFrame struct {
	n        int64
	id       []byte
	envelope []byte
}

func (s *Service) readyFrames(ctx context.Context, p peer.ID, after int64) ([]outFrame, error) {
	rows, err := s.db.Query(ctx, nil, "SELECT n, frame_id, envelope FROM outbox WHERE peer_id = ? AND n > ? AND envelope IS NOT NULL ORDER BY n LIMIT ?", str(p), after, sendBatch)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []outFrame
	for rows.Next() {
		var f outFrame
		if err := rows.Scan(&f.n, &f.id, &f.envelope); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// writeFrames writes a batch of frames in one write.
func writeFrames(st network.Stream, batch []outFrame) error {
	st.SetWriteDeadline(time.Now().Add(writeTimeout))
	var buf bytes.Buffer
	for _, f := range batch {
		if err := wire.WriteFrame(&buf, &wirepb.DMFrame{Body: &wirepb.DMFrame_Message{Message: &wirepb.DMMessage{Id: f.id, Envelope: f.envelope}}}); err != nil {
			return err
		}
	}
	if _, err := st.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write frames: %w", err)
	}
	return nil
}

// readAcks reads one ack per frame of a batch written earlier and records them.
func (s *Service) readAcks(ctx context.Context, st network.Stream, r *wire.Reader, p peer.ID, batch []outFrame) error {
	st.SetReadDeadline(time.Now().Add(ackTimeout))
	var done, refused []outFrame
	defer func() { s.acked(ctx, p, done, refused) }()
	for _, f := range batch {
		var fr wirepb.DMFrame
		if err := r.ReadFrame(wire.MaxFrameSize, &fr); err != nil {
			return fmt.Errorf("read ack: %w", err)
		}
		ack := fr.GetAck()
		if ack == nil || !bytes.Equal(ack.Id, f.id) {
			return errors.New("peer sent an ack out of order")
		}
		switch ack.Status {
		case wirepb.AckStatus_ACK_STATUS_OK, wirepb.AckStatus_ACK_STATUS_DUPLICATE:
			done = append(done, f)
			s.stats.acked.Add(1)
		case wirepb.AckStatus_ACK_STATUS_REJECTED:
			s.stats.rejected.Add(1)
			if strings.HasPrefix(ack.Reason, payloadRefused) {
				// The frame authenticated and its payload was judged and
				// refused (a body or version the peer does not take):
				// sending it again, under this session or a new one,
				// would be refused again (PROTOCOL.md "Payloads").
				s.log.Warn("peer refused a payload; dropped", "peer", p, "reason", ack.Reason)
				refused = append(refused, f)
				continue
			}
			s.log.Warn("peer rejected a message; restarting the session", "peer", p, "reason", ack.Reason)
			if err := s.resetSession(ctx, p, false); err != nil {
				return err
			}
			return fmt.Errorf("peer rejected frame: %s", ack.Reason)
		default:
			s.stats.retryLater.Add(1)
			return fmt.Errorf("peer asked to retry later: %s", ack.Reason)
		}
	}
	return nil
}

// payloadRefused begins the reason of a REJECTED ack for a frame that
// authenticated but whose payload the receiver refused.
const payloadRefused = "payload refused: "

// acked removes acknowledged frames from the outbox and marks their
// messages sent; refused frames leave the outbox too, their messages
// marked refused. The updates return what the events show, so publishing
// them reads nothing after the commit.
func (s *Service) acked(ctx context.Context, p peer.ID, frames, refused []outFrame) {
	if len(frames) == 0 && len(refused) == 0 {
		return
	}
	var sent []apitype.Message
	conv, self := str(p), str(s.host.ID())
	ctx = context.WithoutCancel(ctx) // an ack received must be recorded
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		sent = sent[:0]
		for _, f := range refused {
			if _, err := s.db.Exec(ctx, tx, "DELETE FROM outbox WHERE n = ?", f.n); err != nil {
				return err
			}
			changed, err := s.changedMessages(ctx, tx, "UPDATE messages SET state = ? WHERE conv = ? AND sender = ? AND id = ? AND state = ? AND outgoing = 1",
				apitype.StateRefused, conv, self, f.id, apitype.StatePending)
			if err != nil {
				return err
			}
			if m, ok := changed[string(f.id)]; ok {
				sent = append(sent, m)
			}
		}
		for len(frames) > 0 {
			chunk := frames[:min(len(frames), maxInList)]
			frames = frames[len(chunk):]
			ns := make([]any, len(chunk))
			ids := make([]any, 0, 4+len(chunk))
			ids = append(ids, apitype.StateSent, conv, self, apitype.StatePending)
			for i, f := range chunk {
				ns[i] = f.n
				ids = append(ids, f.id)
			}
			if _, err := s.db.Exec(ctx, tx, "DELETE FROM outbox WHERE n IN ("+placeholders(len(chunk))+")", ns...); err != nil {
				return err
			}
			changed, err := s.changedMessages(ctx, tx, "UPDATE messages SET state = ? WHERE conv = ? AND sender = ? AND state = ? AND id IN ("+placeholders(len(chunk))+")", ids...)
			if err != nil {
				return err
			}
			for _, f := range chunk { // in the order the peer acknowledged them
				if m, ok := changed[string(f.id)]; ok {
					sent = append(sent, m)
				}
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("record acks failed; frames will be sent again and deduplicated", "peer", p, "err", err)
		return
	}
	s.publishChanged(ctx, p, sent)
}

// changedReturning ends an UPDATE of outgoing messages for changedMessages.
const changedReturning = " RETURNING id, body, sent_at, seq, state"

// changedMessages runs q, an UPDATE of this node's messages to one peer, in
// tx, and returns the messages it changed by id, as their receipt events
// show them (publishChanged names the conversation).
func (s *Service) changedMessages(ctx context.Context, tx *sql.Tx, q string, args ...any) (map[string]apitype.Message, error) {
	rows, err := s.db.Query(ctx, tx, q+changedReturning, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	got := make(map[string]apitype.Message)
	self := str(s.host.ID())
	for rows.Next() {
		var (
			id     []byte
			sentAt int64
			m      = apitype.Message{From: self, Outgoing: true}
		)
		if err := rows.Scan(&id, &m.Text, &sentAt, &m.Seq, &m.State); err != nil {
			return nil, err
		}
		m.ID = hex.EncodeToString(id)
		m.SentAt = time.UnixMilli(sentAt)
		got[string(id)] = m
	}
	return got, rows.Err()
}

// publishChanged publishes one receipt event per message of the
// conversation with p, in order, named as history names it: the
// contact's name, or the peer ID.
func (s *Service) publishChanged(ctx context.Context, p peer.ID, ms []apitype.Message) {
	if len(ms) == 0 {
		return
	}
	conv := str(p)
	if c, err := s.resolveCached(context.WithoutCancel(ctx), conv); err == nil && c.ID == p && c.Name != "" {
		conv = c.Name
	}
	now := s.now()
	for i := range ms {
		ms[i].Conv = conv
		s.events.publish(apitype.Event{Type: "receipt", Time: now, Message: &ms[i]})
	}
}

// maxInList bounds the values of one "IN (...)" list, so that a batch
// statement stays far below SQLite's limit on bound parameters.
const maxInList = 256

// placeholders returns n comma-separated "?".
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return "?" + strings.Repeat(", ?", n-1)
}

// returnedIDs runs a statement with "RETURNING id" in tx and returns the
// set of ids it returned.
func (s *Service) returnedIDs(ctx context.Context, tx *sql.Tx, q string, args ...any) (map[string]bool, error) {
	rows, err := s.db.Query(ctx, tx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	got := make(map[string]bool)
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		got[string(id)] = true
	}
	return got, rows.Err()
}

// Reset drops the session with a contact; both sides then start a new one.
func (s *Service) Reset(ctx context.Context, nameOrID string) error {
	c, err := s.Resolve(ctx, nameOrID)
	if err != nil {
		return err
	}
	return s.resetSession(ctx, c.ID, true)
}

// resetSession forgets the session with p and re-queues every frame not yet
// acked for encryption under the next session. With notify, a reset notice
// is queued so the peer starts using the new session at once.
func (s *Service) resetSession(ctx context.Context, p peer.ID, notify bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channelLocked(ctx, p)
	if err != nil {
		return err
	}
	ch.Reset()
	s.plainPending[p] = true
	ctx = context.WithoutCancel(ctx)
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.saveChannel(ctx, tx, p, ch); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, "UPDATE outbox SET envelope = NULL WHERE peer_id = ?", str(p)); err != nil {
			return err
		}
		if !notify {
			return nil
		}
		payload, err := proto.Marshal(&wirepb.Payload{Version: 1, Body: &wirepb.Payload_Reset_{Reset_: &wirepb.ResetNotice{}}})
		if err != nil {
			return err
		}
		return s.enqueue(ctx, tx, p, newID(), payload, s.now())
	})
	if err != nil {
		s.dropChannelLocked(p)
		return fmt.Errorf("reset session: %w", err)
	}
	s.Kick(p)
	return nil
}
