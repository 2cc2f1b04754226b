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

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
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
// Adding an existing contact again updates its addresses and, if given, its name.
func (s *Service) AddContact(ctx context.Context, linkOrID, name string) (Contact, error) {
	var (
		id    peer.ID
		addrs []ma.Multiaddr
		err   error
	)
	linkOrID = strings.TrimSpace(linkOrID)
	if strings.HasPrefix(linkOrID, "parley://") {
		inv, err := wire.DecodeContactInvite(linkOrID)
		if err != nil {
			return Contact{}, err
		}
		if id, err = peer.IDFromBytes(inv.PeerId); err != nil {
			return Contact{}, fmt.Errorf("invite holds an invalid peer ID: %w", err)
		}
		for _, b := range inv.Addrs {
			if a, err := ma.NewMultiaddrBytes(b); err == nil {
				addrs = append(addrs, a)
			}
		}
		if name == "" {
			name = inv.Name
		}
	} else if id, err = peer.Decode(linkOrID); err != nil {
		return Contact{}, fmt.Errorf("%q is neither a parley:// link nor a peer ID: %w", linkOrID, err)
	}
	if _, err := id.ExtractPublicKey(); err != nil {
		return Contact{}, fmt.Errorf("peer ID %s does not embed an Ed25519 key: %w", id, err)
	}
	if id == s.host.ID() {
		return Contact{}, errors.New("that is this node's own peer ID")
	}
	if name == "" {
		if c, err := s.contactByID(ctx, id); err == nil {
			name = c.Name
		} else {
			name = defaultName(id)
		}
	}
	if err := validName(name); err != nil {
		return Contact{}, err
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		var other string
		err := s.db.QueryRow(ctx, tx, "SELECT peer_id FROM contacts WHERE name = ?", name).Scan(&other)
		if err == nil && other != id.String() {
			return fmt.Errorf("%w: %q is %s; choose another with --name", ErrNameTaken, name, other)
		}
		_, err = s.db.Exec(ctx, tx, `INSERT INTO contacts(peer_id, name, added_at) VALUES(?, ?, ?)
			ON CONFLICT(peer_id) DO UPDATE SET name = excluded.name`, id.String(), name, s.now().UnixMilli())
		return err
	})
	if err != nil {
		return Contact{}, fmt.Errorf("add contact: %w", err)
	}
	s.names.Clear()
	if len(addrs) > 0 {
		s.host.Peerstore().AddAddrs(id, addrs, peerstore.AddressTTL)
		s.db.RememberPeer(ctx, peer.AddrInfo{ID: id, Addrs: addrs}, s.now())
	}
	return s.contactByID(ctx, id)
}

// defaultName names a contact added by bare peer ID: "peer-" and the last
// six characters of the ID.
func defaultName(id peer.ID) string {
	str := id.String()
	return "peer-" + str[len(str)-6:]
}

const contactCols = "peer_id, name, verified, last_seen, read_upto"

func scanContact(row interface{ Scan(...any) error }) (Contact, error) {
	var (
		c    Contact
		id   string
		seen int64
	)
	if err := row.Scan(&id, &c.Name, &c.Verified, &seen, &c.ReadUpto); err != nil {
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

// Resolve finds a contact by name or peer ID.
func (s *Service) Resolve(ctx context.Context, nameOrID string) (Contact, error) {
	c, err := scanContact(s.db.QueryRow(ctx, nil, "SELECT "+contactCols+" FROM contacts WHERE name = ?", nameOrID))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Contact{}, err
	}
	if id, perr := peer.Decode(nameOrID); perr == nil {
		return s.contactByID(ctx, id)
	}
	return Contact{}, fmt.Errorf("%w %q (add it with `parley add LINK --name %s`)", ErrUnknownContact, nameOrID, nameOrID)
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
		}
		s.mu.Lock()
		if ch, err := s.channelLocked(ctx, c.ID); err == nil {
			ac.Session = ch.HasSession()
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
	return apitype.SafetyNumber{Contact: c.Name, PeerID: c.ID.String(), Number: num, Verified: c.Verified}, nil
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
