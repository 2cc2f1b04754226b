package chat

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// Reader answers the requests that only read -- contacts, history,
// search, safety numbers, the invite link -- from a node's database while
// no node runs (`parley log` after `parley chat` has quit). It uses the
// same queries as the Service, over a store opened with
// store.OpenReadOnly, and never writes: nobody shows online, and search
// finds messages the node had not indexed yet by scanning them.
type Reader struct {
	s    *Service
	self peer.ID
}

// NewReader returns a Reader over db for the node whose peer ID is self.
func NewReader(db *store.DB, self peer.ID) *Reader {
	s := &Service{db: db}
	s.rooms = readerRooms{db}
	return &Reader{s: s, self: self}
}

// Contacts lists contacts by name; none is online.
func (r *Reader) Contacts(ctx context.Context) ([]apitype.Contact, error) {
	rows, err := r.s.db.Query(ctx, nil, "SELECT "+contactCols+" FROM contacts ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list contacts: %w", err)
	}
	var cs []Contact
	for rows.Next() {
		c, err := scanContact(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		cs = append(cs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list contacts: %w", err)
	}
	out := make([]apitype.Contact, 0, len(cs))
	for _, c := range cs {
		ac := apitype.Contact{Name: c.Name, PeerID: c.ID.String(), LastSeen: c.LastSeen, Verified: c.Verified}
		var one int
		ac.Session = r.s.db.QueryRow(ctx, nil, "SELECT 1 FROM e2e_channels WHERE peer_id = ?", c.ID.String()).Scan(&one) == nil
		ac.Unread, _ = r.s.unread(ctx, c.ID.String(), c.ReadUpto)
		out = append(out, ac)
	}
	return out, nil
}

// Log returns the last limit messages of a conversation (a contact's name
// or peer ID, or '#room'), as Service.Log does.
func (r *Reader) Log(ctx context.Context, conv string, limit int) ([]apitype.Message, error) {
	return r.s.Log(ctx, conv, limit)
}

// Search is Service.Search without indexing first: messages the node had
// not indexed when it stopped are matched by a scan (each word as a
// prefix of a word, case-insensitively for ASCII).
func (r *Reader) Search(ctx context.Context, q string, limit int) ([]apitype.Message, error) {
	if strings.TrimSpace(q) == "" {
		return nil, errors.New("empty search")
	}
	if limit <= 0 || limit > MaxLogLimit {
		limit = 100
	}
	var indexed int64
	var v sql.NullString
	if err := r.s.db.QueryRow(ctx, nil, "SELECT value FROM meta WHERE key = 'fts_indexed'").Scan(&v); err == nil && v.Valid {
		fmt.Sscan(v.String, &indexed)
	}
	// The tail the index lacks: a LIKE per word, word starts only.
	where := []string{"m.n > ?"}
	args := []any{indexed}
	for _, t := range strings.Fields(q) {
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(t)
		where = append(where, `(' ' || m.body) LIKE ? ESCAPE '\'`)
		args = append(args, "% "+esc+"%")
	}
	rows, err := r.s.db.SQL().QueryContext(ctx, "SELECT "+messageCols+messageFrom+" WHERE "+
		strings.Join(where, " AND ")+" ORDER BY m.n DESC LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	tail, err := r.s.scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	rows, err = r.s.db.SQL().QueryContext(ctx, "SELECT "+messageCols+
		" FROM messages_fts f JOIN messages m ON m.n = f.rowid LEFT JOIN contacts c ON c.peer_id = m.conv LEFT JOIN contacts cs ON cs.peer_id = m.sender WHERE messages_fts MATCH ? AND m.n <= ? ORDER BY m.n DESC LIMIT ?",
		ftsQuery(q), indexed, limit)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	head, err := r.s.scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	out := append(tail, head...)
	return out[:min(len(out), limit)], nil
}

// SafetyNumber returns the safety number shared with a contact.
func (r *Reader) SafetyNumber(ctx context.Context, nameOrID string) (apitype.SafetyNumber, error) {
	c, err := r.s.Resolve(ctx, nameOrID)
	if err != nil {
		return apitype.SafetyNumber{}, err
	}
	num, err := SafetyNumber(r.self, c.ID)
	if err != nil {
		return apitype.SafetyNumber{}, err
	}
	return apitype.SafetyNumber{Contact: c.Name, PeerID: c.ID.String(), Number: num, Verified: c.Verified}, nil
}

// SetIdentityKey gives the Reader the node's identity key, which Invite
// needs to sign a link.
func (r *Reader) SetIdentityKey(key ed25519.PrivateKey) { r.s.idKey = key }

// Invite returns the contact link for addrs (the addresses the node had
// when it last ran; at most 8 are put in the link), signed, with the link
// bundle of the stored key store. Offline, the link carries no mailboxes:
// the mailbox list and its link secret are the running node's.
func (r *Reader) Invite(ctx context.Context, addrs []ma.Multiaddr) (apitype.Invite, error) {
	if r.s.idKey == nil {
		return apitype.Invite{}, errors.New("invite: no identity key")
	}
	var blob []byte
	err := r.s.db.QueryRow(ctx, nil, "SELECT state FROM e2e_keystore WHERE id = 1").Scan(&blob)
	if errors.Is(err, sql.ErrNoRows) {
		return apitype.Invite{}, errors.New("invite: this node has no prekeys yet; start it once with `parley up`")
	}
	if err != nil {
		return apitype.Invite{}, fmt.Errorf("invite: load e2e keys: %w", err)
	}
	ks := new(e2e.KeyStore)
	if err := ks.UnmarshalBinary(blob); err != nil {
		return apitype.Invite{}, fmt.Errorf("invite: load e2e keys: %w", err)
	}
	r.s.keys = ks
	if r.s.now == nil {
		r.s.now = time.Now
	}
	name, _, err := r.s.db.GetMeta(ctx, "name")
	if err != nil {
		return apitype.Invite{}, err
	}
	inv := &wirepb.ContactInvite{PeerId: []byte(r.self), Name: name}
	for _, a := range addrs {
		if len(inv.Addrs) == 8 {
			break
		}
		inv.Addrs = append(inv.Addrs, a.Bytes())
	}
	if err := r.s.completeInvite(ctx, inv); err != nil {
		return apitype.Invite{}, err
	}
	link, err := wire.EncodeContactInvite(inv)
	if err != nil {
		return apitype.Invite{}, err
	}
	return apitype.Invite{Link: link, PeerID: r.self.String(), Name: name}, nil
}

// readerRooms finds rooms by name in the database, for Log.
type readerRooms struct{ db *store.DB }

func (rr readerRooms) ConvKey(ctx context.Context, name string) (string, error) {
	var conv string
	err := rr.db.QueryRow(ctx, nil, "SELECT '#' || lower(hex(id)) FROM rooms WHERE name = ?", strings.TrimPrefix(name, "#")).Scan(&conv)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("no room %s (see `parley rooms`)", name)
	}
	return conv, err
}

var errReadOnly = errors.New("this needs a running node (start one with `parley up`)")

func (readerRooms) MarkRead(context.Context, string) error { return errReadOnly }
func (readerRooms) Conversations(context.Context) ([]apitype.Conversation, error) {
	return nil, errReadOnly
}
func (readerRooms) Send(context.Context, string, string) (apitype.Message, error) {
	return apitype.Message{}, errReadOnly
}
