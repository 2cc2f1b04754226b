package room

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// Joining a private room (docs/PROTOCOL.md, "Joining: tokens, links and
// invitations"): an admin signs a join token, hands it with its join
// secret to the joiner (a link anyone holding it may use, or an invitation
// over the 1:1 session naming one contact); the joiner publishes a join
// request on the room's topic; the admin's node, which alone holds the
// join secret and counts the token's uses, commits the add; the joiner
// takes the commit that adds it (its Welcome) once the chain from the
// token's commit, fetched from members, checks out.

// Join link and invitation limits.
const (
	DefaultLinkExpiry = 7 * 24 * time.Hour
	MaxLinkUses       = group.MaxTokenUses
	// joinWait is how long JoinLink and AcceptInvite wait to be admitted
	// before answering "waiting".
	joinWait = 15 * time.Second
	// joinTTL is how long a join keeps asking an admin who does not answer.
	joinTTL = 7 * 24 * time.Hour
	// maxInvitesPerPeer invitations of one contact may wait for consent (a
	// further one is dropped); each waits at most inviteTTL.
	maxInvitesPerPeer = 4
	inviteTTL         = 7 * 24 * time.Hour
)

// Errors of joining.
var (
	// ErrLinkRefused: a join link or invitation that is expired, or whose
	// token is not valid.
	ErrLinkRefused = errors.New("join link refused")
	// ErrNoInvite: AcceptInvite or DeclineInvite of an unknown invitation.
	ErrNoInvite = errors.New("no such room invitation (see `parley rooms --invites`)")
)

// pendingJoin is a join request of ours waiting for the commit that adds
// us.
type pendingJoin struct {
	link  string // the invitation, encoded as a link (room_joins.link)
	inv   *wirepb.RoomInvitation
	token *group.JoinToken
	kp    *group.KeyPackage
	priv  *group.KeyPackagePrivate
	req   *wirepb.JoinRequest
	// started is when this run of the node began asking.
	started time.Time
	// welcoming is set while a welcome is being checked: one at a time.
	welcoming atomic.Bool
}

// issueToken signs a join token for the room at our current commit and
// stores it with its link; invitee is empty for a link.
func (s *Service) issueToken(ctx context.Context, r *room, uses int, expires time.Duration, invitee peer.ID) (*group.JoinToken, string, error) {
	key, err := s.identity()
	if err != nil {
		return nil, "", err
	}
	r.gmu.Lock()
	g := r.g
	if g == nil || g.cur() == nil {
		r.gmu.Unlock()
		return nil, "", ErrNotMember
	}
	if !g.roleOf(s.self()).IsAdmin() {
		r.gmu.Unlock()
		return nil, "", ErrNotAdmin
	}
	cur := g.st.Commit
	r.gmu.Unlock()
	now := s.now()
	tok, err := group.NewJoinToken(key, cur, uses, now.Add(expires), invitee)
	if err != nil {
		return nil, "", err
	}
	inv := &wirepb.RoomInvitation{Version: wire.RoomInvitationVersion, RoomId: r.id[:], Name: r.name, Token: tok.Marshal(), JoinSecret: tok.Secret}
	for _, a := range s.host.Addrs() {
		if len(inv.Addrs) < wire.MaxAddrs {
			inv.Addrs = append(inv.Addrs, a.Bytes())
		}
	}
	link, err := wire.EncodeRoomInvitation(inv)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.db.Exec(ctx, nil, "INSERT INTO room_links(token, room, epoch, link, uses, expires, created, invitee) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
		tok.ID[:], r.id[:], cur.Epoch, link, uses, tok.ExpiresAt.UnixMilli(), now.UnixMilli(), invitee.String()); err != nil {
		return nil, "", fmt.Errorf("room: store join token: %w", err)
	}
	return tok, link, nil
}

// Link makes a join link into a private room (admins only), admitting up
// to uses joins (0 means 1) until expires from now (0 means 7 days). The
// issuing node counts the uses and may revoke it. Public rooms need no
// link: their name is enough.
func (s *Service) Link(ctx context.Context, name string, uses int, expires time.Duration) (apitype.RoomLink, error) {
	r, err := s.joined(name)
	if err != nil {
		return apitype.RoomLink{}, err
	}
	if r.public {
		return apitype.RoomLink{}, fmt.Errorf("%w: join it with `parley room join '#%s'`", ErrPublic, r.name)
	}
	if uses == 0 {
		uses = 1
	}
	if uses < 0 || uses > MaxLinkUses {
		return apitype.RoomLink{}, fmt.Errorf("room: a link admits 1 to %d joins, not %d", MaxLinkUses, uses)
	}
	if expires == 0 {
		expires = DefaultLinkExpiry
	}
	if expires < 0 {
		return apitype.RoomLink{}, fmt.Errorf("room: link expiry %v is negative", expires)
	}
	tok, link, err := s.issueToken(ctx, r, uses, expires, "")
	if err != nil {
		return apitype.RoomLink{}, err
	}
	return apitype.RoomLink{Token: hex.EncodeToString(tok.ID[:]), Link: link, Uses: uses, Expires: tok.ExpiresAt}, nil
}

// Links lists the join links this node made for a room, newest first.
func (s *Service) Links(ctx context.Context, name string) ([]apitype.RoomLink, error) {
	r, err := s.joined(name)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, nil, "SELECT token, link, uses, used, expires, revoked FROM room_links WHERE room = ? AND invitee = '' ORDER BY created DESC", r.id[:])
	if err != nil {
		return nil, fmt.Errorf("room: list links: %w", err)
	}
	defer rows.Close()
	out := []apitype.RoomLink{}
	for rows.Next() {
		var (
			l       apitype.RoomLink
			token   []byte
			expires int64
		)
		if err := rows.Scan(&token, &l.Link, &l.Uses, &l.Used, &expires, &l.Revoked); err != nil {
			return nil, err
		}
		l.Token = hex.EncodeToString(token)
		l.Expires = time.UnixMilli(expires)
		out = append(out, l)
	}
	return out, rows.Err()
}

// Revoke revokes a join link of a room, named by its token id (as listed by
// Links) or by the whole link: this node admits nobody with it any more.
func (s *Service) Revoke(ctx context.Context, name, token string) error {
	r, err := s.joined(name)
	if err != nil {
		return err
	}
	token = stripSpace(token)
	var res sql.Result
	if strings.HasPrefix(token, wire.RoomLinkPrefix) {
		res, err = s.db.Exec(ctx, nil, "UPDATE room_links SET revoked = 1 WHERE room = ? AND link = ?", r.id[:], token)
	} else {
		b, derr := hex.DecodeString(token)
		if derr != nil || len(b) != group.IDSize {
			return fmt.Errorf("room: %q is neither a link nor a token id (see `parley room links #%s`)", token, r.name)
		}
		res, err = s.db.Exec(ctx, nil, "UPDATE room_links SET revoked = 1 WHERE room = ? AND token = ?", r.id[:], b)
	}
	if err != nil {
		return fmt.Errorf("room: revoke: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("room: no link %s in #%s (see `parley room links #%s`)", token, r.name, r.name)
	}
	return nil
}

func stripSpace(s string) string {
	return strings.Join(strings.Fields(s), "")
}

// Invite invites a contact into a private room (admins only): a
// single-use token naming the contact, sent over the 1:1 session. The
// contact becomes a member once it accepts and this node commits its
// join request.
func (s *Service) Invite(ctx context.Context, name, contact string) (Info, error) {
	r, err := s.joined(name)
	if err != nil {
		return Info{}, err
	}
	if r.public {
		return Info{}, fmt.Errorf("%w: anyone may join it with `parley room join '#%s'`", ErrPublic, r.name)
	}
	c, err := s.chat.Resolve(ctx, contact)
	if err != nil {
		return Info{}, err
	}
	if !s.chat.IsContact(c.ID) {
		return Info{}, fmt.Errorf("room: %s is not a contact (accept their message request or add them first)", contact)
	}
	r.gmu.Lock()
	_, member := r.g.st.Commit.Member(c.ID)
	r.gmu.Unlock()
	if member {
		return Info{}, fmt.Errorf("room: %s is already a member of #%s", contact, r.name)
	}
	tok, link, err := s.issueToken(ctx, r, 1, inviteTTL, c.ID)
	if err != nil {
		return Info{}, err
	}
	inv, err := wire.DecodeRoomInvitation(link)
	if err != nil {
		return Info{}, err
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		return s.chat.SendPayload(ctx, tx, c.ID, &wirepb.Payload{Body: &wirepb.Payload_RoomInvitation{RoomInvitation: inv}})
	})
	if err != nil {
		s.db.Exec(ctx, nil, "DELETE FROM room_links WHERE token = ?", tok.ID[:])
		return Info{}, fmt.Errorf("room: send the invitation: %w", err)
	}
	s.chat.Kick(c.ID)
	return s.Info(ctx, r.name)
}

// admit checks the proof of a join request under one of our tokens and
// queues the joiner's add, taking one use of the token (a repeated
// request of the same joiner takes none). It returns why it refused, or
// "".
func (s *Service) admit(r *room, joiner peer.ID, tok *group.JoinToken, kp *group.KeyPackage, req *wirepb.JoinRequest) string {
	ctx := context.Background()
	var (
		link       string
		uses, used int
		expires    int64
		revoked    bool
		admitted   int
	)
	err := s.db.QueryRow(ctx, nil, "SELECT link FROM room_links WHERE token = ? AND room = ?", tok.ID[:], r.id[:]).Scan(&link)
	if err != nil {
		s.log.Info("room join request under a token we do not hold", "room", r.id, "joiner", joiner)
		return "unknown token"
	}
	inv, err := wire.DecodeRoomInvitation(link)
	if err != nil {
		return "unknown token"
	}
	if err := group.VerifyJoinProof(inv.JoinSecret, joiner, req); err != nil {
		s.log.Info("room join request with a bad proof", "room", r.id, "joiner", joiner, "err", err)
		return "bad proof"
	}
	// One transaction: two requests of one joiner racing take one use.
	var refused string
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		refused = ""
		if err := s.db.QueryRow(ctx, tx, "SELECT count(*) FROM room_admitted WHERE token = ? AND joiner = ?", tok.ID[:], joiner.String()).Scan(&admitted); err != nil {
			return err
		}
		if err := s.db.QueryRow(ctx, tx, "SELECT uses, used, expires, revoked FROM room_links WHERE token = ?", tok.ID[:]).Scan(&uses, &used, &expires, &revoked); err != nil {
			return err
		}
		// Revoked and expired refuse everyone, a repeated request too; a
		// repeat (our add pending, or a lost welcome) takes no further
		// use. A member removed since is no longer admitted by it: its
		// rows are deleted when the commit removing it applies.
		switch {
		case revoked:
			refused = "revoked"
		case expires <= s.now().UnixMilli():
			refused = "expired"
		case admitted > 0:
			return nil
		case used >= uses:
			refused = "used up"
		}
		if refused != "" {
			return nil
		}
		if _, err := s.db.Exec(ctx, tx, "UPDATE room_links SET used = used + 1 WHERE token = ?", tok.ID[:]); err != nil {
			return err
		}
		_, err := s.db.Exec(ctx, tx, "INSERT INTO room_admitted(token, joiner, at) VALUES(?, ?, ?)", tok.ID[:], joiner.String(), s.now().UnixMilli())
		return err
	})
	if err != nil {
		return "storage"
	}
	if refused != "" {
		s.log.Info("room join refused", "room", r.id, "joiner", joiner, "reason", refused)
		return refused
	}
	s.propose(r, func(q *proposal) {
		if !q.adds[joiner] {
			q.adds[joiner] = true
			q.add = append(q.add, group.Addition{KeyPackage: kp, Consent: req.GetConsent()})
		}
	})
	return ""
}

// protocolRoomJoin is /parley/roomjoin/2: a joiner's request straight to
// the token's issuer, answered with a JoinAnswer.
const protocolRoomJoin = protocol.ID("/parley/roomjoin/2")

// Limits of /parley/roomjoin/2.
const (
	maxJoinRequest = group.MaxJoinRequestSize
	maxJoinAnswer  = 1 << 10
)

// handleJoin serves /parley/roomjoin/2 (the budgets of /parley/roomsync).
// A joiner we admit (or admitted before: it asks again until it holds its
// welcome) keeps its connection to us: the welcome, on the topic or
// fetched from us, travels on it (admitted).
func (s *Service) handleJoin(st network.Stream) {
	serveStream(s, st, maxJoinRequest, new(wirepb.JoinRequest), func(remote peer.ID, req *wirepb.JoinRequest) *wirepb.JoinAnswer {
		refused := s.serveJoin(remote, req)
		if refused == "" {
			s.admitted.Hold(remote, s.admitHold())
		}
		return &wirepb.JoinAnswer{Error: refused}
	})
}

// admitHold is how long an admin keeps the connection of a joiner it
// admitted after the joiner last asked: a waiting joiner asks again every
// Config.JoinRetry at least, and stops once the welcome is its.
func (s *Service) admitHold() time.Duration {
	return max(2*s.cfg.JoinRetry, 2*fastJoinRetry)
}

// holdIssuer keeps our connection to the admin of a join we wait on, from
// the first request until the welcome is ours or the join is given up:
// the connection manager trims all but a few connections, and the admin
// answers, and sends the welcome, on this one.
func (s *Service) holdIssuer(j *pendingJoin) { s.issuers.Hold(j.token.Issuer, 0) }

// releaseIssuer ends holdIssuer, unless another join we wait on has the
// same admin.
func (s *Service) releaseIssuer(j *pendingJoin) {
	for _, r := range s.roomList() {
		r.gmu.Lock()
		other := r.join != nil && r.join != j && r.join.token.Issuer == j.token.Issuer
		r.gmu.Unlock()
		if other {
			return
		}
	}
	s.issuers.Release(j.token.Issuer)
}

// serveJoin checks a join request sent to us directly and admits the
// joiner; it returns why it refused, or "".
func (s *Service) serveJoin(remote peer.ID, req *wirepb.JoinRequest) string {
	if !s.rate.Allow(peer.ID("join/"+remote), s.now()) {
		return "rate limited"
	}
	tok, kp, err := group.ParseJoinRequest(remote, req)
	if err != nil {
		return "invalid request"
	}
	r := s.room(ID(tok.Room))
	if r == nil || r.public || tok.Issuer != s.self() {
		return "unknown token"
	}
	r.gmu.Lock()
	var cur *group.Commit
	if r.g != nil && r.g.cur() != nil {
		cur = r.g.st.Commit
	}
	r.gmu.Unlock()
	if cur == nil {
		return "unknown token"
	}
	if _, member := cur.Member(remote); member {
		return ""
	}
	if err := tok.Check(cur, remote, s.now()); err != nil {
		switch {
		case errors.Is(err, group.ErrExpired):
			return "expired"
		case errors.Is(err, group.ErrNotAdmin):
			return "not an admin"
		}
		return "invalid request"
	}
	return s.admit(r, remote, tok, kp, req)
}

// askIssuer sends our join request straight to the token's issuer and
// returns its refusal as an ErrLinkRefused, or a transport error.
func (s *Service) askIssuer(ctx context.Context, j *pendingJoin) error {
	ctx, cancel := context.WithTimeout(ctx, wire.ReadTimeout)
	defer cancel()
	st, err := s.host.NewStream(network.WithAllowLimitedConn(ctx, "parley-roomjoin"), j.token.Issuer, protocolRoomJoin)
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetWriteDeadline(time.Now().Add(wire.WriteTimeout))
	if err := wire.WriteFrame(st, j.req); err != nil {
		st.Reset()
		return err
	}
	st.CloseWrite()
	st.SetReadDeadline(time.Now().Add(wire.ReadTimeout))
	answer := new(wirepb.JoinAnswer)
	if err := wire.ReadFrame(st, maxJoinAnswer, answer); err != nil {
		st.Reset()
		return err
	}
	switch answer.Error {
	case "":
		return nil
	case "rate limited", "storage":
		return fmt.Errorf("the admin's node is busy (%s)", answer.Error)
	}
	return fmt.Errorf("%w by %s: %s; ask an admin for a new one", ErrLinkRefused, j.token.Issuer, answer.Error)
}

// applyInvitation holds an invitation from a contact for the user's
// consent. Invitations from strangers, not naming us, not signed by their
// sender, or beyond the per-contact cap are dropped.
func (s *Service) applyInvitation(ctx context.Context, from peer.ID, inv *wirepb.RoomInvitation) error {
	if !s.chat.IsContact(from) {
		return fmt.Errorf("room invitation from %s, who is not a contact: dropped", from)
	}
	tok, err := group.ParseJoinToken(inv.Token)
	if err != nil {
		return fmt.Errorf("room invitation from %s: %w", from, err)
	}
	id, _ := idFromBytes(inv.RoomId)
	switch {
	case tok.Room != group.RoomID(id):
		return fmt.Errorf("room invitation from %s: token of another room", from)
	case tok.Issuer != from:
		return fmt.Errorf("room invitation from %s: token issued by %s", from, tok.Issuer)
	case tok.Invitee != s.self():
		return fmt.Errorf("room invitation from %s: token for another peer", from)
	case !s.now().Before(tok.ExpiresAt):
		return fmt.Errorf("room invitation from %s: expired", from)
	}
	if r := s.room(id); r != nil {
		return nil // a member already, or joining
	}
	b, err := proto.Marshal(inv)
	if err != nil {
		return err
	}
	now := s.now()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.db.Exec(ctx, tx, "DELETE FROM room_invites WHERE expires <= ?", now.UnixMilli()); err != nil {
			return err
		}
		var held int
		var have bool
		if err := s.db.QueryRow(ctx, tx, "SELECT count(*), coalesce(max(room = ?), 0) FROM room_invites WHERE sender = ?", id[:], from.String()).Scan(&held, &have); err != nil {
			return err
		}
		if !have && held >= maxInvitesPerPeer {
			return fmt.Errorf("room invitation from %s dropped: %d already wait for consent", from, held)
		}
		iid := make([]byte, 8)
		copy(iid, tok.ID[:8])
		_, err := s.db.Exec(ctx, tx, `INSERT INTO room_invites(id, room, sender, name, payload, at, expires) VALUES(?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(room, sender) DO UPDATE SET payload = excluded.payload, name = excluded.name, id = excluded.id, expires = excluded.expires`,
			iid, id[:], from.String(), inv.Name, b, now.UnixMilli(), min(tok.ExpiresAt.UnixMilli(), now.Add(inviteTTL).UnixMilli()))
		return err
	})
	if err != nil {
		return err
	}
	s.log.Info("room invitation waits for consent", "room", id, "from", from)
	s.chat.Publish(apitype.Event{Type: "room", Time: now, Contact: "#" + inv.Name, PeerID: from.String()})
	return nil
}

// Invites lists the invitations waiting for our consent.
func (s *Service) Invites(ctx context.Context) ([]apitype.RoomInvite, error) {
	rows, err := s.db.Query(ctx, nil, "SELECT id, room, sender, name, at, expires FROM room_invites WHERE expires > ? ORDER BY at", s.now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("room: list invitations: %w", err)
	}
	defer rows.Close()
	out := []apitype.RoomInvite{}
	for rows.Next() {
		var (
			inv       apitype.RoomInvite
			iid, room []byte
			at, exp   int64
		)
		if err := rows.Scan(&iid, &room, &inv.From, &inv.Room, &at, &exp); err != nil {
			return nil, err
		}
		inv.ID, inv.RoomID = hex.EncodeToString(iid), hex.EncodeToString(room)
		inv.Room = "#" + inv.Room
		inv.At, inv.Expires = time.UnixMilli(at), time.UnixMilli(exp)
		out = append(out, inv)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if p, err := peer.Decode(out[i].From); err == nil {
			out[i].FromName = s.chat.ContactName(ctx, p)
		}
	}
	return out, nil
}

// heldInvitation loads a held invitation by its id.
func (s *Service) heldInvitation(ctx context.Context, id string) (*wirepb.RoomInvitation, error) {
	iid, err := hex.DecodeString(id)
	if err != nil || len(iid) != 8 {
		return nil, fmt.Errorf("%w: %q", ErrNoInvite, id)
	}
	var b []byte
	err = s.db.QueryRow(ctx, nil, "SELECT payload FROM room_invites WHERE id = ? AND expires > ?", iid, s.now().UnixMilli()).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", ErrNoInvite, id)
	}
	if err != nil {
		return nil, err
	}
	inv := new(wirepb.RoomInvitation)
	if err := proto.Unmarshal(b, inv); err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrNoInvite, id, err)
	}
	return inv, nil
}

// AcceptInvite asks to join the room of a held invitation.
func (s *Service) AcceptInvite(ctx context.Context, id string) (apitype.JoinResult, error) {
	inv, err := s.heldInvitation(ctx, id)
	if err != nil {
		return apitype.JoinResult{}, err
	}
	link, err := wire.EncodeRoomInvitation(inv)
	if err != nil {
		return apitype.JoinResult{}, err
	}
	res, err := s.JoinLink(ctx, link)
	if err == nil {
		s.db.Exec(ctx, nil, "DELETE FROM room_invites WHERE room = ?", inv.RoomId)
	}
	return res, err
}

// DeclineInvite drops a held invitation (and any other invitation into the
// same room).
func (s *Service) DeclineInvite(ctx context.Context, id string) error {
	inv, err := s.heldInvitation(ctx, id)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, nil, "DELETE FROM room_invites WHERE room = ?", inv.RoomId)
	return err
}

// JoinLink asks to join the room of a parley://room/ link (or of an
// accepted invitation): it publishes a join request on the room's topic,
// where the token's issuer admits it. It answers "joined" once admitted
// within a short wait, else "waiting" with a Detail saying for whom: the
// join is kept (room_joins) and asked again every Config.JoinRetry, across
// restarts, until it is admitted or its token expires.
func (s *Service) JoinLink(ctx context.Context, link string) (apitype.JoinResult, error) {
	link = stripSpace(link)
	inv, err := wire.DecodeRoomInvitation(link)
	if err != nil {
		return apitype.JoinResult{}, err
	}
	tok, err := group.ParseJoinToken(inv.Token)
	if err != nil {
		return apitype.JoinResult{}, fmt.Errorf("%w: %v", ErrLinkRefused, err)
	}
	id, _ := idFromBytes(inv.RoomId)
	switch {
	case tok.Room != group.RoomID(id):
		return apitype.JoinResult{}, fmt.Errorf("%w: its token is for another room", ErrLinkRefused)
	case !s.now().Before(tok.ExpiresAt):
		return apitype.JoinResult{}, fmt.Errorf("%w: it expired on %s; ask an admin for a new one", ErrLinkRefused, tok.ExpiresAt.Format(time.DateTime))
	case tok.Invitee != "" && tok.Invitee != s.self():
		return apitype.JoinResult{}, fmt.Errorf("%w: it invites another peer", ErrLinkRefused)
	}
	if r := s.room(id); r != nil {
		r.gmu.Lock()
		member := r.g != nil && r.g.cur() != nil
		r.gmu.Unlock()
		if member {
			info, err := s.Info(ctx, r.name)
			return apitype.JoinResult{Status: "joined", Room: info, Detail: "already a member"}, err
		}
	} else {
		if err := s.startJoin(ctx, link, inv, tok); err != nil {
			return apitype.JoinResult{}, err
		}
	}
	r := s.room(id)
	if r == nil {
		return apitype.JoinResult{}, s.joinEnded(link, inv.Name)
	}
	wctx, cancel := context.WithTimeout(ctx, joinWait)
	defer cancel()
	if err := s.askToJoin(wctx, r); err != nil {
		return apitype.JoinResult{}, err
	}
	return s.awaitJoined(wctx, r, link)
}

// startJoin stores a join (our fresh key package and the invitation) and
// joins the room's topic to ask.
func (s *Service) startJoin(ctx context.Context, link string, inv *wirepb.RoomInvitation, tok *group.JoinToken) error {
	key, err := s.identity()
	if err != nil {
		return err
	}
	kp, priv, err := group.NewKeyPackage(key, s.now())
	if err != nil {
		return err
	}
	req, err := group.NewJoinRequest(key, tok, inv.JoinSecret, kp)
	if err != nil {
		return err
	}
	privB, err := priv.MarshalBinary()
	if err != nil {
		return err
	}
	reqB, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	id, _ := idFromBytes(inv.RoomId)
	detail := fmt.Sprintf("waiting for the admin %s to admit us; the room appears once they do", tok.Issuer)
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.db.Exec(ctx, tx, "DELETE FROM room_keys WHERE room = ?", id[:]); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, "INSERT INTO room_keys(room, pub, priv, created) VALUES(?, ?, ?, 0)", id[:], priv.PublicKey, privB); err != nil {
			return err
		}
		_, err := s.db.Exec(ctx, tx, `INSERT INTO room_joins(link, inviter, name, at, detail, request) VALUES(?, ?, ?, ?, ?, ?)
			ON CONFLICT(link) DO UPDATE SET at = excluded.at, request = excluded.request`, link, tok.Issuer.String(), inv.Name, s.now().UnixMilli(), detail, reqB)
		return err
	})
	if err != nil {
		return fmt.Errorf("room: keep the join: %w", err)
	}
	r := &room{id: id, name: inv.Name, clock: newClock(s.now), join: &pendingJoin{link: link, inv: inv, token: tok, kp: kp, priv: priv, req: req, started: s.now()}}
	s.mu.Lock()
	defer s.mu.Unlock()
	if have := s.rooms[id]; have != nil {
		return nil
	}
	s.rooms[id] = r
	return s.startLocked(r)
}

// loadJoins restarts the joins that wait for their admin (at start).
func (s *Service) loadJoins(ctx context.Context) {
	s.db.Exec(ctx, nil, "DELETE FROM room_joins WHERE at < ?", s.now().Add(-joinTTL).UnixMilli())
	rows, err := s.db.Query(ctx, nil, "SELECT link FROM room_joins ORDER BY at")
	if err != nil {
		return
	}
	var links []string
	for rows.Next() {
		var l string
		if rows.Scan(&l) == nil {
			links = append(links, l)
		}
	}
	rows.Close()
	for _, link := range links {
		inv, err := wire.DecodeRoomInvitation(link)
		var tok *group.JoinToken
		if err == nil {
			tok, err = group.ParseJoinToken(inv.Token)
		}
		if err != nil || !s.now().Before(tok.ExpiresAt.Add(group.MaxWelcomeDelay)) {
			s.db.Exec(ctx, nil, "DELETE FROM room_joins WHERE link = ?", link)
			continue
		}
		id, _ := idFromBytes(inv.RoomId)
		privs, err := s.loadKeys(ctx, id)
		if err != nil || len(privs) == 0 {
			s.db.Exec(ctx, nil, "DELETE FROM room_joins WHERE link = ?", link)
			continue
		}
		var reqB []byte
		s.db.QueryRow(ctx, nil, "SELECT request FROM room_joins WHERE link = ?", link).Scan(&reqB)
		req := new(wirepb.JoinRequest)
		var kp *group.KeyPackage
		if err = proto.Unmarshal(reqB, req); err == nil {
			kp, err = group.ParseKeyPackage(req.KeyPackage)
		}
		if err != nil {
			s.db.Exec(ctx, nil, "DELETE FROM room_joins WHERE link = ?", link)
			continue
		}
		priv := privs[len(privs)-1]
		r := &room{id: id, name: inv.Name, clock: newClock(s.now), join: &pendingJoin{link: link, inv: inv, token: tok, kp: kp, priv: priv, req: req, started: s.now()}}
		s.mu.Lock()
		if s.rooms[id] == nil {
			s.rooms[id] = r
			if err := s.startLocked(r); err != nil {
				s.log.Warn("room: restart join", "room", id, "err", err)
			}
		}
		s.mu.Unlock()
	}
}

// askToJoin connects to the token's issuer and sends it our join
// request, straight (it answers whether it admits us) or, when it is only
// reachable through the room's mesh, on the topic once the topic has a
// peer (published before, it would reach nobody). It returns the issuer's
// refusal as an ErrLinkRefused.
func (s *Service) askToJoin(ctx context.Context, r *room) error {
	r.gmu.Lock()
	j := r.join
	r.gmu.Unlock()
	if j == nil {
		return nil
	}
	issuer := j.token.Issuer
	s.holdIssuer(j)
	var addrs []ma.Multiaddr
	for _, b := range j.inv.Addrs {
		if a, err := ma.NewMultiaddrBytes(b); err == nil {
			addrs = append(addrs, a)
		}
	}
	s.host.Peerstore().AddAddrs(issuer, addrs, peerstore.TempAddrTTL)
	var detail string
	var err error
	if !reachable(s.host.Network().Connectedness(issuer)) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = s.host.Connect(cctx, peer.AddrInfo{ID: issuer})
		cancel()
		if err != nil && s.finder != nil {
			// The link's addresses may be stale (the admin restarted).
			if found, ferr := s.finder.FindPeer(ctx, issuer); ferr == nil {
				err = s.host.Connect(ctx, found)
			}
		}
	}
	if err == nil {
		err = s.askIssuer(ctx, j)
		if errors.Is(err, ErrLinkRefused) {
			s.log.Info("room join refused", "room", r.id, "admin", issuer, "err", err)
			s.dropJoin(r, j, err)
			return err
		}
	}
	switch {
	case err == nil:
		detail = fmt.Sprintf("the admin %s admits us; waiting for the room's keys", issuer)
	case len(s.ps.ListPeers(r.Topic())) > 0:
		if perr := s.publishEnvelope(ctx, r, &wirepb.RoomEnvelope{Body: &wirepb.RoomEnvelope_JoinRequest{JoinRequest: j.req}}); perr == nil {
			detail = fmt.Sprintf("asked the admin %s through the room's members; the room appears once they admit us", issuer)
			break
		}
		fallthrough
	default:
		detail = fmt.Sprintf("waiting for the admin %s, who is not reachable now; asking again every %v", issuer, s.cfg.JoinRetry)
	}
	s.db.Exec(context.Background(), nil, "UPDATE room_joins SET detail = ? WHERE link = ?", detail, j.link)
	return nil
}

// reachable says whether we have a connection to a peer: a direct one, or
// a relayed (limited) one, which streams of the room protocols may use
// (gossipsub does not).
func reachable(c network.Connectedness) bool {
	return c == network.Connected || c == network.Limited
}

// dropJoin gives up a join: its token cannot admit us.
func (s *Service) dropJoin(r *room, j *pendingJoin, why error) {
	defer s.releaseIssuer(j)
	s.db.Exec(context.Background(), nil, "DELETE FROM room_joins WHERE link = ?", j.link)
	s.db.Exec(context.Background(), nil, "DELETE FROM room_keys WHERE room = ? AND NOT EXISTS (SELECT 1 FROM room_groups WHERE room = ?)", r.id[:], r.id[:])
	if why != nil {
		s.mu.Lock()
		if len(s.ended) >= 64 {
			clear(s.ended)
		}
		s.ended[j.link] = why
		s.mu.Unlock()
	}
	r.gmu.Lock()
	gone := r.join == j && r.g == nil
	if r.join == j {
		r.join = nil
	}
	r.gmu.Unlock()
	if gone {
		s.mu.Lock()
		s.stopLocked(r)
		if s.rooms[r.id] == r {
			delete(s.rooms, r.id)
		}
		s.mu.Unlock()
	}
}

// joinEnded says why the join by link was given up: the refusal the
// retry loop or an earlier request was told, if any.
func (s *Service) joinEnded(link, name string) error {
	s.mu.RLock()
	why := s.ended[link]
	s.mu.RUnlock()
	if why != nil {
		return why
	}
	return fmt.Errorf("room: the join of #%s ended (see `parley rooms`)", name)
}

// retryJoins asks again for every join that waits for its admin, and
// gives up those whose token can no longer admit us.
func (s *Service) retryJoins(ctx context.Context) {
	for _, r := range s.roomList() {
		r.gmu.Lock()
		j, leaving := r.join, r.leaving
		r.gmu.Unlock()
		if leaving {
			s.publishLeave(ctx, r)
			continue
		}
		if j == nil {
			continue
		}
		if !s.now().Before(j.token.ExpiresAt.Add(group.MaxWelcomeDelay)) {
			s.dropJoin(r, j, fmt.Errorf("%w: it expired on %s before an admin let us in; ask for a new one", ErrLinkRefused, j.token.ExpiresAt.Format(time.DateTime)))
			continue
		}
		jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if s.askToJoin(jctx, r) == nil {
			s.pollWelcome(jctx, r)
		}
		cancel()
	}
}

// awaitJoined waits until r is joined, and answers "joined" with it, or
// "waiting" once ctx ends.
func (s *Service) awaitJoined(ctx context.Context, r *room, link string) (apitype.JoinResult, error) {
	ch, cancel := s.chat.Subscribe()
	defer cancel()
	polled := time.Now()
	for {
		r.gmu.Lock()
		joined := r.g != nil && r.g.cur() != nil
		name := r.name
		waiting := r.join != nil
		r.gmu.Unlock()
		if !joined && !waiting {
			// Given up meanwhile: the retry loop may have been the one
			// told why.
			return apitype.JoinResult{}, s.joinEnded(link, name)
		}
		if joined {
			info, err := s.Info(context.Background(), name)
			if err != nil {
				return apitype.JoinResult{}, err
			}
			return apitype.JoinResult{Status: "joined", Room: info}, nil
		}
		if time.Since(polled) > fastJoinRetry {
			polled = time.Now()
			s.pollWelcome(ctx, r)
		}
		select {
		case <-ctx.Done():
			var detail string
			s.db.QueryRow(context.Background(), nil, "SELECT detail FROM room_joins WHERE link = ?", link).Scan(&detail)
			return apitype.JoinResult{Status: "waiting", Room: apitype.Room{Name: "#" + name, State: "waiting", Detail: detail}, Detail: detail}, nil
		case <-ch:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pollWelcome asks for the commits since our token's: the issuer when we
// reach it (a welcome published before it knew we were on the topic
// reached nobody; it serves them once its roster lists us), else a few
// peers of the topic, presenting our token (a joiner that reaches the
// room only through the mesh: members serve the chain they follow, our
// welcome on it; anyone else refuses). Each peer gets a short deadline,
// all at once: one that holds the stream delays nothing.
func (s *Service) pollWelcome(ctx context.Context, r *room) {
	r.gmu.Lock()
	j := r.join
	r.gmu.Unlock()
	if j == nil {
		return
	}
	peers := []peer.ID{j.token.Issuer}
	var token []byte
	if !reachable(s.host.Network().Connectedness(j.token.Issuer)) {
		peers, token = nil, j.token.Marshal()
		for _, p := range s.ps.ListPeers(r.Topic()) {
			if len(peers) < 4 && s.host.Network().Connectedness(p) == network.Connected {
				peers = append(peers, p)
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	found := make(chan *group.Commit, len(peers))
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// In a long chain the welcome is past the first page.
			var w *group.Commit
			s.pageChain(ctx, r, p, token, j.token.Epoch-1, func(c *group.Commit) bool {
				if w == nil && c.Issuer == j.token.Issuer && c.Welcomes(s.self()) {
					w = c
				}
				return w != nil
			})
			if w != nil {
				found <- w
			}
		}()
	}
	wg.Wait()
	close(found)
	if c, ok := <-found; ok && j.welcoming.CompareAndSwap(false, true) {
		defer j.welcoming.Store(false)
		s.takeWelcome(r, c)
	}
}

// maxWelcomePages bounds the pages of the chain a joiner fetches from one
// member to check its welcome: 16 pages of 256 commits (or of 512 KiB)
// cover more epochs than a token lives through.
const maxWelcomePages = 16

// pageChain fetches from p, as a joiner (token: our join token, or nil
// when p is the token's issuer and lists us), the commits of the chain p
// follows after epoch after, page by page: the chain of a room that grew
// by many joins does not fit one response. visit sees each commit once,
// oldest first; the fetch ends after the page in which visit said done,
// when p has no more, or when a page does not move on (a responder of
// version 1.4 serves the first page again).
func (s *Service) pageChain(ctx context.Context, r *room, p peer.ID, token []byte, after uint64, visit func(*group.Commit) (done bool)) error {
	for range maxWelcomePages {
		resp, err := s.fetchFrom(ctx, r, nil, p, after, ^uint64(0), token)
		if err != nil {
			return err
		}
		last, done := after, false
		for _, b := range resp.Commits {
			c, err := group.ParseCommit(b)
			if err != nil || c.Epoch <= after {
				continue
			}
			done = visit(c) || done
			last = max(last, c.Epoch)
		}
		if done || !resp.More || last == after {
			return nil
		}
		after = last
	}
	return nil
}

// takeWelcome takes c, a commit that adds us, as our first epoch if the
// chain from our token's commit, fetched from members, checks out
// (group.CheckWelcome): the welcome's sender alone cannot place us in a
// branch of its own.
func (s *Service) takeWelcome(r *room, c *group.Commit) {
	r.gmu.Lock()
	j := r.join
	r.gmu.Unlock()
	if j == nil {
		return
	}
	// Open with a copy of our key: the original keeps its init key until
	// the welcome is checked, so that a welcome that fails the check does
	// not cost us the join.
	b, err := j.priv.MarshalBinary()
	if err != nil {
		return
	}
	trial, err := group.UnmarshalKeyPackagePrivate(b)
	if err != nil {
		return
	}
	ep, err := c.Open(s.self(), []*group.KeyPackagePrivate{trial})
	if err != nil {
		s.log.Info("room welcome we cannot open", "room", r.id, "issuer", c.Issuer, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The chain comes from members other than the welcome's issuer,
	// presenting our token: a kicked admin cannot place us in a branch of
	// its own, because the room's members refuse its token and serve the
	// chain that removed it. Only when the token's commit lists no one but
	// the issuer is the issuer's own chain enough (nobody else was there).
	var chain []*group.Commit
	check := func(p peer.ID) bool {
		chain = chain[:0]
		// Until the room's commit of the welcome's epoch (or a later one)
		// is in, so that CheckWelcome meets the welcome's rival.
		err := s.pageChain(ctx, r, p, j.token.Marshal(), j.token.Epoch-1, func(pc *group.Commit) bool {
			if pc.Hash() != c.Hash() && pc.Epoch <= c.Epoch {
				chain = append(chain, pc) // the welcome's later epochs come after we are in
			}
			return pc.Epoch >= c.Epoch
		})
		if err != nil {
			s.log.Debug("room welcome: fetch the chain", "room", r.id, "peer", p, "err", err)
			return false
		}
		chain = chainFrom(chain, j.token.CommitHash)
		if err := group.CheckWelcome(c, chain, s.self(), j.token, s.now()); err != nil {
			s.log.Info("room welcome refused", "room", r.id, "issuer", c.Issuer, "served by", p, "err", err)
			return false
		}
		return true
	}
	checked := false
	// Members of the welcome's roster we reach, then any other peer of the
	// topic (members that joined after the welcome, in a room we reach
	// only through the mesh); a peer that holds no chain for our token
	// just refuses.
	sources := s.fetchPeers(r, c, 4, c.Issuer)
	for _, p := range s.ps.ListPeers(r.Topic()) {
		if p != c.Issuer && !slices.Contains(sources, p) && len(sources) < 8 {
			sources = append(sources, p)
		}
	}
	if len(sources) == 0 {
		var ids []peer.ID
		for _, m := range c.Members {
			if m.ID != c.Issuer {
				ids = append(ids, m.ID)
			}
		}
		s.dialPeers(ctx, ids, 2)
		sources = s.fetchPeers(r, c, 4, c.Issuer)
	}
	for _, p := range sources {
		if checked = check(p); checked {
			break
		}
	}
	if !checked && check(c.Issuer) {
		// The issuer's chain stands alone only if its token's commit
		// (chain[0]) listed nobody else.
		checked = len(chain) > 0 && len(chain[0].Members) == 1 && chain[0].Members[0].ID == c.Issuer
		if !checked {
			s.log.Info("room welcome: waiting for a member other than its issuer to confirm the chain", "room", r.id, "issuer", c.Issuer)
		}
	}
	if !checked {
		return
	}
	var prev *group.Commit
	for _, pc := range chain {
		if pc.Hash() == c.Parent {
			prev = pc
		}
	}
	joined := false
	defer func() {
		if joined { // once r.gmu is released: releaseIssuer takes it
			s.releaseIssuer(j)
		}
	}()
	r.gmu.Lock()
	defer r.gmu.Unlock()
	if r.join != j {
		return // taken meanwhile
	}
	j.priv.EraseInit()
	trial.EraseInit()
	r.g = &groupState{st: &group.State{Commit: c, Epoch: ep, Prev: prev}, privs: []*group.KeyPackagePrivate{trial}, appliedAt: s.now(), updates: map[peer.ID]*group.KeyPackage{}}
	lines := s.commitLines(context.Background(), nil, c, group.Applied)
	var shown []*apitype.Message
	err = s.db.Tx(context.Background(), func(tx *sql.Tx) error {
		name, err := freeName(ctx, tx, r.id, r.name)
		if err != nil {
			return err
		}
		s.mu.Lock()
		r.name = name // byName and Info read it under s.mu
		s.mu.Unlock()
		if _, err := s.db.Exec(ctx, tx, `INSERT INTO rooms(id, name, public, epoch, joined_at) VALUES(?, ?, 0, ?, ?)
			ON CONFLICT(id) DO UPDATE SET epoch = excluded.epoch, state = 'joined', name = excluded.name`,
			r.id[:], r.name, c.Epoch, s.now().UnixMilli()); err != nil {
			return err
		}
		for _, pc := range chain {
			if err := s.storeCommit(ctx, tx, r.id, pc); err != nil {
				return err
			}
		}
		if err := s.saveGroupLocked(ctx, tx, r); err != nil {
			return err
		}
		if err := s.saveKeysLocked(ctx, tx, r); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, "DELETE FROM room_joins WHERE link = ?", j.link); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, tx, "DELETE FROM room_invites WHERE room = ?", r.id[:]); err != nil {
			return err
		}
		shown, err = s.addLines(ctx, tx, r, lines)
		return err
	})
	if err != nil {
		s.log.Warn("room: store the welcome", "room", r.id, "err", err)
		r.g = nil
		return
	}
	r.join = nil
	joined = true
	s.log.Info("room joined", "room", r.id, "epoch", c.Epoch, "added by", c.Issuer)
	s.publish(shown)
	s.chat.Publish(apitype.Event{Type: "room", Time: s.now(), Contact: "#" + r.name})
	s.requestSync(r.id, "")
}

// chainFrom returns the commits of chain from the one whose hash is h on,
// in ascending epoch order (rivals of a slot side by side).
func chainFrom(chain []*group.Commit, h group.Hash) []*group.Commit {
	var start uint64
	found := false
	for _, c := range chain {
		if c.Hash() == h {
			start, found = c.Epoch, true
		}
	}
	if !found {
		return nil
	}
	out := []*group.Commit{}
	for _, c := range chain {
		if c.Hash() == h {
			out = append([]*group.Commit{c}, out...)
		} else if c.Epoch > start {
			out = append(out, c)
		}
	}
	// Ascending epochs after the first (stable for equal epochs).
	slices.SortStableFunc(out[1:], func(a, b *group.Commit) int { return cmp.Compare(a.Epoch, b.Epoch) })
	return out
}
