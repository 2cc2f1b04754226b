package room

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat"
	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/internal/connhold"
)

// Errors of the room API.
var (
	ErrNoRoom    = errors.New("no such room")
	ErrNotAdmin  = errors.New("only an admin or the owner of the room can do that")
	ErrNotMember = errors.New("not a member of the room")
	ErrPublic    = errors.New("public rooms have no roster")
	ErrExists    = errors.New("a room with that name already exists")
)

// Config is what the room service needs from the node.
type Config struct {
	Chat   *chat.Service
	DHT    *dht.IpfsDHT // rendezvous; nil disables it
	Logger *slog.Logger
	// Tuning, for tests and benchmarks; zero values take the defaults.
	RateBurst    int           // messages an author may burst (default 100)
	RateEvery    time.Duration // refill interval per message (default 50ms: 20/s)
	FindInterval time.Duration // how often rendezvous looks for members (default 30s)
	JoinRetry    time.Duration // how often a waiting join by link asks again (default 30s)
	// RekeyEvery is the age at which the owner's node (else the admin's
	// with the smallest peer ID) gives a private room a fresh epoch with
	// the same roster, for post-compromise recovery (default 24h).
	RekeyEvery time.Duration
	// PubsubOptions are appended to the service's gossipsub options.
	PubsubOptions []pubsub.Option
	Now           func() time.Time

	// finder looks up rendezvous providers and their addresses; nil means
	// DHT (tests wrap it).
	finder providerFinder
	// beforePublish, if set (tests), runs before each publication of our
	// own message; an error stands for a publication that failed (or a
	// crash between storing and publishing).
	beforePublish func() error
}

// Service runs the rooms of one node. Its lifecycle:
//
//	New ──► Run(ctx) ──(ctx done)──► stopped
//
// New creates the gossipsub router (it lives until New's context or Run's
// ends). Run loads the joined rooms, joins their topics and serves until its
// context ends, then waits for every goroutine it started.
type Service struct {
	chat *chat.Service
	host host.Host
	db   *store.DB
	dht  *dht.IpfsDHT
	log  *slog.Logger
	now  func() time.Time
	cfg  Config

	ps       *pubsub.PubSub
	psCancel context.CancelFunc
	rate     *chat.Limiter
	// commitRate bounds the commits of each author the validators apply
	// (a burst of 10, then one every 6 seconds).
	commitRate *chat.Limiter
	// welcomeRate bounds how often a member's join request makes us
	// publish again the commit that added it: once per 6 seconds
	// (docs/PROTOCOL.md, "Validation of the topic").
	welcomeRate *chat.Limiter
	finder      providerFinder // nil: no rendezvous
	budgets     syncBudgets    // of /parley/roomsync/1 and /2 (sync_budget.go)

	// issuers holds our connections to the admins of the joins we wait
	// on, admitted the joiners we admitted (join.go, holdIssuer, admitted).
	issuers, admitted *connhold.Holds

	// commits caches parsed stored commits (fetch.go, storedCommit).
	commitsMu sync.Mutex
	commits   map[commitKey]*group.Commit // guarded by commitsMu

	// mu guards the in-memory view of the rooms. Lock order: a room's gmu
	// before mu (never take a gmu while holding mu: see roomList). mu is
	// never held across a database transaction or a network call.
	mu    sync.RWMutex
	rooms map[ID]*room // guarded by mu
	// sending holds the ids of our messages Send is publishing (guarded
	// by mu).
	sending map[string]bool
	// ended holds why the joins given up recently were refused, by link
	// (guarded by mu; at most 64): a JoinLink waiting on a join the retry
	// loop was refused reports the refusal.
	ended  map[string]error
	runCtx context.Context
	wg     sync.WaitGroup

	inbox chan struct{}
	syncs chan syncJob
	// syncPending holds the jobs queued on syncs (guarded by syncMu).
	syncMu      sync.Mutex
	syncPending map[syncJob]bool
	// started is closed once Run has loaded and started the joined rooms.
	started chan struct{}
}

// Started is closed once Run has loaded the joined rooms and can run new
// ones: a room joined before is started only when Run loads it.
func (s *Service) Started() <-chan struct{} { return s.started }

// room is one joined room, or a private room we asked to join and wait to
// be admitted into (join set, g nil). Fields other than id, name and
// public are guarded by Service.mu, except g, which r.gmu guards.
type room struct {
	id     ID
	name   string
	public bool
	clock  *hlcClock // the room's hybrid logical clock

	// imu serialises the room's ingests (live and synced messages), so
	// that what one ingest found missing from the log is still missing
	// when it stores it. Lock order: imu before gmu.
	imu sync.Mutex
	// logIdx answers the validators' "already logged?" from memory
	// (logindex.go).
	logIdx logIndex

	// gmu serialises every use of the group state of a private room
	// (applying commits, sealing and opening messages) with the
	// transaction that persists it. The one exception is ingest, which
	// opens messages under gmu and lets it go as soon as its transaction
	// has begun (see ingest): validators take gmu too, and must not wait
	// for the room's inserts.
	gmu sync.Mutex
	g   *groupState // private rooms: guarded by gmu
	// join is our pending join request, while we wait for the commit that
	// adds us (guarded by gmu).
	join *pendingJoin
	// leaving is set once we left and until the commit that takes us off
	// the roster arrives: our signed leave is published again whenever a
	// peer appears (guarded by gmu).
	leaving bool

	// queue holds the changes waiting for this node's next commit;
	// committing is set while a goroutine commits them (both guarded by
	// Service.mu).
	queue      *proposal
	committing bool

	// nextGen is, per epoch and author, the generation after the
	// newest message we opened (guarded by gmu): a message beyond it
	// means we missed some (sync.go, syncDue).
	nextGen map[genKey]uint32
	// suspect is set when something suggests the room's log misses
	// messages; lastSync is when a sync with a few members last ran
	// (unix ms). Both decide whether the periodic sync runs (syncDue).
	suspect  atomic.Bool
	lastSync atomic.Int64

	topic  *pubsub.Topic
	cancel context.CancelFunc
	loops  *sync.WaitGroup // the reader and the topic-event watcher
}

// Topic returns the gossipsub topic of the room: version 1 for public
// rooms, version 2 for private ones.
func (r *room) Topic() string {
	if r.public {
		return r.id.Topic()
	}
	return group.TopicPrefix + r.id.String()
}

var _ chat.Rooms = (*Service)(nil)

// testConfig, set only by this package's tests (before they start nodes),
// edits the Config of the service of a host.
var testConfig func(host.Host, *Config)

// testPubsubOptions, set only by this package's tests (before they start
// nodes), adds gossipsub options such as tracers to the service of a host:
// nodes made by peer.New cannot be given Config.PubsubOptions.
var testPubsubOptions func(host.Host) []pubsub.Option

// New creates the service and its gossipsub router.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Chat == nil {
		return nil, errors.New("room: Config.Chat is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = 100
	}
	if cfg.RateEvery <= 0 {
		cfg.RateEvery = 50 * time.Millisecond
	}
	if testConfig != nil {
		testConfig(cfg.Chat.Host(), &cfg)
	}
	if cfg.FindInterval <= 0 {
		cfg.FindInterval = 30 * time.Second
	}
	if cfg.JoinRetry <= 0 {
		cfg.JoinRetry = 30 * time.Second
	}
	if cfg.RekeyEvery <= 0 {
		cfg.RekeyEvery = 24 * time.Hour
	}
	if cfg.finder == nil && cfg.DHT != nil {
		cfg.finder = cfg.DHT
	}
	s := &Service{
		chat:  cfg.Chat,
		host:  cfg.Chat.Host(),
		db:    cfg.Chat.DB(),
		dht:   cfg.DHT,
		log:   cfg.Logger,
		now:   cfg.Now,
		cfg:   cfg,
		rooms: make(map[ID]*room),

		sending: make(map[string]bool),
		ended:   make(map[string]error),
		started: make(chan struct{}),
		rate:    chat.NewLimiter(cfg.RateBurst, cfg.RateEvery),

		commitRate:  chat.NewLimiter(10, 6*time.Second),
		welcomeRate: chat.NewLimiter(1, 6*time.Second),
		inbox:       make(chan struct{}, 1),
		syncs:       make(chan syncJob, 64),

		syncPending: make(map[syncJob]bool),

		finder:  cfg.finder,
		budgets: newSyncBudgets(),
		commits: make(map[commitKey]*group.Commit),

		issuers:  connhold.New(cfg.Chat.Host().ConnManager(), "parley-room-join"),
		admitted: connhold.New(cfg.Chat.Host().ConnManager(), "parley-room-admitted"),
	}
	psCtx, cancel := context.WithCancel(ctx)
	opts := append(PubsubOptions(), pubsub.WithLogger(cfg.Logger.With("subsystem", "gossipsub")))
	opts = append(opts, cfg.PubsubOptions...)
	if testPubsubOptions != nil {
		opts = append(opts, testPubsubOptions(s.host)...)
	}
	ps, err := pubsub.NewGossipSub(psCtx, s.host, opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("room: start gossipsub: %w", err)
	}
	s.ps, s.psCancel = ps, cancel
	s.host.SetStreamHandler(protocolRoomSync, s.handleSync)
	s.host.SetStreamHandler(protocolRoomSync2, s.handleFetch)
	s.host.SetStreamHandler(protocolRoomJoin, s.handleJoin)
	return s, nil
}

// PubSub returns the gossipsub router (tests, benchmarks).
func (s *Service) PubSub() *pubsub.PubSub { return s.ps }

// Run serves the rooms until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	defer s.psCancel()
	defer s.host.RemoveStreamHandler(protocolRoomSync)
	defer s.host.RemoveStreamHandler(protocolRoomSync2)
	defer s.host.RemoveStreamHandler(protocolRoomJoin)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.runCtx = rctx
	s.mu.Unlock()
	if err := s.loadRooms(rctx); err != nil {
		s.mu.Lock()
		s.runCtx = nil
		s.mu.Unlock()
		return err
	}
	s.loadJoins(rctx)
	close(s.started)
	s.republish(rctx, nil)
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.inboxLoop(rctx) }()
	go func() { defer s.wg.Done(); s.syncLoop(rctx) }()
	s.notifyInbox()
	<-rctx.Done()
	// Shutting down: the whole router stops (psCancel), so topics are not
	// closed one by one (that waits for each subscription to land).
	s.mu.Lock()
	var loops []*sync.WaitGroup
	for _, r := range s.rooms {
		if r.topic != nil {
			r.cancel()
			loops = append(loops, r.loops)
			r.topic, r.cancel, r.loops = nil, nil, nil
		}
	}
	s.runCtx = nil
	s.mu.Unlock()
	for _, l := range loops {
		l.Wait()
	}
	s.wg.Wait()
	return nil
}

// loadRooms reads the joined rooms and starts them.
func (s *Service) loadRooms(ctx context.Context) error {
	rows, err := s.db.Query(ctx, nil, "SELECT id, name, public, state = 'leaving' FROM rooms WHERE state IN ('joined', 'leaving')")
	if err != nil {
		return fmt.Errorf("room: load rooms: %w", err)
	}
	var rs []*room
	for rows.Next() {
		var (
			idb []byte
			r   room
		)
		if err := rows.Scan(&idb, &r.name, &r.public, &r.leaving); err != nil {
			rows.Close()
			return fmt.Errorf("room: load rooms: %w", err)
		}
		copy(r.id[:], idb)
		rs = append(rs, &r)
	}
	rows.Close()
	for _, r := range rs {
		// A stored value beyond our clock's bound (a database poisoned
		// before the bound existed) is ignored.
		var maxHLC sql.NullInt64
		s.db.QueryRow(ctx, nil, "SELECT max(hlc) FROM room_log WHERE room = ? AND hlc <= ?", r.id[:], s.hlcBound()).Scan(&maxHLC)
		r.clock = newClock(s.now)
		r.clock.observe(uint64(maxHLC.Int64))
	}
	for _, r := range rs {
		if !r.public {
			if err := s.loadGroup(ctx, r); err != nil {
				return err
			}
		}
		s.mu.Lock()
		if have := s.rooms[r.id]; have != nil {
			r = have // joined while Run was starting
		}
		s.rooms[r.id] = r
		err := s.startLocked(r)
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// startLocked joins the room's topic and starts its goroutines, if the
// service is running. s.mu is held.
func (s *Service) startLocked(r *room) error {
	if s.runCtx == nil || r.topic != nil {
		return nil
	}
	topic := r.Topic()
	validator := s.validator(r.id)
	if !r.public {
		validator = s.privateValidator(r)
	}
	if err := s.ps.RegisterTopicValidator(topic, validator, pubsub.WithValidatorInline(true)); err != nil {
		return fmt.Errorf("room %s: register validator: %w", r.name, err)
	}
	t, err := s.ps.Join(topic)
	if err != nil {
		s.ps.UnregisterTopicValidator(topic)
		return fmt.Errorf("room %s: join topic: %w", r.name, err)
	}
	if err := t.SetScoreParams(TopicScoreParams()); err != nil {
		s.log.Debug("topic score params", "room", r.id, "err", err)
	}
	sub, err := t.Subscribe()
	if err != nil {
		t.Close()
		s.ps.UnregisterTopicValidator(topic)
		return fmt.Errorf("room %s: subscribe: %w", r.name, err)
	}
	evs, err := t.EventHandler()
	if err != nil {
		sub.Cancel()
		t.Close()
		s.ps.UnregisterTopicValidator(topic)
		return fmt.Errorf("room %s: topic events: %w", r.name, err)
	}
	ctx, cancel := context.WithCancel(s.runCtx)
	loops := new(sync.WaitGroup)
	r.topic, r.cancel, r.loops = t, cancel, loops
	s.wg.Add(3)
	loops.Add(2)
	go func() {
		defer s.wg.Done()
		defer loops.Done()
		defer sub.Cancel()
		s.readLoop(ctx, r, sub)
	}()
	go func() {
		defer s.wg.Done()
		defer loops.Done()
		defer evs.Cancel()
		s.peerLoop(ctx, r, evs)
	}()
	go func() {
		defer s.wg.Done()
		s.rendezvousLoop(ctx, r)
	}()
	s.requestSync(r.id, "")
	return nil
}

// stopLocked stops the room's goroutines and leaves its topic. The topic
// closes once they have returned (Close refuses while a subscription is
// active), so this waits for nothing and the close runs in the background
// goroutine group. Close is not even tried before the loops have cancelled
// their subscription and event handler: go-libp2p-pubsub reads the
// handlers of a topic being closed without the lock that Cancel takes.
func (s *Service) stopLocked(r *room) {
	if r.topic == nil {
		return
	}
	r.cancel()
	t, loops := r.topic, r.loops
	r.topic, r.cancel, r.loops = nil, nil, nil
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		loops.Wait()
		topic := t.String()
		// Subscription.Cancel is asynchronous: retry until it has landed.
		for i := 0; i < 50; i++ {
			if err := t.Close(); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		s.ps.UnregisterTopicValidator(topic)
	}()
}

// roomList returns the rooms as they are now. Callers that take r.gmu
// iterate over it rather than over s.rooms: s.mu is never held while
// r.gmu is taken (code holding r.gmu takes s.mu, briefly).
func (s *Service) roomList() []*room {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		out = append(out, r)
	}
	return out
}

func (s *Service) room(id ID) *room {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rooms[id]
}

func (s *Service) self() peer.ID { return s.host.ID() }
