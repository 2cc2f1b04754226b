package chat

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/internal/safetext"
	"github.com/parley-im/parley/peer/apitype"
)

// ErrUnknownContact is returned when a name or peer ID is not a contact.
var ErrUnknownContact = errors.New("unknown contact")

// ErrNameTaken is returned when a contact name is already used.
var ErrNameTaken = errors.New("contact name already used")

// maxNameLen bounds contact names (bytes).
const maxNameLen = 64

// Contact is a stored contact.
type Contact struct {
	ID       peer.ID
	Name     string
	Verified bool
	LastSeen time.Time
	ReadUpto int64
	Muted    bool
}

func validName(name string) error {
	switch {
	case name == "":
		return errors.New("empty contact name")
	case len(name) > maxNameLen:
		return fmt.Errorf("contact name longer than %d bytes", maxNameLen)
	case !utf8.ValidString(name):
		return errors.New("contact name is not valid UTF-8")
	case strings.HasPrefix(name, "#"):
		return errors.New("contact names cannot start with # (that is a room)")
	case strings.ContainsAny(name, " \t\n\r/"):
		return fmt.Errorf("contact name %q contains a space or slash", name)
	case !safetext.Safe(name):
		return fmt.Errorf("contact name %q contains control, invisible or direction-changing characters", safetext.Line(name))
	}
	if _, err := peer.Decode(name); err == nil {
		return fmt.Errorf("contact name %q is a peer ID: a name never stands for another peer's ID", name)
	}
	return nil
}

// validNameFor is validName for the contact id: the "peer-" prefix is
// reserved for the handle of that very ID (defaultName), so no one can
// take the handle by which another peer's request is accepted.
func validNameFor(name string, id peer.ID) error {
	if err := validName(name); err != nil {
		return err
	}
	if strings.HasPrefix(strings.ToLower(name), "peer-") && !strings.EqualFold(name, defaultName(id)) {
		return fmt.Errorf("contact name %q: names starting with peer- are reserved for a peer's own handle (%s)", name, defaultName(id))
	}
	return nil
}

// Invite returns this node's contact link.
func (s *Service) Invite(ctx context.Context) (apitype.Invite, error) {
	name, _, err := s.db.GetMeta(ctx, "name")
	if err != nil {
		return apitype.Invite{}, err
	}
	inv := &wirepb.ContactInvite{Version: 1, PeerId: []byte(s.host.ID()), Name: name}
	for _, a := range s.host.Addrs() {
		if len(inv.Addrs) == 8 {
			break
		}
		inv.Addrs = append(inv.Addrs, a.Bytes())
	}
	if err := s.completeInvite(ctx, inv); err != nil { // issue 10: bundle, mailboxes, signature
		return apitype.Invite{}, err
	}
	link, err := wire.EncodeContactInvite(inv)
	if err != nil {
		return apitype.Invite{}, err
	}
	return apitype.Invite{Link: link, PeerID: s.host.ID().String(), Name: name}, nil
}

// SetName sets the name this node offers in its invites.
func (s *Service) SetName(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	return s.db.SetMeta(ctx, "name", name)
}

// AddContact adds a contact from a parley://contact/ link or a bare peer ID.
// Adding an existing contact again updates its addresses and, if name is
// given, its name. A name suggested by a link is only a suggestion: for a
// new contact it is used if it is valid and free, else the add is refused
// with a free alternative; it never renames an existing contact. Adding a
// message request's peer accepts the request.
func (s *Service) AddContact(ctx context.Context, linkOrID, name string) (Contact, error) {
	var (
		id        peer.ID
		addrs     []ma.Multiaddr
		err       error
		suggested string
		inv       *wirepb.ContactInvite // set when added from a link
		bundle    e2e.Bundle
	)
	linkOrID = strings.TrimSpace(linkOrID)
	if strings.HasPrefix(linkOrID, "parley://") {
		if inv, err = wire.DecodeContactInvite(linkOrID); err != nil {
			return Contact{}, err
		}
		if id, err = peer.IDFromBytes(inv.PeerId); err != nil {
			return Contact{}, fmt.Errorf("invite holds an invalid peer ID: %w", err)
		}
		if bundle, err = openInvite(inv, id); err != nil {
			return Contact{}, err
		}
		for _, b := range inv.Addrs {
			if a, err := ma.NewMultiaddrBytes(b); err == nil {
				addrs = append(addrs, a)
			}
		}
		suggested = inv.Name
	} else if id, err = peer.Decode(linkOrID); err != nil {
		return Contact{}, fmt.Errorf("%q is neither a parley:// link nor a peer ID: %w", linkOrID, err)
	}
	if _, err := id.ExtractPublicKey(); err != nil {
		return Contact{}, fmt.Errorf("peer ID %s does not embed an Ed25519 key: %w", id, err)
	}
	if id == s.host.ID() {
		return Contact{}, errors.New("that is this node's own peer ID")
	}
	if s.rel.isBlocked(id) {
		return Contact{}, fmt.Errorf("%s is blocked; run `parley unblock %s` first", id, id)
	}
	existing, cerr := s.contactByID(ctx, id)
	switch {
	case name != "":
		if err := validNameFor(name, id); err != nil {
			return Contact{}, err
		}
	case cerr == nil:
		name = existing.Name
	case suggested != "":
		if err := validNameFor(suggested, id); err != nil {
			return Contact{}, fmt.Errorf("the link suggests an unusable name (%w); add it with --name NAME", err)
		}
		if owner, taken := s.nameOwner(ctx, suggested); taken && owner != id {
			return Contact{}, fmt.Errorf("%w: the link suggests %q, which is already your name for %s; add it with --name %s",
				ErrNameTaken, suggested, owner, s.freeName(ctx, suggested))
		}
		name = suggested
	default:
		name = defaultName(id)
	}
	c, err := s.makeContact(ctx, id, name, existing.Muted)
	if err != nil {
		return Contact{}, fmt.Errorf("add contact: %w", err)
	}
	if len(addrs) > 0 {
		s.host.Peerstore().AddAddrs(id, addrs, peerstore.AddressTTL)
		s.db.RememberPeer(ctx, peer.AddrInfo{ID: id, Addrs: addrs}, s.now())
	}
	if inv != nil {
		if err := s.adoptLink(ctx, id, inv, bundle); err != nil {
			s.log.Warn("contact added; no session from its link", "peer", id, "err", err)
		}
		return s.contactByID(ctx, id)
	}
	return c, nil
}

// makeContact stores id as a contact named name (accepting its message
// request, if any).
func (s *Service) makeContact(ctx context.Context, id peer.ID, name string, muted bool) (Contact, error) {
	// s.mu orders this with the receive path's commit (see forget).
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var other string
		err := s.db.QueryRow(ctx, tx, "SELECT peer_id FROM contacts WHERE name = ?", name).Scan(&other)
		if err == nil && other != id.String() {
			return fmt.Errorf("%w: %q is %s; choose another with --name (for example %s)", ErrNameTaken, name, other, s.freeNameTx(ctx, tx, name))
		}
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO contacts(peer_id, name, added_at) VALUES(?, ?, ?)
			ON CONFLICT(peer_id) DO UPDATE SET name = excluded.name`, id.String(), name, s.now().UnixMilli()); err != nil {
			return err
		}
		_, err = s.db.Exec(ctx, tx, "DELETE FROM requests WHERE peer_id = ?", id.String())
		return err
	})
	if err != nil {
		return Contact{}, err
	}
	s.names.Clear()
	s.rel.setContact(id, true, muted)
	return s.contactByID(ctx, id)
}

// nameOwner returns the contact named name, if any.
func (s *Service) nameOwner(ctx context.Context, name string) (peer.ID, bool) {
	var other string
	if s.db.QueryRow(ctx, nil, "SELECT peer_id FROM contacts WHERE name = ?", name).Scan(&other) != nil {
		return "", false
	}
	id, err := peer.Decode(other)
	return id, err == nil
}

// freeName suggests name-2, name-3, ... : the first not taken.
func (s *Service) freeName(ctx context.Context, name string) string {
	return s.freeNameTx(ctx, nil, name)
}

func (s *Service) freeNameTx(ctx context.Context, tx *sql.Tx, name string) string {
	base := name
	if len(base) > maxNameLen-4 {
		base = base[:maxNameLen-4]
	}
	for i := 2; i < 1000; i++ {
		cand := fmt.Sprintf("%s-%d", base, i)
		var n int
		if s.db.QueryRow(ctx, tx, "SELECT count(*) FROM contacts WHERE name = ?", cand).Scan(&n) == nil && n == 0 {
			return cand
		}
	}
	return "NAME"
}

// defaultName names a contact added by bare peer ID: "peer-" and the last
// six characters of the ID.
func defaultName(id peer.ID) string {
	str := id.String()
	return "peer-" + str[len(str)-6:]
}

const contactCols = "peer_id, name, verified, last_seen, read_upto, muted"

func scanContact(row interface{ Scan(...any) error }) (Contact, error) {
	var (
		c    Contact
		id   string
		seen int64
	)
	if err := row.Scan(&id, &c.Name, &c.Verified, &seen, &c.ReadUpto, &c.Muted); err != nil {
		return Contact{}, err
	}
	pid, err := peer.Decode(id)
	if err != nil {
		return Contact{}, fmt.Errorf("stored contact has a bad peer ID: %w", err)
	}
	c.ID = pid
	if seen > 0 {
		c.LastSeen = time.UnixMilli(seen)
	}
	return c, nil
}

func (s *Service) contactByID(ctx context.Context, id peer.ID) (Contact, error) {
	c, err := scanContact(s.db.QueryRow(ctx, nil, "SELECT "+contactCols+" FROM contacts WHERE peer_id = ?", id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return Contact{}, fmt.Errorf("%w: %s", ErrUnknownContact, id)
	}
	return c, err
}

// Resolve finds a contact by peer ID or name. A peer ID is looked up as
// an ID first, so no name can shadow it (names that parse as peer IDs are
// refused anyway).
func (s *Service) Resolve(ctx context.Context, nameOrID string) (Contact, error) {
	if id, perr := peer.Decode(nameOrID); perr == nil {
		return s.contactByID(ctx, id)
	}
	c, err := scanContact(s.db.QueryRow(ctx, nil, "SELECT "+contactCols+" FROM contacts WHERE name = ?", nameOrID))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Contact{}, err
	}
	return Contact{}, fmt.Errorf("%w %q (add it with `parley add LINK --name %s`)", ErrUnknownContact, safetext.Line(nameOrID), safetext.Line(nameOrID))
}

// resolveCached is Resolve for the send path: it caches the name and peer
// ID of a contact (only those: other fields change), so a busy sender does
// not wait for the database to look the name up each time. AddContact
// clears the cache.
func (s *Service) resolveCached(ctx context.Context, nameOrID string) (Contact, error) {
	if c, ok := s.names.Load(nameOrID); ok {
		return c.(Contact), nil
	}
	c, err := s.Resolve(ctx, nameOrID)
	if err != nil {
		return c, err
	}
	s.names.Store(nameOrID, Contact{ID: c.ID, Name: c.Name})
	return c, nil
}

// Contacts lists contacts by name.
func (s *Service) Contacts(ctx context.Context) ([]apitype.Contact, error) {
	rows, err := s.db.Query(ctx, nil, "SELECT "+contactCols+" FROM contacts ORDER BY name")
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
	out := make([]apitype.Contact, 0, len(cs))
	for _, c := range cs {
		ac := apitype.Contact{
			Name:     c.Name,
			PeerID:   c.ID.String(),
			Online:   s.online(c.ID),
			LastSeen: c.LastSeen,
			Verified: c.Verified,
			Muted:    c.Muted,
		}
		s.mu.Lock()
		if ch, err := s.channelLocked(ctx, c.ID); err == nil {
			ac.Session = ch.HasSession()
			ac.PostQuantum = ch.PostQuantum()
		}
		s.mu.Unlock()
		ac.Unread, _ = s.unread(ctx, c.ID.String(), c.ReadUpto)
		out = append(out, ac)
	}
	return out, nil
}

func (s *Service) online(id peer.ID) bool {
	c := s.host.Network().Connectedness(id)
	return c == network.Connected || c == network.Limited
}

// presence records a contact coming or going and publishes the event.
func (s *Service) presence(ctx context.Context, id peer.ID, online bool) {
	res, err := s.db.Exec(ctx, nil, "UPDATE contacts SET last_seen = ? WHERE peer_id = ?", s.now().UnixMilli(), id.String())
	if err != nil {
		return
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return // not a contact
	}
	c, err := s.contactByID(ctx, id)
	if err != nil {
		return
	}
	s.events.publish(apitype.Event{Type: "presence", Time: s.now(), Contact: c.Name, PeerID: id.String(), Online: online})
}

// SafetyNumber returns the safety number shared with a contact.
func (s *Service) SafetyNumber(ctx context.Context, nameOrID string) (apitype.SafetyNumber, error) {
	c, err := s.Resolve(ctx, nameOrID)
	if err != nil {
		return apitype.SafetyNumber{}, err
	}
	num, err := SafetyNumber(s.host.ID(), c.ID)
	if err != nil {
		return apitype.SafetyNumber{}, err
	}
	sn := apitype.SafetyNumber{Contact: c.Name, PeerID: c.ID.String(), Number: num, Verified: c.Verified}
	s.mu.Lock()
	if ch, err := s.channelLocked(ctx, c.ID); err == nil {
		sn.Session, sn.PostQuantum = ch.HasSession(), ch.PostQuantum()
	}
	s.mu.Unlock()
	return sn, nil
}

// Verify marks a contact verified.
func (s *Service) Verify(ctx context.Context, nameOrID string) (apitype.SafetyNumber, error) {
	c, err := s.Resolve(ctx, nameOrID)
	if err != nil {
		return apitype.SafetyNumber{}, err
	}
	if _, err := s.db.Exec(ctx, nil, "UPDATE contacts SET verified = 1 WHERE peer_id = ?", c.ID.String()); err != nil {
		return apitype.SafetyNumber{}, fmt.Errorf("mark verified: %w", err)
	}
	return s.SafetyNumber(ctx, c.ID.String())
}
