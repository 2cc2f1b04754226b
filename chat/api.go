package chat

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/localapi"
)

// Register adds the chat routes to the local API.
func (s *Service) Register(api *localapi.Server) {
	api.Handle("GET /v1/invite", func(w http.ResponseWriter, r *http.Request) {
		if name := r.URL.Query().Get("name"); name != "" {
			if err := s.SetName(r.Context(), name); err != nil {
				localapi.WriteError(w, http.StatusBadRequest, err)
				return
			}
		}
		reply(w)(s.Invite(r.Context()))
	})
	api.Handle("GET /v1/contacts", func(w http.ResponseWriter, r *http.Request) {
		reply(w)(s.Contacts(r.Context()))
	})
	api.Handle("POST /v1/contacts", func(w http.ResponseWriter, r *http.Request) {
		var req apitype.AddContactRequest
		if err := localapi.ReadJSON(r, &req); err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		c, err := s.AddContact(r.Context(), req.Link, req.Name)
		if err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		cs, err := s.Contacts(r.Context())
		for _, ac := range cs {
			if ac.PeerID == c.ID.String() {
				localapi.WriteJSON(w, ac)
				return
			}
		}
		localapi.WriteError(w, http.StatusInternalServerError, errors.Join(errors.New("contact vanished"), err))
	})
	api.Handle("GET /v1/requests", func(w http.ResponseWriter, r *http.Request) {
		reply(w)(s.Requests(r.Context()))
	})
	api.Handle("GET /v1/blocked", func(w http.ResponseWriter, r *http.Request) {
		reply(w)(s.BlockedPeers(r.Context()))
	})
	api.Handle("POST /v1/contacts/{action}", func(w http.ResponseWriter, r *http.Request) {
		var req apitype.ContactAction
		if err := localapi.ReadJSON(r, &req); err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		reply(w)(s.contactAction(r.Context(), r.PathValue("action"), req))
	})
	api.Handle("GET /v1/verify", func(w http.ResponseWriter, r *http.Request) {
		reply(w)(s.SafetyNumber(r.Context(), r.URL.Query().Get("contact")))
	})
	api.Handle("POST /v1/verify", func(w http.ResponseWriter, r *http.Request) {
		var req apitype.VerifyRequest
		if err := localapi.ReadJSON(r, &req); err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		if !req.Confirm {
			reply(w)(s.SafetyNumber(r.Context(), req.Contact))
			return
		}
		reply(w)(s.Verify(r.Context(), req.Contact))
	})
	api.Handle("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		var req apitype.SendRequest
		if err := localapi.ReadJSON(r, &req); err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		if strings.HasPrefix(req.To, "#") {
			if s.rooms == nil {
				localapi.WriteError(w, http.StatusNotFound, errors.New("rooms are not available on this node"))
				return
			}
			reply(w)(s.rooms.Send(r.Context(), req.To, req.Text))
			return
		}
		var id []byte
		if req.ID != "" {
			var err error
			if id, err = hex.DecodeString(req.ID); err != nil || len(id) != 16 {
				localapi.WriteError(w, http.StatusBadRequest, errors.New("id must be 32 hex digits"))
				return
			}
		}
		reply(w)(s.SendWithID(r.Context(), req.To, req.Text, id))
	})
	api.Handle("GET /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		limit, err := intParam(r, "limit")
		if err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		if before := r.URL.Query().Get("before"); before != "" {
			id, err := hex.DecodeString(before)
			if err != nil || len(id) != 16 {
				localapi.WriteError(w, http.StatusBadRequest, errors.New("before must be a message id (32 hex digits)"))
				return
			}
			reply(w)(s.LogBefore(r.Context(), r.URL.Query().Get("conv"), id, limit))
			return
		}
		reply(w)(s.Log(r.Context(), r.URL.Query().Get("conv"), limit))
	})
	api.Handle("GET /v1/search", func(w http.ResponseWriter, r *http.Request) {
		limit, err := intParam(r, "limit")
		if err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		reply(w)(s.Search(r.Context(), r.URL.Query().Get("q"), limit))
	})
	api.Handle("GET /v1/conversations", func(w http.ResponseWriter, r *http.Request) {
		reply(w)(s.Conversations(r.Context()))
	})
	api.Handle("POST /v1/read", func(w http.ResponseWriter, r *http.Request) {
		reply(w)(struct{}{}, s.MarkRead(r.Context(), r.URL.Query().Get("conv")))
	})
	api.Handle("POST /v1/reset", func(w http.ResponseWriter, r *http.Request) {
		var req apitype.ResetRequest
		if err := localapi.ReadJSON(r, &req); err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		reply(w)(struct{}{}, s.Reset(r.Context(), req.Contact))
	})
	api.Handle("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		var since time.Time
		if v := r.URL.Query().Get("since"); v != "" {
			var err error
			if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
				localapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("invalid since %q: want RFC 3339", v))
				return
			}
		}
		// Subscribe before reading the history, so that no message falls
		// between the replay and the live events; replayed ones are not
		// sent twice.
		events, cancel := s.Subscribe()
		defer cancel()
		var replay []apitype.Event
		if !since.IsZero() {
			var err error
			if replay, err = s.MessagesSince(r.Context(), since); err != nil {
				localapi.WriteError(w, http.StatusInternalServerError, err)
				return
			}
		}
		replayed := make(map[string]bool, len(replay))
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		flusher, _ := w.(http.Flusher)
		enc := json.NewEncoder(w)
		for _, e := range replay {
			replayed[e.Message.ID] = true
			if err := enc.Encode(e); err != nil {
				return
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
		for {
			select {
			case <-r.Context().Done():
				return
			case e, ok := <-events:
				if !ok {
					return // fell behind; the client reconnects
				}
				if e.Type == "message" && e.Message != nil && replayed[e.Message.ID] {
					continue
				}
				if err := enc.Encode(e); err != nil {
					return
				}
				if flusher != nil {
					flusher.Flush()
				}
			}
		}
	})
}

// reply writes v, or err with a status derived from it.
func reply(w http.ResponseWriter) func(any, error) {
	return func(v any, err error) {
		if err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, ErrUnknownContact) || errors.Is(err, ErrUnknownRequest) {
				status = http.StatusNotFound
			}
			localapi.WriteError(w, status, err)
			return
		}
		localapi.WriteJSON(w, v)
	}
}

func intParam(r *http.Request, name string) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errors.New("invalid " + name + " " + strconv.Quote(v))
	}
	return n, nil
}

// contactAction runs one POST /v1/contacts/{action}.
func (s *Service) contactAction(ctx context.Context, action string, req apitype.ContactAction) (apitype.ContactActionResult, error) {
	res := apitype.ContactActionResult{Action: action}
	if action == "remove" || action == "block" {
		// Say whom it was, by name, before the name goes.
		if c, err := s.Resolve(ctx, req.Peer); err == nil {
			res.Contact = &apitype.Contact{Name: c.Name, PeerID: c.ID.String(), Verified: c.Verified}
		}
	}
	var (
		c   Contact
		id  peer.ID
		err error
	)
	switch action {
	case "accept":
		c, err = s.Accept(ctx, req.Peer, req.Name)
	case "rename":
		c, err = s.RenameContact(ctx, req.Peer, req.Name)
	case "mute", "unmute":
		c, err = s.Mute(ctx, req.Peer, action == "mute")
	case "decline":
		id, err = s.Decline(ctx, req.Peer)
	case "block":
		id, err = s.Block(ctx, req.Peer)
	case "unblock":
		id, err = s.Unblock(ctx, req.Peer)
	case "remove":
		id, err = s.RemoveContact(ctx, req.Peer)
	default:
		return res, fmt.Errorf("unknown contact action %q (accept, decline, block, unblock, remove, rename, mute, unmute)", action)
	}
	if err != nil {
		return res, err
	}
	if c.ID != "" {
		id = c.ID
		cs, err := s.Contacts(ctx)
		if err != nil {
			return res, err
		}
		for i := range cs {
			if cs[i].PeerID == id.String() {
				res.Contact = &cs[i]
			}
		}
	}
	res.PeerID = id.String()
	return res, nil
}
