package conformance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// The tests in this file check "Private rooms (version 2)" of PROTOCOL.md
// from the outside: a foreign client (privateclient_test.go) joins a
// room the node created through a link, follows its commits, reads and
// writes application messages on the topic and fetches on
// /parley/roomsync/2. Refusals are observed as in publicroom_test.go: the
// same host publishes an honest message right after the refused one, and
// once the node shows it, the refused one must be absent from the log.

// privateRoom makes the node create a private room and a join link for
// uses joins; it returns the room id and the link.
func privateRoom(t *testing.T, node *peertest.Running, name string, uses int) ([]byte, string) {
	t.Helper()
	ctx := context.Background()
	info, err := node.Rooms().Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	id, err := hex.DecodeString(info.ID)
	if err != nil || len(id) != 32 {
		t.Fatalf("room id %q: \"Ids and topics\" wants 32 random bytes", info.ID)
	}
	if info.Public || info.Topic != privateTopic(id) || info.Epoch != 1 {
		t.Fatalf("created %+v; want a private room on %s at epoch 1", info, privateTopic(id))
	}
	l, err := node.Rooms().Link(ctx, "#"+name, uses, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return id, l.Link
}

// joinedClient is a foreign client admitted into the room.
type joinedClient struct {
	*roomClient
	inv *wirepb.RoomInvitation
	tok *wirepb.JoinToken
}

// checkToken applies "Joining" to a link's invitation and token.
func checkToken(t *testing.T, node *peertest.Running, room []byte, inv *wirepb.RoomInvitation) *wirepb.JoinToken {
	t.Helper()
	if inv.Version != 2 || !bytes.Equal(inv.RoomId, room) || len(inv.JoinSecret) != 32 || len(inv.Addrs) == 0 || len(inv.Addrs) > 8 || len(inv.Name) > 64 {
		t.Fatalf("invitation %v: want version 2, the room, a 32-byte join secret, 1 to 8 addresses", inv)
	}
	var stok wirepb.SignedJoinToken
	unmarshalStrict(t, "RoomInvitation.token", inv.Token, &stok)
	var tok wirepb.JoinToken
	unmarshalStrict(t, "SignedJoinToken.token", stok.Token, &tok)
	if len(inv.Token) > 512 {
		t.Errorf("SignedJoinToken of %d bytes", len(inv.Token))
	}
	issuer := []byte(node.Host().ID())
	pub, err := ed25519Of(tok.Issuer)
	if err != nil || !bytes.Equal(tok.Issuer, issuer) {
		t.Fatalf("token issuer %x, want the node %x (%v)", tok.Issuer, issuer, err)
	}
	if !ed25519.Verify(pub, cat(label0("parley/room/2 join token"), stok.Token), stok.Signature) {
		t.Fatal("the token's signature does not verify over \"parley/room/2 join token\" 0x00 ‖ token")
	}
	if !bytes.Equal(tok.RoomId, room) || len(tok.TokenId) != 16 || tok.ExpiresAtMs <= time.Now().UnixMilli() ||
		tok.Uses < 1 || tok.Uses > 1000 || len(tok.Invitee) != 0 || len(tok.CommitHash) != 32 || tok.Epoch < 1 {
		t.Fatalf("token %v breaks \"Joining\"", &tok)
	}
	// The addresses are binary multiaddrs where the issuer was reachable.
	var found bool
	for _, b := range inv.Addrs {
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil || len(b) > 256 {
			t.Fatalf("invitation address %x: %v", b, err)
		}
		found = found || slices.ContainsFunc(node.AddrInfo().Addrs, a.Equal)
	}
	if !found {
		t.Errorf("the invitation's addresses do not include the node's %v", node.AddrInfo().Addrs)
	}
	return &tok
}

// joinByLink runs "Joining" and "/parley/roomjoin/2" as a foreign joiner:
// decode the link, check its token, join the topic, make a key package and
// a join request, ask the issuer, take the commit that adds the client
// from the topic, fetch the chain from the token's commit with the token
// on /parley/roomsync/2, check it successor by successor, open the welcome
// and check the confirmation tag.
func joinByLink(t *testing.T, node *peertest.Running, room []byte, link string) *joinedClient {
	t.Helper()
	return joinVia(t, node, room, link, askOnStream)
}

// How a joiner asks and takes its welcome ("Joining").
type joinPath int

const (
	// askOnStream: the request on /parley/roomjoin/2, the welcome on the
	// topic.
	askOnStream joinPath = iota
	// askOnTopic: the request published on the topic, the welcome on it.
	askOnTopic
	// askOffTopic: the request on /parley/roomjoin/2 by a joiner not on
	// the topic, the welcome fetched with the token.
	askOffTopic
)

func joinVia(t *testing.T, node *peertest.Running, room []byte, link string, how joinPath) *joinedClient {
	t.Helper()
	c := &joinedClient{roomClient: newRoomHost(t, node, room, how == askOffTopic)}
	c.join(t, link, how)
	return c
}

// join runs the join of joinVia with the client's host (again, for a
// member removed or left).
func (c *joinedClient) join(t *testing.T, link string, how joinPath) {
	t.Helper()
	node, room := c.node, c.room
	inv := decodeRoomLink(t, link)
	tok := checkToken(t, node, room, inv)
	c.inv, c.tok = inv, tok
	issuer, err := peer.IDFromBytes(tok.Issuer)
	if err != nil {
		t.Fatal(err)
	}

	kp := c.newKeyPackage(time.Now())
	req := c.joinRequest(inv, kp)
	if how == askOnTopic {
		c.publishEnv(&wirepb.RoomEnvelope{Version: 2, RoomId: room, Body: &wirepb.RoomEnvelope_JoinRequest{JoinRequest: req}})
	} else if a := c.askJoin(issuer, req); a.Error != "" {
		t.Fatalf("/parley/roomjoin/2 answered %q, want \"\" (accepted)", a.Error)
	}
	// The chain from the token's commit, asked with the token (a room of
	// one: the issuer's chain is enough).
	fr := &wirepb.RoomFetchRequest{Version: 2, RoomId: room, CommitsAfter: tok.Epoch - 1, AfterHlc: ^uint64(0), Proof: make([]byte, 32), JoinToken: inv.Token}
	var w *parsedCommit
	var resp *wirepb.RoomFetchResponse
	if how == askOffTopic {
		// "or by asking for it": the issuer serves the chain once its
		// roster lists the joiner; until then, "join token refused".
		peertest.Eventually(t, 30*time.Second, "the welcome served with the token", func() bool {
			resp = c.fetch(fr)
			if resp.Error != "" && resp.Error != "join token refused" && resp.Error != "rate limited" {
				t.Fatalf("joiner fetch: %q", resp.Error)
			}
			for _, raw := range resp.Commits {
				if p, err := checkOnItsOwn(raw); err == nil && p.members[string(c.id)] != nil {
					w = p
					return true
				}
			}
			return false
		})
	} else {
		// "the commit adding the joiner follows on the topic".
		if w, err = checkSigned(c.nextWelcome(tok.Epoch)); err != nil {
			t.Fatalf("the welcome: %v", err)
		}
		resp = c.fetch(fr)
	}
	if resp.Error != "" || len(resp.Messages) != 0 {
		t.Fatalf("joiner fetch: error %q, %d messages; want the commits only", resp.Error, len(resp.Messages))
	}
	if len(resp.Commits) < 2 {
		t.Fatalf("joiner fetch: %d commits, want the token's commit and the welcome", len(resp.Commits))
	}
	first, err := checkOnItsOwn(resp.Commits[0])
	if err != nil {
		t.Fatalf("token's commit: %v", err)
	}
	if !bytes.Equal(first.hash, tok.CommitHash) || first.body.Epoch != tok.Epoch {
		t.Fatalf("the fetched chain starts at epoch %d hash %x; the token names epoch %d hash %x", first.body.Epoch, first.hash, tok.Epoch, tok.CommitHash)
	}
	if first.body.Epoch == 1 {
		if err := checkGenesis(first); err != nil {
			t.Fatal(err)
		}
	}
	if len(first.body.Members) != 1 {
		t.Fatal("the token's commit lists more than its issuer: the welcome must be confirmed by another member")
	}
	// "then, while more is set, the last epoch it got": the next page
	// starts after the commits_after it names (epochs > max(commits_after,
	// token's epoch − 1)).
	next := proto.Clone(fr).(*wirepb.RoomFetchRequest)
	next.CommitsAfter = tok.Epoch
	page := c.fetch(next)
	if page.Error != "" || len(page.Commits) != len(resp.Commits)-1 {
		t.Fatalf("joiner fetch after epoch %d: error %q, %d commits; want the %d after the token's commit", tok.Epoch, page.Error, len(page.Commits), len(resp.Commits)-1)
	}
	for _, raw := range page.Commits {
		p, err := checkOnItsOwn(raw)
		if err != nil {
			t.Fatalf("joiner fetch after epoch %d: %v", tok.Epoch, err)
		}
		if p.body.Epoch <= tok.Epoch {
			t.Fatalf("joiner fetch after epoch %d served a commit of epoch %d", tok.Epoch, p.body.Epoch)
		}
	}
	prev := first
	var took bool
	for i, raw := range resp.Commits[1:] {
		p, err := checkOnItsOwn(raw)
		if err != nil {
			t.Fatalf("fetched commit %d: %v", i+1, err)
		}
		if err := checkSuccessor(prev, p); err != nil {
			t.Fatalf("fetched commit %d: %v", i+1, err)
		}
		if bytes.Equal(p.hash, w.hash) {
			took = true
			break
		}
		prev = p
	}
	if !took {
		t.Fatal("the fetched chain does not hold the welcome taken from the topic")
	}
	// w is by the token's issuer, adds the joiner, before expiry.
	var adds bool
	for _, ch := range w.body.Changes {
		adds = adds || (ch.Kind == wirepb.ChangeKind_CHANGE_ADD && bytes.Equal(ch.Subject, c.id) && bytes.Equal(ch.Actor, tok.Issuer))
	}
	m := w.members[string(c.id)]
	if !adds || !bytes.Equal(w.body.Issuer, tok.Issuer) || w.body.IssuedAtMs >= tok.ExpiresAtMs || m == nil ||
		!bytes.Equal(m.KeyPackage, kp) || !bytes.Equal(m.Consent, req.Consent) || m.Role != wirepb.Role_ROLE_MEMBER {
		t.Fatalf("the welcome %v does not add the client as a member with its package and consent under the token", w.body)
	}
	if c.epochs[prev.body.Epoch] == nil {
		c.epochs[prev.body.Epoch] = &epochState{signed: prev.sc, body: prev.body, hash: prev.hash, ctx: prev.ctx}
	}
	c.take(w, true)
}

// TestPrivateRoomJoin checks "Joining: tokens, links and invitations",
// "/parley/roomjoin/2", "Commits" and "Key schedule" as a joiner sees
// them: the link decodes per "Contact links", its token is signed by the
// node over the room's genesis; the node accepts the join request, the
// commit that adds the client comes on the topic, is a valid successor of
// the token's commit, seals the joiner secret to the client's init key,
// and its confirmation tag matches the key schedule. The node then lists
// the client as a member.
func TestPrivateRoomJoin(t *testing.T) {
	node := startNode(t)
	room, link := privateRoom(t, node, "conf", 1)
	c := joinByLink(t, node, room, link)
	if c.cur != 2 {
		t.Fatalf("joined at epoch %d, want 2", c.cur)
	}
	info, err := node.Rooms().Info(context.Background(), "#conf")
	if err != nil {
		t.Fatal(err)
	}
	if info.Epoch != 2 || !slices.ContainsFunc(info.Members, func(m apitype.RoomMember) bool { return m.PeerID == c.peerID().String() }) {
		t.Fatalf("the node's room after the join: %+v", info)
	}
	// The token admitted one join: a second joiner is refused "used up",
	// and a request whose proof is not made with the join secret "bad
	// proof".
	other := newRoomClient(t, node, room)
	req := other.joinRequest(c.inv, other.newKeyPackage(time.Now()))
	if a := other.askJoin(node.Host().ID(), req); a.Error != "used up" {
		t.Errorf("second join under a one-use token: %q, want \"used up\"", a.Error)
	}
	bad := proto.Clone(req).(*wirepb.JoinRequest)
	bad.Proof[0] ^= 1
	if a := other.askJoin(node.Host().ID(), bad); a.Error != "bad proof" {
		t.Errorf("join request with a wrong proof: %q, want \"bad proof\"", a.Error)
	}
	// A request copied by another peer proves nothing for it.
	if a := other.askJoin(node.Host().ID(), c.joinRequest(c.inv, c.kp)); a.Error != "invalid request" {
		t.Errorf("the client's join request sent by another peer: %q, want \"invalid request\"", a.Error)
	}
	// The client is a member already: its request again is accepted.
	if a := c.askJoin(node.Host().ID(), c.joinRequest(c.inv, c.newKeyPackageKeep())); a.Error != "" {
		t.Errorf("a member's join request again: %q, want \"\" (a member already)", a.Error)
	}
}

// newKeyPackageKeep makes a key package without replacing the client's
// keys.
func (c *roomClient) newKeyPackageKeep() []byte {
	enc, init, kp := c.enc, c.init, c.kp
	out := c.newKeyPackage(time.Now())
	c.enc, c.init, c.kp = enc, init, kp
	return out
}

// TestPrivateRoomReceive checks "Messages" on what the node publishes: a
// RoomEnvelope (version 2, the room's id) with an AppMessage of the
// current epoch, its epoch_hash the first 8 bytes of the epoch's commit
// hash, a 16-byte msg_id, the MAC under the membership key over the MAC
// input, the text sealed under the node's sender chain at consecutive
// generations from 0, with an AD that binds the author and the msg_id.
func TestPrivateRoomReceive(t *testing.T) {
	node := startNode(t)
	room, link := privateRoom(t, node, "conf", 1)
	c := joinByLink(t, node, room, link)
	nodeID := []byte(node.Host().ID())
	e := c.epochs[c.cur]
	for i := range 3 {
		text := fmt.Sprintf("hello %d from the node", i)
		before := time.Now()
		sent, err := node.Rooms().Send(context.Background(), "#conf", text)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := c.nextApp()
		if m.Epoch != c.cur || m.Generation != uint32(i) || hex.EncodeToString(m.MsgId) != sent.ID || !bytes.Equal(m.EpochHash, e.hash[:8]) {
			t.Fatalf("message %d: epoch %d generation %d msg_id %x epoch_hash %x; want epoch %d, generation %d, msg_id %s, %x",
				i, m.Epoch, m.Generation, m.MsgId, m.EpochHash, c.cur, i, sent.ID, e.hash[:8])
		}
		if ms := int64(m.Hlc >> 16); ms < before.UnixMilli() || ms > time.Now().UnixMilli() {
			t.Errorf("hlc's physical part %d is not the node's now", ms)
		}
		// The AD binds author and msg_id: under the right key but another
		// author or msg_id, the ciphertext does not open; the MAC covers
		// the author.
		for _, w := range []struct {
			what          string
			author, msgID []byte
		}{{"another author", c.id, m.MsgId}, {"another msg_id", nodeID, newID()}} {
			x := proto.Clone(m).(*wirepb.AppMessage)
			x.MsgId = w.msgID
			if _, err := sealedFor(t, room, e, nodeID, w.author, x); err == nil {
				t.Errorf("message %d opens with the AD of %s", i, w.what)
			}
		}
		if bytes.Equal(mac(e.keys.membership, macInput(room, m, c.id)), m.MembershipMac) {
			t.Error("the MAC does not depend on the author")
		}
		got, err := c.openApp(nodeID, m)
		if err != nil || got != text {
			t.Fatalf("message %d: %q, %v; want %q", i, got, err, text)
		}
	}
}

// sealedFor opens m with keyAuthor's message key and the AD naming
// adAuthor.
func sealedFor(t *testing.T, room []byte, e *epochState, keyAuthor, adAuthor []byte, m *wirepb.AppMessage) ([]byte, error) {
	aead, err := newAEAD(messageKey(t, e, keyAuthor, m.Generation))
	if err != nil {
		t.Fatal(err)
	}
	return aead.Open(nil, make([]byte, 12), m.Ciphertext, messageAD(room, m.Epoch, adAuthor, m.Generation, m.MsgId, m.Hlc))
}

// TestPrivateRoomSend checks that the node shows, under the client's
// name, an AppMessage the client sealed itself per "Messages", dated by
// its hlc, and logs it once.
func TestPrivateRoomSend(t *testing.T) {
	node := startNode(t)
	room, link := privateRoom(t, node, "conf", 1)
	c := joinByLink(t, node, room, link)
	ev, cancel := node.Chat().Subscribe()
	defer cancel()
	for i := range 3 {
		text := fmt.Sprintf("hello %d from a foreign client", i)
		m := c.send(0, text)
		got := shown(t, ev, c.peerID(), m.MsgId)
		if at := time.UnixMilli(int64(m.Hlc >> 16)); got.Text != text || got.Outgoing || got.Conv != "#conf" || !got.SentAt.Equal(at) {
			t.Fatalf("shown as %+v; want %q from %s sent at %v", got, text, c.peerID(), at)
		}
		if n := len(logged(t, node, "#conf", c.peerID(), m.MsgId)); n != 1 {
			t.Fatalf("the log holds the message %d times", n)
		}
	}
}
