package room

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/localapi"
)

// Info describes a joined room.
type Info = apitype.Room

func roleName(r wirepb.Role) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

// Info describes the joined room called name.
func (s *Service) Info(ctx context.Context, name string) (Info, error) {
	r, err := s.byName(name)
	if err != nil {
		return Info{}, err
	}
	info := Info{Name: "#" + r.name, ID: r.id.String(), Public: r.public, Topic: r.id.Topic(), Peers: len(s.ps.ListPeers(r.id.Topic()))}
	s.mu.RLock()
	e := r.current()
	s.mu.RUnlock()
	if e != nil {
		info.Epoch = e.n
		info.Role = roleName(e.role(s.self()))
		for _, m := range e.roster.Members {
			p := peer.ID(m.PeerId)
			info.Members = append(info.Members, apitype.RoomMember{
				PeerID: p.String(), Name: s.chat.ContactName(ctx, p), Role: roleName(m.Role), Self: p == s.self(),
			})
		}
	}
	return info, nil
}

// Rooms lists the joined rooms.
func (s *Service) Rooms(ctx context.Context) ([]Info, error) {
	s.mu.RLock()
	var names []string
	for _, r := range s.rooms {
		names = append(names, r.name)
	}
	s.mu.RUnlock()
	sort.Strings(names)
	out := []Info{}
	for _, n := range names {
		if i, err := s.Info(ctx, n); err == nil {
			out = append(out, i)
		}
	}
	return out, nil
}

// Register adds the room routes to the local API.
func (s *Service) Register(api *localapi.Server) {
	api.Handle("GET /v1/rooms", func(w http.ResponseWriter, r *http.Request) {
		if name := r.URL.Query().Get("name"); name != "" {
			reply[Info](w)(s.Info(r.Context(), name))
			return
		}
		reply[[]Info](w)(s.Rooms(r.Context()))
	})
	verb := func(path string, fn func(context.Context, apitype.RoomRequest) (Info, error)) {
		api.Handle("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			var req apitype.RoomRequest
			if err := localapi.ReadJSON(r, &req); err != nil {
				localapi.WriteError(w, http.StatusBadRequest, err)
				return
			}
			reply[Info](w)(fn(r.Context(), req))
		})
	}
	verb("/v1/rooms/create", func(ctx context.Context, q apitype.RoomRequest) (Info, error) {
		if q.Public {
			return s.JoinPublic(ctx, q.Name)
		}
		return s.Create(ctx, q.Name)
	})
	verb("/v1/rooms/join", func(ctx context.Context, q apitype.RoomRequest) (Info, error) {
		if strings.HasPrefix(q.Name, "parley://") {
			return s.JoinLink(ctx, q.Name)
		}
		return s.JoinPublic(ctx, q.Name)
	})
	verb("/v1/rooms/invite", func(ctx context.Context, q apitype.RoomRequest) (Info, error) {
		if q.Link {
			return s.Link(ctx, q.Name)
		}
		return s.Invite(ctx, q.Name, q.Member)
	})
	verb("/v1/rooms/kick", func(ctx context.Context, q apitype.RoomRequest) (Info, error) {
		return s.Kick(ctx, q.Name, q.Member)
	})
	verb("/v1/rooms/leave", func(ctx context.Context, q apitype.RoomRequest) (Info, error) {
		info, err := s.Info(ctx, q.Name)
		if err != nil {
			return info, err
		}
		return info, s.Leave(ctx, q.Name)
	})
}

func reply[T any](w http.ResponseWriter) func(T, error) {
	return func(v T, err error) {
		if err != nil {
			code := http.StatusBadRequest
			switch {
			case errors.Is(err, ErrNoRoom):
				code = http.StatusNotFound
			case errors.Is(err, ErrNotAdmin):
				code = http.StatusForbidden
			}
			localapi.WriteError(w, code, err)
			return
		}
		localapi.WriteJSON(w, v)
	}
}

var _ = json.Marshal
