package room

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// Internals for the attack tests of package room_test (export_test.go
// holds the others).

// PublishRaw publishes data, as it is, on the topic of room name, signed
// by the node: what a member's node modified by an attacker would send.
// The node's own validator lets its publications through unchecked, so
// data is judged by the other members only.
func (s *Service) PublishRaw(ctx context.Context, name string, data []byte) error {
	r, err := s.byName(name)
	if err != nil {
		return err
	}
	return s.publishData(ctx, r, data)
}

// StoredTables are the tables that hold what a node keeps about private
// rooms and joins.
var StoredTables = []string{
	"rooms", "room_groups", "room_commits", "room_keys", "room_log", "room_links",
	"room_admitted", "room_joins", "room_invites", "room_outbox", "room_inbox",
}

// StoredRows counts the rows of each of StoredTables.
func (s *Service) StoredRows(ctx context.Context) (map[string]int, error) {
	out := make(map[string]int, len(StoredTables))
	for _, t := range StoredTables {
		var n int
		if err := s.db.QueryRow(ctx, nil, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

// ProtocolRoomJoin is /parley/roomjoin/2.
const ProtocolRoomJoin = protocolRoomJoin

// ServeAlso makes the node answer every /parley/roomsync/2 request it
// accepts with extra() appended to the messages: a member serving what an
// honest node never serves (messages dated beyond the clock bound).
func (s *Service) ServeAlso(extra func() []*wirepb.SyncedMessage) {
	s.host.SetStreamHandler(protocolRoomSync2, func(st network.Stream) {
		defer st.Close()
		st.SetReadDeadline(time.Now().Add(wire.ReadTimeout))
		req := new(wirepb.RoomFetchRequest)
		if err := wire.ReadFrame(st, maxFetchRequest, req); err != nil {
			st.Reset()
			return
		}
		resp := s.serveFetch(st.Conn().RemotePeer(), req)
		if resp.Error == "" && req.GetAfterHlc() != ^uint64(0) {
			resp.Messages = append(resp.Messages, extra()...)
		}
		st.SetWriteDeadline(time.Now().Add(wire.WriteTimeout))
		if err := wire.WriteFrame(st, resp); err != nil {
			st.Reset()
		}
	})
}

// LoggedApp returns the app message of author's msgID as the node logged
// it in room name.
func (s *Service) LoggedApp(name string, author peer.ID, msgID []byte) (*wirepb.AppMessage, error) {
	r, err := s.byName(name)
	if err != nil {
		return nil, err
	}
	var data []byte
	if err := s.db.QueryRow(context.Background(), nil, "SELECT data FROM room_log WHERE room = ? AND sender = ? AND msg_id = ?", r.id[:], author.String(), msgID).Scan(&data); err != nil {
		return nil, err
	}
	env, err := group.ParseEnvelope(group.RoomID(r.id), data)
	if err != nil {
		return nil, err
	}
	return env.GetApp(), nil
}
