package chat

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/internal/connhold"
	"github.com/parley-im/parley/peer/identity"
)

// PeerRouter finds a peer's addresses (the DHT).
type PeerRouter = discovery.PeerRouter

// Config is what the service needs from the node.
type Config struct {
	Host     host.Host
	DB       *store.DB
	Identity *identity.Identity
	Router   PeerRouter
	Logger   *slog.Logger
	// Now and Rand are for tests; nil means time.Now and crypto/rand.
	Now func() time.Time
}

// Service is the chat service of one node.
type Service struct {
	host   host.Host
	db     *store.DB
	id     *identity.Identity
	idKey  ed25519.PrivateKey
	router PeerRouter
	log    *slog.Logger
	now    func() time.Time
	events *bus
	// started is closed once Run has registered the stream handlers.
	started chan struct{}

	// mu serialises every use of the end-to-end state, and the transaction
	// that persists it, so the state in memory and on disk never diverge.
	mu       sync.Mutex
	keys     *e2e.KeyStore            // guarded by mu
	channels map[peer.ID]*e2e.Channel // guarded by mu; a cache of e2e_channels
	// plainPending records, per peer, whether outbox rows may wait for
	// encryption (true) or certainly do not (false); absent means unknown.
	// Send encrypts inline only when it is false, so frames leave in order.
	plainPending map[peer.ID]bool // guarded by mu
	// plainQueued marks the peers for which a plaintext payload was queued
	// (enqueue) since encryptQueued last looked. enqueue runs inside
	// transactions whose callers may or may not hold mu, so it is not
	// guarded by mu. A flag set inside a transaction that rolls back only
	// costs one look at the outbox.
	plainQueued sync.Map // peer.ID -> struct{}
	// seqs caches conv_seq.next_out per conversation.
	seqs map[string]uint64 // guarded by mu

	group groupCommit
	rel   relations // who is a contact, who is blocked
	dm    *dmBudget // the dm handler's budgets and per-peer lanes
	names sync.Map  // contact name or peer ID -> Contact{ID, Name}; see resolveCached
	stats struct{ acked, retryLater, rejected atomic.Uint64 }

	prekeyLimit *Limiter
	prekeyConns *prekeyConnBudgets // per IP and global: prekey_budget.go

	// rooms, if set, serves '#room' conversations; onPayload receives
	// payloads this package does not handle (room invites, sender keys).
	rooms     Rooms
	onPayload func(ctx context.Context, tx *sql.Tx, from peer.ID, p *wirepb.Payload)
	mailbox   Mailbox

	dmu        sync.Mutex
	deliverers map[peer.ID]*deliverer // guarded by dmu
	// exchanges holds the connections of the peers we deliver to, and of
	// the contacts that deliver to us, for exchangeHold after the last
	// batch (direct.go, receive.go).
	exchanges *connhold.Holds

	kick chan peer.ID
	wg   sync.WaitGroup
}

// New creates the service, loading (or creating) the end-to-end key store.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{
		started:      make(chan struct{}),
		host:         cfg.Host,
		db:           cfg.DB,
		id:           cfg.Identity,
		idKey:        cfg.Identity.Ed25519(),
		router:       cfg.Router,
		log:          cfg.Logger,
		now:          cfg.Now,
		events:       newBus(),
		channels:     make(map[peer.ID]*e2e.Channel),
		plainPending: make(map[peer.ID]bool),
		seqs:         make(map[string]uint64),
		prekeyLimit:  NewLimiter(prekeyBurst, prekeyEvery),
		prekeyConns:  newPrekeyConnBudgets(),
		dm:           newDMBudget(),
		deliverers:   make(map[peer.ID]*deliverer),
		exchanges:    connhold.New(cfg.Host.ConnManager(), "parley-dm"),
		kick:         make(chan peer.ID, 256),
	}
	if err := s.loadKeys(ctx); err != nil {
		return nil, err
	}
	if err := s.rel.load(ctx, s); err != nil {
		return nil, err
	}
	return s, nil
}

// loadKeys loads the key store, creating it on first start, and rotates and
// replenishes prekeys as due.
func (s *Service) loadKeys(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var blob []byte
	err := s.db.QueryRow(ctx, nil, "SELECT state FROM e2e_keystore WHERE id = 1").Scan(&blob)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		ks, err := e2e.NewKeyStore(s.idKey, rand.Reader, s.now())
		if err != nil {
			return fmt.Errorf("create e2e keys: %w", err)
		}
		s.keys = ks
	case err != nil:
		return fmt.Errorf("load e2e keys: %w", err)
	default:
		ks := new(e2e.KeyStore)
		if err := ks.UnmarshalBinary(blob); err != nil {
			return fmt.Errorf("load e2e keys: %w", err)
		}
		s.keys = ks
	}
	if _, err := s.keys.Maintain(s.idKey, rand.Reader, s.now()); err != nil {
		return fmt.Errorf("maintain prekeys: %w", err)
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error { return s.saveKeysLocked(ctx, tx) })
}

func (s *Service) saveKeysLocked(ctx context.Context, tx *sql.Tx) error {
	blob, err := s.keys.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode e2e keys: %w", err)
	}
	_, err = s.db.Exec(ctx, tx, `INSERT INTO e2e_keystore(id, state) VALUES(1, ?)
		ON CONFLICT(id) DO UPDATE SET state = excluded.state`, blob)
	if err != nil {
		return fmt.Errorf("save e2e keys: %w", err)
	}
	return nil
}

// channelLocked returns the cached channel with p, loading it from the
// database (or creating an empty one).
func (s *Service) channelLocked(ctx context.Context, p peer.ID) (*e2e.Channel, error) {
	ch, err := s.peekChannelLocked(ctx, p)
	if err != nil {
		return nil, err
	}
	s.channels[p] = ch
	return ch, nil
}

func (s *Service) saveChannel(ctx context.Context, tx *sql.Tx, p peer.ID, ch *e2e.Channel) error {
	blob, err := ch.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	_, err = s.db.Exec(ctx, tx, `INSERT INTO e2e_channels(peer_id, state) VALUES(?, ?)
		ON CONFLICT(peer_id) DO UPDATE SET state = excluded.state`, str(p), blob)
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// peekChannelLocked is channelLocked without caching what it loads: the
// receive path looks at strangers' sessions, which must not fill the cache.
func (s *Service) peekChannelLocked(ctx context.Context, p peer.ID) (*e2e.Channel, error) {
	if ch, ok := s.channels[p]; ok {
		return ch, nil
	}
	var blob []byte
	err := s.db.QueryRow(ctx, nil, "SELECT state FROM e2e_channels WHERE peer_id = ?", str(p)).Scan(&blob)
	ch := new(e2e.Channel)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("load session with %s: %w", p, err)
	default:
		if err := ch.UnmarshalBinary(blob); err != nil {
			return nil, fmt.Errorf("load session with %s: %w", p, err)
		}
	}
	return ch, nil
}

// dropChannelLocked forgets the cached channel so the next use reloads the
// committed state (after a failed transaction).
func (s *Service) dropChannelLocked(p peer.ID) { delete(s.channels, p) }

// Started is closed once Run has registered the stream handlers: a peer
// that opens a stream after that finds the protocols supported.
func (s *Service) Started() <-chan struct{} { return s.started }

// Run registers the stream handlers and runs the deliverers, the prekey
// maintenance and presence tracking until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	// Protocol updates matter because a restarting peer connects before
	// its chat service registers the dm handler: a delivery tried in
	// between fails, and the identify push that announces the handler
	// is the moment to try again.
	sub, err := s.host.EventBus().Subscribe([]any{new(event.EvtPeerConnectednessChanged), new(event.EvtPeerProtocolsUpdated)})
	if err != nil {
		return fmt.Errorf("subscribe connection events: %w", err)
	}
	defer sub.Close()
	s.host.SetStreamHandler(wire.ProtocolDM, func(st network.Stream) { s.handleDM(ctx, st) })
	s.host.SetStreamHandler(wire.ProtocolPrekeys, func(st network.Stream) { s.handlePrekeys(ctx, st) })
	defer s.host.RemoveStreamHandler(wire.ProtocolDM)
	defer s.host.RemoveStreamHandler(wire.ProtocolPrekeys)
	close(s.started)
	defer s.closeStreams()
	defer s.exchanges.Close()
	defer s.wg.Wait()

	// Everything queued before a restart goes out again.
	s.kickAll(ctx, false)

	maintain := time.NewTicker(time.Hour)
	defer maintain.Stop()
	retry := time.NewTicker(retryInterval)
	defer retry.Stop()
	fts := time.NewTicker(ftsInterval)
	defer fts.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-s.kick:
			s.startDeliverer(ctx, p)
		case e := <-sub.Out():
			if ev, ok := e.(event.EvtPeerProtocolsUpdated); ok {
				if slices.Contains(ev.Added, wire.ProtocolDM) && !s.rel.isBlocked(ev.Peer) {
					s.startDeliverer(ctx, ev.Peer)
				}
				continue
			}
			ev := e.(event.EvtPeerConnectednessChanged)
			if s.rel.isBlocked(ev.Peer) {
				if ev.Connectedness == network.Connected || ev.Connectedness == network.Limited {
					// A blocked peer holds no connection.
					s.wg.Add(1)
					go func() {
						defer s.wg.Done()
						s.host.Network().ClosePeer(ev.Peer)
					}()
				}
				continue
			}
			s.presence(ctx, ev.Peer, ev.Connectedness == network.Connected || ev.Connectedness == network.Limited)
			if ev.Connectedness == network.Connected || ev.Connectedness == network.Limited {
				s.startDeliverer(ctx, ev.Peer)
			}
		case <-retry.C:
			s.kickAll(ctx, true)
		case <-fts.C:
			if err := s.indexMessages(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("full-text indexing failed", "err", err)
			}
		case <-maintain.C:
			s.maintainKeys(ctx)
		}
	}
}

func (s *Service) maintainKeys(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed, err := s.keys.Maintain(s.idKey, rand.Reader, s.now())
	if err != nil {
		s.log.Error("prekey maintenance failed", "err", err)
		return
	}
	if changed {
		if err := s.db.Tx(ctx, func(tx *sql.Tx) error { return s.saveKeysLocked(ctx, tx) }); err != nil {
			s.log.Error("save prekeys failed", "err", err)
		}
	}
}

// Kick asks the deliverer of p to try now.
func (s *Service) Kick(p peer.ID) {
	select {
	case s.kick <- p:
	default:
	}
}

// kickAll starts the deliverer of every peer with queued frames (with
// onlyDue, only those whose backoff has expired).
func (s *Service) kickAll(ctx context.Context, onlyDue bool) {
	rows, err := s.db.Query(ctx, nil, "SELECT DISTINCT peer_id FROM outbox")
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("read outbox", "err", err)
		}
		return
	}
	var ids []peer.ID
	for rows.Next() {
		var str string
		if rows.Scan(&str) == nil {
			if id, err := peer.Decode(str); err == nil {
				ids = append(ids, id)
			}
		}
	}
	rows.Close()
	for _, id := range ids {
		if onlyDue && !s.due(id) {
			continue
		}
		s.startDeliverer(ctx, id)
	}
}

// OutboxDepth reports how many frames wait for an ack.
func (s *Service) OutboxDepth(ctx context.Context) int {
	var n int
	s.db.QueryRow(ctx, nil, "SELECT count(*) FROM outbox").Scan(&n)
	return n
}

// closeStreams closes the deliverers' idle streams once every loop ended.
func (s *Service) closeStreams() {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	for _, d := range s.deliverers {
		if d.st != nil {
			d.st.Close()
			d.st, d.r = nil, nil
		}
	}
}

// idStrings caches the base58 text of peer IDs: it was a measurable share of
// the CPU of a message, computed several times per row.
// The cache holds at most maxIDStrings entries (peers that talked to us).
var (
	idStrings    sync.Map // peer.ID -> string
	idStringsLen atomic.Int64
)

const maxIDStrings = 4096

// str returns p's text form.
func str(p peer.ID) string {
	if v, ok := idStrings.Load(p); ok {
		return v.(string)
	}
	v := p.String()
	if idStringsLen.Load() < maxIDStrings {
		if _, loaded := idStrings.LoadOrStore(p, v); !loaded {
			idStringsLen.Add(1)
		}
	}
	return v
}
