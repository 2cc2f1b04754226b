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
	"io"
	"strings"
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
// batches and acks each one after its batch committed. A blocked peer, or
// one whose budget is spent (see budget.go), is reset before a byte is read.
func (s *Service) handleDM(ctx context.Context, st network.Stream) {
	remote := st.Conn().RemotePeer()
	if s.rel.isBlocked(remote) {
		st.Reset()
		return
	}
	src := source{peer: remote, ip: addrKey(st.Conn().RemoteMultiaddr())}
	if !s.dm.admit(src, s.rel.isContact(remote), s.now()) {
		s.log.Debug("dm stream refused: over budget", "peer", remote)
		st.Reset()
		return
	}
	defer s.dm.leave(remote)
	defer st.Close()
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
		if first.GetMessage() == nil {
			// PROTOCOL.md: a frame that is not a message ends the stream,
			// unanswered.
			log.Info("dm stream ended: the opener sent a frame that is not a message")
			return
		}
		batch := []*wirepb.DMFrame{&first}
		end := false
		for len(batch) < recvBatch && r.Buffered() > 0 {
			fr := new(wirepb.DMFrame)
			if err := r.ReadFrame(wire.MaxFrameSize, fr); err != nil {
				log.Info("dm stream refused", "err", err)
				st.Reset()
				return
			}
			if fr.GetMessage() == nil {
				// Answer the messages before it, then end the stream.
				log.Info("dm stream ended: the opener sent a frame that is not a message")
				end = true
				break
			}
			batch = append(batch, fr)
		}
		if s.rel.isContact(remote) {
			// A stranger does not get to pin a connection.
			s.exchanges.Hold(remote, exchangeHold)
		}
		acks := s.receiveBatch(ctx, src, batch)
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
		if end {
			return
		}
		if !s.dm.failPeer.Has(string(remote), s.now()) || s.rel.isBlocked(remote) {
			// Close, not reset: the acks just written still reach the peer.
			log.Info("dm stream closed: too many frames failed to authenticate")
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
	name       string // the sender's contact name; "" for a message request
	newRequest bool   // the batch made the sender a message request
	maxSeq     uint64 // highest text sequence number in the batch
	messages   []apitype.Message
	delivered  []apitype.Message // own messages a receipt marked delivered
	texts      []*wirepb.Text    // authenticated texts, stored by storeTexts
}

// opened is a frame that authenticated, with its plaintext.
type opened struct {
	i      int // index in the batch
	plain  []byte
	prekey bool
}

func ackFor(fr *wirepb.DMFrame, status wirepb.AckStatus, why string) *wirepb.DMAck {
	return &wirepb.DMAck{Id: fr.GetMessage().GetId(), Status: status, Reason: why}
}

// receiveBatch decrypts and commits a batch of frames from src in one
// transaction, returning one ack per frame.
//
// The order of work is the price list of DESIGN 6: blocked peers and
// malformed or duplicate frames are answered without crypto; the frames
// left are decrypted on a copy of the session, outside s.mu and outside any
// transaction, within the sender's budget; only frames that authenticated
// are then committed under s.mu. A batch in which nothing authenticates
// leaves no trace: no contact, no request, no session, no row.
//
// If the transaction fails, the frames that authenticated are acked
// RETRY_LATER and the in-memory state is reloaded: nothing is lost and no
// key is used twice.
func (s *Service) receiveBatch(ctx context.Context, src source, batch []*wirepb.DMFrame) []*wirepb.DMAck {
	remote := src.peer
	acks := make([]*wirepb.DMAck, len(batch))
	if s.rel.isBlocked(remote) {
		for i, fr := range batch {
			acks[i] = ackFor(fr, wirepb.AckStatus_ACK_STATUS_REJECTED, "blocked")
		}
		return acks
	}
	remoteKey, err := edPub(remote)
	if err != nil {
		for i, fr := range batch {
			acks[i] = ackFor(fr, wirepb.AckStatus_ACK_STATUS_REJECTED, reason(err))
		}
		return acks
	}
	release := s.dm.enterLane(remote)
	defer release()
	contact := s.rel.isContact(remote)
	now := s.now()

	// 0. A sender out of budget gets nothing, not even a database lookup.
	if !s.dm.mayStart(src, contact, now) {
		for i, fr := range batch {
			acks[i] = ackFor(fr, wirepb.AckStatus_ACK_STATUS_RETRY_LATER, "over budget: too many frames or failures, retry later")
		}
		return acks
	}

	// 1. Shape and duplicates, without crypto.
	todo, err := s.screen(ctx, remote, batch, acks)
	if err != nil {
		s.log.Error("could not read received frame ids; asking the sender to retry", "peer", remote, "err", err)
		for _, i := range todo {
			acks[i] = ackFor(batch[i], wirepb.AckStatus_ACK_STATUS_RETRY_LATER, "receiver storage error")
		}
		return acks
	}
	if len(todo) == 0 {
		return acks
	}

	// 2. Trial decryption on copies of the session and key store.
	prekeys := false
	for _, i := range todo {
		prekeys = prekeys || e2e.IsPrekeyEnvelope(batch[i].GetMessage().GetEnvelope())
	}
	s.mu.Lock()
	base, err := s.peekChannelLocked(ctx, remote)
	var baseBlob, keysBlob []byte
	if err == nil {
		baseBlob, err = base.MarshalBinary()
	}
	if err == nil && prekeys {
		keysBlob, err = s.keys.MarshalBinary()
	}
	s.mu.Unlock()
	trial, trialKeys := new(e2e.Channel), (*e2e.KeyStore)(nil)
	if err == nil {
		err = trial.UnmarshalBinary(baseBlob)
	}
	if err == nil && prekeys {
		trialKeys = new(e2e.KeyStore)
		err = trialKeys.UnmarshalBinary(keysBlob)
	}
	if err != nil {
		s.log.Error("could not load the session; asking the sender to retry", "peer", remote, "err", err)
		for _, i := range todo {
			acks[i] = ackFor(batch[i], wirepb.AckStatus_ACK_STATUS_RETRY_LATER, "receiver storage error")
		}
		return acks
	}
	var ok []opened
	for k, i := range todo {
		if !s.dm.mayTry(src, contact, now) {
			s.log.Warn("dm frames over budget", "peer", remote, "addr", src.ip, "refused", len(todo)-k)
			for _, j := range todo[k:] {
				acks[j] = ackFor(batch[j], wirepb.AckStatus_ACK_STATUS_RETRY_LATER, "over budget: too many frames or failures, retry later")
			}
			break
		}
		env := batch[i].GetMessage().GetEnvelope()
		o := opened{i: i, prekey: e2e.IsPrekeyEnvelope(env)}
		var ks *e2e.KeyStore
		if o.prekey {
			ks = trialKeys
		}
		o.plain, err = s.trialDecrypt(ctx, src, contact, now, trial, ks, remoteKey, env)
		if err != nil {
			s.dm.failed(src, contact, now)
			s.log.Info("refused message", "peer", remote, "err", err)
			acks[i] = ackFor(batch[i], wirepb.AckStatus_ACK_STATUS_REJECTED, reason(err))
			continue
		}
		// A payload this node cannot take (another version, no body, a
		// field out of bounds) is refused with the reason, never acked OK
		// and dropped. It authenticated, so it costs no failure budget;
		// its message key is spent all the same.
		if _, err := wire.DecodePayload(o.plain); err != nil {
			s.log.Info("refused payload", "peer", remote, "err", err)
			acks[i] = ackFor(batch[i], wirepb.AckStatus_ACK_STATUS_REJECTED, reason(fmt.Errorf("%s%w", payloadRefused, err)))
			continue
		}
		ok = append(ok, o)
	}
	if len(ok) == 0 {
		return acks
	}

	// 3. Commit what authenticated.
	var out received
	s.mu.Lock()
	// Block, remove and accept take s.mu: what they decided stands.
	if s.rel.isBlocked(remote) {
		s.mu.Unlock()
		for _, o := range ok {
			acks[o.i] = ackFor(batch[o.i], wirepb.AckStatus_ACK_STATUS_REJECTED, "blocked")
		}
		return acks
	}
	contact = s.rel.isContact(remote)
	ok, err = s.adoptLocked(ctx, remote, remoteKey, batch, acks, ok, baseBlob, keysBlob, trial, trialKeys)
	var name string
	if err == nil && len(ok) > 0 && contact {
		// The contact's name, from the cache Send uses (cleared whenever
		// contacts change), read before the transaction holds the one
		// connection.
		var c Contact
		if c, err = s.resolveCached(ctx, str(remote)); err == nil {
			name = c.Name
		}
	}
	if err == nil && len(ok) > 0 {
		ch := s.channels[remote]
		err = s.db.Tx(ctx, func(tx *sql.Tx) error {
			return s.receiveTx(ctx, tx, remote, contact, name, ch, batch, ok, acks, &out)
		})
	}
	if err != nil {
		s.dropChannelLocked(remote)
		if rerr := s.reloadKeysLocked(ctx); rerr != nil {
			s.log.Error("reload keys", "err", rerr)
		}
		s.mu.Unlock()
		s.log.Error("could not commit received messages; asking the sender to retry", "peer", remote, "err", err)
		for _, o := range ok {
			acks[o.i] = ackFor(batch[o.i], wirepb.AckStatus_ACK_STATUS_RETRY_LATER, "receiver storage error")
		}
		return acks
	}
	s.mu.Unlock()
	if out.newRequest {
		s.events.publish(apitype.Event{Type: "request", Time: s.now(), PeerID: str(remote), Request: true})
	}
	muted := contact && s.rel.isMuted(remote)
	for i := range out.messages {
		s.events.publish(apitype.Event{Type: "message", Time: s.now(), Message: &out.messages[i], Request: !contact, Muted: muted})
	}
	s.publishChanged(ctx, remote, out.delivered)
	if len(out.messages) > 0 && contact {
		s.kickSoon(remote) // the receipts
	}
	return acks
}

// trialDecrypt decrypts env on the trial session; a suspect's frame waits
// for the suspects' slot first (see budget.go).
func (s *Service) trialDecrypt(ctx context.Context, src source, contact bool, now time.Time,
	trial *e2e.Channel, ks *e2e.KeyStore, remoteKey ed25519.PublicKey, env []byte) ([]byte, error) {
	if s.dm.suspect(src, contact, now) {
		select {
		case s.dm.suspects <- struct{}{}:
			defer func() { <-s.dm.suspects }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return trial.Decrypt(s.idKey, ks, remoteKey, env, rand.Reader, now)
}

// screen answers, without crypto, the frames of batch that are malformed
// or already committed, and returns the indexes of the others.
func (s *Service) screen(ctx context.Context, remote peer.ID, batch []*wirepb.DMFrame, acks []*wirepb.DMAck) ([]int, error) {
	var todo []int
	ids := make(map[string]bool, len(batch))
	var args []any
	for i, fr := range batch {
		m := fr.GetMessage()
		if err := wire.ValidateDMMessage(m); err != nil {
			acks[i] = ackFor(fr, wirepb.AckStatus_ACK_STATUS_REJECTED, reason(err))
			continue
		}
		if ids[string(m.Id)] {
			acks[i] = ackFor(fr, wirepb.AckStatus_ACK_STATUS_DUPLICATE, "")
			continue
		}
		ids[string(m.Id)] = true
		todo = append(todo, i)
		args = append(args, m.Id)
	}
	if len(todo) == 0 {
		return nil, nil
	}
	q := "SELECT frame_id FROM seen_frames WHERE peer_id = ? AND frame_id IN (?" + strings.Repeat(", ?", len(args)-1) + ")"
	rows, err := s.db.Query(ctx, nil, q, append([]any{str(remote)}, args...)...)
	if err != nil {
		return todo, err
	}
	seen := make(map[string]bool)
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return todo, err
		}
		seen[string(id)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return todo, err
	}
	fresh := todo[:0]
	for _, i := range todo {
		if seen[string(batch[i].GetMessage().Id)] {
			acks[i] = ackFor(batch[i], wirepb.AckStatus_ACK_STATUS_DUPLICATE, "")
			continue
		}
		fresh = append(fresh, i)
	}
	return fresh, nil
}

// adoptLocked makes the trial session (and key store) the live one if the
// live state did not move since the copy was taken. If it did (this node
// sent to remote meanwhile, or reset the session), the frames that
// authenticated are decrypted again on the live state: only they cost
// crypto under s.mu. It returns the frames that remain authenticated.
func (s *Service) adoptLocked(ctx context.Context, remote peer.ID, remoteKey []byte, batch []*wirepb.DMFrame, acks []*wirepb.DMAck,
	ok []opened, baseBlob, keysBlob []byte, trial *e2e.Channel, trialKeys *e2e.KeyStore) ([]opened, error) {
	live, err := s.peekChannelLocked(ctx, remote)
	if err != nil {
		return ok, err
	}
	prekey := false
	for _, o := range ok {
		prekey = prekey || o.prekey
	}
	same := false
	if blob, err := live.MarshalBinary(); err == nil && bytes.Equal(blob, baseBlob) {
		same = true
		if prekey {
			kb, err := s.keys.MarshalBinary()
			same = err == nil && bytes.Equal(kb, keysBlob)
		}
	}
	if same {
		s.channels[remote] = trial
		if prekey {
			s.keys = trialKeys
		}
		return ok, nil
	}
	s.channels[remote] = live
	now := s.now()
	kept := ok[:0]
	for _, o := range ok {
		var ks *e2e.KeyStore
		if o.prekey {
			ks = s.keys
		}
		env := batch[o.i].GetMessage().GetEnvelope()
		plain, err := live.Decrypt(s.idKey, ks, remoteKey, env, rand.Reader, now)
		if err != nil {
			s.log.Info("refused message", "peer", remote, "err", err)
			acks[o.i] = ackFor(batch[o.i], wirepb.AckStatus_ACK_STATUS_REJECTED, reason(err))
			continue
		}
		o.plain = plain
		kept = append(kept, o)
	}
	return kept, nil
}

// receiveTx is the body of the batch transaction: it records the frames
// that authenticated and what they carry. A stranger whose text messages
// authenticated becomes (or stays) a message request.
func (s *Service) receiveTx(ctx context.Context, tx *sql.Tx, remote peer.ID, contact bool, name string, ch *e2e.Channel,
	batch []*wirepb.DMFrame, ok []opened, acks []*wirepb.DMAck, out *received) error {
	*out = received{}
	if contact {
		out.name = name
	}
	var receipts [][]byte
	prekey := false
	fresh, err := s.recordSeen(ctx, tx, remote, batch, ok)
	if err != nil {
		return err
	}
	for _, o := range ok {
		if !fresh[string(batch[o.i].GetMessage().Id)] {
			acks[o.i] = ackFor(batch[o.i], wirepb.AckStatus_ACK_STATUS_DUPLICATE, "")
			continue
		}
		acks[o.i] = ackFor(batch[o.i], wirepb.AckStatus_ACK_STATUS_OK, "")
		prekey = prekey || o.prekey
		s.applyPayload(ctx, tx, remote, contact, o.plain, out, &receipts)
	}
	if err := s.storeTexts(ctx, tx, remote, out.name, out); err != nil {
		return err
	}
	if !contact && len(out.messages) > 0 {
		if err := s.recordRequest(ctx, tx, remote, out); err != nil {
			return err
		}
	}
	if out.maxSeq > 0 {
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO conv_seq(conv, last_in) VALUES(?, ?)
			ON CONFLICT(conv) DO UPDATE SET last_in = max(last_in, excluded.last_in)`, str(remote), out.maxSeq); err != nil {
			return err
		}
	}
	// A message request gets no receipts: nothing is sent to a stranger
	// until the user accepts it. The receipts are encrypted here, on the
	// session saved below, where they can be (queueLocked).
	for contact && len(receipts) > 0 {
		n := min(len(receipts), wire.MaxReceiptIDs)
		payload, err := proto.Marshal(&wirepb.Payload{Version: 1, Body: &wirepb.Payload_Receipt{Receipt: &wirepb.Receipt{Ids: receipts[:n]}}})
		if err != nil {
			return err
		}
		if err := s.queueLocked(ctx, tx, remote, ch, payload, s.now()); err != nil {
			return err
		}
		receipts = receipts[n:]
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
	return nil
}

// recordSeen records the frame ids of ok in seen_frames, one statement
// per maxInList frames, and returns the ids that were not there yet.
// screen deduplicated the batch, so each id appears once.
func (s *Service) recordSeen(ctx context.Context, tx *sql.Tx, remote peer.ID, batch []*wirepb.DMFrame, ok []opened) (map[string]bool, error) {
	fresh := make(map[string]bool, len(ok))
	at := s.now().UnixMilli()
	for len(ok) > 0 {
		chunk := ok[:min(len(ok), maxInList)]
		ok = ok[len(chunk):]
		args := make([]any, 0, 3*len(chunk))
		for _, o := range chunk {
			args = append(args, batch[o.i].GetMessage().Id, str(remote), at)
		}
		q := "INSERT INTO seen_frames(frame_id, peer_id, at) VALUES (?, ?, ?)" + strings.Repeat(", (?, ?, ?)", len(chunk)-1) +
			" ON CONFLICT DO NOTHING RETURNING frame_id"
		got, err := s.returnedIDs(ctx, tx, q, args...)
		if err != nil {
			return nil, err
		}
		for id := range got {
			fresh[id] = true
		}
	}
	return fresh, nil
}

// recordRequest makes remote, a stranger whose text messages authenticated,
// a message request (or updates its time). Other payloads from strangers
// (a fellow room member's sender keys) make no request: the room layer
// decides what to do with them.
func (s *Service) recordRequest(ctx context.Context, tx *sql.Tx, remote peer.ID, out *received) error {
	var n int
	if err := s.db.QueryRow(ctx, tx, "SELECT count(*) FROM requests WHERE peer_id = ?", str(remote)).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if err := s.db.QueryRow(ctx, tx, "SELECT count(*) FROM requests").Scan(&n); err != nil {
			return err
		}
		if n >= maxRequests {
			return fmt.Errorf("%w (%d); decline or block some", errTooManyRequests, maxRequests)
		}
		out.newRequest = true
	}
	now := s.now().UnixMilli()
	if _, err := s.db.Exec(ctx, tx, `INSERT INTO requests(peer_id, first_at, last_at) VALUES(?, ?, ?)
		ON CONFLICT(peer_id) DO UPDATE SET last_at = excluded.last_at`, str(remote), now, now); err != nil {
		return fmt.Errorf("record message request: %w", err)
	}
	return nil
}

// applyPayload handles the plaintext of one authenticated frame inside the
// batch transaction. A stranger's texts are stored (readable, as a
// message request).
func (s *Service) applyPayload(ctx context.Context, tx *sql.Tx, remote peer.ID, contact bool, plain []byte, out *received, receipts *[][]byte) {
	p, err := wire.DecodePayload(plain)
	if err != nil {
		s.log.Info("undecodable payload", "peer", remote, "err", err)
		return // consumed: the ratchet moved; the content is dropped
	}
	switch b := p.Body.(type) {
	case *wirepb.Payload_Text:
		if err := checkText(b.Text); err != nil {
			s.log.Info("refused text", "peer", remote, "err", err)
			return
		}
		out.texts = append(out.texts, b.Text) // stored by storeTexts
		*receipts = append(*receipts, b.Text.Id)
	case *wirepb.Payload_Receipt:
		// One statement per receipt (at most wire.MaxReceiptIDs ids).
		ids := b.Receipt.Ids
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), maxInList)]
			ids = ids[len(chunk):]
			args := make([]any, 0, 3+len(chunk))
			args = append(args, apitype.StateDelivered, str(remote), apitype.StateDelivered)
			for _, id := range chunk {
				args = append(args, id)
			}
			// "+conv": with a long IN list SQLite would rather walk the
			// whole conversation on messages_conv than look ids up.
			changed, err := s.changedMessages(ctx, tx, "UPDATE messages SET state = ? WHERE +conv = ? AND outgoing = 1 AND state != ? AND id IN ("+
				placeholders(len(chunk))+")", args...)
			if err != nil {
				s.log.Info("receipt not recorded", "peer", remote, "err", err)
				continue
			}
			for _, id := range chunk {
				if m, ok := changed[string(id)]; ok {
					delete(changed, string(id)) // an id repeated in the receipt counts once
					out.delivered = append(out.delivered, m)
				}
			}
		}
	case *wirepb.Payload_Reset_:
		// The session change itself happened in Decrypt.
	default:
		// Room payloads and mailbox lists go to their services whoever sent
		// them: fellow members of a room need not be contacts. Those
		// services ask IsContact where a contact's privilege is at stake.
		if s.onPayload != nil {
			s.onPayload(ctx, tx, remote, p)
		}
	}
}

// checkText refuses a text that cannot be stored.
func checkText(t *wirepb.Text) error {
	if len(t.Id) != 16 {
		return errors.New("message id is not 16 bytes")
	}
	if len(t.Body) > MaxTextLen {
		return ErrTooLong
	}
	return nil
}

// storeTexts stores the texts of a batch (checked by checkText), one
// statement per maxInList texts; a message id already stored is ignored.
// The new ones go to out.messages in batch order. name is the sender's
// contact name, "" for a request.
func (s *Service) storeTexts(ctx context.Context, tx *sql.Tx, remote peer.ID, name string, out *received) error {
	conv := name
	if conv == "" {
		conv = str(remote)
	}
	now := s.now().UnixMilli()
	texts := out.texts
	for len(texts) > 0 {
		chunk := texts[:min(len(texts), maxInList)]
		texts = texts[len(chunk):]
		args := make([]any, 0, 8*len(chunk))
		for _, t := range chunk {
			args = append(args, t.Id, str(remote), str(remote), t.Body, t.SentAtMs, now, t.Seq, apitype.StateReceived)
		}
		q := "INSERT INTO messages(id, conv, sender, outgoing, body, sent_at, received_at, seq, state) VALUES " +
			rowsOf("(?, ?, ?, 0, ?, ?, ?, ?, ?)", len(chunk)) + " ON CONFLICT DO NOTHING RETURNING id"
		fresh, err := s.returnedIDs(ctx, tx, q, args...)
		if err != nil {
			return fmt.Errorf("store messages: %w", err)
		}
		for _, t := range chunk {
			if !fresh[string(t.Id)] {
				continue // stored before, or earlier in this batch
			}
			delete(fresh, string(t.Id))
			out.messages = append(out.messages, apitype.Message{
				ID: hex.EncodeToString(t.Id), Conv: conv, From: str(remote), FromName: name,
				Text: t.Body, SentAt: time.UnixMilli(t.SentAtMs), Seq: t.Seq, State: apitype.StateReceived,
			})
			out.maxSeq = max(out.maxSeq, t.Seq)
		}
	}
	return nil
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
