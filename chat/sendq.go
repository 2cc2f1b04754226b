package chat

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
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
		for _, r := range batch {
			convs[str(r.c.ID)] = true
			if err := s.insertSend(ctx, tx, r, touched); err != nil {
				return err
			}
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

// insertSend writes one message inside the batch transaction; s.mu is held.
func (s *Service) insertSend(ctx context.Context, tx *sql.Tx, r *sendReq, touched map[peer.ID]*e2e.Channel) error {
	if r.id == nil {
		r.id = newID()
	}
	seq, err := s.nextSeqLocked(ctx, tx, str(r.c.ID))
	if err != nil {
		return err
	}
	payload, err := proto.Marshal(&wirepb.Payload{Version: 1, Body: &wirepb.Payload_Text{Text: &wirepb.Text{
		Id: r.id, Body: r.text, SentAtMs: r.now.UnixMilli(), Seq: seq,
	}}})
	if err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, tx, `INSERT INTO messages(id, conv, sender, outgoing, body, sent_at, received_at, seq, state)
		VALUES(?, ?, ?, 1, ?, ?, ?, ?, ?)`, r.id, str(r.c.ID), str(s.host.ID()), r.text, r.now.UnixMilli(), r.now.UnixMilli(), seq, apitype.StatePending); err != nil {
		return err
	}
	var envelope []byte
	if plain, known := s.plainPending[r.c.ID]; known && !plain {
		ch, err := s.channelLocked(ctx, r.c.ID)
		if err != nil {
			return err
		}
		if ch.HasSession() {
			if envelope, err = ch.Encrypt(s.idKey, s.keys, payload, rand.Reader, r.now); err != nil {
				return fmt.Errorf("encrypt: %w", err)
			}
			touched[r.c.ID] = ch
		}
	}
	if envelope == nil {
		s.plainPending[r.c.ID] = true
	}
	if _, err := s.db.Exec(ctx, tx, "INSERT INTO outbox(peer_id, frame_id, payload, envelope, created) VALUES(?, ?, ?, ?, ?)",
		str(r.c.ID), r.id, payload, envelope, r.now.UnixMilli()); err != nil {
		return fmt.Errorf("queue frame: %w", err)
	}
	r.msg = apitype.Message{
		ID: hex.EncodeToString(r.id), Conv: r.c.Name, From: str(s.host.ID()), Outgoing: true,
		Text: r.text, SentAt: time.UnixMilli(r.now.UnixMilli()), Seq: seq, State: apitype.StatePending,
	}
	return nil
}
