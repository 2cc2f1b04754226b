package mailbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat"
	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
)

// metaLinkSecret keeps the node's link tag secrets: the tag secret that its
// contact links carry, under which a peer holding a link deposits its first
// messages before the node has given it a secret of its own. The value is
// one "hex(secret):created Unix seconds" per secret, newest first, joined
// by ","; a value of bare hex is a single secret from before rotation.
const metaLinkSecret = "mailbox.link_secret"

// Link secret rotation (issue 10). Links made from now on carry a new
// secret every LinkSecretRotation, the period of the signed prekey (a link
// is usable offline only while its bundle is, SignedPrekeyMaxAge after its
// signed prekey was made). A secret is drained for linkSecretDrain after it
// was made: the last link carrying it is usable until LinkSecretRotation +
// SignedPrekeyMaxAge, and a deposit made then may wait DefaultTTL. So a
// leaked link's secret (quota filling, reading who writes first messages)
// is worth nothing after at most six weeks.
const (
	LinkSecretRotation = e2e.SignedPrekeyRotation
	linkSecretDrain    = LinkSecretRotation + e2e.SignedPrekeyMaxAge + DefaultTTL
)

var _ chat.LinkMailboxes = (*Service)(nil)

// linkMu serialises the read-modify-write of the link secrets.
var linkMu sync.Mutex

type linkSecretEntry struct {
	sec     Secret
	created int64 // Unix seconds
}

// LinkMailboxes implements chat.LinkMailboxes: the mailboxes this node
// drains and its current link secret, made on first use and replaced every
// LinkSecretRotation. Everyone holding a link made with one secret shares
// it, so deposits under it are quota'd together (one tag per day) and name
// their sender only inside the sealed envelope: Drain hands them to chat
// (ReceiveLinkFrames) as frames of the peer that the PQXDH prekey message
// names, which chat authenticates before recording anything.
func (s *Service) LinkMailboxes(ctx context.Context) ([]peer.ID, [wire.SecretSize]byte, error) {
	linkMu.Lock()
	defer linkMu.Unlock()
	now := s.now().Unix()
	all, legacy, err := s.linkSecrets(ctx, now)
	if err != nil {
		return nil, Secret{}, err
	}
	fresh := len(all) == 0 || now >= all[0].created+int64(LinkSecretRotation/time.Second)
	if fresh {
		var e linkSecretEntry
		rand.Read(e.sec[:])
		e.created = now
		all = append([]linkSecretEntry{e}, all...)
	}
	if fresh || legacy {
		if err := s.saveLinkSecrets(ctx, all); err != nil {
			return nil, Secret{}, err
		}
	}
	return s.Mailboxes(), all[0].sec, nil
}

// linkSecrets returns the link secrets still drained at now, newest first;
// legacy reports a secret stored before rotation, dated now until saved.
func (s *Service) linkSecrets(ctx context.Context, now int64) (all []linkSecretEntry, legacy bool, err error) {
	v, ok, err := s.db.GetMeta(ctx, metaLinkSecret)
	if err != nil || !ok || v == "" {
		return nil, false, err
	}
	for _, f := range strings.Split(v, ",") {
		h, created, rotated := strings.Cut(f, ":")
		var e linkSecretEntry
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != len(e.sec) {
			return nil, false, errDamagedLinkSecret
		}
		copy(e.sec[:], b)
		if rotated {
			if e.created, err = strconv.ParseInt(created, 10, 64); err != nil {
				return nil, false, errDamagedLinkSecret
			}
		} else {
			e.created, legacy = now, true // from before rotation: its age is unknown
		}
		if now < e.created+int64(linkSecretDrain/time.Second) {
			all = append(all, e)
		}
	}
	return all, legacy, nil
}

func (s *Service) saveLinkSecrets(ctx context.Context, all []linkSecretEntry) error {
	parts := make([]string, len(all))
	for i, e := range all {
		parts[i] = hex.EncodeToString(e.sec[:]) + ":" + strconv.FormatInt(e.created, 10)
	}
	return s.db.SetMeta(ctx, metaLinkSecret, strings.Join(parts, ","))
}

var errDamagedLinkSecret = errors.New("mailbox: stored link secret is damaged")

// linkOwners returns the link secrets still drained as owners of ""
// (the sender of their items is found in the envelope, see linkSender).
func (s *Service) linkOwners(ctx context.Context) []tagOwner {
	all, _, err := s.linkSecrets(ctx, s.now().Unix())
	if err != nil {
		s.log.Warn("link secrets", "err", err)
		return nil
	}
	owners := make([]tagOwner, 0, len(all))
	for _, e := range all {
		owners = append(owners, tagOwner{"", e.sec})
	}
	return owners
}

// linkSender names the sender of an item deposited under a link secret,
// or fails for anything but a PQXDH prekey message (a later message under
// the link secret cannot be attributed; it still waits in the sender's
// outbox for direct delivery).
func linkSender(env []byte) (peer.ID, error) { return chat.LinkSender(env) }
