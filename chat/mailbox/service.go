package mailbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"

	"github.com/parley-im/parley/chat"
	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// Serve says whom a node's mailbox serves.
type Serve string

// The serving modes.
const (
	// ServeOff offers no mailbox.
	ServeOff Serve = "off"
	// ServeContacts serves the node's contacts only (`parley mailbox enable`).
	ServeContacts Serve = "contacts"
	// ServeNetwork serves every peer that can connect: a bootstrap node of
	// a private network (`parley bootstrap --mailbox`).
	ServeNetwork Serve = "network"
)

// Chat is what the mailbox client needs from the chat service; nil on a
// bootstrap node, which only serves.
type Chat interface {
	ReceiveFrames(ctx context.Context, from peer.ID, frames []*wirepb.DMMessage) []*wirepb.DMAck
	// ReceiveLinkFrames is ReceiveFrames for first messages deposited under
	// the link secret, which only claim to come from from (issue 10).
	ReceiveLinkFrames(ctx context.Context, from peer.ID, frames []*wirepb.DMMessage) []*wirepb.DMAck
	SendPayload(ctx context.Context, tx *sql.Tx, to peer.ID, p *wirepb.Payload) error
	ContactName(ctx context.Context, p peer.ID) string
	Kick(p peer.ID)
	Contacts(ctx context.Context) ([]apitype.Contact, error)
	// Subscribe streams the chat events; the mailbox client watches them
	// to announce its list to a contact as soon as a session with it is
	// in use (see announceLoop).
	Subscribe() (<-chan apitype.Event, func())
}

// PeerRouter finds a peer's addresses (the DHT).
type PeerRouter interface {
	FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error)
}

// Config is what the service needs from the node.
type Config struct {
	Host   host.Host
	DB     *store.DB
	Chat   Chat       // nil on a bootstrap node
	Router PeerRouter // optional
	// PSK is the private network's key (nil on the public network): the
	// throwaway hosts that make deposits need it to reach a mailbox.
	PSK pnet.PSK
	// Serve is the serving mode of a bootstrap node (ServeNetwork or
	// ServeOff). On a user node (Chat set) it is ignored: the mode is what
	// `parley mailbox enable` stored.
	Serve Serve
	// Limits are the quotas; on a user node `mailbox enable --quota`
	// overrides TagItems.
	Limits Limits
	// Defaults are the mailboxes used when the user never ran `mailbox
	// use`: on a private network, its bootstrap peers; only those that
	// offer /parley/mailbox/1 are used.
	Defaults []peer.ID
	// DrainEvery is how often the node drains its mailboxes and announces
	// its list to new contacts (default 2 minutes).
	DrainEvery time.Duration
	Logger     *slog.Logger
	Now        func() time.Time // tests; nil means time.Now
}

// Service is a node's mailbox subsystem: the server of /parley/mailbox/1
// when enabled, and on a user node the client that deposits for
// unreachable contacts, drains the node's own mailboxes and announces them.
type Service struct {
	cfg  Config
	host host.Host
	db   *store.DB
	chat Chat
	log  *slog.Logger
	now  func() time.Time
	srv  *server

	drainMu sync.Mutex // one drain at a time

	mu          sync.Mutex
	use         []peer.ID                        // guarded by mu: the mailboxes this node drains
	issued      int64                            // guarded by mu: issued_at_ms of that list
	explicit    bool                             // guarded by mu: chosen with `mailbox use`
	serve       Serve                            // guarded by mu
	lastDrain   time.Time                        // guarded by mu
	lastFetched int                              // guarded by mu: items the last drain handed to chat
	drains      map[peer.ID]apitype.MailboxDrain // guarded by mu: the last drain of each mailbox
	runCtx      context.Context

	wake     chan struct{} // drain (and pick defaults, announce) soon
	announce chan struct{} // announce soon
}

var _ chat.Mailbox = (*Service)(nil)

// Meta keys of the node's mailbox settings.
const (
	metaServe  = "mailbox.serve"
	metaQuota  = "mailbox.quota_items"
	metaUse    = "mailbox.use"
	metaIssued = "mailbox.issued_ms"
	// metaAuto is the default list last announced (when the user chose
	// none), so a restart that finds the same defaults announces nothing.
	metaAuto = "mailbox.use_auto"
)

// New loads the mailbox settings and state from the database.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DrainEvery <= 0 {
		cfg.DrainEvery = 2 * time.Minute
	}
	s := &Service{
		cfg: cfg, host: cfg.Host, db: cfg.DB, chat: cfg.Chat, log: cfg.Logger, now: cfg.Now,
		wake: make(chan struct{}, 1), announce: make(chan struct{}, 1),
		drains: make(map[peer.ID]apitype.MailboxDrain),
	}
	s.srv = &server{host: cfg.Host, db: cfg.DB, log: cfg.Logger, now: cfg.Now}
	if err := s.srv.loadKey(ctx); err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	lim := cfg.Limits.withDefaults()
	s.serve = cfg.Serve
	if s.serve == "" {
		s.serve = ServeOff
	}
	if cfg.Chat != nil {
		v, _, err := cfg.DB.GetMeta(ctx, metaServe)
		if err != nil {
			return nil, err
		}
		s.serve = ServeOff
		if Serve(v) == ServeContacts {
			s.serve = ServeContacts
		}
		if q, ok, _ := cfg.DB.GetMeta(ctx, metaQuota); ok {
			if n, err := strconv.Atoi(q); err == nil && n > 0 {
				lim.TagItems = n
			}
		}
		s.srv.allow = func(ctx context.Context, p peer.ID) bool { return cfg.Chat.ContactName(ctx, p) != "" }
		if v, ok, _ := cfg.DB.GetMeta(ctx, metaUse); ok {
			s.explicit = true
			s.use = parsePeers(v)
		} else if v, ok, _ := cfg.DB.GetMeta(ctx, metaAuto); ok {
			for _, p := range parsePeers(v) {
				if slices.Contains(cfg.Defaults, p) {
					s.use = append(s.use, p)
				}
			}
		}
		if v, ok, _ := cfg.DB.GetMeta(ctx, metaIssued); ok {
			s.issued, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	s.srv.limits.Store(&lim)
	return s, nil
}

func parsePeers(v string) []peer.ID {
	var out []peer.ID
	for _, f := range strings.Fields(v) {
		if id, err := peer.Decode(f); err == nil {
			out = append(out, id)
		}
	}
	return out
}

func joinPeers(ps []peer.ID) string {
	ss := make([]string, len(ps))
	for i, p := range ps {
		ss[i] = p.String()
	}
	return strings.Join(ss, "\n")
}

// Run serves the mailbox (if enabled) and, on a user node, drains the
// node's mailboxes at start, whenever one of them connects and every
// DrainEvery, and announces the mailbox list to contacts that lack it.
//
// No blind spots at start: a node that uses the default mailboxes (the
// private network's bootstrap nodes that serve mailboxes) connects to them
// at once and picks those whose identify lists the protocol, then drains;
// a default that identifies later is picked when it does, not at the next
// tick. A contact that lacks the current list gets it as soon as a
// message is exchanged with it (announceLoop), so a new contact learns the
// list in its first session.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	serve := s.serve
	s.mu.Unlock()
	if serve != ServeOff {
		s.srv.start(ctx)
	}
	defer s.srv.stop()
	if err := s.srv.expire(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("mailbox expiry", "err", err)
	}
	sub, err := s.host.EventBus().Subscribe([]any{new(event.EvtPeerConnectednessChanged), new(event.EvtPeerIdentificationCompleted)})
	if err != nil {
		return fmt.Errorf("mailbox: subscribe connection events: %w", err)
	}
	defer sub.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.chat != nil {
		// Announcing and draining wait on the database and the network,
		// so they run apart from this loop, which must keep reading the
		// event bus (a subscriber that stops reading blocks the emitters,
		// identify among them).
		wg.Add(2)
		go func() {
			defer wg.Done()
			s.announceLoop(ctx)
		}()
		go func() {
			defer wg.Done()
			s.drainLoop(ctx)
		}()
	}
	tick := time.NewTicker(s.cfg.DrainEvery)
	defer tick.Stop()
	expire := time.NewTicker(time.Hour)
	defer expire.Stop()
	s.poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-expire.C:
			if err := s.srv.expire(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("mailbox expiry", "err", err)
			}
			s.prune(ctx)
		case e := <-sub.Out():
			switch ev := e.(type) {
			case event.EvtPeerConnectednessChanged:
				if ev.Connectedness == network.Connected && s.isMine(ev.Peer) {
					s.poke()
				}
			case event.EvtPeerIdentificationCompleted:
				if s.waitingFor(ev.Peer) {
					s.poke()
				}
			}
		case <-tick.C:
			s.poke()
		}
	}
}

// drainLoop drains whenever poked (s.wake): at start, when a mailbox
// connects or a default one identifies, on a new tag secret and every
// DrainEvery.
func (s *Service) drainLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			if _, err := s.Drain(ctx); err != nil && ctx.Err() == nil {
				s.log.Info("drain mailboxes", "err", err)
			}
		}
	}
}

// announceLoop announces the list to contacts that lack it: at start, on
// request (s.announce), and whenever a message to or from a contact is
// stored, which covers a contact's first session.
func (s *Service) announceLoop(ctx context.Context) {
	events, cancel := s.chat.Subscribe()
	defer func() { cancel() }()
	s.wantAnnounce()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok { // fell behind: subscribe again
				events, cancel = s.chat.Subscribe()
				s.wantAnnounce()
				continue
			}
			// A message to or from a contact means a session is in use:
			// the list rides in it. (Not on presence alone: a node that
			// started a session just to announce could cross the
			// contact's own first message.)
			if ev.Type == "message" {
				s.wantAnnounce()
			}
		case <-s.announce:
			if err := s.announceAll(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("announce mailboxes", "err", err)
			}
		}
	}
}

// wantAnnounce asks announceLoop to announce soon.
func (s *Service) wantAnnounce() {
	select {
	case s.announce <- struct{}{}:
	default:
	}
}

// poke asks Run to drain soon.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// waitingFor reports whether p is a default mailbox that the node would
// use but has not picked yet.
func (s *Service) waitingFor(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.explicit && slices.Contains(s.cfg.Defaults, p) && !slices.Contains(s.use, p)
}

func (s *Service) isMine(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.use, p)
}

// Mailboxes returns the mailboxes this node drains and announces.
func (s *Service) Mailboxes() []peer.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.use)
}

// Use sets the mailboxes this node drains (at most 8; none: deposit
// nowhere) and announces the new list to every contact. auto returns to
// the default (the private network's bootstrap nodes that offer the
// protocol).
func (s *Service) Use(ctx context.Context, peers []peer.ID, auto bool) error {
	if s.chat == nil {
		return errors.New("mailbox use: this node has no chat service")
	}
	if len(peers) > wire.MaxMailboxes {
		return fmt.Errorf("mailbox use: at most %d mailboxes, got %d", wire.MaxMailboxes, len(peers))
	}
	var uniq []peer.ID
	for _, p := range peers {
		if p == s.host.ID() {
			return errors.New("mailbox use: a node cannot be its own mailbox (it is offline whenever you are)")
		}
		if !slices.Contains(uniq, p) {
			uniq = append(uniq, p)
		}
	}
	if auto {
		if _, err := s.db.SQL().ExecContext(ctx, "DELETE FROM meta WHERE key = ?", metaUse); err != nil {
			return err
		}
		s.mu.Lock()
		s.explicit = false
		s.mu.Unlock()
		// The defaults that serve mailboxes now, or none: never the list
		// chosen before, which the status would then show as the default.
		// A default that does not answer soon is picked later, when it
		// identifies.
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s.pickDefaults(pctx)
		cancel()
		var keep []peer.ID
		for _, p := range s.Mailboxes() {
			if slices.Contains(s.cfg.Defaults, p) {
				keep = append(keep, p)
			}
		}
		if !slices.Equal(keep, s.Mailboxes()) {
			if err := s.setList(ctx, keep); err != nil {
				return err
			}
		}
		s.poke()
		return nil
	}
	if err := s.db.SetMeta(ctx, metaUse, joinPeers(uniq)); err != nil {
		return err
	}
	s.mu.Lock()
	s.explicit = true
	s.mu.Unlock()
	if err := s.setList(ctx, uniq); err != nil {
		return err
	}
	s.poke()
	return nil
}

// setList makes ps the current list with a new issued_at.
func (s *Service) setList(ctx context.Context, ps []peer.ID) error {
	s.mu.Lock()
	issued := max(s.now().UnixMilli(), s.issued+1)
	s.mu.Unlock()
	if err := s.db.SetMeta(ctx, metaIssued, strconv.FormatInt(issued, 10)); err != nil {
		return err
	}
	if err := s.db.SetMeta(ctx, metaAuto, joinPeers(ps)); err != nil {
		return err
	}
	s.mu.Lock()
	s.use, s.issued = slices.Clone(ps), issued
	s.mu.Unlock()
	s.wantAnnounce()
	return nil
}

// pickDefaults uses, when the user chose nothing, the default mailboxes
// that offer the protocol. A default the node has not identified yet is
// connected to first (which runs identify), so the choice is made at once,
// not when some later event happens to tell.
func (s *Service) pickDefaults(ctx context.Context) {
	s.mu.Lock()
	explicit, cur := s.explicit, slices.Clone(s.use)
	s.mu.Unlock()
	if explicit || len(s.cfg.Defaults) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, p := range s.cfg.Defaults {
		if protos, err := s.host.Peerstore().GetProtocols(p); err == nil && len(protos) > 0 {
			continue // identified already
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.reach(ctx, p); err != nil {
				s.log.Debug("default mailbox unreachable", "peer", p, "err", err)
			}
		}()
	}
	wg.Wait()
	var ps []peer.ID
	for _, p := range s.cfg.Defaults {
		if ok, _ := s.host.Peerstore().SupportsProtocols(p, wire.ProtocolMailbox); len(ok) > 0 && len(ps) < wire.MaxMailboxes {
			ps = append(ps, p)
		}
	}
	// A default that is unreachable now stays in the list it was in: it
	// may be down for a moment, and contacts deposit in every mailbox.
	for _, p := range cur {
		if !slices.Contains(ps, p) && slices.Contains(s.cfg.Defaults, p) && s.host.Network().Connectedness(p) != network.Connected && len(ps) < wire.MaxMailboxes {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 || slices.Equal(ps, cur) {
		return
	}
	if err := s.setList(ctx, ps); err != nil {
		s.log.Warn("use default mailboxes", "err", err)
		return
	}
	s.log.Info("using the default mailboxes", "mailboxes", ps)
}

// Enable turns serving for contacts on (quota > 0 sets the per-tag item
// quota) or off.
func (s *Service) Enable(ctx context.Context, on bool, quota int) error {
	if s.chat == nil {
		return errors.New("mailbox enable: a bootstrap node serves with --mailbox")
	}
	mode := ServeOff
	if on {
		mode = ServeContacts
	}
	if err := s.db.SetMeta(ctx, metaServe, string(mode)); err != nil {
		return err
	}
	if quota > 0 {
		if err := s.db.SetMeta(ctx, metaQuota, strconv.Itoa(quota)); err != nil {
			return err
		}
		lim := *s.srv.limits.Load()
		lim.TagItems = quota
		s.srv.limits.Store(&lim)
	}
	s.mu.Lock()
	s.serve = mode
	rctx := s.runCtx
	s.mu.Unlock()
	switch {
	case on && rctx != nil:
		s.srv.start(rctx)
	case !on:
		s.srv.stop()
	}
	return nil
}

// Serving returns the serving mode and the limits.
func (s *Service) Serving() (Serve, Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serve, *s.srv.limits.Load()
}

// Stored reports how many items and bytes this node holds as a mailbox.
func (s *Service) Stored(ctx context.Context) (int, int64, error) { return s.srv.stored(ctx) }

// LastDrain is when the node last drained its mailboxes successfully.
func (s *Service) LastDrain() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastDrain
}

// announceAll queues the current list to every contact that has not got
// it. Each contact gets its own tag secret, created once and kept, so a
// contact can derive only the tags of its own deposits. Finding who lacks
// the list is one query (contacts without a secret row, or announced
// before the current list), so it is cheap to call on every chat event.
func (s *Service) announceAll(ctx context.Context) error {
	s.mu.Lock()
	issued := s.issued
	s.mu.Unlock()
	if issued == 0 {
		return nil // never configured: nothing to announce
	}
	rows, err := s.db.Query(ctx, nil, `SELECT c.peer_id FROM contacts c LEFT JOIN mailbox_secrets m ON m.peer_id = c.peer_id
		WHERE m.announced IS NULL OR m.announced < ?`, issued)
	if err != nil {
		return err
	}
	var contacts []peer.ID
	for rows.Next() {
		var id string
		if rows.Scan(&id) != nil {
			continue
		}
		if p, err := peer.Decode(id); err == nil {
			contacts = append(contacts, p)
		}
	}
	rows.Close()
	for _, c := range contacts {
		if err := s.announceTo(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// announceTo queues the current list to contact c unless c has it.
func (s *Service) announceTo(ctx context.Context, c peer.ID) error {
	s.mu.Lock()
	use, issued := slices.Clone(s.use), s.issued
	s.mu.Unlock()
	ids := make([][]byte, len(use))
	for i, p := range use {
		ids[i] = []byte(p)
	}
	sent, first := false, false
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		secret, announced, err := s.secretTx(ctx, tx, c)
		if err != nil || announced >= issued {
			return err
		}
		first = announced == 0
		if err := s.chat.SendPayload(ctx, tx, c, &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Mailboxes{
			Mailboxes: &wirepb.MailboxList{PeerIds: ids, IssuedAtMs: issued, TagSecret: secret[:]},
		}}); err != nil {
			return err
		}
		sent = true
		_, err = s.db.Exec(ctx, tx, "UPDATE mailbox_secrets SET announced = ? WHERE peer_id = ?", issued, c.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("announce mailboxes to %s: %w", c, err)
	}
	if sent {
		s.log.Info("mailbox list queued", "peer", c, "mailboxes", len(use))
		s.chat.Kick(c)
		if first {
			// A new secret: drain now, which registers its tags at
			// contacts-only mailboxes, so that c can deposit there
			// even if this node goes offline right after this session.
			s.poke()
		}
	}
	return nil
}

// secretTx returns the tag secret given to contact c, creating it.
func (s *Service) secretTx(ctx context.Context, tx *sql.Tx, c peer.ID) (Secret, int64, error) {
	var sec Secret
	var b []byte
	var announced int64
	err := s.db.QueryRow(ctx, tx, "SELECT secret, announced FROM mailbox_secrets WHERE peer_id = ?", c.String()).Scan(&b, &announced)
	if err == nil && len(b) == len(sec) {
		copy(sec[:], b)
		return sec, announced, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return sec, 0, err
	}
	rand.Read(sec[:])
	_, err = s.db.Exec(ctx, tx, "INSERT OR REPLACE INTO mailbox_secrets(peer_id, secret, announced) VALUES(?, ?, 0)", c.String(), sec[:])
	return sec, 0, err
}

// HandleList is the chat PayloadHandler for MailboxList payloads: it keeps
// the newest list of each contact. It runs inside the transaction that
// commits the frame; the list is authenticated by the session (only the
// contact holds the ratchet keys), so it carries no signature of its own.
func (s *Service) HandleList(ctx context.Context, tx *sql.Tx, from peer.ID, p *wirepb.Payload) {
	l := p.GetMailboxes()
	if l == nil {
		return
	}
	var ps []peer.ID
	for _, b := range l.PeerIds {
		id, err := peer.IDFromBytes(b)
		if err != nil || id == from {
			continue
		}
		ps = append(ps, id)
	}
	_, err := s.db.Exec(ctx, tx, `INSERT INTO mailbox_lists(peer_id, issued_at, mailboxes, secret) VALUES(?, ?, ?, ?)
		ON CONFLICT(peer_id) DO UPDATE SET issued_at = excluded.issued_at, mailboxes = excluded.mailboxes, secret = excluded.secret
		WHERE excluded.issued_at > mailbox_lists.issued_at`, from.String(), l.IssuedAtMs, joinPeers(ps), l.TagSecret)
	if err != nil {
		s.log.Warn("store mailbox list", "peer", from, "err", err)
		return
	}
	s.log.Info("mailbox list received", "peer", from, "mailboxes", len(ps))
}

// ListOf returns the mailboxes contact p announced (nil if none).
func (s *Service) ListOf(ctx context.Context, p peer.ID) ([]peer.ID, error) {
	ps, _, _, err := s.listOf(ctx, p)
	return ps, err
}

func (s *Service) listOf(ctx context.Context, p peer.ID) ([]peer.ID, Secret, bool, error) {
	var sec Secret
	var mbs string
	var b []byte
	err := s.db.QueryRow(ctx, nil, "SELECT mailboxes, secret FROM mailbox_lists WHERE peer_id = ?", p.String()).Scan(&mbs, &b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sec, false, nil
	}
	if err != nil {
		return nil, sec, false, err
	}
	if len(b) != len(sec) {
		return nil, sec, false, nil
	}
	copy(sec[:], b)
	return parsePeers(mbs), sec, true, nil
}

var _ Chat = (*chat.Service)(nil)
