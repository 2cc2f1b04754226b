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
		localapi.WriteJSON(w, s.DrainReport(r.Context()))
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
		Stored: items, StoredBytes: bytes, Use: []string{}, Drains: []apitype.MailboxDrain{},
		Contacts: []apitype.ContactMailboxes{},
	}
	use := s.Mailboxes()
	for _, p := range use {
		st.Use = append(st.Use, p.String())
	}
	s.mu.Lock()
	st.Auto = !s.explicit && s.chat != nil
	st.LastDrain, st.LastFetched = s.lastDrain, s.lastFetched
	for _, p := range use {
		if d, ok := s.drains[p]; ok {
			st.Drains = append(st.Drains, d)
		}
	}
	s.mu.Unlock()
	if st.Auto {
		for _, p := range s.cfg.Defaults {
			st.Defaults = append(st.Defaults, p.String())
		}
	}
	if s.chat == nil {
		return st, nil
	}
	rows, err := s.db.Query(ctx, nil, "SELECT peer_id, mailboxes FROM mailbox_lists ORDER BY peer_id")
	if err != nil {
		return st, err
	}
	type list struct{ id, mbs string }
	var lists []list
	for rows.Next() {
		var l list
		if err := rows.Scan(&l.id, &l.mbs); err != nil {
			rows.Close()
			return st, err
		}
		lists = append(lists, l)
	}
	rows.Close()
	for _, l := range lists {
		p, err := peer.Decode(l.id)
		if err != nil {
			continue
		}
		name := s.chat.ContactName(ctx, p)
		if name == "" {
			continue // no longer a contact
		}
		c := apitype.ContactMailboxes{Contact: name, PeerID: l.id, Mailboxes: []string{}}
		for _, m := range parsePeers(l.mbs) {
			c.Mailboxes = append(c.Mailboxes, m.String())
		}
		if err := s.db.QueryRow(ctx, nil, `SELECT count(DISTINCT o.frame_id), count(DISTINCT s.frame_id) FROM outbox o
			LEFT JOIN mailbox_sent s ON s.frame_id = o.frame_id WHERE o.peer_id = ?`, l.id).Scan(&c.Waiting, &c.Deposited); err != nil {
			return st, err
		}
		st.Contacts = append(st.Contacts, c)
	}
	return st, nil
}
