package room

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/room/group"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
)

// /parley/roomsync/2 (docs/PROTOCOL.md): a member fetches from a fellow
// member the commits and messages it missed, proving membership of its
// current epoch with the epoch's sync key over both peer IDs.
const protocolRoomSync2 = protocol.ID("/parley/roomsync/2")

// Limits of /parley/roomsync/2.
const (
	maxFetchRequest  = 4 << 10
	maxFetchResponse = 1 << 20
	maxFetchMessages = 256
	// maxServedCommits bounds the commits one response carries.
	// chainPageBytes (a variable for tests) bounds their size: half a
	// response.
	maxServedCommits = 256
)

// handleFetch serves /parley/roomsync/2.
func (s *Service) handleFetch(st network.Stream) {
	serveStream(s, st, maxFetchRequest, new(wirepb.RoomFetchRequest), s.serveFetch)
}

// serveStream serves one request-response stream of the room protocols:
// the request budgets, one request frame of at most max bytes read into
// req, and serve's answer.
func serveStream[Req proto.Message, Resp proto.Message](s *Service, st network.Stream, max int, req Req, serve func(peer.ID, Req) Resp) {
	defer st.Close()
	if s.syncRefused(st) { // per-IP and global budgets: sync_budget.go
		return
	}
	remote := st.Conn().RemotePeer()
	st.SetReadDeadline(time.Now().Add(wire.ReadTimeout))
	if err := wire.ReadFrame(st, max, req); err != nil {
		st.Reset()
		return
	}
	resp := serve(remote, req)
	st.SetWriteDeadline(time.Now().Add(wire.WriteTimeout))
	if err := wire.WriteFrame(st, resp); err != nil {
		st.Reset()
	}
}

func (s *Service) serveFetch(remote peer.ID, req *wirepb.RoomFetchRequest) *wirepb.RoomFetchResponse {
	fail := func(msg string) *wirepb.RoomFetchResponse { return &wirepb.RoomFetchResponse{Error: msg} }
	if req.GetVersion() != group.Version || len(req.GetProof()) != 32 {
		return fail("invalid request")
	}
	if !s.rate.Allow(peer.ID("sync/"+remote), s.now()) {
		return fail("rate limited")
	}
	id, err := idFromBytes(req.GetRoomId())
	if err != nil {
		return fail("invalid request")
	}
	r := s.room(id)
	if r == nil || r.public {
		return fail("unknown room")
	}
	r.gmu.Lock()
	g := r.g
	var (
		proven, member bool
		cur, rival     *group.Commit
	)
	if g != nil && g.cur() != nil {
		for _, e := range []*group.Epoch{g.st.Epoch, g.st.PrevEpoch} {
			if e != nil && e.Number() == req.GetEpoch() && e.VerifySyncProof(remote, s.self(), req) == nil {
				proven = true
			}
		}
		_, member = g.st.Commit.Member(remote)
		cur, rival = g.st.Commit, g.st.Rival
	}
	r.gmu.Unlock()
	if cur == nil {
		return fail("unknown room")
	}
	ctx := context.Background()
	if len(req.GetJoinToken()) > 0 {
		// A joiner checking its welcome: the chain we follow from its
		// token's commit on, if the token admits it here (a kicked
		// admin's token does not: its welcome stays unconfirmed).
		tok, err := group.ParseJoinToken(req.GetJoinToken())
		if err != nil || tok.Room != group.RoomID(id) || req.GetAfterHlc() != ^uint64(0) {
			return fail("invalid request")
		}
		// Only to a peer the add is committed for (our current or rival
		// commit lists it): a token alone, copied from the topic or an old
		// link, shows nobody the rosters. An expired token still serves
		// within the welcome's grace (CheckWelcome bounds it).
		inRival := false
		if rival != nil {
			_, inRival = rival.Member(remote)
		}
		if err := tok.Check(cur, remote, s.now()); (err != nil && !errors.Is(err, group.ErrExpired)) || !(member || inRival) {
			return fail("join token refused")
		}
		// From the token's commit on, or after the commits a joiner
		// already took from an earlier page (a long chain does not fit
		// one response).
		return s.serveChain(ctx, id, cur, rival, max(req.GetCommitsAfter(), tok.Epoch-1))
	}
	if !member {
		return s.serveRemoval(remote, id, cur, req.GetEpoch())
	}
	// The commits go to any current member (the connection authenticates
	// it): a member that fell more than one epoch behind cannot prove an
	// epoch we still hold keys for. Messages only with a proof of our
	// current or previous epoch.
	if !proven && req.GetAfterHlc() != ^uint64(0) {
		return fail("not a member")
	}
	since := s.memberSince(ctx, id, cur, remote)
	resp := s.serveChain(ctx, id, cur, rival, max(req.GetCommitsAfter(), since-1))
	if resp.Error != "" {
		return resp
	}
	size := 0
	for _, b := range resp.Commits {
		size += len(b) + 8
	}
	if req.GetAfterHlc() == ^uint64(0) {
		return resp // commits only
	}
	if req.GetAfterHlc() >= s.hlcBound() {
		return resp // nothing is stored that late (and SQLite's integers are signed)
	}
	limit := int(req.GetLimit())
	if limit <= 0 || limit > maxFetchMessages {
		limit = maxFetchMessages
	}
	// Only messages of epochs whose roster held the requester, and never
	// beyond our clock's bound (every receiver would refuse them).
	msgs, more, ours, err := s.logPage(ctx, limit, maxFetchResponse-(64<<10)-size, `SELECT sender, data, seqno, signature, key FROM room_log
		WHERE room = ? AND hlc > ? AND hlc <= ? AND epoch >= ? ORDER BY hlc, sender, msg_id LIMIT ?`,
		id[:], req.GetAfterHlc(), s.hlcBound(), since, limit+1)
	if err != nil {
		return fail("storage")
	}
	resp.Messages, resp.More = msgs, resp.More || more
	s.markServed(r, ours)
	return resp
}

// logPage reads the room_log rows a query selects (sender, data, seqno,
// signature, key) as stored gossipsub messages, at most limit of them and
// within budget bytes; more says whether rows were left. ours are the data
// of our own messages among them.
func (s *Service) logPage(ctx context.Context, limit, budget int, query string, args ...any) (msgs []*wirepb.SyncedMessage, more bool, ours [][]byte, err error) {
	rows, err := s.db.Query(ctx, nil, query, args...)
	if err != nil {
		return nil, false, nil, err
	}
	defer rows.Close()
	size := 0
	for rows.Next() {
		var (
			sender string
			m      wirepb.SyncedMessage
		)
		if err := rows.Scan(&sender, &m.Data, &m.Seqno, &m.Signature, &m.Key); err != nil {
			return nil, false, nil, err
		}
		p, err := peer.Decode(sender)
		if err != nil {
			continue
		}
		m.From = []byte(p)
		size += proto.Size(&m) + 8
		if len(msgs) == limit || size > budget {
			return msgs, true, ours, nil
		}
		msgs = append(msgs, &m)
		if p == s.self() {
			ours = append(ours, m.Data)
		}
	}
	return msgs, false, ours, rows.Err()
}

// markServed marks sent our pending messages a member just fetched (data as
// logged): they left the node, even where gossip never carried them (two
// members that reach each other only through a relay).
func (s *Service) markServed(r *room, datas [][]byte) {
	ctx := context.Background()
	for _, d := range datas {
		var msgID []byte
		if r.public {
			m, err := wire.DecodeRoomMessage(d)
			if err != nil {
				continue
			}
			msgID = m.MsgId
		} else {
			env, err := group.ParseEnvelope(group.RoomID(r.id), d)
			if err != nil || env.GetApp() == nil {
				continue
			}
			msgID = env.GetApp().GetMsgId()
		}
		var changed bool
		err := s.db.Tx(ctx, func(tx *sql.Tx) error {
			res, err := s.db.Exec(ctx, tx, "DELETE FROM room_outbox WHERE room = ? AND msg_id = ? AND data = ?", r.id[:], msgID, d)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil
			}
			changed = true
			_, err = s.db.Exec(ctx, tx, "UPDATE messages SET state = ? WHERE conv = ? AND sender = ? AND id = ? AND state = ?",
				apitype.StateSent, r.id.conv(), s.self().String(), msgID, apitype.StatePending)
			return err
		})
		if err == nil && changed {
			s.chat.Publish(apitype.Event{Type: "receipt", Time: s.now(), Message: &apitype.Message{
				ID: hex.EncodeToString(msgID), Conv: "#" + r.name, From: s.self().String(), Outgoing: true, State: apitype.StateSent,
			}})
		}
	}
}

// serveRemoval answers a peer our roster no longer lists, which asks at
// epoch e: if it was a member at e on the chain we follow, it gets our
// chain's commits after e up to the one that dropped it (so that it learns it was removed, even after
// being offline), and nothing after. The peer is authenticated by the
// connection; no proof is needed (we may have erased the keys of e).
func (s *Service) serveRemoval(remote peer.ID, id ID, cur *group.Commit, e uint64) *wirepb.RoomFetchResponse {
	refused := &wirepb.RoomFetchResponse{Error: "not a member"}
	if e == 0 || e > cur.Epoch || cur.Epoch-e > 4*maxServedCommits {
		return refused
	}
	chain := s.chain(context.Background(), id, cur, e-1, 4*maxServedCommits+1)
	if len(chain) == 0 || chain[0].Epoch != e {
		return refused
	}
	if _, was := chain[0].Member(remote); !was {
		return refused
	}
	resp := new(wirepb.RoomFetchResponse)
	for _, c := range chain[1:] {
		resp.Commits = append(resp.Commits, c.Marshal())
		if _, in := c.Member(remote); !in {
			return resp
		}
	}
	return refused
}

// chain returns the commits of the chain we follow, from head back to the
// first after epoch after (at most limit of them), oldest first.
func (s *Service) chain(ctx context.Context, id ID, head *group.Commit, after uint64, limit int) []*group.Commit {
	out := []*group.Commit{head}
	for c := head; c.Epoch > after+1 && c.Epoch > 1 && len(out) < limit; {
		p := s.storedCommit(ctx, id, c.Parent)
		if p == nil {
			break
		}
		out = append(out, p)
		c = p
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if out[0].Epoch <= after {
		out = out[1:]
	}
	return out
}

// storedCommit returns the commit of room id with hash h from the
// database, nil if it holds none. Commits are immutable and were verified
// when stored: parsed ones are kept in memory (commitCacheSize of them), so
// that serving a fetch (memberSince walks the whole chain) costs no
// signature check or query per commit.
func (s *Service) storedCommit(ctx context.Context, id ID, h group.Hash) *group.Commit {
	key := commitKey{id, h}
	s.commitsMu.Lock()
	c := s.commits[key]
	s.commitsMu.Unlock()
	if c != nil {
		return c
	}
	var b []byte
	if s.db.QueryRow(ctx, nil, "SELECT data FROM room_commits WHERE room = ? AND hash = ?", id[:], h[:]).Scan(&b) != nil {
		return nil
	}
	c, err := group.ParseCommit(b)
	if err != nil || c.Hash() != h {
		return nil
	}
	s.commitsMu.Lock()
	if len(s.commits) >= commitCacheSize {
		clear(s.commits)
	}
	s.commits[key] = c
	s.commitsMu.Unlock()
	return c
}

// chainPageBytes bounds the commits of one response (see maxServedCommits).
var chainPageBytes = maxFetchResponse / 2

// commitKey names a stored commit.
type commitKey struct {
	room ID
	hash group.Hash
}

// commitCacheSize bounds the parsed commits storedCommit keeps.
const commitCacheSize = 4096

// serveChain answers with the commits of the chain we follow after epoch
// after (oldest first, the oldest maxServedCommits if there are more:
// More is then set) and our best rival of the current commit.
func (s *Service) serveChain(ctx context.Context, id ID, cur, rival *group.Commit, after uint64) *wirepb.RoomFetchResponse {
	resp := new(wirepb.RoomFetchResponse)
	all := s.chain(ctx, id, cur, after, 1<<20)
	if len(all) > maxServedCommits {
		all, resp.More = all[:maxServedCommits], true
	}
	if rival != nil && rival.Epoch > after && !resp.More {
		all = append(all, rival)
	}
	size := 0
	for _, c := range all {
		b := c.Marshal()
		// Always one commit (at most MaxCommitSize, half a response), so
		// that a requester paging through a long chain moves on.
		if len(resp.Commits) > 0 && size+len(b)+8 > chainPageBytes {
			resp.More = true
			break
		}
		size += len(b) + 8
		resp.Commits = append(resp.Commits, b)
	}
	return resp
}

// memberSince returns the first epoch of p's current membership along the
// chain we follow.
func (s *Service) memberSince(ctx context.Context, id ID, cur *group.Commit, p peer.ID) uint64 {
	since := cur.Epoch
	chain := s.chain(ctx, id, cur, 0, 1024)
	for i := len(chain) - 1; i >= 0; i-- {
		if _, ok := chain[i].Member(p); !ok {
			break
		}
		since = chain[i].Epoch
	}
	return since
}

// fetchFrom asks p for the commits after commitsAfter and the messages
// after afterHLC (^0: commits only), proving membership of epoch ep (nil:
// no proof, commits only; p serves them if its roster lists us, or if
// token, our join token, admits us).
func (s *Service) fetchFrom(ctx context.Context, r *room, ep *group.Epoch, p peer.ID, commitsAfter, afterHLC uint64, token []byte) (*wirepb.RoomFetchResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, wire.ReadTimeout)
	defer cancel()
	// Over a relayed (limited) connection too: gossipsub does not use
	// those, so for members who only reach each other through a relay,
	// fetching is how room messages arrive.
	st, err := s.host.NewStream(network.WithAllowLimitedConn(ctx, "parley-roomsync"), p, protocolRoomSync2)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	req := &wirepb.RoomFetchRequest{Version: group.Version, RoomId: r.id[:], CommitsAfter: commitsAfter, AfterHlc: afterHLC, Limit: maxFetchMessages}
	if ep != nil {
		req.Epoch = ep.Number()
		req.Proof = ep.SyncProof(s.self(), p, req)
	} else {
		req.AfterHlc = ^uint64(0)
		req.Proof = make([]byte, 32)
		req.JoinToken = token
	}
	st.SetWriteDeadline(time.Now().Add(wire.WriteTimeout))
	if err := wire.WriteFrame(st, req); err != nil {
		st.Reset()
		return nil, err
	}
	st.CloseWrite()
	st.SetReadDeadline(time.Now().Add(wire.ReadTimeout))
	resp := new(wirepb.RoomFetchResponse)
	if err := wire.ReadFrame(st, maxFetchResponse, resp); err != nil {
		st.Reset()
		return nil, err
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("peer refused the fetch: %s", resp.Error)
	}
	if len(resp.Commits) > maxServedCommits || len(resp.Messages) > maxFetchMessages {
		return nil, errors.New("oversized fetch response")
	}
	return resp, nil
}

// fetchPeers returns up to n connected peers that are members of commit c
// (topic peers first).
func (s *Service) fetchPeers(r *room, c *group.Commit, n int, exclude ...peer.ID) []peer.ID {
	var out []peer.ID
	seen := map[peer.ID]bool{}
	for _, p := range exclude {
		seen[p] = true
	}
	add := func(p peer.ID) {
		if _, ok := c.Member(p); ok && len(out) < n && p != s.self() && !seen[p] && s.host.Network().Connectedness(p) != network.NotConnected {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, p := range s.ps.ListPeers(r.Topic()) {
		add(p)
	}
	for _, m := range c.Members {
		add(m.ID)
	}
	return out
}

// fetchCommits fetches, in the background, the commits we miss from a few
// members (or p), and applies them.
func (s *Service) fetchCommits(r *room, p peer.ID) {
	s.mu.RLock()
	ctx := s.runCtx
	s.mu.RUnlock()
	if ctx == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if _, err := s.syncPrivate(ctx, r, p, true); err != nil && ctx.Err() == nil {
			s.log.Debug("room: fetch commits", "room", r.id, "err", err)
		}
	}()
}

// syncPrivate fetches from p (or from a few members when p is "") the
// commits after our previous epoch and, unless commitsOnly, the messages
// since shortly before our newest one; it applies the commits in order and
// stores the messages that check out. It returns how many new messages
// were stored.
func (s *Service) syncPrivate(ctx context.Context, r *room, p peer.ID, commitsOnly bool) (int, error) {
	r.gmu.Lock()
	if r.g == nil || r.g.cur() == nil {
		r.gmu.Unlock()
		return 0, ErrNotMember
	}
	cur := r.g.st.Commit
	r.gmu.Unlock()
	peers := []peer.ID{p}
	if p == "" {
		peers = s.fetchPeers(r, cur, 3)
	} else if _, ok := cur.Member(p); !ok {
		// Only a current member may tell us the room's history: a removed
		// one could serve its own messages of its old epochs.
		return 0, fmt.Errorf("room %s: sync with %s: %w", r.name, p, ErrNotMember)
	}
	total := 0
	var firstErr error
	synced := false
	for _, p := range peers {
		n, err := s.syncWith(ctx, r, p, commitsOnly)
		total += n
		if err != nil && firstErr == nil {
			firstErr = err
		}
		synced = synced || err == nil
	}
	if synced && !commitsOnly {
		// A member answers: what waited for a peer may go out now.
		s.republish(ctx, r)
	}
	if len(peers) == 1 {
		return total, firstErr
	}
	return total, nil
}

func (s *Service) syncWith(ctx context.Context, r *room, p peer.ID, commitsOnly bool) (int, error) {
	after := ^uint64(0)
	if !commitsOnly {
		after = s.syncCursor(ctx, r)
	}
	total := 0
	for page := 0; page < maxSyncPages; page++ {
		r.gmu.Lock()
		if r.g == nil || r.g.cur() == nil {
			r.gmu.Unlock()
			return total, ErrNotMember
		}
		ep := r.g.cur()
		commitsAfter := r.g.st.Commit.Epoch - 1
		r.gmu.Unlock()
		resp, err := s.fetchFrom(ctx, r, ep, p, commitsAfter, after, nil)
		if err != nil && !commitsOnly && page == 0 && strings.Contains(err.Error(), "not a member") {
			// p is more than an epoch ahead of us: our proof is of an
			// epoch it no longer holds keys for. Catch up on the commits
			// (served to a member without a proof), then ask again.
			if _, cerr := s.syncWith(ctx, r, p, true); cerr == nil {
				continue
			}
		}
		if err != nil {
			return total, err
		}
		for _, b := range resp.Commits {
			c, err := group.ParseCommit(b)
			if err != nil {
				return total, fmt.Errorf("fetched commit: %w", err)
			}
			s.mu.RLock()
			rctx := s.runCtx
			s.mu.RUnlock()
			if rctx == nil {
				return total, context.Canceled
			}
			r.gmu.Lock()
			if r.g == nil || r.g.cur() == nil {
				r.gmu.Unlock()
				return total, nil
			}
			out, err := s.applyCommitLocked(rctx, r, c)
			r.gmu.Unlock()
			if err != nil {
				if errors.Is(err, group.ErrFork) {
					s.reportFork(r, c)
				}
				continue
			}
			if out == group.Applied || out == group.Healed || out == group.Removed {
				s.afterApply(rctx, r, c, out)
				if out == group.Removed {
					return total, nil
				}
			}
		}
		if commitsOnly {
			if resp.More && len(resp.Commits) > 0 {
				continue // the next commits, from our new epoch
			}
			return total, nil
		}
		known := s.loggedAmong(ctx, r, resp.Messages)
		var verified []*wirepb.SyncedMessage
		for _, m := range resp.Messages {
			if known[m] {
				continue
			}
			if ok, _ := s.verifyFetched(r, m); !ok {
				continue
			}
			verified = append(verified, m)
		}
		// The page's messages in one transaction: the next page's cursor
		// is taken only once they are stored.
		n, err := s.ingest(ctx, r, verified...)
		total += n
		if err != nil {
			return total, err
		}
		if !resp.More || len(resp.Messages) == 0 {
			return total, nil
		}
		env, err := group.ParseEnvelope(group.RoomID(r.id), resp.Messages[len(resp.Messages)-1].Data)
		// The next page starts at the last hlc again (hlc - 1): another
		// message may share it; those already stored are duplicates.
		if err != nil || env.GetApp() == nil || env.GetApp().GetHlc() <= after+1 || after == ^uint64(0) {
			return total, nil
		}
		after = env.GetApp().GetHlc() - 1
	}
	return total, nil
}

// syncCursor is where a sync of r starts: shortly before our newest
// logged message, never beyond now.
func (s *Service) syncCursor(ctx context.Context, r *room) uint64 {
	var newest sql.NullInt64
	nowHLC := wire.PackHLC(s.now().UnixMilli(), 0)
	s.db.QueryRow(ctx, nil, "SELECT max(hlc) FROM room_log WHERE room = ? AND hlc <= ?", r.id[:], nowHLC).Scan(&newest)
	if overlap := wire.PackHLC(syncOverlap.Milliseconds(), 0); uint64(newest.Int64) > overlap {
		return uint64(newest.Int64) - overlap
	}
	return 0
}

// loggedAmong returns the fetched messages of a private room that are
// in our log already, by one query over the page's span of hlcs: a sync
// overlaps what we hold (syncOverlap), and most of a page is known.
func (s *Service) loggedAmong(ctx context.Context, r *room, msgs []*wirepb.SyncedMessage) map[*wirepb.SyncedMessage]bool {
	type key struct{ sender, id string }
	byKey := make(map[key]*wirepb.SyncedMessage, len(msgs))
	var lo, hi uint64
	for _, m := range msgs {
		env, err := group.ParseEnvelope(group.RoomID(r.id), m.Data)
		if err != nil || env.GetApp() == nil {
			continue
		}
		h := env.GetApp().GetHlc()
		if len(byKey) == 0 || h < lo {
			lo = h
		}
		hi = max(hi, h)
		byKey[key{peer.ID(m.From).String(), string(env.GetApp().GetMsgId())}] = m
	}
	if len(byKey) == 0 || hi > math.MaxInt64 {
		return nil
	}
	rows, err := s.db.Query(ctx, nil, "SELECT sender, msg_id FROM room_log WHERE room = ? AND hlc >= ? AND hlc <= ?", r.id[:], lo, hi)
	if err != nil {
		return nil
	}
	defer rows.Close()
	known := map[*wirepb.SyncedMessage]bool{}
	for rows.Next() {
		var (
			sender string
			id     []byte
		)
		if rows.Scan(&sender, &id) != nil {
			return nil
		}
		if m := byKey[key{sender, string(id)}]; m != nil {
			known[m] = true
		}
	}
	return known
}

// verifyFetched checks a fetched message as the live path does: the
// author's gossipsub signature (with the room's topic), then the topic
// checks with the clock bound ahead only.
func (s *Service) verifyFetched(r *room, m *wirepb.SyncedMessage) (bool, error) {
	env, err := group.ParseEnvelope(group.RoomID(r.id), m.Data)
	if err != nil || env.GetApp() == nil {
		return false, err
	}
	if r.logIdx.mayHold(peer.ID(m.From), env.GetApp().GetMsgId()) && s.logged(r.id, peer.ID(m.From), env.GetApp().GetMsgId()) {
		return false, nil
	}
	if err := verifySignature(r.Topic(), m); err != nil {
		return false, err
	}
	v := s.checkPrivate(r, peer.ID(m.From), m.Data, false)
	if v.result != pubsub.ValidationAccept {
		return false, errors.New(v.reason)
	}
	return true, nil
}

// reportFork tells the user that the room forked deeper than the fork
// rule heals.
func (s *Service) reportFork(r *room, c *group.Commit) {
	r.gmu.Lock()
	if g := r.g; g != nil {
		if g.forks[c.Hash()] {
			r.gmu.Unlock()
			return // reported already: a replay of it adds nothing
		}
		if g.forks == nil || len(g.forks) >= maxForkReports {
			g.forks = map[group.Hash]bool{}
		}
		g.forks[c.Hash()] = true
	}
	r.gmu.Unlock()
	s.alert(r, c.Issuer, fmt.Sprintf("the room forked at epoch %d: a commit by %s we cannot follow; ask the owner to re-commit the change", c.Epoch, c.Issuer))
}
