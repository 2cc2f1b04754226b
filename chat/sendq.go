package chat

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// maxSendBatch bounds how many concurrent sends share one transaction.
const maxSendBatch = 256

// sendReq is one Send waiting for its group commit.
type sendReq struct {
	c    Contact
	text string
	id   []byte
	now  time.Time

	msg  apitype.Message
	err  error
	done chan struct{}
}

// groupCommit batches concurrent sends into one transaction: the first
// sender to arrive becomes the leader and commits everything that queued up
// meanwhile; the others wait for their result. A lone sender commits alone,
// so latency is unchanged when there is no load.
type groupCommit struct {
	mu      sync.Mutex
	pending []*sendReq // guarded by mu
	leader  bool       // guarded by mu
}

// commitSend stores one outgoing message and returns once it is committed.
func (s *Service) commitSend(ctx context.Context, c Contact, text string, id []byte) (apitype.Message, error) {
	req := &sendReq{c: c, text: text, id: id, now: s.now(), done: make(chan struct{})}
	g := &s.group
	g.mu.Lock()
	g.pending = append(g.pending, req)
	if g.leader {
		g.mu.Unlock()
		select {
		case <-req.done:
			return req.msg, req.err
		case <-ctx.Done():
			// The leader still commits it; the caller may retry with the same id.
			return apitype.Message{}, ctx.Err()
		}
	}
	g.leader = true
	for {
		batch := g.pending
		if len(batch) > maxSendBatch {
			batch = batch[:maxSendBatch]
		}
		g.pending = g.pending[len(batch):]
		g.mu.Unlock()
		s.commitSends(context.WithoutCancel(ctx), batch)
		g.mu.Lock()
		if len(g.pending) == 0 {
			g.leader = false
			g.mu.Unlock()
			break
		}
	}
	<-req.done
	return req.msg, req.err
}

// commitSends commits a batch of sends in one transaction. Where a session
// exists and nothing older waits for encryption, each message is encrypted
// here, so the ratchet step, the message row and the outbox envelope commit
// together and the deliverer only has to send.
func (s *Service) commitSends(ctx context.Context, batch []*sendReq) {
	s.mu.Lock()
	touched := map[peer.ID]*e2e.Channel{}
	convs := map[string]bool{}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		rows := make([]sendRow, 0, len(batch))
		for _, r := range batch {
			convs[str(r.c.ID)] = true
			row, err := s.prepareSend(ctx, tx, r, touched)
			if err != nil {
				return err
			}
			rows = append(rows, row)
		}
		if err := s.insertSends(ctx, tx, rows); err != nil {
			return err
		}
		if err := s.flushSeqs(ctx, tx, convs); err != nil {
			return err
		}
		for p, ch := range touched {
			if err := s.saveChannel(ctx, tx, p, ch); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for p := range touched {
			s.dropChannelLocked(p)
		}
		for conv := range convs {
			delete(s.seqs, conv) // reload the committed counter next time
		}
		for _, r := range batch {
			if _, plain := s.plainPending[r.c.ID]; !plain {
				s.plainPending[r.c.ID] = true // unknown: let the deliverer look
			}
		}
	}
	s.mu.Unlock()
	kicked := map[peer.ID]bool{}
	for _, r := range batch {
		if err != nil {
			r.err = fmt.Errorf("store message: %w", err)
		} else {
			m := r.msg
			s.events.publish(apitype.Event{Type: "message", Time: r.now, Message: &m})
			if !kicked[r.c.ID] {
				kicked[r.c.ID] = true
				s.Kick(r.c.ID)
			}
		}
		close(r.done)
	}
}

// sendRow is one message of a batch, ready to be written.
type sendRow struct {
	r        *sendReq
	seq      uint64
	envelope []byte // nil: encrypted later by the deliverer
}

// prepareSend numbers, encodes and (where a session exists and nothing
// older waits for encryption) encrypts one message of the batch; s.mu is
// held. The batch transaction commits the ratchet step with the rows.
func (s *Service) prepareSend(ctx context.Context, tx *sql.Tx, r *sendReq, touched map[peer.ID]*e2e.Channel) (sendRow, error) {
	if r.id == nil {
		r.id = newID()
	}
	seq, err := s.nextSeqLocked(ctx, tx, str(r.c.ID))
	if err != nil {
		return sendRow{}, err
	}
	payload, err := textPayload(r.id, r.text, r.now.UnixMilli(), seq)
	if err != nil {
		return sendRow{}, err
	}
	var envelope []byte
	if !s.mayHavePlainLocked(r.c.ID) {
		ch, err := s.channelLocked(ctx, r.c.ID)
		if err != nil {
			return sendRow{}, err
		}
		if ch.HasSession() {
			if envelope, err = ch.Encrypt(s.idKey, s.keys, payload, rand.Reader, r.now); err != nil {
				return sendRow{}, fmt.Errorf("encrypt: %w", err)
			}
			touched[r.c.ID] = ch
		}
	}
	if envelope == nil {
		s.plainPending[r.c.ID] = true
	}
	r.msg = apitype.Message{
		ID: hex.EncodeToString(r.id), Conv: r.c.Name, From: str(s.host.ID()), Outgoing: true,
		Text: r.text, SentAt: time.UnixMilli(r.now.UnixMilli()), Seq: seq, State: apitype.StatePending,
	}
	return sendRow{r: r, seq: seq, envelope: envelope}, nil
}

// textPayload encodes the payload of an outgoing text.
func textPayload(id []byte, body string, sentAtMs int64, seq uint64) ([]byte, error) {
	return proto.Marshal(&wirepb.Payload{Version: 1, Body: &wirepb.Payload_Text{Text: &wirepb.Text{
		Id: id, Body: body, SentAtMs: sentAtMs, Seq: seq,
	}}})
}

// insertSends writes the messages and outbox rows of a batch, one
// statement per table for up to maxInList messages, in batch order (the
// outbox order is the sending order). A text's outbox row holds no
// payload (an empty one): the message row holds what it is made of, and
// encryptQueued makes it again if the frame has to be encrypted again
// (after a reset). Only its envelope, once made, is sent.
func (s *Service) insertSends(ctx context.Context, tx *sql.Tx, rows []sendRow) error {
	self := str(s.host.ID())
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), maxInList)]
		rows = rows[len(chunk):]
		msgs := make([]any, 0, 8*len(chunk))
		out := make([]any, 0, 5*len(chunk))
		for _, w := range chunk {
			r := w.r
			now := r.now.UnixMilli()
			msgs = append(msgs, r.id, str(r.c.ID), self, r.text, now, now, w.seq, apitype.StatePending)
			out = append(out, str(r.c.ID), r.id, []byte{}, w.envelope, now)
		}
		if _, err := s.db.Exec(ctx, tx, "INSERT INTO messages(id, conv, sender, outgoing, body, sent_at, received_at, seq, state) VALUES "+
			rowsOf("(?, ?, ?, 1, ?, ?, ?, ?, ?)", len(chunk)), msgs...); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, "INSERT INTO outbox(peer_id, frame_id, payload, envelope, created) VALUES "+
			rowsOf("(?, ?, ?, ?, ?)", len(chunk)), out...); err != nil {
			return fmt.Errorf("queue frame: %w", err)
		}
	}
	return nil
}

// rowsOf returns n copies of a VALUES row, comma-separated.
func rowsOf(row string, n int) string {
	return row + strings.Repeat(", "+row, n-1)
}
