package mailbox

import (
	"context"
	"fmt"
	"net/http"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/localapi"
)

// Register adds the mailbox routes to the local API.
func (s *Service) Register(api *localapi.Server) {
	api.Handle("GET /v1/mailbox", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Status(r.Context())
		if err != nil {
			localapi.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		localapi.WriteJSON(w, st)
	})
	api.Handle("POST /v1/mailbox/enable", func(w http.ResponseWriter, r *http.Request) {
		var req apitype.MailboxEnableRequest
		if err := localapi.ReadJSON(r, &req); err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		if req.Quota < 0 {
			localapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("quota must be positive, got %d", req.Quota))
			return
		}
		if err := s.Enable(r.Context(), !req.Off, req.Quota); err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		s.writeStatus(w, r.Context())
	})
	api.Handle("POST /v1/mailbox/use", func(w http.ResponseWriter, r *http.Request) {
		var req apitype.MailboxUseRequest
		if err := localapi.ReadJSON(r, &req); err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		var ps []peer.ID
		for _, str := range req.Peers {
			p, err := peer.Decode(str)
			if err != nil {
				localapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("invalid peer ID %q: %w", str, err))
				return
			}
			ps = append(ps, p)
		}
		if err := s.Use(r.Context(), ps, req.Auto); err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		s.writeStatus(w, r.Context())
	})
	api.Handle("POST /v1/mailbox/drain", func(w http.ResponseWriter, r *http.Request) {
		n, err := s.Drain(r.Context())
		res := apitype.MailboxDrainResult{Received: n}
		if err != nil {
			res.Error = err.Error()
		}
		localapi.WriteJSON(w, res)
	})
}

func (s *Service) writeStatus(w http.ResponseWriter, ctx context.Context) {
	st, err := s.Status(ctx)
	if err != nil {
		localapi.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	localapi.WriteJSON(w, st)
}

// Status reports the mailbox settings and state.
func (s *Service) Status(ctx context.Context) (apitype.MailboxStatus, error) {
	serve, lim := s.Serving()
	items, bytes, err := s.Stored(ctx)
	if err != nil {
		return apitype.MailboxStatus{}, err
	}
	st := apitype.MailboxStatus{
		Serving: string(serve), QuotaItems: lim.TagItems, QuotaBytes: lim.TagBytes, TTLDays: lim.ttlDays(),
		Stored: items, StoredBytes: bytes, Use: []string{}, LastDrain: s.LastDrain(),
	}
	for _, p := range s.Mailboxes() {
		st.Use = append(st.Use, p.String())
	}
	s.mu.Lock()
	st.Auto = !s.explicit && s.chat != nil
	s.mu.Unlock()
	return st, nil
}
