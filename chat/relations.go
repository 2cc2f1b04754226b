package chat

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/internal/safetext"
	"github.com/parley-im/parley/peer/apitype"
)

// A peer stands in one of four relations to this node:
//
//	unknown  -> request   an authenticated first message (nothing else
//	                      creates a request: frames that fail to decrypt
//	                      leave no trace)
//	request  -> contact   `parley accept`
//	unknown  -> contact   `parley add LINK|PEERID`
//	request  -> unknown   `parley decline` (the messages go too)
//	contact  -> unknown   `parley contacts remove`
//	any      -> blocked   `parley block`
//	blocked  -> unknown   `parley unblock`
//
// Only a contact has a contact's privileges: mailbox service and the
// mailbox list (chat/mailbox asks ContactName), room invites, presence, a
// name. A request is readable and nothing more. A blocked peer's dm and
// prekey streams are reset before a byte is read.

// relations caches the contacts table's membership and the blocked table,
// so the dm handler can refuse a blocked peer and tell a contact from a
// stranger without the database (whose one connection legitimate traffic
// needs).
type relations struct {
	mu       sync.RWMutex
	contacts map[peer.ID]bool // guarded by mu; value: muted
	blocked  map[peer.ID]bool // guarded by mu
}

func (r *relations) load(ctx context.Context, s *Service) error {
	contacts := make(map[peer.ID]bool)
	blocked := make(map[peer.ID]bool)
	rows, err := s.db.Query(ctx, nil, "SELECT peer_id, muted FROM contacts")
	if err != nil {
		return fmt.Errorf("load contacts: %w", err)
	}
	for rows.Next() {
		var id string
		var muted bool
		if err := rows.Scan(&id, &muted); err != nil {
			rows.Close()
			return fmt.Errorf("load contacts: %w", err)
		}
		if p, err := peer.Decode(id); err == nil {
			contacts[p] = muted
		}
	}
	rows.Close()
	rows, err = s.db.Query(ctx, nil, "SELECT peer_id FROM blocked")
	if err != nil {
		return fmt.Errorf("load blocked peers: %w", err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("load blocked peers: %w", err)
		}
		if p, err := peer.Decode(id); err == nil {
			blocked[p] = true
		}
	}
	rows.Close()
	r.mu.Lock()
	r.contacts, r.blocked = contacts, blocked
	r.mu.Unlock()
	return nil
}

func (r *relations) isContact(p peer.ID) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.contacts[p]
	return ok
}

func (r *relations) isBlocked(p peer.ID) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.blocked[p]
}

func (r *relations) isMuted(p peer.ID) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.contacts[p]
}

// setContact records p as a contact (muted or not), or forgets it.
func (r *relations) setContact(p peer.ID, contact, muted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if contact {
		r.contacts[p] = muted
	} else {
		delete(r.contacts, p)
	}
}

func (r *relations) setBlocked(p peer.ID, blocked bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if blocked {
		r.blocked[p] = true
		delete(r.contacts, p)
	} else {
		delete(r.blocked, p)
	}
}

// IsContact reports whether p is an accepted contact: added by the user or
// accepted from a request, and not blocked. A message request, a blocked
// peer and a stranger are not. It answers from memory, without the
// database, so protocol handlers (mailbox, rooms, dm) may call it on every
// stream before doing any work for p.
func (s *Service) IsContact(p peer.ID) bool { return s.rel.isContact(p) }

// IsBlocked reports whether the user blocked p. It answers from memory.
func (s *Service) IsBlocked(p peer.ID) bool { return s.rel.isBlocked(p) }

// maxRequests bounds the pending message requests: a stranger's first
// message beyond it is asked to retry later.
const maxRequests = 1000

var errTooManyRequests = errors.New("too many pending message requests")

// ErrUnknownRequest is returned when a peer ID or handle names no message
// request.
var ErrUnknownRequest = errors.New("no such message request")

// requestByArg finds a message request by peer ID or by its handle
// (defaultName), which must then match exactly one request.
func (s *Service) requestByArg(ctx context.Context, arg string) (peer.ID, error) {
	if id, err := peer.Decode(arg); err == nil {
		var n int
		if err := s.db.QueryRow(ctx, nil, "SELECT count(*) FROM requests WHERE peer_id = ?", id.String()).Scan(&n); err != nil {
			return "", err
		}
		if n == 0 {
			return "", fmt.Errorf("%w from %s (see `parley requests`)", ErrUnknownRequest, id)
		}
		return id, nil
	}
	if !strings.HasPrefix(strings.ToLower(arg), "peer-") {
		return "", fmt.Errorf("%w %q: give its peer ID or its handle (see `parley requests`)", ErrUnknownRequest, safetext.Line(arg))
	}
	rows, err := s.db.Query(ctx, nil, "SELECT peer_id FROM requests WHERE peer_id LIKE ?", "%"+arg[len("peer-"):])
	if err != nil {
		return "", err
	}
	var found []peer.ID
	for rows.Next() {
		var str string
		if rows.Scan(&str) != nil {
			continue
		}
		if id, err := peer.Decode(str); err == nil && strings.EqualFold(defaultName(id), arg) && defaultName(id) == "peer-"+arg[len("peer-"):] {
			found = append(found, id)
		}
	}
	rows.Close()
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w %q (see `parley requests`)", ErrUnknownRequest, safetext.Line(arg))
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("handle %s matches %d requests; give the full peer ID", arg, len(found))
}

// Requests lists the pending message requests, newest first.
func (s *Service) Requests(ctx context.Context) ([]apitype.Request, error) {
	rows, err := s.db.Query(ctx, nil, `SELECT r.peer_id, r.first_at, r.last_at,
		(SELECT count(*) FROM messages m WHERE m.conv = r.peer_id),
		coalesce((SELECT body FROM messages m WHERE m.conv = r.peer_id ORDER BY m.n DESC LIMIT 1), '')
		FROM requests r ORDER BY r.last_at DESC`)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	defer rows.Close()
	out := []apitype.Request{}
	for rows.Next() {
		var r apitype.Request
		var first, last int64
		if err := rows.Scan(&r.PeerID, &first, &last, &r.Messages, &r.Last); err != nil {
			return nil, fmt.Errorf("list requests: %w", err)
		}
		id, err := peer.Decode(r.PeerID)
		if err != nil {
			continue
		}
		r.Handle = defaultName(id)
		r.FirstAt, r.LastAt = time.UnixMilli(first), time.UnixMilli(last)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Accept makes a message request a contact named name (default: the
// request's handle), with every privilege of a contact.
func (s *Service) Accept(ctx context.Context, arg, name string) (Contact, error) {
	id, err := s.requestByArg(ctx, arg)
	if err != nil {
		return Contact{}, err
	}
	if name == "" {
		name = defaultName(id)
	}
	if err := validNameFor(name, id); err != nil {
		return Contact{}, err
	}
	c, err := s.makeContact(ctx, id, name, false)
	if err != nil {
		return Contact{}, fmt.Errorf("accept request: %w", err)
	}
	// The receipts a request did not get: its messages show as delivered
	// on the sender's side once accepted.
	if err := s.db.Tx(ctx, func(tx *sql.Tx) error { return s.queueReceipts(ctx, tx, id) }); err != nil {
		s.log.Warn("queue receipts for an accepted request", "peer", id, "err", err)
	}
	s.Kick(id)
	return c, nil
}

// queueReceipts queues receipts for every message received from p.
func (s *Service) queueReceipts(ctx context.Context, tx *sql.Tx, p peer.ID) error {
	rows, err := s.db.Query(ctx, tx, "SELECT id FROM messages WHERE conv = ? AND outgoing = 0 ORDER BY n", str(p))
	if err != nil {
		return err
	}
	var ids [][]byte
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for len(ids) > 0 {
		n := min(len(ids), wire.MaxReceiptIDs)
		payload, err := proto.Marshal(&wirepb.Payload{Version: 1, Body: &wirepb.Payload_Receipt{Receipt: &wirepb.Receipt{Ids: ids[:n]}}})
		if err != nil {
			return err
		}
		if err := s.enqueue(ctx, tx, p, newID(), payload, s.now()); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// Decline forgets a message request: its messages and its session. The
// peer may write again (a new request); block it to stop that.
func (s *Service) Decline(ctx context.Context, arg string) (peer.ID, error) {
	id, err := s.requestByArg(ctx, arg)
	if err != nil {
		return "", err
	}
	if err := s.forget(ctx, id, true, false); err != nil {
		return "", fmt.Errorf("decline request: %w", err)
	}
	return id, nil
}

// Block refuses everything from a contact, a request or any peer ID: its
// dm and prekey streams are reset before a byte is read and its frames
// arriving through mailboxes are dropped. A contact stops being one (its
// history is kept); a request's messages are deleted; queued frames to it
// are dropped; open connections to it are closed.
func (s *Service) Block(ctx context.Context, arg string) (peer.ID, error) {
	var id peer.ID
	request := false
	if c, err := s.Resolve(ctx, arg); err == nil {
		id = c.ID
	} else if rid, rerr := s.requestByArg(ctx, arg); rerr == nil {
		id, request = rid, true
	} else if pid, perr := peer.Decode(arg); perr == nil {
		id = pid
	} else {
		return "", fmt.Errorf("%w %q: give a contact's name, a peer ID or a request's handle", ErrUnknownContact, safetext.Line(arg))
	}
	if id == s.host.ID() {
		return "", errors.New("that is this node's own peer ID")
	}
	if err := s.forget(ctx, id, request, true); err != nil {
		return "", fmt.Errorf("block: %w", err)
	}
	s.host.Network().ClosePeer(id)
	return id, nil
}

// Unblock lifts a block: the peer is unknown again (a new first message
// from it is a request).
func (s *Service) Unblock(ctx context.Context, arg string) (peer.ID, error) {
	id, err := peer.Decode(arg)
	if err != nil {
		return "", fmt.Errorf("unblock takes a peer ID (see `parley blocked`): %w", err)
	}
	res, err := s.db.Exec(ctx, nil, "DELETE FROM blocked WHERE peer_id = ?", id.String())
	if err != nil {
		return "", fmt.Errorf("unblock: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", fmt.Errorf("%s is not blocked", id)
	}
	s.rel.setBlocked(id, false)
	return id, nil
}

// BlockedPeers lists blocked peers, most recent first.
func (s *Service) BlockedPeers(ctx context.Context) ([]apitype.Blocked, error) {
	rows, err := s.db.Query(ctx, nil, "SELECT peer_id, at FROM blocked ORDER BY at DESC")
	if err != nil {
		return nil, fmt.Errorf("list blocked peers: %w", err)
	}
	defer rows.Close()
	out := []apitype.Blocked{}
	for rows.Next() {
		var b apitype.Blocked
		var at int64
		if err := rows.Scan(&b.PeerID, &at); err != nil {
			return nil, err
		}
		b.At = time.UnixMilli(at)
		out = append(out, b)
	}
	return out, rows.Err()
}

// RemoveContact removes a contact: its session, queued frames and mailbox
// secrets go, its history stays (readable by peer ID). A later message
// from it is a request.
func (s *Service) RemoveContact(ctx context.Context, nameOrID string) (peer.ID, error) {
	c, err := s.Resolve(ctx, nameOrID)
	if err != nil {
		return "", err
	}
	if err := s.forget(ctx, c.ID, false, false); err != nil {
		return "", fmt.Errorf("remove contact: %w", err)
	}
	return c.ID, nil
}

// RenameContact gives a contact a new name.
func (s *Service) RenameContact(ctx context.Context, oldName, newName string) (Contact, error) {
	c, err := s.Resolve(ctx, oldName)
	if err != nil {
		return Contact{}, err
	}
	if err := validNameFor(newName, c.ID); err != nil {
		return Contact{}, err
	}
	return s.makeContact(ctx, c.ID, newName, c.Muted)
}

// Mute sets whether a contact is muted: its messages are stored and
// delivered as usual, and their events carry muted, which `parley watch`
// and the TUI use to stay quiet.
func (s *Service) Mute(ctx context.Context, nameOrID string, muted bool) (Contact, error) {
	c, err := s.Resolve(ctx, nameOrID)
	if err != nil {
		return Contact{}, err
	}
	if _, err := s.db.Exec(ctx, nil, "UPDATE contacts SET muted = ? WHERE peer_id = ?", muted, c.ID.String()); err != nil {
		return Contact{}, fmt.Errorf("mute: %w", err)
	}
	s.rel.setContact(c.ID, true, muted)
	return s.contactByID(ctx, c.ID)
}

// forget removes every trace of a relation with id in one transaction:
// the contact or request row, the session, queued frames, mailbox secrets
// and lists, and (with messages) the conversation; with block, it records
// the block. It holds s.mu, which the receive path takes to commit, so no
// batch decrypted before commits after it.
func (s *Service) forget(ctx context.Context, id peer.ID, messages, block bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		p := id.String()
		stmts := []string{
			"DELETE FROM contacts WHERE peer_id = ?",
			"DELETE FROM requests WHERE peer_id = ?",
			"DELETE FROM e2e_channels WHERE peer_id = ?",
			"DELETE FROM outbox WHERE peer_id = ?",
			"DELETE FROM mailbox_secrets WHERE peer_id = ?",
			"DELETE FROM mailbox_lists WHERE peer_id = ?",
		}
		if messages {
			stmts = append(stmts, "DELETE FROM messages WHERE conv = ?", "DELETE FROM conv_seq WHERE conv = ?")
		}
		for _, q := range stmts {
			if _, err := s.db.Exec(ctx, tx, q, p); err != nil {
				return err
			}
		}
		if !block {
			return nil
		}
		_, err := s.db.Exec(ctx, tx, "INSERT INTO blocked(peer_id, at) VALUES(?, ?) ON CONFLICT DO NOTHING", p, s.now().UnixMilli())
		return err
	})
	if err != nil {
		return err
	}
	s.dropChannelLocked(id)
	delete(s.plainPending, id)
	delete(s.seqs, str(id))
	s.names.Clear()
	s.rel.setContact(id, false, false)
	if block {
		s.rel.setBlocked(id, true)
	}
	return nil
}
