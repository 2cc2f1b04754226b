package conformance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// This file is the other half of the foreign client of private rooms: an
// owner. Where privateclient_test.go follows a room the node made, this
// one makes the room itself, per "Commits", "Key schedule" and "Joining"
// (genesis, a token and a link, /parley/roomjoin/2 and /parley/roomsync/2
// served as an issuer and a member would), lets the node join it as a
// plain member, and then signs any commit a test wants: the owner's, an
// admin's, a member's, a removed member's, rivals and older epochs, each
// with the real key schedule, so the node can open what it should. Like
// the rest of the foreign client it uses the standard library, x/crypto,
// libp2p and wirepb only.

// ident is one room identity the test holds the keys of: an Ed25519 peer
// ID and a key package (encryption and init keys).
type ident struct {
	key       ed25519.PrivateKey
	id        []byte // binary peer ID
	enc, init hpke.PrivateKey
	kp        []byte // SignedKeyPackage
}

func newIdent(t *testing.T) *ident {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return identOf(t, key)
}

// identOf makes a key package (created now) for key.
func identOf(t *testing.T, key ed25519.PrivateKey) *ident {
	t.Helper()
	return identAt(t, key, time.Now())
}

// identAt makes a key package for key dated created.
func identAt(t *testing.T, key ed25519.PrivateKey, created time.Time) *ident {
	t.Helper()
	i := &ident{key: key, id: ed25519PeerID(key.Public().(ed25519.PublicKey))}
	var err error
	if i.enc, err = roomKEM.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	if i.init, err = roomKEM.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	body := marshalDet(t, &wirepb.KeyPackage{Owner: i.id, HpkePublicKey: i.enc.PublicKey().Bytes(), CreatedAtMs: created.UnixMilli(), HpkeInitKey: i.init.PublicKey().Bytes()})
	i.kp = marshalDet(t, &wirepb.SignedKeyPackage{KeyPackage: body, Signature: ed25519.Sign(key, cat(label0("parley/room/2 key package"), body))})
	return i
}

func (i *ident) peerID(t *testing.T) peer.ID {
	t.Helper()
	p, err := peer.IDFromBytes(i.id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// consent is "parley/room/2 join consent" 0x00 ‖ room id ‖ SHA-256(key
// package), signed by the joiner.
func (i *ident) consent(room []byte) []byte {
	return ed25519.Sign(i.key, cat(label0("parley/room/2 join consent"), room, sha(i.kp)))
}

// link is one commit of the chain the owner made, with the init secret of
// its epoch (what "Key schedule" keeps to seal the next commit) and the
// rest of its epoch's keys.
type link struct {
	sc   *wirepb.SignedCommit
	p    *parsedCommit
	init []byte
	keys epochKeys
}

// epochState is the epoch l starts, as a member holds it.
func (l *link) epochState() *epochState {
	return &epochState{signed: l.sc, body: l.p.body, hash: l.p.hash, ctx: l.p.ctx, keys: &l.keys, used: map[string]map[uint32]bool{}}
}

func (l *link) epoch() uint64 { return l.p.body.Epoch }

// member lists id in a roster with role (consent set iff the commit adds
// it).
func member(id *ident, role wirepb.Role, consent []byte) *wirepb.CommitMember {
	return &wirepb.CommitMember{Role: role, KeyPackage: id.kp, Consent: consent}
}

// seal makes a commit after parent (nil: genesis) by issuer with the given
// roster and changes, per "Commits" and "Key schedule": a fresh commit
// secret, the joiner secret sealed to the init key of every member the
// changes add (the creator at genesis), the commit secret to the
// encryption key of every other member, the confirmation tag, the
// signature. A commit by an admin of parent is checked as its successor
// ("Successor"); anyone else's is made as asked, for the node to refuse.
func seal(t *testing.T, room []byte, parent *link, issuer *ident, members []*wirepb.CommitMember, changes ...*wirepb.Change) *link {
	t.Helper()
	return sealWith(t, true, room, parent, issuer, members, changes...)
}

// sealWith is seal; unless check, the commit is not checked as a
// successor (a test makes an admin's invalid commit on purpose).
func sealWith(t *testing.T, check bool, room []byte, parent *link, issuer *ident, members []*wirepb.CommitMember, changes ...*wirepb.Change) *link {
	t.Helper()
	b := &wirepb.CommitBody{RoomId: room, Epoch: 1, Parent: make([]byte, 32), Issuer: issuer.id, IssuedAtMs: time.Now().UnixMilli(), Members: members, Changes: changes}
	prevInit := make([]byte, 32)
	if parent != nil {
		b.Epoch, b.Parent, prevInit = parent.epoch()+1, parent.p.hash, parent.init
	}
	added := map[string]bool{}
	for _, ch := range changes {
		switch ch.Kind {
		case wirepb.ChangeKind_CHANGE_ADD:
			added[string(ch.Subject)] = true
		case wirepb.ChangeKind_CHANGE_CREATE:
			added[string(issuer.id)] = true
		}
	}
	body := marshalDet(t, b)
	ctx := sha(label0("parley/room/2 commit body"), body)
	cs := make([]byte, 32)
	rand.Read(cs)
	k := keySchedule(t, prevInit, cs, ctx)
	var sealed wirepb.SealedSecrets
	for _, m := range members {
		kp, err := checkKeyPackage(m.KeyPackage)
		if err != nil {
			t.Fatal(err)
		}
		to, info, pt := kp.HpkePublicKey, cat([]byte("parley/room/2 commit secret"), room, u64(b.Epoch)), cs
		if added[string(kp.Owner)] {
			to, info, pt = kp.HpkeInitKey, cat([]byte("parley/room/2 welcome"), room, u64(b.Epoch)), k.joiner
		}
		pub, err := roomKEM.NewPublicKey(to)
		if err != nil {
			t.Fatal(err)
		}
		enc, s, err := hpke.NewSender(pub, roomKDF, roomAEAD, info)
		if err != nil {
			t.Fatal(err)
		}
		ct, err := s.Seal(ctx, pt)
		if err != nil {
			t.Fatal(err)
		}
		sealed.Secrets = append(sealed.Secrets, &wirepb.SealedSecret{Enc: enc, Ciphertext: ct})
	}
	sb := marshalDet(t, &sealed)
	in := cat(label0("parley/room/2 commit"), u32(uint32(len(body))), body, sha(sb), k.tag)
	sc := &wirepb.SignedCommit{Body: body, Sealed: sb, Signature: ed25519.Sign(issuer.key, in), ConfirmationTag: k.tag}
	p, err := checkSigned(sc)
	if err != nil {
		t.Fatalf("the commit made: %v", err)
	}
	if r, _ := roleIn(parent, issuer.id); check && isAdmin(r) {
		// Meant to be valid: check it as every member will.
		if err := checkSuccessor(parent.p, p); err != nil {
			t.Fatalf("the commit made is no valid successor: %v", err)
		}
	}
	return &link{sc: sc, p: p, init: k.init, keys: k}
}

// roleIn is id's role in l's roster.
func roleIn(l *link, id []byte) (wirepb.Role, bool) {
	if l == nil {
		return wirepb.Role_ROLE_UNSPECIFIED, false
	}
	m := l.p.members[string(id)]
	if m == nil {
		return wirepb.Role_ROLE_UNSPECIFIED, false
	}
	return m.Role, true
}

// rekey is a REKEY of parent by issuer, the roster unchanged.
func rekey(t *testing.T, room []byte, parent *link, issuer *ident) *link {
	t.Helper()
	return seal(t, room, parent, issuer, stripConsent(parent.p.body.Members), &wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_REKEY, Actor: issuer.id})
}

// addMember is parent's roster plus id as a plain member, added by issuer.
func addMember(t *testing.T, room []byte, parent *link, issuer, id *ident) *link {
	t.Helper()
	ms := append(append([]*wirepb.CommitMember(nil), stripConsent(parent.p.body.Members)...), member(id, wirepb.Role_ROLE_MEMBER, id.consent(room)))
	return seal(t, room, parent, issuer, ms, &wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_ADD, Subject: id.id, Actor: issuer.id, Role: wirepb.Role_ROLE_MEMBER})
}

// removeMember is parent's roster without subject, removed by issuer.
func removeMember(t *testing.T, room []byte, parent *link, issuer *ident, subject []byte) *link {
	t.Helper()
	var ms []*wirepb.CommitMember
	for _, m := range stripConsent(parent.p.body.Members) {
		if !bytes.Equal(ownerOf(m.KeyPackage), subject) {
			ms = append(ms, m)
		}
	}
	return seal(t, room, parent, issuer, ms, &wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_REMOVE, Subject: subject, Actor: issuer.id})
}

// stripConsent copies a roster for the next commit: a consent is set only
// in the commit that adds its member.
func stripConsent(ms []*wirepb.CommitMember) []*wirepb.CommitMember {
	out := make([]*wirepb.CommitMember, len(ms))
	for i, m := range ms {
		out[i] = &wirepb.CommitMember{Role: m.Role, KeyPackage: m.KeyPackage}
	}
	return out
}

// ownedRoom is a private room the foreign owner made, with the node in it
// as a plain member.
type ownedRoom struct {
	*roomClient
	owner *ident
	name  string
	chain []*link // the owner's chain: chain[i] is epoch i+1

	mu      sync.Mutex // guards served, fetches
	served  []*link    // what /parley/roomsync/2 serves
	fetches chan *wirepb.RoomFetchRequest
}

// tip is the newest commit of the owner's chain.
func (o *ownedRoom) tip() *link { return o.chain[len(o.chain)-1] }

// extend appends l to the owner's chain (it is the room's now).
func (o *ownedRoom) extend(l *link) *link {
	o.chain = append(o.chain, l)
	return l
}

// serve makes /parley/roomsync/2 serve the chain up to l.
func (o *ownedRoom) serve(ls ...*link) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.served = append([]*link(nil), ls...)
}

// newOwnedRoom runs "Joining" from the issuer's side: the client creates a
// room (genesis, itself the owner), makes a one-use link, and the node
// joins it with the link: its join request comes on /parley/roomjoin/2,
// the client commits the ADD and serves the chain, with the token, on
// /parley/roomsync/2 (a room of one: the issuer's chain is enough). It
// returns once the node is a member at epoch 2; the client is then on the
// room's topic with the node.
func newOwnedRoom(t *testing.T, node *peertest.Running, name string) *ownedRoom {
	t.Helper()
	room := newID32()
	o := &ownedRoom{roomClient: newRoomHost(t, node, room, true), name: "#" + name, fetches: make(chan *wirepb.RoomFetchRequest, 256)}
	o.owner = identOf(t, o.key)
	o.extend(seal(t, room, nil, o.owner, []*wirepb.CommitMember{member(o.owner, wirepb.Role_ROLE_OWNER, nil)},
		&wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_CREATE, Actor: o.owner.id}))
	if err := checkGenesis(o.tip().p); err != nil {
		t.Fatal(err)
	}
	o.serve(o.chain...)

	secret := newID32()
	tokBody := marshalDet(t, &wirepb.JoinToken{RoomId: room, TokenId: newID(), Issuer: o.owner.id, ExpiresAtMs: time.Now().Add(time.Hour).UnixMilli(),
		Uses: 1, CommitHash: o.tip().p.hash, Epoch: 1})
	tok := marshalDet(t, &wirepb.SignedJoinToken{Token: tokBody, Signature: ed25519.Sign(o.owner.key, cat(label0("parley/room/2 join token"), tokBody))})
	var addrs [][]byte
	for _, a := range o.h.Addrs() {
		addrs = append(addrs, a.Bytes())
	}
	inv := marshalDet(t, &wirepb.RoomInvitation{Version: 2, RoomId: room, Name: name, Token: tok, Addrs: addrs, JoinSecret: secret})
	msg := cat([]byte{2}, inv)
	crc := crc32.ChecksumIEEE(cat([]byte("parley/link/2 room"), msg))
	l := "parley://room/" + base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint32(msg, crc))

	requests := make(chan *wirepb.JoinRequest, 1)
	o.h.SetStreamHandler(protoRoomJoin, func(st network.Stream) {
		defer st.Close()
		st.SetDeadline(time.Now().Add(20 * time.Second))
		var req wirepb.JoinRequest
		if err := readFrameRaw(st, 2<<10, &req); err != nil {
			st.Reset()
			return
		}
		answer := &wirepb.JoinAnswer{}
		if !bytes.Equal(req.Token, tok) || !bytes.Equal(ownerOf(req.KeyPackage), []byte(st.Conn().RemotePeer())) ||
			!bytes.Equal(mac(secret, label0("parley/room/2 join proof"), lp(tok), lp([]byte(st.Conn().RemotePeer())), lp(req.KeyPackage)), req.Proof) {
			answer.Error = "invalid request"
		} else {
			select {
			case requests <- &req:
			default: // asked again: admitted already
			}
		}
		writeFrameRaw(st, answer)
	})
	o.h.SetStreamHandler(protoRoomSync2, o.serveFetch)

	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := node.Rooms().JoinLink(ctx, l)
		done <- err
	}()
	var req *wirepb.JoinRequest
	select {
	case req = <-requests:
	case err := <-done:
		t.Fatalf("the node's join ended before it asked: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the node never asked to join on /parley/roomjoin/2")
	}
	nodeID := []byte(node.Host().ID())
	ms := append(stripConsent(o.tip().p.body.Members), &wirepb.CommitMember{Role: wirepb.Role_ROLE_MEMBER, KeyPackage: req.KeyPackage, Consent: req.Consent})
	o.extend(seal(t, room, o.tip(), o.owner, ms, &wirepb.Change{Kind: wirepb.ChangeKind_CHANGE_ADD, Subject: nodeID, Actor: o.owner.id, Role: wirepb.Role_ROLE_MEMBER}))
	o.serve(o.chain...)
	if err := <-done; err != nil {
		t.Fatalf("the node's join: %v", err)
	}
	o.waitEpoch(t, 2)
	o.topic, o.sub = o.joinTopic(privateTopic(room))
	return o
}

// serveFetch answers /parley/roomsync/2 as a member that follows the
// served chain: its commits after commits_after, no message. Every
// request is recorded.
func (o *ownedRoom) serveFetch(st network.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	var req wirepb.RoomFetchRequest
	if err := readFrameRaw(st, 4<<10, &req); err != nil {
		st.Reset()
		return
	}
	select {
	case o.fetches <- &req:
	default:
	}
	o.mu.Lock()
	var resp wirepb.RoomFetchResponse
	for _, l := range o.served {
		if l.epoch() > req.CommitsAfter {
			resp.Commits = append(resp.Commits, marshalDet(o.t, l.sc))
		}
	}
	o.mu.Unlock()
	writeFrameRaw(st, &resp)
}

// info is the node's view of the room.
func (o *ownedRoom) info(t *testing.T) apitype.Room {
	t.Helper()
	info, err := o.node.Rooms().Info(context.Background(), o.name)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// waitEpoch waits until the node is at epoch e of the room.
func (o *ownedRoom) waitEpoch(t *testing.T, e uint64) apitype.Room {
	t.Helper()
	var info apitype.Room
	peertest.Eventually(t, 30*time.Second, "the node at the room's epoch", func() bool {
		info = o.info(t)
		if info.State == "removed" || info.State == "left" {
			t.Fatalf("the node is out of the room (%s: %s), want it at epoch %d", info.State, info.Detail, e)
		}
		if info.Epoch > e {
			t.Fatalf("the node is at epoch %d, past %d", info.Epoch, e)
		}
		return info.Epoch == e && info.State == "joined"
	})
	return info
}
