package chat

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// LinkMailboxes is implemented by a Mailbox (chat/mailbox) that can name,
// for this node's contact links, the mailboxes it drains and the link tag
// secret under which a peer holding a link deposits its first messages.
type LinkMailboxes interface {
	LinkMailboxes(ctx context.Context) (mailboxes []peer.ID, secret [wire.SecretSize]byte, err error)
}

// ErrBadInvite: a contact link whose signature or bundle does not match
// the peer ID it names.
var ErrBadInvite = errors.New("contact link is not signed by the peer it names")

// completeInvite fills in what a first message needs (the link bundle, the
// mailboxes and their link secret) and signs the invite with the node's
// identity.
func (s *Service) completeInvite(ctx context.Context, inv *wirepb.ContactInvite) error {
	inv.Version = wire.ContactInviteVersion
	s.mu.Lock()
	b, err := s.keys.LinkBundle(s.idKey, s.now())
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	if inv.Bundle, err = b.MarshalBinary(); err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	if lm, ok := s.mailbox.(LinkMailboxes); ok {
		mbs, secret, err := lm.LinkMailboxes(ctx)
		if err != nil {
			return fmt.Errorf("invite: mailboxes: %w", err)
		}
		for _, m := range mbs {
			if len(inv.Mailboxes) < wire.MaxMailboxes {
				inv.Mailboxes = append(inv.Mailboxes, []byte(m))
			}
		}
		if len(inv.Mailboxes) > 0 {
			inv.MailboxSecret = secret[:]
		}
	}
	inv.Signature = ed25519.Sign(s.idKey, wire.ContactInviteSignedBytes(inv))
	return nil
}

// openInvite checks a decoded invite against the peer ID it names: its
// signature and every signature of its bundle, which must be a PQXDH one.
func openInvite(inv *wirepb.ContactInvite, id peer.ID) (e2e.Bundle, error) {
	key, err := edPub(id)
	if err != nil {
		return e2e.Bundle{}, err
	}
	if !ed25519.Verify(key, wire.ContactInviteSignedBytes(inv), inv.GetSignature()) {
		return e2e.Bundle{}, fmt.Errorf("%w (damaged or altered)", ErrBadInvite)
	}
	var b e2e.Bundle
	if err := b.UnmarshalBinary(inv.GetBundle()); err != nil {
		return e2e.Bundle{}, fmt.Errorf("%w: bundle: %w", ErrBadInvite, err)
	}
	if !b.PostQuantum() {
		return e2e.Bundle{}, fmt.Errorf("%w: its bundle is not a PQXDH bundle", ErrBadInvite)
	}
	if err := b.Verify(key); err != nil {
		return e2e.Bundle{}, fmt.Errorf("%w: %w", ErrBadInvite, err)
	}
	return b, nil
}

// adoptLink prepares a first message to the inviter id while it is offline:
// it starts a PQXDH session from the link's bundle, unless a session
// already exists, and records the link's mailboxes (with the link secret)
// as the inviter's, unless the inviter already announced its own. A bundle
// too old to use is not an error: the contact is added and the first
// message waits until the inviter is online to fetch a fresh bundle; the
// error returned says so.
func (s *Service) adoptLink(ctx context.Context, id peer.ID, inv *wirepb.ContactInvite, b e2e.Bundle) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channelLocked(ctx, id)
	if err != nil {
		return err
	}
	remote, err := edPub(id)
	if err != nil {
		return err
	}
	var stale error
	if !ch.HasSession() {
		if err := ch.Initiate(s.idKey, s.keys, remote, b, rand.Reader, s.now()); err != nil {
			s.dropChannelLocked(id)
			if !errors.Is(err, e2e.ErrExpiredPrekey) {
				return fmt.Errorf("start session from the link: %w", err)
			}
			stale = fmt.Errorf("the link's prekeys are too old to use (%w); the first message waits until the contact is online", err)
			ch, err = s.channelLocked(ctx, id)
			if err != nil {
				return err
			}
		}
	}
	// The link's bundle is a PQXDH one, signed by id: id speaks PQXDH, so
	// no later session with it may fall back to X3DH (a version 1 bundle or
	// a type 2 prekey message is refused with e2e.ErrDowngrade).
	ch.RequirePostQuantum()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.saveChannel(ctx, tx, id, ch); err != nil {
			return err
		}
		if len(inv.GetMailboxes()) > 0 && s.onPayload != nil {
			// Issued at 0: any list the inviter announces in the session
			// replaces this one, and this one never replaces it.
			s.onPayload(ctx, tx, id, &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Mailboxes{Mailboxes: &wirepb.MailboxList{
				PeerIds: inv.GetMailboxes(), IssuedAtMs: 0, TagSecret: inv.GetMailboxSecret(),
			}}})
		}
		return nil
	})
	if err != nil {
		s.dropChannelLocked(id)
		return fmt.Errorf("start session from the link: %w", err)
	}
	if ch.HasSession() {
		s.log.Info("e2e session started from a contact link", "peer", id, "post_quantum", ch.PostQuantum())
	}
	return stale
}

// LinkSender returns the peer that a first message deposited under a link
// secret comes from: the initiator a PQXDH prekey envelope names. It is a
// claim that decrypting the envelope as that peer's message authenticates.
func LinkSender(envelope []byte) (peer.ID, error) {
	pk, err := e2e.PrekeyInitiator(envelope)
	if err != nil {
		return "", err
	}
	return peerIDFromEd25519(pk)
}

func peerIDFromEd25519(pk ed25519.PublicKey) (peer.ID, error) {
	key, err := crypto.UnmarshalEd25519PublicKey(pk)
	if err != nil {
		return "", fmt.Errorf("initiator key: %w", err)
	}
	return peer.IDFromPublicKey(key)
}

// ReceiveLinkFrames commits first messages that a mailbox held under this
// node's link secret and that name p as their initiator. Anyone holding one
// of the node's links can deposit there, naming any peer, so each frame is
// authenticated first (e2e.Channel.Authenticate, on copies of the session
// and key store): only a PQXDH prekey message that p really made reaches
// ReceiveFrames. A frame that does not authenticate is refused before
// anything about p is recorded: no contact, request, session or consumed
// prekey.
func (s *Service) ReceiveLinkFrames(ctx context.Context, p peer.ID, frames []*wirepb.DMMessage) []*wirepb.DMAck {
	acks := make([]*wirepb.DMAck, len(frames))
	remote, err := edPub(p)
	var ok []*wirepb.DMMessage
	var at []int
	s.mu.Lock()
	_, cached := s.channels[p]
	ch, cerr := s.channelLocked(ctx, p)
	for i, m := range frames {
		var ferr error
		switch {
		case err != nil:
			ferr = err
		case cerr != nil:
			ferr = cerr
		default:
			ferr = wire.ValidateDMMessage(m)
		}
		if ferr == nil {
			ferr = authenticateLinkFrame(ch, s.idKey, s.keys, remote, m.GetEnvelope(), s.now())
		}
		if ferr != nil {
			s.log.Info("refused a first message from a link", "claimed_peer", p, "err", ferr)
			acks[i] = &wirepb.DMAck{Id: m.GetId(), Status: wirepb.AckStatus_ACK_STATUS_REJECTED, Reason: reason(ferr)}
			continue
		}
		ok, at = append(ok, m), append(at, i)
	}
	if !cached && len(ok) == 0 {
		s.dropChannelLocked(p) // no trace of a peer that only forged frames named
	}
	s.mu.Unlock()
	if len(ok) == 0 {
		return acks
	}
	for j, a := range s.ReceiveFrames(ctx, p, ok) {
		acks[at[j]] = a
	}
	return acks
}

// authenticateLinkFrame accepts only a PQXDH prekey message that names
// remote as its initiator and that Decrypt would accept from remote.
func authenticateLinkFrame(ch *e2e.Channel, local ed25519.PrivateKey, ks *e2e.KeyStore, remote ed25519.PublicKey, env []byte, now time.Time) error {
	claimed, err := e2e.PrekeyInitiator(env)
	if err != nil {
		return err
	}
	if !claimed.Equal(remote) {
		return fmt.Errorf("%w: the first message names another initiator", e2e.ErrKeyMismatch)
	}
	return ch.Authenticate(local, ks, remote, env, now)
}
