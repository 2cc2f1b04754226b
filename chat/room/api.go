package room

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/localapi"
)

// Info describes a joined room.
type Info = apitype.Room

// Info describes the joined room called name, or else the room of that
// name we left or were removed from (its State and Detail say which).
func (s *Service) Info(ctx context.Context, name string) (Info, error) {
	r, err := s.byName(name)
	if err != nil {
		if g, gerr := s.gone(ctx, name); gerr == nil {
			return g, nil
		}
		return Info{}, err
	}
	s.mu.RLock()
	name = r.name // a join that completes renames it (takeWelcome)
	s.mu.RUnlock()
	info := Info{Name: "#" + name, ID: r.id.String(), Public: r.public, Topic: r.Topic(), Peers: len(s.ps.ListPeers(r.Topic())), State: "joined"}
	if r.public {
		return info, nil
	}
	r.gmu.Lock()
	defer r.gmu.Unlock()
	if r.g == nil || r.g.cur() == nil {
		info.State = "waiting"
		if r.join != nil {
			s.db.QueryRow(ctx, nil, "SELECT detail FROM room_joins WHERE link = ?", r.join.link).Scan(&info.Detail)
		}
		return info, nil
	}
	if r.leaving {
		info.State = "left"
		info.Detail = "you left the room; the history stays readable (an admin takes you off the roster when online)"
	}
	c := r.g.st.Commit
	info.Epoch = c.Epoch
	if me, ok := c.Member(s.self()); ok {
		info.Role = me.Role.String()
	}
	for _, m := range c.Members {
		info.Members = append(info.Members, apitype.RoomMember{
			PeerID: m.ID.String(), Name: s.chat.ContactName(ctx, m.ID), Role: m.Role.String(), Self: m.ID == s.self(),
		})
	}
	return info, nil
}

// Rooms lists the joined rooms, then the joins waiting for an admin, then
// the rooms we left or were removed from (read-only history).
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
	return append(out, s.goneRooms(ctx)...), nil
}

// Register adds the room routes to the local API. Every handler is a thin
// shell over one Service method; errors map to 404 (ErrNoRoom), 403
// (ErrNotAdmin) or 400.
//
//	GET  /v1/rooms[?name=]        []Room, or one Room
//	GET  /v1/rooms/links?name=    []RoomLink (admins)
//	GET  /v1/rooms/invites        []RoomInvite waiting for consent
//	POST /v1/rooms/create         RoomRequest{name, public} -> Room
//	POST /v1/rooms/join           RoomRequest{name: '#public' or link} -> JoinResult
//	POST /v1/rooms/invite         RoomRequest{name, member} -> Room;
//	                              RoomRequest{name, link, uses, expires} -> RoomLink
//	POST /v1/rooms/revoke         RoomRequest{name, token} -> {}
//	POST /v1/rooms/accept         RoomRequest{invite} -> JoinResult
//	POST /v1/rooms/decline        RoomRequest{invite} -> {}
//	POST /v1/rooms/promote        RoomRequest{name, member} -> Room
//	POST /v1/rooms/kick           RoomRequest{name, member} -> Room
//	POST /v1/rooms/leave          RoomRequest{name} -> Room (as it was)
func (s *Service) Register(api *localapi.Server) {
	api.Handle("GET /v1/rooms", func(w http.ResponseWriter, r *http.Request) {
		if name := r.URL.Query().Get("name"); name != "" {
			reply[Info](w)(s.Info(r.Context(), name))
			return
		}
		reply[[]Info](w)(s.Rooms(r.Context()))
	})
	api.Handle("GET /v1/rooms/links", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			localapi.WriteError(w, http.StatusBadRequest, errors.New("room: links: which room? (?name=)"))
			return
		}
		links, err := s.Links(r.Context(), name)
		if links == nil {
			links = []apitype.RoomLink{}
		}
		reply[[]apitype.RoomLink](w)(links, err)
	})
	api.Handle("GET /v1/rooms/invites", func(w http.ResponseWriter, r *http.Request) {
		invites, err := s.Invites(r.Context())
		if invites == nil {
			invites = []apitype.RoomInvite{}
		}
		reply[[]apitype.RoomInvite](w)(invites, err)
	})
	verb := func(path string, fn func(context.Context, apitype.RoomRequest) (any, error)) {
		api.Handle("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			var req apitype.RoomRequest
			if err := localapi.ReadJSON(r, &req); err != nil {
				localapi.WriteError(w, http.StatusBadRequest, err)
				return
			}
			reply[any](w)(fn(r.Context(), req))
		})
	}
	done := struct{}{}
	verb("/v1/rooms/create", func(ctx context.Context, q apitype.RoomRequest) (any, error) {
		if q.Public {
			return s.JoinPublic(ctx, q.Name)
		}
		return s.Create(ctx, q.Name)
	})
	verb("/v1/rooms/join", func(ctx context.Context, q apitype.RoomRequest) (any, error) {
		if strings.HasPrefix(q.Name, "parley://") {
			return s.JoinLink(ctx, q.Name)
		}
		info, err := s.JoinPublic(ctx, q.Name)
		return apitype.JoinResult{Status: "joined", Room: info}, err
	})
	verb("/v1/rooms/invite", func(ctx context.Context, q apitype.RoomRequest) (any, error) {
		if q.Link {
			if q.Member != "" {
				return nil, errors.New("room: invite: a member or a link, not both")
			}
			return s.Link(ctx, q.Name, q.Uses, q.Expires)
		}
		return s.Invite(ctx, q.Name, q.Member)
	})
	verb("/v1/rooms/revoke", func(ctx context.Context, q apitype.RoomRequest) (any, error) {
		return done, s.Revoke(ctx, q.Name, q.Token)
	})
	verb("/v1/rooms/accept", func(ctx context.Context, q apitype.RoomRequest) (any, error) {
		return s.AcceptInvite(ctx, q.Invite)
	})
	verb("/v1/rooms/decline", func(ctx context.Context, q apitype.RoomRequest) (any, error) {
		return done, s.DeclineInvite(ctx, q.Invite)
	})
	verb("/v1/rooms/promote", func(ctx context.Context, q apitype.RoomRequest) (any, error) {
		return s.Promote(ctx, q.Name, q.Member)
	})
	verb("/v1/rooms/kick", func(ctx context.Context, q apitype.RoomRequest) (any, error) {
		return s.Kick(ctx, q.Name, q.Member)
	})
	verb("/v1/rooms/leave", func(ctx context.Context, q apitype.RoomRequest) (any, error) {
		info, err := s.Info(ctx, q.Name)
		if err != nil {
			return nil, err
		}
		return info, s.Leave(ctx, q.Name)
	})
}

// reply writes v as JSON, or err with its status code.
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
