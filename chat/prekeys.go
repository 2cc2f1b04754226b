package chat

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// unsupportedPrekeyVersion starts the error a prekey handler answers to a
// request version it does not speak; a handler from before PQXDH answers
// a version 2 request with it, and the initiator then asks for version 1.
const unsupportedPrekeyVersion = "unsupported prekey protocol version"

// handlePrekeys serves one prekey bundle per stream, within the peer's
// budget: a version 2 (PQXDH) bundle to a version 2 request, a version 1
// (X3DH) bundle to a version 1 request.
func (s *Service) handlePrekeys(ctx context.Context, st network.Stream) {
	remote := st.Conn().RemotePeer()
	if s.rel.isBlocked(remote) {
		st.Reset()
		return
	}
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req wirepb.PrekeyRequest
	if err := wire.NewReader(st).ReadFrame(wire.MaxPrekeyRequest, &req); err != nil {
		s.log.Info("prekey request refused", "peer", remote, "err", err)
		st.Reset()
		return
	}
	resp := &wirepb.PrekeyResponse{}
	switch {
	case req.Version != 1 && req.Version != wire.PrekeyVersionPQ:
		resp.Error = fmt.Sprintf("%s %d", unsupportedPrekeyVersion, req.Version)
	case !s.prekeyAllowed(ctx, st): // per peer, per IP, global: prekey_budget.go
		resp.Error = "rate limited: too many prekey requests, try again later"
	default:
		b, err := s.issueBundle(ctx, req.Version == wire.PrekeyVersionPQ)
		if err != nil {
			s.log.Error("issue prekey bundle", "err", err)
			resp.Error = "internal error"
		} else {
			resp.Bundle = b
		}
	}
	st.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := wire.WriteFrame(st, resp); err != nil {
		st.Reset()
	}
}

// issueBundle hands out a bundle and saves the key store (which marks its
// one-time prekeys issued) before the bundle leaves.
func (s *Service) issueBundle(ctx context.Context, pq bool) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	issue := s.keys.Bundle
	if pq {
		issue = s.keys.BundlePQ
	}
	b, err := issue(s.idKey, s.now())
	if err != nil {
		return nil, err
	}
	if err := s.db.Tx(ctx, func(tx *sql.Tx) error { return s.saveKeysLocked(ctx, tx) }); err != nil {
		s.reloadKeysLocked(ctx)
		return nil, err
	}
	return b.MarshalBinary()
}

// fetchBundle asks p for a prekey bundle and verifies it against p's peer
// ID. It asks for a version 2 (PQXDH) bundle and falls back to version 1
// only when p answers that it does not speak version 2 (a peer from before
// PQXDH); a version 2 request answered with a version 1 bundle is refused
// as a downgrade.
func (s *Service) fetchBundle(ctx context.Context, p peer.ID) (e2e.Bundle, error) {
	b, err := s.fetchBundleVersion(ctx, p, wire.PrekeyVersionPQ)
	var old errOldPrekeys
	if errors.As(err, &old) {
		if s.postQuantumRequired(ctx, p) {
			// No version 1 request: it would only waste one of p's
			// one-time prekeys, since Initiate refuses the bundle.
			s.log.Warn("peer that speaks PQXDH answered that it does not; refusing X3DH", "peer", p)
			return e2e.Bundle{}, fmt.Errorf("%s: %s, but it spoke PQXDH before: %w", p, old.reason, e2e.ErrDowngrade)
		}
		s.log.Info("peer speaks only X3DH; the session will not be post-quantum", "peer", p)
		b, err = s.fetchBundleVersion(ctx, p, 1)
	}
	return b, err
}

// postQuantumRequired reports whether p is known to speak PQXDH (see
// e2e.Channel.RequirePostQuantum).
func (s *Service) postQuantumRequired(ctx context.Context, p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channelLocked(ctx, p)
	return err != nil || ch.PostQuantumRequired()
}

// errOldPrekeys: the peer does not speak the prekey version asked for.
type errOldPrekeys struct{ reason string }

func (e errOldPrekeys) Error() string { return e.reason }

func (s *Service) fetchBundleVersion(ctx context.Context, p peer.ID, version uint32) (e2e.Bundle, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := s.host.NewStream(network.WithAllowLimitedConn(ctx, "parley-prekeys"), p, wire.ProtocolPrekeys)
	if err != nil {
		return e2e.Bundle{}, fmt.Errorf("ask %s for prekeys: %w", p, err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	if err := wire.WriteFrame(st, &wirepb.PrekeyRequest{Version: version}); err != nil {
		st.Reset()
		return e2e.Bundle{}, err
	}
	var resp wirepb.PrekeyResponse
	if err := wire.NewReader(st).ReadFrame(wire.MaxPrekeyResponse, &resp); err != nil {
		st.Reset()
		return e2e.Bundle{}, fmt.Errorf("read prekeys of %s: %w", p, err)
	}
	if err := wire.ValidatePrekeyResponse(&resp); err != nil {
		return e2e.Bundle{}, fmt.Errorf("prekeys of %s: %w", p, err)
	}
	if resp.Error != "" {
		if version != 1 && strings.HasPrefix(resp.Error, unsupportedPrekeyVersion) {
			return e2e.Bundle{}, errOldPrekeys{resp.Error}
		}
		return e2e.Bundle{}, fmt.Errorf("%s refused prekeys: %s", p, resp.Error)
	}
	var b e2e.Bundle
	if err := b.UnmarshalBinary(resp.Bundle); err != nil {
		return e2e.Bundle{}, fmt.Errorf("prekey bundle of %s: %w", p, err)
	}
	if uint32(b.Version) != version {
		return e2e.Bundle{}, fmt.Errorf("prekey bundle of %s: asked for version %d, got version %d", p, version, b.Version)
	}
	key, err := edPub(p)
	if err != nil {
		return e2e.Bundle{}, err
	}
	if err := b.Verify(key); err != nil {
		return e2e.Bundle{}, fmt.Errorf("prekey bundle of %s does not match its peer ID: %w", p, err)
	}
	return b, nil
}
