package mailbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/peer/apitype"
)

// ErrRefused wraps a mailbox's refusal (the status and its reason).
var ErrRefused = errors.New("mailbox refused")

// RefusedError is a mailbox's answer other than OK.
type RefusedError struct {
	Mailbox peer.ID
	Status  wirepb.MailboxStatus
	Reason  string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("mailbox %s: %s: %s", e.Mailbox, e.Status, e.Reason)
}

// Is reports whether target is ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

const dialTimeout = 20 * time.Second

// reach makes sure there is a connection to mailbox m.
func (s *Service) reach(ctx context.Context, m peer.ID) error {
	var router discovery.PeerRouter
	if s.cfg.Router != nil {
		router = s.cfg.Router
	}
	if err := discovery.Reach(ctx, s.host, s.db.Remembered, router, m, dialTimeout, "parley-mailbox"); err != nil {
		return fmt.Errorf("mailbox %s: %w", m, err)
	}
	return nil
}

// Request sends one request to mailbox m from this node's own identity and
// returns its answer; a response that is not OK comes back as a
// *RefusedError. A request to this node itself is served locally. Fetch
// and Delete go this way; Deposit sends deposits from a throwaway identity
// instead.
func (s *Service) Request(ctx context.Context, m peer.ID, req *wirepb.MailboxRequest) (*wirepb.MailboxResponse, error) {
	req.Version = wire.Version
	if m == s.host.ID() {
		return s.requestLocal(ctx, req)
	}
	if err := s.reach(ctx, m); err != nil {
		return nil, err
	}
	return roundTrip(ctx, s.host, m, req)
}

func (s *Service) requestLocal(ctx context.Context, req *wirepb.MailboxRequest) (*wirepb.MailboxResponse, error) {
	resp, err := s.serveLocal(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp, checkResponse(s.host.ID(), resp)
}

// roundTrip sends req to m on a new stream of h, which must be connected to
// it, and reads the answer.
func roundTrip(ctx context.Context, h host.Host, m peer.ID, req *wirepb.MailboxRequest) (*wirepb.MailboxResponse, error) {
	st, err := h.NewStream(network.WithAllowLimitedConn(ctx, "parley-mailbox"), m, wire.ProtocolMailbox)
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: open stream: %w", m, err)
	}
	defer st.Close()
	st.SetWriteDeadline(time.Now().Add(wire.WriteTimeout))
	if err := wire.WriteFrame(st, req); err != nil {
		st.Reset()
		return nil, fmt.Errorf("mailbox %s: write: %w", m, err)
	}
	st.CloseWrite()
	st.SetReadDeadline(time.Now().Add(wire.ReadTimeout))
	resp := new(wirepb.MailboxResponse)
	if err := wire.ReadFrame(st, wire.MaxMailboxResponse, resp); err != nil {
		st.Reset()
		return nil, fmt.Errorf("mailbox %s: read response: %w", m, err)
	}
	if err := wire.ValidateMailboxResponse(resp); err != nil {
		return nil, fmt.Errorf("mailbox %s: %w", m, err)
	}
	return resp, checkResponse(m, resp)
}

func checkResponse(m peer.ID, resp *wirepb.MailboxResponse) error {
	if resp.Status != wirepb.MailboxStatus_MAILBOX_STATUS_OK {
		return &RefusedError{Mailbox: m, Status: resp.Status, Reason: resp.Error}
	}
	return nil
}

// serveLocal answers a request addressed to this node's own mailbox
// (a contact that is also our mailbox deposits into itself).
func (s *Service) serveLocal(ctx context.Context, req *wirepb.MailboxRequest) (*wirepb.MailboxResponse, error) {
	if !s.srv.on.Load() {
		return refuse(wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "this node serves no mailbox"), nil
	}
	switch op := req.Op.(type) {
	case *wirepb.MailboxRequest_Deposit:
		return s.srv.deposit(ctx, op.Deposit)
	case *wirepb.MailboxRequest_Fetch:
		return s.srv.fetch(ctx, op.Fetch)
	case *wirepb.MailboxRequest_Delete:
		return s.srv.delete(ctx, op.Delete)
	}
	return refuse(wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "no operation"), nil
}

// Deposit implements chat.Mailbox: it seals every frame waiting for `to`
// (the batch handed in and the rest of the outbox) and deposits it in
// every mailbox `to` announced, in queue order, skipping frames already
// deposited there. Depositing in all of them costs a little storage and
// makes a loss or an outage of one mailbox harmless. It returns an error
// only if no mailbox took the frames.
//
// The deposits of one call (one round) leave from one throwaway libp2p
// host with a fresh identity, closed before Deposit returns: a mailbox
// never sees this node's peer ID on a deposit.
func (s *Service) Deposit(ctx context.Context, to peer.ID, frames []chat.OutFrame) error {
	mbs, secret, ok, err := s.listOf(ctx, to)
	if err != nil || !ok || len(mbs) == 0 {
		return err
	}
	if len(frames) == 0 {
		return nil
	}
	type sealed struct {
		id, blob []byte
	}
	blobs := make([]sealed, 0, len(frames))
	for _, f := range frames {
		b, err := secret.Seal(f.ID, f.Envelope)
		if err != nil {
			s.log.Warn("frame too large for a mailbox; it waits for a direct delivery", "peer", to, "err", err)
			continue
		}
		blobs = append(blobs, sealed{f.ID, b})
	}
	day := DayOf(s.now())
	// What each mailbox still lacks; a throwaway host only if some remote
	// mailbox lacks something.
	todo := make(map[peer.ID][]sealed, len(mbs))
	remote := false
	for _, m := range mbs {
		for _, b := range blobs {
			var done int
			if s.db.QueryRow(ctx, nil, "SELECT 1 FROM mailbox_sent WHERE frame_id = ? AND mailbox = ?", b.id, m.String()).Scan(&done) == nil {
				continue
			}
			todo[m] = append(todo[m], b)
		}
		remote = remote || (len(todo[m]) > 0 && m != s.host.ID())
	}
	var h host.Host
	if remote {
		if h, err = newThrowaway(s.cfg.PSK); err != nil {
			return fmt.Errorf("mailbox deposit: %w", err)
		}
		defer h.Close()
	}
	var (
		wg   = make(chan error, len(mbs))
		okN  int
		errs []error
	)
	for _, m := range mbs {
		go func() {
			n := len(blobs) - len(todo[m])
			var derr error
			if len(todo[m]) > 0 && m != s.host.ID() {
				derr = s.connectThrowaway(ctx, h, m)
			}
			tag := secret.Tag(m, day) // each mailbox its own tag: see FetchKey
			for _, b := range todo[m] {
				if derr != nil {
					break
				}
				req := &wirepb.MailboxRequest{Version: wire.Version, Op: &wirepb.MailboxRequest_Deposit{
					Deposit: &wirepb.Deposit{Tag: tag[:], Blob: b.blob}}}
				var err error
				if m == s.host.ID() {
					_, err = s.requestLocal(ctx, req)
				} else {
					_, err = roundTrip(ctx, h, m, req)
				}
				if err != nil {
					derr = err
					break
				}
				if _, err := s.db.Exec(ctx, nil, "INSERT OR IGNORE INTO mailbox_sent(frame_id, mailbox, at) VALUES(?, ?, ?)",
					b.id, m.String(), s.now().UnixMilli()); err != nil {
					derr = err
					break
				}
				n++
			}
			if derr == nil {
				s.log.Debug("deposited", "peer", to, "mailbox", m, "frames", n)
			}
			wg <- derr
		}()
	}
	for range mbs {
		if err := <-wg; err != nil {
			errs = append(errs, err)
		} else {
			okN++
		}
	}
	if okN == 0 {
		return errors.Join(errs...)
	}
	for _, err := range errs {
		s.log.Info("mailbox deposit failed", "peer", to, "err", err)
	}
	return nil
}

// drainDays is how many days back a drain looks: the TTL plus one for
// clock skew; one day ahead is covered too.
func (s *Service) drainDays() int64 {
	return s.srv.limits.Load().ttlDays() + 1
}

// registerDays is how many days ahead a drain presents fetch keys. A
// contacts-only mailbox accepts deposits only under tags registered this
// way, so it must cover the days the recipient may stay offline: the TTL,
// after which items would expire anyway.
func (s *Service) registerDays() int64 {
	return s.srv.limits.Load().ttlDays()
}

type tagOwner struct {
	peer   peer.ID
	secret Secret
}

// Drain fetches everything waiting in this node's mailboxes, commits it
// through chat exactly like frames that arrived directly, and deletes what
// was committed (or can never be). It returns how many items it handed to
// chat.
func (s *Service) Drain(ctx context.Context) (int, error) {
	res := s.DrainReport(ctx)
	if res.Error != "" {
		return res.Received, errors.New(res.Error)
	}
	return res.Received, nil
}

// DrainReport is Drain with the outcome of each mailbox, which it also
// keeps for Status. A node that uses the default mailboxes and has not
// picked them yet connects to them first.
func (s *Service) DrainReport(ctx context.Context) apitype.MailboxDrainResult {
	res := apitype.MailboxDrainResult{Mailboxes: []apitype.MailboxDrain{}}
	if s.chat == nil {
		res.Note = "this node has no chat service: it only serves"
		return res
	}
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	s.pickDefaults(ctx)
	mbs := s.Mailboxes()
	if len(mbs) == 0 {
		s.mu.Lock()
		explicit := s.explicit
		s.mu.Unlock()
		switch {
		case explicit:
			res.Note = "no mailbox in use (`parley mailbox use --none`); nothing to drain"
		case len(s.cfg.Defaults) > 0:
			res.Note = "no mailbox in use: none of the default mailboxes (this network's bootstrap nodes) is reachable and serves mailboxes"
		default:
			res.Note = "no mailbox in use; choose one with `parley mailbox use PEER`"
		}
		return res
	}
	var secrets []tagOwner
	rows, err := s.db.Query(ctx, nil, "SELECT peer_id, secret FROM mailbox_secrets")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	for rows.Next() {
		var id string
		var b []byte
		if rows.Scan(&id, &b) != nil {
			continue
		}
		p, err := peer.Decode(id)
		if err != nil || len(b) != len(Secret{}) {
			continue
		}
		var sec Secret
		copy(sec[:], b)
		secrets = append(secrets, tagOwner{p, sec})
	}
	rows.Close()
	// Items deposited under the link secret (first messages from holders of
	// this node's contact links) are owned by "": the sender is found in the
	// envelope (see linkSender).
	secrets = append(secrets, s.linkOwners(ctx)...)
	today := DayOf(s.now())
	// The fetch keys of each mailbox are its own (FetchKey binds the
	// mailbox), so what one mailbox sees it cannot replay at another.
	keysFor := func(m peer.ID) ([][]byte, map[[32]byte]tagOwner) {
		owners := map[[32]byte]tagOwner{}
		var keys [][]byte
		for _, h := range secrets {
			for d := today - Day(s.drainDays()); d <= today+Day(s.registerDays()); d++ {
				k := h.secret.FetchKey(m, d)
				owners[TagOf(k[:])] = h
				keys = append(keys, k[:])
			}
		}
		return keys, owners
	}
	var errs []error
	for _, m := range mbs {
		keys, owners := keysFor(m)
		n, err := s.drainOne(ctx, m, keys, owners)
		res.Received += n
		d := apitype.MailboxDrain{Mailbox: m.String(), At: s.now(), Fetched: n}
		if err != nil {
			errs = append(errs, err)
			d.Error = err.Error()
		}
		res.Mailboxes = append(res.Mailboxes, d)
	}
	s.mu.Lock()
	for _, d := range res.Mailboxes {
		id, _ := peer.Decode(d.Mailbox)
		s.drains[id] = d
	}
	if len(errs) < len(mbs) {
		s.lastDrain = s.now()
		s.lastFetched = res.Received
	}
	s.mu.Unlock()
	if res.Received > 0 {
		s.log.Info("drained mailboxes", "items", res.Received)
	}
	if err := errors.Join(errs...); err != nil {
		res.Error = err.Error()
	}
	return res
}

func (s *Service) drainOne(ctx context.Context, m peer.ID, keys [][]byte, owners map[[32]byte]tagOwner) (int, error) {
	total := 0
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), wire.MaxFetchTags)]
		keys = keys[len(chunk):]
		for {
			resp, err := s.Request(ctx, m, &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Fetch{
				Fetch: &wirepb.Fetch{Tags: chunk, Limit: wire.MaxFetchItems}}})
			if err != nil {
				return total, err
			}
			if len(resp.Items) == 0 {
				break
			}
			del, n := s.commit(ctx, resp.Items, owners)
			total += n
			if len(del) > 0 {
				if _, err := s.Request(ctx, m, &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Delete{
					Delete: &wirepb.Delete{Ids: del}}}); err != nil {
					return total, err
				}
			}
			if len(del) < len(resp.Items) {
				// Some were not committed (receiver busy): try again next drain.
				return total, errors.New("some mailbox items could not be committed yet")
			}
		}
	}
	return total, nil
}

// commit opens the items, hands them to chat per sender in deposit order
// and returns the ids to delete.
func (s *Service) commit(ctx context.Context, items []*wirepb.MailboxItem, owners map[[32]byte]tagOwner) (del [][]byte, n int) {
	type opened struct {
		item *wirepb.MailboxItem
		msg  *wirepb.DMMessage
	}
	// Items under the link secret (issue 10) name their sender themselves,
	// so they are kept apart and authenticated before chat records anything.
	type source struct {
		peer peer.ID
		link bool
	}
	bySender := map[source][]opened{}
	var order []source
	for _, it := range items {
		o, ok := owners[[32]byte(it.Tag)]
		if !ok {
			del = append(del, it.Id) // not ours: cannot happen unless the mailbox lies
			continue
		}
		id, env, err := o.secret.Open(it.Blob)
		if err != nil {
			s.log.Info("dropping an unreadable mailbox item", "peer", o.peer, "err", err)
			del = append(del, it.Id)
			continue
		}
		from := source{peer: o.peer}
		if o.peer == "" { // issue 10: under the link secret; the envelope names its sender
			if from.peer, err = linkSender(env); err != nil {
				s.log.Info("dropping a link mailbox item that names no sender", "err", err)
				del = append(del, it.Id)
				continue
			}
			from.link = true
		}
		if _, seen := bySender[from]; !seen {
			order = append(order, from)
		}
		bySender[from] = append(bySender[from], opened{it, &wirepb.DMMessage{Id: id, Envelope: env}})
	}
	for _, src := range order {
		p := src.peer
		os := bySender[src]
		sort.SliceStable(os, func(i, j int) bool { return os[i].item.ReceivedAtMs < os[j].item.ReceivedAtMs })
		msgs := make([]*wirepb.DMMessage, len(os))
		for i, o := range os {
			msgs[i] = o.msg
		}
		receive := s.chat.ReceiveFrames
		if src.link {
			receive = s.chat.ReceiveLinkFrames
		}
		acks := receive(ctx, p, msgs)
		for i, a := range acks {
			switch a.GetStatus() {
			case wirepb.AckStatus_ACK_STATUS_OK, wirepb.AckStatus_ACK_STATUS_DUPLICATE:
				del = append(del, os[i].item.Id)
				n++
			case wirepb.AckStatus_ACK_STATUS_REJECTED:
				s.log.Info("mailbox frame refused by the session", "peer", p, "reason", a.GetReason())
				del = append(del, os[i].item.Id)
			}
		}
	}
	return slices.Clip(del), n
}

// prune forgets deposit records older than the TTL.
func (s *Service) prune(ctx context.Context) {
	cut := s.now().Add(-s.srv.limits.Load().TTL).UnixMilli()
	s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := s.db.Exec(ctx, tx, "DELETE FROM mailbox_sent WHERE at < ?", cut)
		return err
	})
}
