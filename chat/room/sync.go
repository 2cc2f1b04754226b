package room

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

const protocolRoomSync = protocol.ID(wire.ProtocolRoomSync)

// syncOverlap is how far before the newest logged message a sync starts,
// so that messages that were sent concurrently but arrived late are fetched
// too (duplicates are dropped by msg_id).
const syncOverlap = 5 * time.Minute

// maxSyncPages bounds the requests of one sync with one peer.
const maxSyncPages = 64

type syncJob struct {
	room ID
	peer peer.ID // "" for a few connected members
}

// requestSync queues a sync of room id with p ("": a few members),
// unless the same one waits already: every applied commit asks for one,
// and a room formed by dozens of joins queued as many (each a page of
// the last syncOverlap from three members), run one after the other
// long after the room had settled.
func (s *Service) requestSync(id ID, p peer.ID) {
	j := syncJob{id, p}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.syncPending[j] {
		return
	}
	select {
	case s.syncs <- j:
		s.syncPending[j] = true
	default:
	}
}

// syncTaken marks a queued sync as taken off the queue.
func (s *Service) syncTaken(j syncJob) {
	s.syncMu.Lock()
	delete(s.syncPending, j)
	s.syncMu.Unlock()
}

// The periodic sync: each node draws its interval anew every time, so that
// the nodes of a room, started together, do not all ask each other at the
// same moment; a private room syncs on the tick only when something
// suggests its log misses messages, and at least every syncFloor.
const (
	syncEvery  = time.Minute
	syncJitter = 15 * time.Second // either way
	syncFloor  = 5 * time.Minute
)

// syncInterval returns the time to the next periodic sync: syncEvery ±
// syncJitter, uniformly.
func syncInterval() time.Duration {
	return syncEvery - syncJitter + rand.N(2*syncJitter)
}

// syncDue reports whether the periodic sync of r should run now. A public
// room always syncs. A private one syncs when it is suspect (a gap in an
// author's generations, the last sync failed or brought messages), when
// it never synced, or when its last sync is syncFloor old: a message lost
// in gossip that no later message of its author reveals is fetched within
// syncFloor. A topic peer leaving is no sign (connections are trimmed
// all the time, and gossipsub repairs through the others); one joining
// triggers its own sync with it (peerLoop).
func (s *Service) syncDue(r *room, now time.Time) bool {
	if r.public {
		return true
	}
	last := r.lastSync.Load()
	return r.suspect.Load() || last == 0 || now.UnixMilli()-last >= syncFloor.Milliseconds()
}

// synced records a sync of r with a few members that stored n messages:
// one that failed or found anything leaves the room suspect.
func (s *Service) synced(r *room, n int, err error) {
	r.lastSync.Store(s.now().UnixMilli())
	r.suspect.Store(err != nil || n > 0)
}

// genKey names an author's sender chain in one epoch.
type genKey struct {
	epoch  uint64
	author peer.ID
}

// maxGenKeys bounds room.nextGen; past it the map starts afresh (a first
// message of a chain is never a gap).
const maxGenKeys = 4096

// sawGeneration records that we opened author's message of generation gen
// in epoch number epoch, and marks r suspect if it skipped generations we
// never opened. r.gmu is held.
func sawGeneration(r *room, epoch uint64, author peer.ID, gen uint32) {
	k := genKey{epoch, author}
	if next, ok := r.nextGen[k]; ok && gen > next {
		r.suspect.Store(true)
	}
	if next, ok := r.nextGen[k]; ok && gen < next {
		return // a late one, filling a gap
	}
	if r.nextGen == nil || len(r.nextGen) >= maxGenKeys {
		r.nextGen = make(map[genKey]uint32)
	}
	r.nextGen[k] = gen + 1
}

// relayedSyncInterval is how often a member pulls the history of members
// it reaches only through a relay: gossipsub never uses relayed (limited)
// connections, so for them this pull is what delivers room messages.
const relayedSyncInterval = 5 * time.Second

// syncLoop runs sync jobs one at a time, asks every room whose sync is
// due to sync (and publishes our pending messages) about every minute
// (syncInterval, syncDue), pulls from relay-only
// members every relayedSyncInterval, asks again for waiting joins every
// Config.JoinRetry, and re-keys the rooms whose epoch is older than
// Config.RekeyEvery (where this node is the one to do it).
func (s *Service) syncLoop(ctx context.Context) {
	tick := time.NewTimer(syncInterval())
	defer tick.Stop()
	relayed := time.NewTicker(relayedSyncInterval)
	defer relayed.Stop()
	joins := time.NewTimer(0)
	defer joins.Stop()
	rekey := time.NewTicker(min(max(s.cfg.RekeyEvery/8, 50*time.Millisecond), time.Hour))
	defer rekey.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rekey.C:
			s.rekeyDue(ctx)
		case <-joins.C:
			s.retryJoins(ctx)
			joins.Reset(s.joinRetry())
		case <-relayed.C:
			for _, j := range s.relayOnlyMembers() {
				r := s.room(j.room)
				if r == nil {
					continue
				}
				if n, err := s.Sync(ctx, r.name, j.peer); err != nil && ctx.Err() == nil {
					s.log.Debug("room sync over relay", "room", j.room, "peer", j.peer, "err", err)
				} else if n > 0 {
					s.log.Info("room sync over relay", "room", j.room, "peer", j.peer, "new", n)
				}
			}
		case <-tick.C:
			tick.Reset(syncInterval())
			s.republish(ctx, nil)
			now := s.now()
			s.mu.RLock()
			for id, r := range s.rooms {
				if s.syncDue(r, now) {
					s.requestSync(id, "")
				}
			}
			s.mu.RUnlock()
		case j := <-s.syncs:
			s.syncTaken(j)
			r := s.room(j.room)
			if r == nil {
				continue
			}
			if !r.public {
				n, err := s.syncPrivate(ctx, r, j.peer, false)
				if j.peer == "" {
					s.synced(r, n, err)
				}
				if err != nil && ctx.Err() == nil {
					s.log.Debug("room sync", "room", r.id, "peer", j.peer, "err", err)
				} else if n > 0 {
					s.log.Info("room sync", "room", r.id, "new", n)
				}
				continue
			}
			peers := []peer.ID{j.peer}
			if j.peer == "" {
				peers = s.syncPeers(r, 3)
			}
			for _, p := range peers {
				n, err := s.Sync(ctx, r.name, p)
				if err != nil && ctx.Err() == nil {
					s.log.Debug("room sync", "room", r.id, "peer", p, "err", err)
				} else if n > 0 {
					s.log.Info("room sync", "room", r.id, "peer", p, "new", n)
				}
			}
		}
	}
}

// fastJoinRetry is how often a join asks again during its first
// fastJoinPeriod: members a few hops away forward the request (and serve
// the welcome) only once the members between have joined.
const (
	fastJoinRetry  = 3 * time.Second
	fastJoinPeriod = 2 * time.Minute
)

// joinRetry is when the waiting joins ask again.
func (s *Service) joinRetry() time.Duration {
	for _, r := range s.roomList() {
		r.gmu.Lock()
		fresh := r.join != nil && s.now().Sub(r.join.started) < fastJoinPeriod
		r.gmu.Unlock()
		if fresh {
			return min(fastJoinRetry, s.cfg.JoinRetry)
		}
	}
	return s.cfg.JoinRetry
}

// syncPeers returns up to n connected peers of a public room's topic.
func (s *Service) syncPeers(r *room, n int) []peer.ID {
	var out []peer.ID
	for _, p := range s.ps.ListPeers(r.Topic()) {
		if len(out) < n && p != s.self() && s.host.Network().Connectedness(p) == network.Connected {
			out = append(out, p)
		}
	}
	return out
}

// peerLoop syncs with every peer that joins the room's topic (a sync
// already queued with it is not queued twice: requestSync).
func (s *Service) peerLoop(ctx context.Context, r *room, evs *pubsub.TopicEventHandler) {
	for {
		ev, err := evs.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type != pubsub.PeerJoin {
			continue
		}
		// Messages that waited for a first peer go out now; a join that
		// waits asks the peer that appeared.
		s.republish(ctx, r)
		r.gmu.Lock()
		joining, leaving := r.join != nil, r.leaving
		r.gmu.Unlock()
		if leaving {
			s.publishLeave(ctx, r)
			continue
		}
		if joining {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := s.askToJoin(jctx, r); err != nil {
					s.log.Info("room join", "room", r.id, "err", err)
					return
				}
				s.pollWelcome(jctx, r)
			}()
			continue
		}
		s.requestSync(r.id, ev.Peer)
	}
}

// Sync fetches what p has logged in the room since shortly before our
// newest message, and returns how many new messages were stored.
func (s *Service) Sync(ctx context.Context, name string, p peer.ID) (int, error) {
	r, err := s.byName(name)
	if err != nil {
		return 0, err
	}
	if !r.public {
		return s.syncPrivate(ctx, r, p, false)
	}
	// The cursor is never beyond now, whatever the log holds: a message
	// dated ahead (accepted within MaxSkew, or stored by an older version)
	// must not make us skip what others send meanwhile.
	var newest sql.NullInt64
	nowHLC := wire.PackHLC(s.now().UnixMilli(), 0)
	s.db.QueryRow(ctx, nil, "SELECT max(hlc) FROM room_log WHERE room = ? AND hlc <= ?", r.id[:], nowHLC).Scan(&newest)
	after := uint64(0)
	if overlap := wire.PackHLC(syncOverlap.Milliseconds(), 0); uint64(newest.Int64) > overlap {
		after = uint64(newest.Int64) - overlap
	}
	total := 0
	for page := 0; page < maxSyncPages; page++ {
		resp, err := s.syncPage(ctx, r, p, after)
		if err != nil {
			return total, err
		}
		for _, m := range resp.Messages {
			// Pages overlap what we hold; a message already logged is
			// skipped before its signature is checked again.
			if rm, err := wire.DecodeRoomMessage(m.Data); err == nil && r.logIdx.mayHold(peer.ID(m.From), rm.MsgId) && s.logged(r.id, peer.ID(m.From), rm.MsgId) {
				continue
			}
			if ok, err := s.verifySynced(r, m); !ok {
				if err != nil {
					s.log.Debug("synced message refused", "room", r.id, "peer", p, "err", err)
				}
				continue
			}
			n, err := s.ingest(ctx, r, m)
			total += n
			if err != nil {
				return total, err
			}
		}
		if !resp.More || len(resp.Messages) == 0 {
			return total, nil
		}
		last, err := wire.DecodeRoomMessage(resp.Messages[len(resp.Messages)-1].Data)
		if err != nil || last.Hlc <= after || last.Hlc > nowHLC {
			return total, nil
		}
		after = last.Hlc
	}
	return total, nil
}

func (s *Service) syncPage(ctx context.Context, r *room, p peer.ID, after uint64) (*wirepb.RoomSyncResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, wire.ReadTimeout)
	defer cancel()
	// History may come over a relayed (limited) connection: gossipsub does
	// not use those, so for members who only reach each other through a
	// relay, sync is how room messages arrive.
	st, err := s.host.NewStream(network.WithAllowLimitedConn(ctx, "parley-roomsync"), p, protocolRoomSync)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	req := &wirepb.RoomSyncRequest{Version: wire.Version, RoomId: r.id[:], AfterHlc: after, Limit: wire.MaxSyncMessages}
	st.SetWriteDeadline(time.Now().Add(wire.WriteTimeout))
	if err := wire.WriteFrame(st, req); err != nil {
		st.Reset()
		return nil, err
	}
	st.CloseWrite()
	st.SetReadDeadline(time.Now().Add(wire.ReadTimeout))
	resp := new(wirepb.RoomSyncResponse)
	if err := wire.ReadFrame(st, wire.MaxSyncResponse, resp); err != nil {
		st.Reset()
		return nil, err
	}
	if err := wire.ValidateRoomSyncResponse(resp); err != nil {
		return nil, err
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("peer refused sync: %s", resp.Error)
	}
	return resp, nil
}

// verifySynced checks a synced message as the live path does: the author's
// gossipsub signature over the envelope (with the room's topic), then the
// topic checks, with the clock bound ahead (history may be old, never
// from the future).
func (s *Service) verifySynced(r *room, m *wirepb.SyncedMessage) (bool, error) {
	if err := verifySignature(r.id.Topic(), m); err != nil {
		return false, err
	}
	v := s.check(r.id, peer.ID(m.From), m.Data, false)
	if v.result != pubsub.ValidationAccept {
		if v.result == pubsub.ValidationReject {
			return false, errors.New(v.reason)
		}
		return false, nil
	}
	return true, nil
}

// verifySignature checks a gossipsub StrictSign signature: the author's key
// (from the peer ID, or the attached key matching it) over
// "libp2p-pubsub:" and the serialized message without signature and key.
func verifySignature(topic string, m *wirepb.SyncedMessage) error {
	from, err := peer.IDFromBytes(m.From)
	if err != nil {
		return fmt.Errorf("bad author: %w", err)
	}
	var pub crypto.PubKey
	if len(m.Key) == 0 {
		if pub, err = from.ExtractPublicKey(); err != nil {
			return fmt.Errorf("author key: %w", err)
		}
	} else {
		if pub, err = crypto.UnmarshalPublicKey(m.Key); err != nil {
			return fmt.Errorf("author key: %w", err)
		}
		if !from.MatchesPublicKey(pub) {
			return errors.New("attached key does not match the author")
		}
	}
	b, err := proto.Marshal(&pb.Message{From: m.From, Data: m.Data, Seqno: m.Seqno, Topic: &topic})
	if err != nil {
		return err
	}
	ok, err := pub.Verify(append([]byte(pubsub.SignPrefix), b...), m.Signature)
	if err != nil || !ok {
		return errors.New("bad signature")
	}
	return nil
}

// handleSync serves /parley/roomsync/1.
func (s *Service) handleSync(st network.Stream) {
	serveStream(s, st, wire.MaxSyncRequest, new(wirepb.RoomSyncRequest), s.serveSync)
}

func (s *Service) serveSync(remote peer.ID, req *wirepb.RoomSyncRequest) *wirepb.RoomSyncResponse {
	fail := func(msg string) *wirepb.RoomSyncResponse { return &wirepb.RoomSyncResponse{Error: msg} }
	if v := req.GetVersion(); v != wire.Version {
		return fail(fmt.Sprintf("unsupported room sync version %d", v))
	}
	if err := wire.ValidateRoomSyncRequest(req); err != nil {
		return fail("invalid request")
	}
	if !s.rate.Allow(peer.ID("sync/"+remote), s.now()) {
		return fail("rate limited")
	}
	id, _ := idFromBytes(req.RoomId)
	if r := s.room(id); r == nil || !r.public {
		// Private rooms are fetched over /parley/roomsync/2, by members.
		return fail("unknown room")
	}
	limit := int(req.Limit)
	if limit <= 0 || limit > wire.MaxSyncMessages {
		limit = wire.MaxSyncMessages
	}
	// Rows dated beyond our clock's bound (stored before it existed) are
	// not served: every receiver would refuse them.
	msgs, more, ours, err := s.logPage(context.Background(), limit, wire.MaxSyncResponse-(64<<10), `SELECT sender, data, seqno, signature, key FROM room_log
		WHERE room = ? AND hlc > ? AND hlc <= ? ORDER BY hlc, msg_id LIMIT ?`, id[:], req.AfterHlc, s.hlcBound(), limit+1)
	if err != nil {
		return fail("storage")
	}
	resp := &wirepb.RoomSyncResponse{Messages: msgs, More: more}
	if r := s.room(id); r != nil {
		s.markServed(r, ours)
	}
	return resp
}

// relayOnlyMembers lists, for every room, the current members this node is
// connected to only through a relay.
func (s *Service) relayOnlyMembers() []syncJob {
	var out []syncJob
	for _, r := range s.roomList() {
		if r.public {
			continue
		}
		r.gmu.Lock()
		if r.g != nil && r.g.cur() != nil {
			for _, m := range r.g.st.Commit.Members {
				if m.ID != s.self() && s.host.Network().Connectedness(m.ID) == network.Limited {
					out = append(out, syncJob{r.id, m.ID})
				}
			}
		}
		r.gmu.Unlock()
	}
	return out
}
