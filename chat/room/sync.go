package room

import (
	"context"
	"crypto/hmac"
	"database/sql"
	"errors"
	"fmt"
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

func (s *Service) requestSync(id ID, p peer.ID) {
	select {
	case s.syncs <- syncJob{id, p}:
	default:
	}
}

// relayedSyncInterval is how often a member pulls the history of members
// it reaches only through a relay: gossipsub never uses relayed (limited)
// connections, so for them this pull is what delivers room messages.
const relayedSyncInterval = 5 * time.Second

// syncLoop runs sync jobs one at a time, asks every room to sync every
// minute, and pulls from relay-only members every relayedSyncInterval.
func (s *Service) syncLoop(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	relayed := time.NewTicker(relayedSyncInterval)
	defer relayed.Stop()
	for {
		select {
		case <-ctx.Done():
			return
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
			s.mu.RLock()
			for id := range s.rooms {
				s.requestSync(id, "")
			}
			s.mu.RUnlock()
		case j := <-s.syncs:
			r := s.room(j.room)
			if r == nil {
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

// syncPeers returns up to n connected peers that can serve the room's log.
func (s *Service) syncPeers(r *room, n int) []peer.ID {
	var out []peer.ID
	seen := map[peer.ID]bool{}
	add := func(p peer.ID) {
		if len(out) < n && p != s.self() && !seen[p] && s.host.Network().Connectedness(p) == network.Connected {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, p := range s.ps.ListPeers(r.id.Topic()) {
		add(p)
	}
	s.mu.RLock()
	if e := r.current(); e != nil {
		for p := range e.roles {
			add(p)
		}
	}
	s.mu.RUnlock()
	return out
}

// peerLoop syncs with every peer that joins the room's topic.
func (s *Service) peerLoop(ctx context.Context, r *room, evs *pubsub.TopicEventHandler) {
	for {
		ev, err := evs.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			s.requestSync(r.id, ev.Peer)
		}
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
		// Only a current member may tell us the room's history: a removed
		// one could serve its own messages of its old epochs, backdated.
		s.mu.RLock()
		cur := r.current()
		member := cur != nil && cur.roles[p] != 0
		s.mu.RUnlock()
		if !member {
			return 0, fmt.Errorf("room %s: sync with %s: %w", r.name, p, ErrNotMember)
		}
	}
	var newest sql.NullInt64
	s.db.QueryRow(ctx, nil, "SELECT max(hlc) FROM room_log WHERE room = ?", r.id[:]).Scan(&newest)
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
			if rm, err := wire.DecodeRoomMessage(m.Data); err == nil && s.logged(r.id, rm.MsgId) {
				continue
			}
			if ok, err := s.verifySynced(r, m); !ok {
				if err != nil {
					s.log.Debug("synced message refused", "room", r.id, "peer", p, "err", err)
				}
				continue
			}
			if err := s.ingest(ctx, r, m); err != nil {
				return total, err
			}
			total++
		}
		if !resp.More || len(resp.Messages) == 0 {
			return total, nil
		}
		last, err := wire.DecodeRoomMessage(resp.Messages[len(resp.Messages)-1].Data)
		if err != nil || last.Hlc <= after {
			return total, nil
		}
		after = last.Hlc
	}
	return total, nil
}

// syncProof returns the request's membership proof under the current
// epoch's key.
func (s *Service) syncProof(r *room, req *wirepb.RoomSyncRequest, requester, responder peer.ID) []byte {
	s.mu.RLock()
	e := r.current()
	s.mu.RUnlock()
	if r.public || e == nil {
		return nil
	}
	return mac(e.macKey, wire.SyncProofInput(req, []byte(requester), []byte(responder)))
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
	req.Proof = s.syncProof(r, req, s.self(), p)
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

// verifySynced checks a synced message exactly as the live path does: the
// author's gossipsub signature over the envelope (with the room's topic),
// then the topic checks except clock skew.
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
	defer st.Close()
	remote := st.Conn().RemotePeer()
	st.SetReadDeadline(time.Now().Add(wire.ReadTimeout))
	req := new(wirepb.RoomSyncRequest)
	if err := wire.ReadFrame(st, wire.MaxSyncRequest, req); err != nil {
		st.Reset()
		return
	}
	resp := s.serveSync(remote, req)
	st.SetWriteDeadline(time.Now().Add(wire.WriteTimeout))
	if err := wire.WriteFrame(st, resp); err != nil {
		st.Reset()
	}
}

func (s *Service) serveSync(remote peer.ID, req *wirepb.RoomSyncRequest) *wirepb.RoomSyncResponse {
	fail := func(msg string) *wirepb.RoomSyncResponse { return &wirepb.RoomSyncResponse{Error: msg} }
	if err := wire.ValidateRoomSyncRequest(req); err != nil {
		return fail("invalid request")
	}
	if !s.rate.Allow(peer.ID("sync/"+remote), s.now()) {
		return fail("rate limited")
	}
	id, _ := idFromBytes(req.RoomId)
	r := s.room(id)
	if r == nil {
		// Perhaps a join request from a link to a room past epoch 1: its
		// "room id" is the one derived from the link's secret.
		s.mu.RLock()
		for _, cand := range s.rooms {
			if e := cand.current(); e != nil && PrivateID(e.secret) == id &&
				hmac.Equal(req.Proof, mac(membershipKey(e.secret, id), wire.SyncProofInput(req, []byte(remote), []byte(s.self())))) {
				r = cand
			}
		}
		s.mu.RUnlock()
		if r == nil {
			return fail("unknown room")
		}
		s.joinRequest(r, remote)
		return fail("not a member yet: join requested")
	}
	if !r.public {
		s.mu.RLock()
		cur := r.current()
		var proven *epoch
		for _, e := range r.epochs {
			if hmac.Equal(req.Proof, mac(e.macKey, wire.SyncProofInput(req, []byte(remote), []byte(s.self())))) {
				proven = e
			}
		}
		s.mu.RUnlock()
		switch {
		case proven == nil || cur == nil:
			return fail("not a member")
		case cur.roles[remote] == 0 && proven == cur:
			s.joinRequest(r, remote)
			return fail("not a member yet: join requested")
		case cur.roles[remote] == 0:
			return fail("not a member")
		}
	}
	limit := int(req.Limit)
	if limit <= 0 || limit > wire.MaxSyncMessages {
		limit = wire.MaxSyncMessages
	}
	rows, err := s.db.Query(context.Background(), nil, `SELECT sender, data, seqno, signature, key FROM room_log
		WHERE room = ? AND hlc > ? ORDER BY hlc, msg_id LIMIT ?`, id[:], req.AfterHlc, limit+1)
	if err != nil {
		return fail("storage")
	}
	defer rows.Close()
	resp := new(wirepb.RoomSyncResponse)
	size := 0
	for rows.Next() {
		var (
			sender string
			m      wirepb.SyncedMessage
		)
		if err := rows.Scan(&sender, &m.Data, &m.Seqno, &m.Signature, &m.Key); err != nil {
			return fail("storage")
		}
		p, err := peer.Decode(sender)
		if err != nil {
			continue
		}
		m.From = []byte(p)
		size += proto.Size(&m) + 8
		if len(resp.Messages) == limit || size > wire.MaxSyncResponse-(64<<10) {
			resp.More = true
			break
		}
		resp.Messages = append(resp.Messages, &m)
	}
	return resp
}

// relayOnlyMembers lists, for every room, the current members this node is
// connected to only through a relay.
func (s *Service) relayOnlyMembers() []syncJob {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []syncJob
	for id, r := range s.rooms {
		cur := r.current()
		if cur == nil {
			continue
		}
		for p := range cur.roles {
			if p != s.self() && s.host.Network().Connectedness(p) == network.Limited {
				out = append(out, syncJob{id, p})
			}
		}
	}
	return out
}
