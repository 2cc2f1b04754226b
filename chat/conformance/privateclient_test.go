package conformance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// This file is a foreign client of private rooms (version 2), written from
// "Private rooms (version 2)" of PROTOCOL.md with the standard library,
// x/crypto, libp2p, pubsub and the generated wirepb code only: it decodes
// a room link, makes key packages and join requests, asks on
// /parley/roomjoin/2, fetches on /parley/roomsync/2, checks every commit
// as a successor of its parent, opens its sealed entry, runs the key
// schedule, and seals and opens application messages. It never imports
// chat/room or chat/room/group, and frames streams itself ("Transport",
// Framing).

// The protocols of "/parley/roomjoin/2" and "/parley/roomsync/2".
const (
	protoRoomJoin  = protocol.ID("/parley/roomjoin/2")
	protoRoomSync2 = protocol.ID("/parley/roomsync/2")
)

func privateTopic(id []byte) string { return "parley/room/2/" + hex.EncodeToString(id) }

// Framing ("Transport"): each protobuf message is preceded by its length
// as a minimal unsigned varint of at most 5 bytes.

func writeFrameRaw(w io.Writer, m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(binary.AppendUvarint(nil, uint64(len(b))), b...))
	return err
}

func readFrameRaw(r io.Reader, max int, m proto.Message) error {
	br := bufio.NewReader(r)
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return err
	}
	if n > uint64(max) {
		return fmt.Errorf("frame of %d bytes over the cap %d", n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return err
	}
	return proto.Unmarshal(b, m)
}

// decodeRoomLink decodes a parley://room/ link per "Contact links" and
// "Joining": unpadded base64url of u8 2 ‖ RoomInvitation ‖ CRC-32 (IEEE,
// big-endian) of "parley/link/2 room" ‖ u8 2 ‖ message.
func decodeRoomLink(t *testing.T, link string) *wirepb.RoomInvitation {
	t.Helper()
	rest, ok := strings.CutPrefix(link, "parley://room/")
	if !ok {
		t.Fatalf("room link %q lacks the parley://room/ prefix", link)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		t.Fatalf("room link: %v", err)
	}
	if len(raw) < 5 || raw[0] != 2 {
		t.Fatalf("room link: %d bytes, version byte %d", len(raw), raw[0])
	}
	msg, sum := raw[1:len(raw)-4], raw[len(raw)-4:]
	crc := crc32.ChecksumIEEE(cat([]byte("parley/link/2 room"), []byte{2}, msg))
	if binary.BigEndian.Uint32(sum) != crc {
		t.Fatalf("room link: checksum %x, want %08x", sum, crc)
	}
	var inv wirepb.RoomInvitation
	unmarshalStrict(t, "the link's RoomInvitation", msg, &inv)
	return &inv
}

// checkPubsubSig checks a gossipsub message as StrictSign signs it: the
// Ed25519 key in `from` signs "libp2p-pubsub:" ‖ Message{from = 1, data
// = 2, seqno = 3, topic = 4} (libp2p pubsub's rpc.proto), with no key
// field.
func checkPubsubSig(t *testing.T, topic string, from, data, seqno, key, sig []byte) {
	t.Helper()
	var in []byte
	in = protowire.AppendTag(in, 1, protowire.BytesType)
	in = protowire.AppendBytes(in, from)
	in = protowire.AppendTag(in, 2, protowire.BytesType)
	in = protowire.AppendBytes(in, data)
	in = protowire.AppendTag(in, 3, protowire.BytesType)
	in = protowire.AppendBytes(in, seqno)
	in = protowire.AppendTag(in, 4, protowire.BytesType)
	in = protowire.AppendString(in, topic)
	if len(from) != 38 || !bytes.Equal(from[:6], []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}) || len(key) != 0 || len(seqno) != 8 {
		t.Fatalf("gossipsub message: from %x, key %d bytes, seqno %d bytes", from, len(key), len(seqno))
	}
	if !ed25519.Verify(ed25519.PublicKey(from[6:]), append([]byte("libp2p-pubsub:"), in...), sig) {
		t.Fatal("the gossipsub signature does not verify over \"libp2p-pubsub:\" ‖ Message{from, data, seqno, topic}")
	}
}

// epochState is what the client holds of one epoch.
type epochState struct {
	signed *wirepb.SignedCommit
	body   *wirepb.CommitBody
	hash   []byte
	ctx    []byte
	keys   *epochKeys // nil: an epoch we hold no secret of (before we joined)
	// used are the generations of each author the client opened.
	used map[string]map[uint32]bool
}

func (e *epochState) role(id []byte) (wirepb.Role, bool) {
	for _, m := range e.body.Members {
		if bytes.Equal(ownerOf(m.KeyPackage), id) {
			return m.Role, true
		}
	}
	return wirepb.Role_ROLE_UNSPECIFIED, false
}

// ownerOf reads the owner of a SignedKeyPackage already checked.
func ownerOf(skpb []byte) []byte {
	var skp wirepb.SignedKeyPackage
	var kp wirepb.KeyPackage
	if proto.Unmarshal(skpb, &skp) != nil || proto.Unmarshal(skp.KeyPackage, &kp) != nil {
		return nil
	}
	return kp.Owner
}

// roomClient is a foreign client of one private room: its own libp2p host
// and gossipsub router on the room's topic.
type roomClient struct {
	t     *testing.T
	node  *peertest.Running
	h     host.Host
	key   ed25519.PrivateKey
	id    []byte // binary peer ID
	room  []byte
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	ps    *pubsub.PubSub

	enc, init hpke.PrivateKey // key package private keys (init nil once erased)
	kp        []byte          // our current SignedKeyPackage
	// privs holds every HPKE private key of ours not erased, by public key.
	privs map[string]hpke.PrivateKey

	epochs  map[uint64]*epochState
	cur     uint64
	sendGen map[uint64]uint32
	last    uint64 // the room's clock
}

// newRoomClient starts a bare host with its own gossipsub router (StrictSign,
// flood publishing, no peer exchange, messages up to 516 KiB, as "Rooms"
// says), connects it to the node, subscribes to the room's topic and
// returns once each side sees the other on it.
func newRoomClient(t *testing.T, node *peertest.Running, room []byte) *roomClient {
	t.Helper()
	return newRoomHost(t, node, room, false)
}

// newRoomHost is newRoomClient; with offTopic, the client connects to the
// node without subscribing to the room's topic.
func newRoomHost(t *testing.T, node *peertest.Running, room []byte, offTopic bool) *roomClient {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := priv.Raw()
	ctx, cancel := context.WithCancel(context.Background())
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(false),
		pubsub.WithMaxMessageSize(516<<10))
	if err != nil {
		t.Fatal(err)
	}
	c := &roomClient{t: t, node: node, h: h, key: ed25519.PrivateKey(raw), id: []byte(h.ID()), room: room, ps: ps,
		epochs: map[uint64]*epochState{}, sendGen: map[uint64]uint32{}, privs: map[string]hpke.PrivateKey{}}
	t.Cleanup(func() {
		cancel()
		h.Close()
	})
	if !offTopic {
		c.topic, c.sub = c.joinTopic(privateTopic(room))
	} else if err := h.Connect(ctx, node.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	return c
}

// joinTopic subscribes to a topic and waits until the node and the client
// see each other on it.
func (c *roomClient) joinTopic(name string) (*pubsub.Topic, *pubsub.Subscription) {
	t := c.t
	t.Helper()
	topic, err := c.ps.Join(name)
	if err != nil {
		t.Fatal(err)
	}
	events, err := topic.EventHandler()
	if err != nil {
		t.Fatal(err)
	}
	defer events.Cancel()
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Cancel)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.h.Connect(ctx, c.node.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(topic.ListPeers(), c.node.Host().ID()) {
		for {
			ev, err := events.NextPeerEvent(ctx)
			if err != nil {
				t.Fatalf("the node never joined the client's view of %s: %v", name, err)
			}
			if ev.Type == pubsub.PeerJoin && ev.Peer == c.node.Host().ID() {
				break
			}
		}
	}
	peertest.Eventually(t, 30*time.Second, "the node to see the client on "+name, func() bool {
		return slices.Contains(c.node.Rooms().PubSub().ListPeers(name), c.h.ID())
	})
	return topic, sub
}

func (c *roomClient) peerID() peer.ID { return c.h.ID() }

// newKeyPackage makes a fresh key package per "Key packages": an
// encryption key and a one-time init key (DHKEM(X25519)), signed by the
// client over "parley/room/2 key package" 0x00 ‖ key_package.
func (c *roomClient) newKeyPackage(created time.Time) []byte {
	t := c.t
	t.Helper()
	var err error
	if c.enc, err = roomKEM.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	if c.init, err = roomKEM.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	c.privs[string(c.enc.PublicKey().Bytes())] = c.enc
	c.privs[string(c.init.PublicKey().Bytes())] = c.init
	body := marshalDet(t, &wirepb.KeyPackage{Owner: c.id, HpkePublicKey: c.enc.PublicKey().Bytes(), CreatedAtMs: created.UnixMilli(), HpkeInitKey: c.init.PublicKey().Bytes()})
	c.kp = marshalDet(t, &wirepb.SignedKeyPackage{KeyPackage: body, Signature: ed25519.Sign(c.key, cat(label0("parley/room/2 key package"), body))})
	if len(c.kp) > 512 {
		t.Fatalf("key package of %d bytes", len(c.kp))
	}
	return c.kp
}

func marshalDet(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// joinRequest builds a JoinRequest under the invitation per "Joining":
// proof = HMAC(join_secret, "parley/room/2 join proof" 0x00 ‖ lp(token) ‖
// lp(joiner) ‖ lp(key_package)), consent = Ed25519(joiner, "parley/room/2
// join consent" 0x00 ‖ room id ‖ SHA-256(key_package)).
func (c *roomClient) joinRequest(inv *wirepb.RoomInvitation, kp []byte) *wirepb.JoinRequest {
	return &wirepb.JoinRequest{
		Token:      inv.Token,
		KeyPackage: kp,
		Proof:      mac(inv.JoinSecret, label0("parley/room/2 join proof"), lp(inv.Token), lp(c.id), lp(kp)),
		Consent:    ed25519.Sign(c.key, cat(label0("parley/room/2 join consent"), inv.RoomId, sha(kp))),
	}
}

// roundTrip opens a stream of proto to p, writes one frame, closes its side
// and reads one answer frame.
func (c *roomClient) roundTrip(p peer.ID, proto_ protocol.ID, req, resp proto.Message, max int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := c.h.NewStream(ctx, p, proto_)
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	if err := writeFrameRaw(st, req); err != nil {
		return err
	}
	st.CloseWrite()
	return readFrameRaw(st, max, resp)
}

// askJoin sends the request on /parley/roomjoin/2 (≤ 2 KiB) and reads the
// JoinAnswer (≤ 1 KiB).
func (c *roomClient) askJoin(issuer peer.ID, req *wirepb.JoinRequest) *wirepb.JoinAnswer {
	c.t.Helper()
	if n := proto.Size(req); n > 2<<10 {
		c.t.Fatalf("join request of %d bytes", n)
	}
	var a wirepb.JoinAnswer
	if err := c.roundTrip(issuer, protoRoomJoin, req, &a, 1<<10); err != nil {
		c.t.Fatalf("/parley/roomjoin/2: %v", err)
	}
	return &a
}

// fetch sends a RoomFetchRequest on /parley/roomsync/2 (≤ 4 KiB) and
// reads the response (≤ 1 MiB).
func (c *roomClient) fetch(req *wirepb.RoomFetchRequest) *wirepb.RoomFetchResponse {
	c.t.Helper()
	var resp wirepb.RoomFetchResponse
	if err := c.roundTrip(c.node.Host().ID(), protoRoomSync2, req, &resp, 1<<20); err != nil {
		c.t.Fatalf("/parley/roomsync/2: %v", err)
	}
	return &resp
}

// fetchAsMember asks for commits after commitsAfter and messages after
// afterHLC with a proof of epoch e: HMAC(sync key of e, "parley/room/2 sync
// proof" 0x00 ‖ lp(room id) ‖ u64(e) ‖ u64(commits_after) ‖ u64(after_hlc)
// ‖ u32(limit) ‖ lp(requester) ‖ lp(responder)).
func (c *roomClient) fetchAsMember(e uint64, commitsAfter, afterHLC uint64, limit uint32) *wirepb.RoomFetchResponse {
	c.t.Helper()
	req := &wirepb.RoomFetchRequest{Version: 2, RoomId: c.room, Epoch: e, CommitsAfter: commitsAfter, AfterHlc: afterHLC, Limit: limit}
	req.Proof = c.syncProof(e, req)
	return c.fetch(req)
}

func (c *roomClient) syncProof(e uint64, req *wirepb.RoomFetchRequest) []byte {
	ep := c.epochs[e]
	if ep == nil || ep.keys == nil {
		c.t.Fatalf("no keys of epoch %d", e)
	}
	in := cat(label0("parley/room/2 sync proof"), lp(req.RoomId), u64(req.Epoch), u64(req.CommitsAfter), u64(req.AfterHlc), u32(req.Limit), lp(c.id), lp([]byte(c.node.Host().ID())))
	return mac(ep.keys.sync, in)
}

// envelope reads the next message of the node on the topic whose envelope
// ok accepts, checking the gossipsub signature and the envelope rules of
// "Ids and topics". The client's own publications are skipped.
func (c *roomClient) envelope(ctx context.Context, ok func(*wirepb.RoomEnvelope) bool) (*wirepb.RoomEnvelope, *pubsub.Message, error) {
	t := c.t
	t.Helper()
	for {
		m, err := c.sub.Next(ctx)
		if err != nil {
			return nil, nil, err
		}
		if m.GetFrom() != c.node.Host().ID() {
			continue
		}
		pm := m.Message
		checkPubsubSig(t, privateTopic(c.room), pm.From, pm.Data, pm.Seqno, pm.Key, pm.Signature)
		env := c.checkEnvelope(pm.Data)
		if ok(env) {
			return env, m, nil
		}
	}
}

// checkEnvelope decodes a RoomEnvelope per "Ids and topics" and "Sizes".
func (c *roomClient) checkEnvelope(data []byte) *wirepb.RoomEnvelope {
	t := c.t
	t.Helper()
	var env wirepb.RoomEnvelope
	unmarshalStrict(t, "RoomEnvelope", data, &env)
	if env.Version != 2 || !bytes.Equal(env.RoomId, c.room) || env.Body == nil {
		t.Fatalf("envelope: version %d, room %x, body %T; want 2, %x, one body", env.Version, env.RoomId, env.Body, c.room)
	}
	limit := 16 << 10
	switch env.Body.(type) {
	case *wirepb.RoomEnvelope_Commit:
		limit = 512 << 10
	case *wirepb.RoomEnvelope_JoinRequest:
		limit = 2 << 10
	}
	if len(data) > limit {
		t.Fatalf("envelope with %T of %d bytes, over %d", env.Body, len(data), limit)
	}
	return &env
}

// nextCommit waits for the node's commit of epoch e on the topic.
func (c *roomClient) nextCommit(e uint64) *wirepb.SignedCommit {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, _, err := c.envelope(ctx, func(env *wirepb.RoomEnvelope) bool {
		sc := env.GetCommit()
		if sc == nil {
			return false
		}
		var b wirepb.CommitBody
		return proto.Unmarshal(sc.Body, &b) == nil && b.Epoch == e
	})
	if err != nil {
		c.t.Fatalf("no commit of epoch %d on the topic: %v", e, err)
	}
	return env.GetCommit()
}

// nextWelcome waits for the node's commit, after epoch after, that lists
// the client.
func (c *roomClient) nextWelcome(after uint64) *wirepb.SignedCommit {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, _, err := c.envelope(ctx, func(env *wirepb.RoomEnvelope) bool {
		sc := env.GetCommit()
		if sc == nil {
			return false
		}
		p, err := checkSigned(sc)
		return err == nil && p.body.Epoch > after && p.members[string(c.id)] != nil
	})
	if err != nil {
		c.t.Fatalf("no commit adding the client on the topic: %v", err)
	}
	return env.GetCommit()
}

// nextApp waits for the node's next application message on the topic.
func (c *roomClient) nextApp() (*wirepb.AppMessage, *pubsub.Message) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, m, err := c.envelope(ctx, func(env *wirepb.RoomEnvelope) bool { return env.GetApp() != nil })
	if err != nil {
		c.t.Fatalf("no application message of the node on the topic: %v", err)
	}
	return env.GetApp(), m
}

// checkKeyPackage applies "Key packages" to a SignedKeyPackage.
func checkKeyPackage(skpb []byte) (*wirepb.KeyPackage, error) {
	var skp wirepb.SignedKeyPackage
	var kp wirepb.KeyPackage
	if len(skpb) > 512 {
		return nil, errors.New("over 512 bytes")
	}
	if err := strictDecode(skpb, &skp); err != nil {
		return nil, err
	}
	if err := strictDecode(skp.KeyPackage, &kp); err != nil {
		return nil, err
	}
	if len(kp.Owner) == 0 || len(kp.Owner) > 64 || len(kp.HpkePublicKey) != 32 || len(kp.HpkeInitKey) != 32 ||
		bytes.Equal(kp.HpkePublicKey, kp.HpkeInitKey) || kp.CreatedAtMs <= 0 {
		return nil, fmt.Errorf("key package fields: %v", &kp)
	}
	pub, err := ed25519Of(kp.Owner)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(pub, cat(label0("parley/room/2 key package"), skp.KeyPackage), skp.Signature) {
		return nil, errors.New("key package signature")
	}
	return &kp, nil
}

func strictDecode(b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return err
	}
	if len(m.ProtoReflect().GetUnknown()) != 0 {
		return errors.New("unknown fields")
	}
	return nil
}

// ed25519Of is the Ed25519 key a binary peer ID embeds ("Rooms",
// Notation); any other key type cannot sign.
func ed25519Of(id []byte) (ed25519.PublicKey, error) {
	if len(id) != 38 || !bytes.Equal(id[:6], []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}) {
		return nil, fmt.Errorf("peer ID %x holds no Ed25519 key", id)
	}
	return ed25519.PublicKey(id[6:]), nil
}

// parsedCommit is a SignedCommit checked "on its own" ("Commits").
type parsedCommit struct {
	sc      *wirepb.SignedCommit
	body    *wirepb.CommitBody
	sealed  *wirepb.SealedSecrets
	ctx     []byte
	hash    []byte
	members map[string]*wirepb.CommitMember
	kps     map[string]*wirepb.KeyPackage
}

// checkOnItsOwn applies "Validity on its own" and computes the context and
// hash: context = SHA-256("parley/room/2 commit body" 0x00 ‖ body);
// signing input = "parley/room/2 commit" 0x00 ‖ u32(len(body)) ‖ body ‖
// SHA-256(sealed) ‖ confirmation_tag; hash = SHA-256(signing input). The
// key packages are checked here too (the caller checks authority first
// when it matters).
func checkOnItsOwn(raw []byte) (*parsedCommit, error) {
	var sc wirepb.SignedCommit
	if len(raw) > 512<<10 {
		return nil, errors.New("commit over 512 KiB")
	}
	if err := strictDecode(raw, &sc); err != nil {
		return nil, err
	}
	return checkSigned(&sc)
}

func checkSigned(sc *wirepb.SignedCommit) (*parsedCommit, error) {
	p := &parsedCommit{sc: sc, body: new(wirepb.CommitBody), sealed: new(wirepb.SealedSecrets), members: map[string]*wirepb.CommitMember{}, kps: map[string]*wirepb.KeyPackage{}}
	if err := strictDecode(sc.Body, p.body); err != nil {
		return nil, err
	}
	if err := strictDecode(sc.Sealed, p.sealed); err != nil {
		return nil, err
	}
	b := p.body
	if len(b.RoomId) != 32 || b.Epoch < 1 || len(b.Parent) != 32 || (b.Epoch == 1) != bytes.Equal(b.Parent, make([]byte, 32)) || b.IssuedAtMs <= 0 {
		return nil, fmt.Errorf("body fields: room %d bytes, epoch %d, parent %x, issued %d", len(b.RoomId), b.Epoch, b.Parent, b.IssuedAtMs)
	}
	if len(b.Members) < 1 || len(b.Members) > 1000 || len(b.Changes) < 1 || len(b.Changes) > 1000 {
		return nil, fmt.Errorf("%d members, %d changes", len(b.Members), len(b.Changes))
	}
	if len(p.sealed.Secrets) != len(b.Members) || len(sc.ConfirmationTag) != 32 {
		return nil, fmt.Errorf("%d sealed entries for %d members, tag %d bytes", len(p.sealed.Secrets), len(b.Members), len(sc.ConfirmationTag))
	}
	for _, s := range p.sealed.Secrets {
		if len(s.Enc) != 32 || len(s.Ciphertext) != 48 {
			return nil, fmt.Errorf("sealed entry: enc %d bytes, ciphertext %d", len(s.Enc), len(s.Ciphertext))
		}
	}
	for _, m := range b.Members {
		if m.Role == wirepb.Role_ROLE_UNSPECIFIED || (len(m.Consent) != 0 && len(m.Consent) != 64) {
			return nil, fmt.Errorf("member: role %v, consent %d bytes", m.Role, len(m.Consent))
		}
		kp, err := checkKeyPackage(m.KeyPackage)
		if err != nil {
			return nil, fmt.Errorf("member key package: %w", err)
		}
		if p.members[string(kp.Owner)] != nil {
			return nil, fmt.Errorf("member %x listed twice", kp.Owner)
		}
		p.members[string(kp.Owner)], p.kps[string(kp.Owner)] = m, kp
	}
	for _, ch := range b.Changes {
		if _, err := ed25519Of(ch.Actor); err != nil {
			return nil, fmt.Errorf("change actor: %w", err)
		}
		noSubject := ch.Kind == wirepb.ChangeKind_CHANGE_CREATE || ch.Kind == wirepb.ChangeKind_CHANGE_REKEY
		withRole := ch.Kind == wirepb.ChangeKind_CHANGE_ADD || ch.Kind == wirepb.ChangeKind_CHANGE_ROLE
		if ch.Kind == wirepb.ChangeKind_CHANGE_UNSPECIFIED || noSubject != (len(ch.Subject) == 0) ||
			withRole != (ch.Role != wirepb.Role_ROLE_UNSPECIFIED) || (ch.Kind == wirepb.ChangeKind_CHANGE_LEAVE) != (len(ch.Proof) == 64) {
			return nil, fmt.Errorf("change %v breaks the field rules", ch)
		}
		if !noSubject {
			if _, err := ed25519Of(ch.Subject); err != nil {
				return nil, fmt.Errorf("change subject: %w", err)
			}
		}
	}
	pub, err := ed25519Of(b.Issuer)
	if err != nil {
		return nil, err
	}
	p.ctx = sha(label0("parley/room/2 commit body"), sc.Body)
	in := cat(label0("parley/room/2 commit"), u32(uint32(len(sc.Body))), sc.Body, sha(sc.Sealed), sc.ConfirmationTag)
	if !ed25519.Verify(pub, in, sc.Signature) {
		return nil, errors.New("the issuer's signature does not verify")
	}
	p.hash = sha(in)
	return p, nil
}

// checkGenesis applies "Genesis".
func checkGenesis(p *parsedCommit) error {
	b := p.body
	if b.Epoch != 1 || len(b.Members) != 1 || b.Members[0].Role != wirepb.Role_ROLE_OWNER || len(b.Members[0].Consent) != 0 ||
		!bytes.Equal(ownerOf(b.Members[0].KeyPackage), b.Issuer) || len(b.Changes) != 1 ||
		b.Changes[0].Kind != wirepb.ChangeKind_CHANGE_CREATE || !bytes.Equal(b.Changes[0].Actor, b.Issuer) {
		return fmt.Errorf("not a genesis commit: %v", b)
	}
	return nil
}

func isAdmin(r wirepb.Role) bool { return r == wirepb.Role_ROLE_ADMIN || r == wirepb.Role_ROLE_OWNER }

// checkSuccessor applies "Successor" rules 1 to 5 to c after cur.
func checkSuccessor(cur *parsedCommit, c *parsedCommit) error {
	b, pb := c.body, cur.body
	// 1.
	if !bytes.Equal(b.RoomId, pb.RoomId) || b.Epoch != pb.Epoch+1 || !bytes.Equal(b.Parent, cur.hash) {
		return fmt.Errorf("rule 1: room %x epoch %d parent %x after epoch %d hash %x", b.RoomId, b.Epoch, b.Parent, pb.Epoch, cur.hash)
	}
	// 2.
	im := cur.members[string(b.Issuer)]
	if im == nil || !isAdmin(im.Role) {
		return fmt.Errorf("rule 2: issuer %x is no admin of the parent", b.Issuer)
	}
	// 3: the changes account exactly for the roster difference.
	seen := map[string]bool{}
	accounted := map[string]bool{}
	limit := b.IssuedAtMs + 5*60*1000
	for _, ch := range b.Changes {
		s := string(ch.Subject)
		if ch.Kind != wirepb.ChangeKind_CHANGE_REKEY {
			if seen[s] {
				return fmt.Errorf("rule 3: subject %x twice", ch.Subject)
			}
			seen[s] = true
		}
		old, now := cur.members[s], c.members[s]
		issuerActs := bytes.Equal(ch.Actor, b.Issuer)
		switch ch.Kind {
		case wirepb.ChangeKind_CHANGE_ADD:
			if !issuerActs || old != nil || now == nil || now.Role != ch.Role {
				return fmt.Errorf("rule 3: ADD %x", ch.Subject)
			}
			pub, _ := ed25519Of(ch.Subject)
			if !ed25519.Verify(pub, cat(label0("parley/room/2 join consent"), b.RoomId, sha(now.KeyPackage)), now.Consent) {
				return fmt.Errorf("rule 3: consent of %x", ch.Subject)
			}
			if c.kps[s].CreatedAtMs > limit {
				return fmt.Errorf("rule 3: key package of %x made after the commit", ch.Subject)
			}
		case wirepb.ChangeKind_CHANGE_REMOVE, wirepb.ChangeKind_CHANGE_LEAVE:
			if old == nil || now != nil {
				return fmt.Errorf("rule 3: %v of %x, not dropped", ch.Kind, ch.Subject)
			}
			if ch.Kind == wirepb.ChangeKind_CHANGE_REMOVE && !issuerActs {
				return fmt.Errorf("rule 3: REMOVE by %x, not the issuer", ch.Actor)
			}
			if ch.Kind == wirepb.ChangeKind_CHANGE_LEAVE {
				pub, _ := ed25519Of(ch.Subject)
				if !bytes.Equal(ch.Actor, ch.Subject) || !ed25519.Verify(pub, cat(label0("parley/room/2 leave"), b.RoomId, sha(old.KeyPackage)), ch.Proof) {
					return fmt.Errorf("rule 3: LEAVE of %x", ch.Subject)
				}
			}
			// 4: dropping an admin takes an owner, unless it drops itself.
			if isAdmin(old.Role) && im.Role != wirepb.Role_ROLE_OWNER && !bytes.Equal(ch.Subject, b.Issuer) {
				return fmt.Errorf("rule 4: an admin drops admin %x", ch.Subject)
			}
		case wirepb.ChangeKind_CHANGE_ROLE:
			if !issuerActs || old == nil || now == nil || old.Role == now.Role || now.Role != ch.Role {
				return fmt.Errorf("rule 3: ROLE of %x", ch.Subject)
			}
			if (isAdmin(old.Role) || now.Role == wirepb.Role_ROLE_OWNER) && im.Role != wirepb.Role_ROLE_OWNER {
				return fmt.Errorf("rule 4: ROLE of %x by an admin", ch.Subject)
			}
		case wirepb.ChangeKind_CHANGE_UPDATE:
			if !bytes.Equal(ch.Actor, ch.Subject) || old == nil || now == nil || bytes.Equal(old.KeyPackage, now.KeyPackage) ||
				c.kps[s].CreatedAtMs <= cur.kps[s].CreatedAtMs || c.kps[s].CreatedAtMs > limit {
				return fmt.Errorf("rule 3: UPDATE of %x", ch.Subject)
			}
		case wirepb.ChangeKind_CHANGE_REKEY:
			if len(b.Changes) != 1 || !issuerActs {
				return errors.New("rule 3: REKEY not alone")
			}
		default:
			return fmt.Errorf("rule 3: %v after genesis", ch.Kind)
		}
		if ch.Kind == wirepb.ChangeKind_CHANGE_ADD && ch.Role == wirepb.Role_ROLE_OWNER && im.Role != wirepb.Role_ROLE_OWNER {
			return errors.New("rule 4: owner granted by an admin")
		}
		accounted[s] = true
	}
	owners := 0
	for id, m := range c.members {
		if m.Role == wirepb.Role_ROLE_OWNER {
			owners++
		}
		old := cur.members[id]
		if old == nil && !accounted[id] {
			return fmt.Errorf("rule 3: member %x added without ADD", id)
		}
		if old != nil && !accounted[id] && (old.Role != m.Role || !bytes.Equal(old.KeyPackage, m.KeyPackage)) {
			return fmt.Errorf("rule 3: member %x changed without a change", id)
		}
		if (len(m.Consent) != 0) != (old == nil) {
			return fmt.Errorf("member %x: consent set %v, added %v", id, len(m.Consent) != 0, old == nil)
		}
	}
	for id := range cur.members {
		if c.members[id] == nil && !accounted[id] {
			return fmt.Errorf("rule 3: member %x dropped without REMOVE or LEAVE", id)
		}
	}
	// 5.
	if owners == 0 {
		return errors.New("rule 5: no owner")
	}
	return nil
}

// parsed returns an epoch's commit as parsed.
func (e *epochState) parsed(t *testing.T) *parsedCommit {
	t.Helper()
	p, err := checkSigned(e.signed)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// epochFromJoiner runs "Key schedule" from the joiner secret on.
func epochFromJoiner(t *testing.T, joiner, context []byte) epochKeys {
	t.Helper()
	var k epochKeys
	k.joiner = joiner
	k.epoch = expand(t, extract(t, k.joiner, make([]byte, 32)), cat(label0("parley/room/2 epoch"), context))
	k.init = expand(t, k.epoch, []byte("parley/room/2 init"))
	k.confirmKey = expand(t, k.epoch, []byte("parley/room/2 confirm"))
	k.tag = mac(k.confirmKey, context)
	k.membership = expand(t, k.epoch, []byte("parley/room/2 membership"))
	k.rendezvous = expand(t, k.epoch, []byte("parley/room/2 rendezvous"))
	k.sync = expand(t, k.epoch, []byte("parley/room/2 sync"))
	return k
}

// take opens the client's sealed entry of commit p ("Sealing"): the joiner
// secret under its init key when the commit adds it (welcome), else the
// commit secret under its encryption key, from which the joiner secret
// derives with the parent's init secret; it checks the confirmation tag
// and records the epoch as current.
func (c *roomClient) take(p *parsedCommit, welcome bool) *epochState {
	t := c.t
	t.Helper()
	b := p.body
	idx := slices.IndexFunc(b.Members, func(m *wirepb.CommitMember) bool { return bytes.Equal(ownerOf(m.KeyPackage), c.id) })
	if idx < 0 {
		t.Fatalf("commit of epoch %d does not list the client", b.Epoch)
	}
	entry := p.sealed.Secrets[idx]
	listed := p.kps[string(c.id)]
	enc, init := c.privs[string(listed.HpkePublicKey)], c.privs[string(listed.HpkeInitKey)]
	if enc == nil {
		t.Fatalf("epoch %d lists an encryption key of the client it does not hold", b.Epoch)
	}
	var joiner []byte
	if welcome {
		info := cat([]byte("parley/room/2 welcome"), b.RoomId, u64(b.Epoch))
		if init == nil {
			t.Fatal("the init key is erased")
		}
		if _, err := hpkeOpen(enc, entry.Enc, info, p.ctx, entry.Ciphertext); err == nil {
			t.Error("the welcome opens with the encryption key; \"Sealing\" seals it to the init key")
		}
		js, err := hpkeOpen(init, entry.Enc, info, p.ctx, entry.Ciphertext)
		if err != nil {
			t.Fatalf("the welcome does not open with the init key, info \"parley/room/2 welcome\" ‖ room ‖ u64(epoch), aad the context: %v", err)
		}
		joiner = js
		// "erases the init key"
		delete(c.privs, string(listed.HpkeInitKey))
		c.init = nil
	} else {
		prev := c.epochs[b.Epoch-1]
		if prev == nil || prev.keys == nil {
			t.Fatalf("no init secret of epoch %d", b.Epoch-1)
		}
		info := cat([]byte("parley/room/2 commit secret"), b.RoomId, u64(b.Epoch))
		cs, err := hpkeOpen(enc, entry.Enc, info, p.ctx, entry.Ciphertext)
		if err != nil {
			t.Fatalf("the commit secret of epoch %d does not open with the encryption key: %v", b.Epoch, err)
		}
		if len(cs) != 32 {
			t.Fatalf("commit secret of %d bytes", len(cs))
		}
		joiner = expand(t, extract(t, prev.keys.init, cs), cat(label0("parley/room/2 joiner"), p.ctx))
	}
	if len(joiner) != 32 {
		t.Fatalf("joiner secret of %d bytes", len(joiner))
	}
	k := epochFromJoiner(t, joiner, p.ctx)
	if !bytes.Equal(k.tag, p.sc.ConfirmationTag) {
		t.Fatalf("epoch %d: confirmation tag %x, the key schedule gives %x", b.Epoch, p.sc.ConfirmationTag, k.tag)
	}
	e := &epochState{signed: p.sc, body: b, hash: p.hash, ctx: p.ctx, keys: &k, used: map[string]map[uint32]bool{}}
	c.epochs[b.Epoch] = e
	c.cur = b.Epoch
	return e
}

// follow takes the node's commit of the next epoch from the topic, checks
// it as a successor of ours and opens it.
func (c *roomClient) follow() *parsedCommit {
	t := c.t
	t.Helper()
	sc := c.nextCommit(c.cur + 1)
	p, err := checkSigned(sc)
	if err != nil {
		t.Fatalf("commit of epoch %d: %v", c.cur+1, err)
	}
	if err := checkSuccessor(c.epochs[c.cur].parsed(t), p); err != nil {
		t.Fatalf("commit of epoch %d is no valid successor: %v", c.cur+1, err)
	}
	if _, in := p.members[string(c.id)]; in {
		c.take(p, false)
	}
	return p
}

// chainKey returns the message key of generation g of author's chain in
// epoch e: chain_0 = Expand(epoch secret, "parley/room/2 sender" ‖ peer
// id), key_g = HMAC(chain_g, 0x01), chain_{g+1} = HMAC(chain_g, 0x02).
func messageKey(t *testing.T, e *epochState, author []byte, g uint32) []byte {
	t.Helper()
	chain := expand(t, e.keys.epoch, cat([]byte("parley/room/2 sender"), author))
	for range g {
		chain = mac(chain, []byte{0x02})
	}
	return mac(chain, []byte{0x01})
}

func messageAD(room []byte, e uint64, author []byte, g uint32, msgID []byte, hlc uint64) []byte {
	return cat(label0("parley/room/2 message"), lp(room), u64(e), lp(author), u32(g), lp(msgID), u64(hlc))
}

func macInput(room []byte, m *wirepb.AppMessage, author []byte) []byte {
	return cat(label0("parley/room/2 membership mac"), lp(room), u64(m.Epoch), lp(m.EpochHash), lp(author), u32(m.Generation), u64(m.Hlc), lp(m.MsgId), lp(m.Ciphertext))
}

// sealApp builds an AppMessage of author at epoch e, generation g, per
// "Messages".
func sealApp(t *testing.T, room []byte, e *epochState, author []byte, g uint32, msgID []byte, hlc uint64, text string) *wirepb.AppMessage {
	t.Helper()
	aead, err := newAEAD(messageKey(t, e, author, g))
	if err != nil {
		t.Fatal(err)
	}
	m := &wirepb.AppMessage{Epoch: e.body.Epoch, Generation: g, Hlc: hlc, MsgId: msgID, EpochHash: e.hash[:8]}
	m.Ciphertext = aead.Seal(nil, make([]byte, 12), []byte(text), messageAD(room, m.Epoch, author, g, msgID, hlc))
	m.MembershipMac = mac(e.keys.membership, macInput(room, m, author))
	return m
}

// send seals text at the client's next generation of epoch e (0: the
// current one) and publishes it.
func (c *roomClient) send(e uint64, text string) *wirepb.AppMessage {
	c.t.Helper()
	if e == 0 {
		e = c.cur
	}
	g := c.sendGen[e]
	c.sendGen[e]++
	m := sealApp(c.t, c.room, c.epochs[e], c.id, g, newID(), c.nextHLC(), text)
	c.publishApp(m)
	return m
}

// nextHLC is the room's clock ("Clocks"): max(now_ms << 16, last + 1),
// last the greatest hlc sent or accepted in the room.
func (c *roomClient) nextHLC() uint64 {
	c.last = max(hlcAt(time.Now(), 0), c.last+1)
	return c.last
}

func (c *roomClient) publishApp(m *wirepb.AppMessage) {
	c.t.Helper()
	c.publishEnv(&wirepb.RoomEnvelope{Version: 2, RoomId: c.room, Body: &wirepb.RoomEnvelope_App{App: m}})
}

func (c *roomClient) publishEnv(env *wirepb.RoomEnvelope) {
	c.t.Helper()
	if err := c.topic.Publish(context.Background(), marshalDet(c.t, env)); err != nil {
		c.t.Fatal(err)
	}
}

// openApp checks an application message of author per "Messages" and
// "Validation of the topic" (an epoch we hold, epoch_hash, the MAC, a
// generation not used before) and decrypts it.
func (c *roomClient) openApp(author []byte, m *wirepb.AppMessage) (string, error) {
	text, err := c.checkApp(author, m)
	if err != nil {
		return "", err
	}
	e := c.epochs[m.Epoch]
	if e.used[string(author)][m.Generation] {
		return "", fmt.Errorf("generation %d used before", m.Generation)
	}
	if e.used[string(author)] == nil {
		e.used[string(author)] = map[uint32]bool{}
	}
	e.used[string(author)][m.Generation] = true
	c.last = max(c.last, m.Hlc)
	return text, nil
}

// checkApp is openApp without the record of used generations.
func (c *roomClient) checkApp(author []byte, m *wirepb.AppMessage) (string, error) {
	t := c.t
	t.Helper()
	e := c.epochs[m.Epoch]
	if e == nil || e.keys == nil {
		return "", fmt.Errorf("epoch %d: no keys", m.Epoch)
	}
	if !bytes.Equal(m.EpochHash, e.hash[:8]) {
		return "", fmt.Errorf("epoch_hash %x, not our epoch's %x", m.EpochHash, e.hash[:8])
	}
	if _, ok := e.role(author); !ok {
		return "", fmt.Errorf("author %x not in the roster of epoch %d", author, m.Epoch)
	}
	if m.Hlc == 0 || len(m.MsgId) != 16 || len(m.Ciphertext) <= 16 {
		return "", fmt.Errorf("fields: hlc %d, msg_id %d bytes, ciphertext %d bytes", m.Hlc, len(m.MsgId), len(m.Ciphertext))
	}
	if !bytes.Equal(mac(e.keys.membership, macInput(c.room, m, author)), m.MembershipMac) {
		return "", errors.New("membership MAC")
	}
	aead, err := newAEAD(messageKey(t, e, author, m.Generation))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := aead.Open(nil, make([]byte, 12), m.Ciphertext, messageAD(c.room, m.Epoch, author, m.Generation, m.MsgId, m.Hlc))
	if err != nil {
		return "", fmt.Errorf("ciphertext: %w", err)
	}
	return string(pt), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) { return chacha20poly1305.New(key) }
