package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// handleDM serves one /parley/dm/1 stream: it reads frames, commits them in
// batches and acks each one after its batch committed.
func (s *Service) handleDM(ctx context.Context, st network.Stream) {
	defer st.Close()
	remote := st.Conn().RemotePeer()
	log := s.log.With("peer", remote)
	r := wire.NewReader(st)
	for {
		st.SetReadDeadline(time.Now().Add(streamIdle))
		var first wirepb.DMFrame
		if err := r.ReadFrame(wire.MaxFrameSize, &first); err != nil {
			if !isEOF(err) {
				log.Info("dm stream refused", "err", err)
				st.Reset()
			}
			return
		}
		batch := []*wirepb.DMFrame{&first}
		for len(batch) < recvBatch && r.Buffered() > 0 {
			fr := new(wirepb.DMFrame)
			if err := r.ReadFrame(wire.MaxFrameSize, fr); err != nil {
				log.Info("dm stream refused", "err", err)
				st.Reset()
				return
			}
			batch = append(batch, fr)
		}
		acks := s.receiveBatch(ctx, remote, batch)
		var buf bytes.Buffer
		for _, a := range acks {
			if err := wire.WriteFrame(&buf, &wirepb.DMFrame{Body: &wirepb.DMFrame_Ack{Ack: a}}); err != nil {
				st.Reset()
				return
			}
		}
		st.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := st.Write(buf.Bytes()); err != nil {
			log.Debug("write acks failed", "err", err)
			st.Reset()
			return
		}
	}
}

// reason turns an error into an ack reason within the wire limit.
func reason(err error) string {
	r := err.Error()
	if len(r) > wire.MaxReasonSize {
		r = r[:wire.MaxReasonSize]
	}
	return r
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF)
}

// received is what a committed batch publishes afterwards.
type received struct {
	name      string // the sender's contact name
	maxSeq    uint64 // highest text sequence number in the batch
	messages  []apitype.Message
	delivered [][]byte
}

// receiveBatch decrypts and commits a batch of frames from remote in one
// transaction, returning one ack per frame. If the transaction fails, every
// frame is acked RETRY_LATER and the in-memory state is reloaded: nothing
// is lost and no key is used twice.
func (s *Service) receiveBatch(ctx context.Context, remote peer.ID, batch []*wirepb.DMFrame) []*wirepb.DMAck {
	acks := make([]*wirepb.DMAck, len(batch))
	remoteKey, err := edPub(remote)
	if err != nil {
		for i, fr := range batch {
			acks[i] = &wirepb.DMAck{Id: fr.GetMessage().GetId(), Status: wirepb.AckStatus_ACK_STATUS_REJECTED, Reason: reason(err)}
		}
		return acks
	}
	var out received
	s.mu.Lock()
	// The channel is loaded before the transaction: the database has one
	// connection, which the transaction holds.
	ch, err := s.channelLocked(ctx, remote)
	if err == nil {
		err = s.db.Tx(ctx, func(tx *sql.Tx) error {
			return s.receiveTx(ctx, tx, remote, remoteKey, ch, batch, acks, &out)
		})
	}
	if err != nil {
		s.dropChannelLocked(remote)
		if rerr := s.reloadKeysLocked(ctx); rerr != nil {
			s.log.Error("reload keys", "err", rerr)
		}
		s.mu.Unlock()
		s.log.Error("could not commit received messages; asking the sender to retry", "peer", remote, "err", err)
		for i, fr := range batch {
			acks[i] = &wirepb.DMAck{Id: fr.GetMessage().GetId(), Status: wirepb.AckStatus_ACK_STATUS_RETRY_LATER, Reason: "receiver storage error"}
		}
		return acks
	}
	s.mu.Unlock()
	for i := range out.messages {
		s.events.publish(apitype.Event{Type: "message", Time: s.now(), Message: &out.messages[i]})
	}
	s.publishStates(ctx, out.delivered)
	if len(out.messages) > 0 {
		s.kickSoon(remote) // the receipts
	}
	return acks
}

// receiveTx is the body of the batch transaction.
func (s *Service) receiveTx(ctx context.Context, tx *sql.Tx, remote peer.ID, remoteKey []byte, ch *e2e.Channel,
	batch []*wirepb.DMFrame, acks []*wirepb.DMAck, out *received) error {
	*out = received{}
	name, err := s.ensureContact(ctx, tx, remote)
	if err != nil {
		return err
	}
	out.name = name
	var receipts [][]byte
	used, prekey := false, false
	for i, fr := range batch {
		if e2e.IsPrekeyEnvelope(fr.GetMessage().GetEnvelope()) {
			prekey = true
		}
		acks[i] = s.receiveFrame(ctx, tx, remote, remoteKey, ch, fr, out, &receipts, &used)
	}
	if !used {
		return nil
	}
	if out.maxSeq > 0 {
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO conv_seq(conv, last_in) VALUES(?, ?)
			ON CONFLICT(conv) DO UPDATE SET last_in = max(last_in, excluded.last_in)`, str(remote), out.maxSeq); err != nil {
			return err
		}
	}
	if err := s.saveChannel(ctx, tx, remote, ch); err != nil {
		return err
	}
	// Only a prekey message can consume a one-time prekey.
	if prekey {
		if err := s.saveKeysLocked(ctx, tx); err != nil {
			return err
		}
	}
	for len(receipts) > 0 {
		n := min(len(receipts), wire.MaxReceiptIDs)
		payload, err := proto.Marshal(&wirepb.Payload{Version: 1, Body: &wirepb.Payload_Receipt{Receipt: &wirepb.Receipt{Ids: receipts[:n]}}})
		if err != nil {
			return err
		}
		if err := s.enqueue(ctx, tx, remote, newID(), payload, s.now()); err != nil {
			return err
		}
		receipts = receipts[n:]
	}
	return nil
}

// receiveFrame handles one frame inside the batch transaction.
func (s *Service) receiveFrame(ctx context.Context, tx *sql.Tx, remote peer.ID, remoteKey []byte, ch *e2e.Channel,
	fr *wirepb.DMFrame, out *received, receipts *[][]byte, used *bool) *wirepb.DMAck {
	m := fr.GetMessage()
	if m == nil {
		return &wirepb.DMAck{Status: wirepb.AckStatus_ACK_STATUS_REJECTED, Reason: "expected a message frame"}
	}
	ack := &wirepb.DMAck{Id: m.Id, Status: wirepb.AckStatus_ACK_STATUS_OK}
	if err := wire.ValidateDMMessage(m); err != nil {
		ack.Status, ack.Reason = wirepb.AckStatus_ACK_STATUS_REJECTED, reason(err)
		return ack
	}
	// Claim the frame id first: a frame id already committed is a
	// duplicate, acked without touching the ratchet.
	res, err := s.db.Exec(ctx, tx, "INSERT INTO seen_frames(frame_id, peer_id, at) VALUES(?, ?, ?) ON CONFLICT DO NOTHING", m.Id, str(remote), s.now().UnixMilli())
	if err != nil {
		ack.Status, ack.Reason = wirepb.AckStatus_ACK_STATUS_RETRY_LATER, "storage"
		return ack
	}
	if k, _ := res.RowsAffected(); k == 0 {
		ack.Status = wirepb.AckStatus_ACK_STATUS_DUPLICATE
		return ack
	}
	plain, err := ch.Decrypt(s.idKey, s.keys, remoteKey, m.Envelope, rand.Reader, s.now())
	if err != nil {
		s.log.Info("refused message", "peer", remote, "err", err)
		ack.Status, ack.Reason = wirepb.AckStatus_ACK_STATUS_REJECTED, reason(err)
		// Release the id: the sender re-encrypts this frame under a new
		// session and sends it again with the same id.
		s.db.Exec(ctx, tx, "DELETE FROM seen_frames WHERE frame_id = ?", m.Id)
		return ack
	}
	*used = true
	p, err := wire.DecodePayload(plain)
	if err != nil {
		s.log.Info("undecodable payload", "peer", remote, "err", err)
		return ack // consumed: the ratchet moved; the content is dropped
	}
	switch b := p.Body.(type) {
	case *wirepb.Payload_Text:
		msg, err := s.storeIncoming(ctx, tx, remote, out.name, b.Text)
		if err != nil {
			s.log.Info("refused text", "peer", remote, "err", err)
			return ack
		}
		if msg != nil {
			out.messages = append(out.messages, *msg)
			out.maxSeq = max(out.maxSeq, b.Text.Seq)
		}
		*receipts = append(*receipts, b.Text.Id)
	case *wirepb.Payload_Receipt:
		for _, id := range b.Receipt.Ids {
			res, err := s.db.Exec(ctx, tx, "UPDATE messages SET state = ? WHERE id = ? AND conv = ? AND outgoing = 1 AND state != ?",
				apitype.StateDelivered, id, str(remote), apitype.StateDelivered)
			if err == nil {
				if k, _ := res.RowsAffected(); k > 0 {
					out.delivered = append(out.delivered, id)
				}
			}
		}
	case *wirepb.Payload_Reset_:
		// The session change itself happened in Decrypt.
	default:
		if s.onPayload != nil {
			s.onPayload(ctx, tx, remote, p)
		}
	}
	return ack
}

// storeIncoming stores a text message; a message id already stored is
// ignored (nil, nil).
func (s *Service) storeIncoming(ctx context.Context, tx *sql.Tx, remote peer.ID, name string, t *wirepb.Text) (*apitype.Message, error) {
	if len(t.Id) != 16 {
		return nil, errors.New("message id is not 16 bytes")
	}
	if len(t.Body) > MaxTextLen {
		return nil, ErrTooLong
	}
	now := s.now()
	res, err := s.db.Exec(ctx, tx, `INSERT INTO messages(id, conv, sender, outgoing, body, sent_at, received_at, seq, state)
		VALUES(?, ?, ?, 0, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING`,
		t.Id, str(remote), str(remote), t.Body, t.SentAtMs, now.UnixMilli(), t.Seq, apitype.StateReceived)
	if err != nil {
		return nil, err
	}
	if k, _ := res.RowsAffected(); k == 0 {
		return nil, nil
	}
	return &apitype.Message{
		ID: hex.EncodeToString(t.Id), Conv: name, From: str(remote), FromName: name,
		Text: t.Body, SentAt: time.UnixMilli(t.SentAtMs), Seq: t.Seq, State: apitype.StateReceived,
	}, nil
}

// ensureContact adds an unknown sender as an unverified contact, so that a
// message from a stranger is kept and shown (as a message request would be).
func (s *Service) ensureContact(ctx context.Context, tx *sql.Tx, p peer.ID) (name string, err error) {
	if s.db.QueryRow(ctx, tx, "SELECT name FROM contacts WHERE peer_id = ?", str(p)).Scan(&name) == nil {
		return name, nil
	}
	name = defaultName(p)
	_, err = s.db.Exec(ctx, tx, `INSERT INTO contacts(peer_id, name, added_at) VALUES(?, ?, ?) ON CONFLICT DO NOTHING`,
		str(p), name, s.now().UnixMilli())
	return name, err
}

func (s *Service) reloadKeysLocked(ctx context.Context) error {
	var blob []byte
	if err := s.db.QueryRow(ctx, nil, "SELECT state FROM e2e_keystore WHERE id = 1").Scan(&blob); err != nil {
		return err
	}
	ks := new(e2e.KeyStore)
	if err := ks.UnmarshalBinary(blob); err != nil {
		return err
	}
	s.keys = ks
	return nil
}

// handlePrekeys serves one prekey bundle per stream, within the peer's budget.
func (s *Service) handlePrekeys(ctx context.Context, st network.Stream) {
	defer st.Close()
	remote := st.Conn().RemotePeer()
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req wirepb.PrekeyRequest
	if err := wire.NewReader(st).ReadFrame(64, &req); err != nil {
		s.log.Info("prekey request refused", "peer", remote, "err", err)
		st.Reset()
		return
	}
	resp := &wirepb.PrekeyResponse{}
	switch {
	case req.Version != 1:
		resp.Error = fmt.Sprintf("unsupported prekey protocol version %d", req.Version)
	case !s.prekeyLimit.Allow(remote, s.now()):
		resp.Error = "rate limited: too many prekey requests, try again later"
		s.log.Warn("prekey request over budget", "peer", remote)
	default:
		b, err := s.issueBundle(ctx)
		if err != nil {
			s.log.Error("issue prekey bundle", "err", err)
			resp.Error = "internal error"
		} else {
			resp.Bundle = b
		}
	}
	st.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := wire.WriteFrame(st, resp); err != nil {
		st.Reset()
	}
}

func (s *Service) issueBundle(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.keys.Bundle(s.idKey, s.now())
	if err != nil {
		return nil, err
	}
	if err := s.db.Tx(ctx, func(tx *sql.Tx) error { return s.saveKeysLocked(ctx, tx) }); err != nil {
		s.reloadKeysLocked(ctx)
		return nil, err
	}
	return b.MarshalBinary()
}

// fetchBundle asks p for a prekey bundle and verifies it against p's peer ID.
func (s *Service) fetchBundle(ctx context.Context, p peer.ID) (e2e.Bundle, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := s.host.NewStream(network.WithAllowLimitedConn(ctx, "parley-prekeys"), p, wire.ProtocolPrekeys)
	if err != nil {
		return e2e.Bundle{}, fmt.Errorf("ask %s for prekeys: %w", p, err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	if err := wire.WriteFrame(st, &wirepb.PrekeyRequest{Version: 1}); err != nil {
		st.Reset()
		return e2e.Bundle{}, err
	}
	var resp wirepb.PrekeyResponse
	if err := wire.NewReader(st).ReadFrame(wire.MaxPrekeyResponse, &resp); err != nil {
		st.Reset()
		return e2e.Bundle{}, fmt.Errorf("read prekeys of %s: %w", p, err)
	}
	if resp.Error != "" {
		return e2e.Bundle{}, fmt.Errorf("%s refused prekeys: %s", p, resp.Error)
	}
	var b e2e.Bundle
	if err := b.UnmarshalBinary(resp.Bundle); err != nil {
		return e2e.Bundle{}, fmt.Errorf("prekey bundle of %s: %w", p, err)
	}
	key, err := edPub(p)
	if err != nil {
		return e2e.Bundle{}, err
	}
	if err := b.Verify(key); err != nil {
		return e2e.Bundle{}, fmt.Errorf("prekey bundle of %s does not match its peer ID: %w", p, err)
	}
	return b, nil
}
