package conformance

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// The tests in this file check the known-answer vectors of private rooms
// version 2 (chat/room/group/testdata) against "Rooms version 2 (draft)"
// of PROTOCOL.md, the way a foreign implementation would: every value is
// recomputed from the formulas of the text with the standard library and
// x/crypto alone, and the protobuf messages are read with the code
// generated from the .proto files, never with chat/room/group. The vectors
// are decoded with unknown JSON fields refused, so a value added to them
// fails here until it is checked.

const roomVectors = "../room/group/testdata"

// hx is a byte string written as lowercase hex in the vectors.
type hx []byte

func (b *hx) UnmarshalText(s []byte) error {
	d, err := hex.DecodeString(string(s))
	*b = d
	return err
}

func loadRoomVector(t *testing.T, name string, v any) {
	t.Helper()
	f, err := os.Open(filepath.Join(roomVectors, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := json.NewDecoder(f)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: %v (a field this test does not know must be checked here first)", name, err)
	}
}

// The notation of "Rooms": ‖, u32, u64, lp, "label" 0x00, HKDF-SHA256.

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func lp(x []byte) []byte { return append(u32(uint32(len(x))), x...) }

// label0 is "label" 0x00.
func label0(l string) []byte { return append([]byte(l), 0) }

func extract(t *testing.T, salt, ikm []byte) []byte {
	t.Helper()
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		t.Fatal(err)
	}
	return prk
}

// expand is "Expand(prk, info, 32)" of "Key schedule".
func expand(t *testing.T, prk, info []byte) []byte {
	t.Helper()
	k, err := hkdf.Expand(sha256.New, prk, string(info), 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mac(key []byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func sha(parts ...[]byte) []byte {
	s := sha256.Sum256(cat(parts...))
	return s[:]
}

// same reports a vector value that differs from the one recomputed.
func same(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n recomputed %x\n vector     %x", what, got, want)
	}
}

// ed25519PeerID is the binary peer ID of an Ed25519 key ("Rooms",
// Notation).
func ed25519PeerID(pub []byte) []byte {
	return cat([]byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}, pub)
}

// epochKeys is everything "Key schedule" derives for one epoch.
type epochKeys struct {
	joiner, epoch, init, confirmKey, tag, membership, rendezvous, sync []byte
}

func keySchedule(t *testing.T, prevInit, commitSecret, context []byte) epochKeys {
	t.Helper()
	var k epochKeys
	k.joiner = expand(t, extract(t, prevInit, commitSecret), cat(label0("parley/room/2 joiner"), context))
	k.epoch = expand(t, extract(t, k.joiner, make([]byte, 32)), cat(label0("parley/room/2 epoch"), context))
	k.init = expand(t, k.epoch, []byte("parley/room/2 init"))
	k.confirmKey = expand(t, k.epoch, []byte("parley/room/2 confirm"))
	k.tag = mac(k.confirmKey, context)
	k.membership = expand(t, k.epoch, []byte("parley/room/2 membership"))
	k.rendezvous = expand(t, k.epoch, []byte("parley/room/2 rendezvous"))
	k.sync = expand(t, k.epoch, []byte("parley/room/2 sync"))
	return k
}

type keyScheduleVector struct {
	RoomID, CommitHash, EpochHash, Context                  hx
	Epoch                                                   uint64
	PrevInitSecret, CommitSecret, JoinerSecret, EpochSecret hx
	ConfirmationKey, ConfirmationTag, InitSecret            hx
	MembershipKey, RendezvousKey, SyncKey                   hx
	Senders                                                 []senderVector
	Message                                                 messageVector
	SyncProof                                               syncProofVector
}

type senderVector struct {
	Author, SenderInfo hx
	Chain              []struct {
		Generation           uint32
		ChainKey, MessageKey hx
	}
}

type messageVector struct {
	Author                                hx
	Generation                            uint32
	Hlc                                   uint64
	MsgID, Plaintext, MessageKey, AD      hx
	Ciphertext, MACInput, MAC, AppMessage hx
}

type syncProofVector struct {
	Requester, Responder, Request, Input, Proof hx
}

// TestRoomKeyScheduleVectors checks keyschedule.json against "Key
// schedule" (joiner, epoch and init secrets, confirmation key and tag, the
// membership, rendezvous and sync keys, the sender chains and message
// keys), "Messages" (AD, ciphertext, epoch_hash, MAC input, MAC, the
// AppMessage fields) and "/parley/roomsync/2" (the fetch proof input and
// proof) of "Rooms version 2 (draft)".
func TestRoomKeyScheduleVectors(t *testing.T) {
	var v keyScheduleVector
	loadRoomVector(t, "keyschedule.json", &v)

	k := keySchedule(t, v.PrevInitSecret, v.CommitSecret, v.Context)
	same(t, "JoinerSecret", k.joiner, v.JoinerSecret)
	same(t, "EpochSecret", k.epoch, v.EpochSecret)
	same(t, "InitSecret", k.init, v.InitSecret)
	same(t, "ConfirmationKey", k.confirmKey, v.ConfirmationKey)
	same(t, "ConfirmationTag", k.tag, v.ConfirmationTag)
	same(t, "MembershipKey", k.membership, v.MembershipKey)
	same(t, "RendezvousKey", k.rendezvous, v.RendezvousKey)
	same(t, "SyncKey", k.sync, v.SyncKey)
	// "Messages": epoch_hash is the first 8 bytes of the commit hash.
	same(t, "EpochHash", v.CommitHash[:8], v.EpochHash)
	if len(v.RoomID) != 32 || len(v.CommitHash) != 32 || len(v.Context) != 32 {
		t.Errorf("room id, commit hash, context: %d, %d, %d bytes, want 32", len(v.RoomID), len(v.CommitHash), len(v.Context))
	}

	// Sender chains: chain_0(A) = Expand(epoch secret, "parley/room/2
	// sender" ‖ peer id of A); key_g = HMAC(chain_g, 0x01); chain_{g+1} =
	// HMAC(chain_g, 0x02).
	keys := map[string][][]byte{}
	if len(v.Senders) < 2 {
		t.Errorf("%d senders, want two members", len(v.Senders))
	}
	for _, s := range v.Senders {
		checkPeerID(t, "Senders[].Author", s.Author)
		info := cat([]byte("parley/room/2 sender"), s.Author)
		same(t, "SenderInfo", info, s.SenderInfo)
		chain := expand(t, k.epoch, info)
		for g, c := range s.Chain {
			if c.Generation != uint32(g) {
				t.Fatalf("chain of %x: entry %d is generation %d", s.Author, g, c.Generation)
			}
			same(t, "ChainKey", chain, c.ChainKey)
			key := mac(chain, []byte{0x01})
			same(t, "MessageKey", key, c.MessageKey)
			keys[string(s.Author)] = append(keys[string(s.Author)], key)
			chain = mac(chain, []byte{0x02})
		}
	}

	// "Messages".
	m := v.Message
	if g := int(m.Generation); g >= len(keys[string(m.Author)]) {
		t.Fatalf("the message's author %x has no chain entry for generation %d", m.Author, g)
	}
	key := keys[string(m.Author)][m.Generation]
	same(t, "Message.MessageKey", key, m.MessageKey)
	ad := cat(label0("parley/room/2 message"), lp(v.RoomID), u64(v.Epoch), lp(m.Author), u32(m.Generation), lp(m.MsgID), u64(m.Hlc))
	same(t, "Message.AD", ad, m.AD)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Message.Ciphertext", aead.Seal(nil, make([]byte, 12), m.Plaintext, ad), m.Ciphertext)
	if pt, err := aead.Open(nil, make([]byte, 12), m.Ciphertext, ad); err != nil || !bytes.Equal(pt, m.Plaintext) {
		t.Errorf("Message.Ciphertext does not open to the plaintext: %v", err)
	}
	macInput := cat(label0("parley/room/2 membership mac"), lp(v.RoomID), u64(v.Epoch), lp(v.EpochHash), lp(m.Author), u32(m.Generation), u64(m.Hlc), lp(m.MsgID), lp(m.Ciphertext))
	same(t, "Message.MACInput", macInput, m.MACInput)
	same(t, "Message.MAC", mac(k.membership, macInput), m.MAC)
	if len(m.MsgID) != 16 || m.Hlc == 0 || len(m.Plaintext) == 0 || len(m.Ciphertext) <= 16 {
		t.Errorf("message: msg_id %d bytes, hlc %d, text %d bytes, ciphertext %d bytes", len(m.MsgID), m.Hlc, len(m.Plaintext), len(m.Ciphertext))
	}
	var app wirepb.AppMessage
	unmarshalStrict(t, "Message.AppMessage", m.AppMessage, &app)
	want := &wirepb.AppMessage{Epoch: v.Epoch, Generation: m.Generation, Hlc: m.Hlc, MsgId: m.MsgID, Ciphertext: m.Ciphertext, MembershipMac: m.MAC, EpochHash: v.EpochHash}
	if !proto.Equal(&app, want) {
		t.Errorf("Message.AppMessage = %v, want %v", &app, want)
	}

	// "/parley/roomsync/2": the request's fields, both peer IDs, the proof.
	p := v.SyncProof
	checkPeerID(t, "SyncProof.Requester", p.Requester)
	checkPeerID(t, "SyncProof.Responder", p.Responder)
	var req wirepb.RoomFetchRequest
	unmarshalStrict(t, "SyncProof.Request", p.Request, &req)
	if req.Version != 2 || !bytes.Equal(req.RoomId, v.RoomID) || req.Epoch != v.Epoch || len(req.Proof) != 0 {
		t.Errorf("SyncProof.Request = %v: want version 2, the room, epoch %d, no proof yet", &req, v.Epoch)
	}
	input := cat(label0("parley/room/2 sync proof"), lp(req.RoomId), u64(req.Epoch), u64(req.CommitsAfter), u64(req.AfterHlc), u32(req.Limit), lp(p.Requester), lp(p.Responder))
	same(t, "SyncProof.Input", input, p.Input)
	same(t, "SyncProof.Proof", mac(k.sync, input), p.Proof)
}

type commitVector struct {
	RoomID      hx
	Identities  []identityVector
	Commits     []commitEntry
	JoinToken   struct{ Body, Signature, Token hx }
	JoinRequest struct {
		JoinSecret, ProofInput, Proof, ConsentInput, Consent, Request hx
	}
}

type identityVector struct {
	Name                                      string
	Ed25519Seed, Ed25519Public, PeerID        hx
	HPKESeed, HPKEPrivate, HPKEPublic         hx
	HPKEInitSeed, HPKEInitPublic              hx
	KeyPackageBody, KeyPackageSig, KeyPackage hx
}

type commitEntry struct {
	Epoch                                          uint64
	PrevInitSecret, CommitSecret, Body, Context    hx
	JoinerSecret, EpochSecret, InitSecret          hx
	ConfirmationTag, WelcomeInfo, CommitSecretInfo hx
	Sealed                                         []struct {
		Recipient       hx
		Kind            string
		Enc, Ciphertext hx
	}
	SealedList, SigningInput, Signature, Hash, Commit hx
	MembershipKey                                     hx
}

// The HPKE suite of "Key packages": DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, ChaCha20-Poly1305.
var (
	roomKEM  = hpke.DHKEM(ecdh.X25519())
	roomKDF  = hpke.HKDFSHA256()
	roomAEAD = hpke.ChaCha20Poly1305()
)

// identity is one member of commit.json as recomputed.
type identity struct {
	name     string
	key      ed25519.PrivateKey
	peerID   []byte
	enc      hpke.PrivateKey // the encryption key
	init     hpke.PrivateKey // the one-time init key
	kpBody   []byte
	kpSigned []byte
}

// TestRoomCommitVectors checks commit.json against "Rooms version 2
// (draft)": identities and "Key packages" (peer IDs, HPKE keys, the signed
// package), "Commits" (the body's fields and the genesis, add and rekey
// rules, the context, which member gets a Welcome and which a commit
// secret, the HPKE infos and aad, the sealed list, the signing input,
// signature and hash), "Key schedule" along the chain (each epoch's init
// secret salting the next), and "Joining" (the token, its signature, the
// join proof and the consent, copied into the add).
func TestRoomCommitVectors(t *testing.T) {
	if roomKEM.ID() != 0x0020 || roomKDF.ID() != 0x0001 || roomAEAD.ID() != 0x0003 {
		t.Fatalf("HPKE suite %#x/%#x/%#x, want 0x0020/0x0001/0x0003", roomKEM.ID(), roomKDF.ID(), roomAEAD.ID())
	}
	var v commitVector
	loadRoomVector(t, "commit.json", &v)
	if len(v.RoomID) != 32 {
		t.Fatalf("room id of %d bytes", len(v.RoomID))
	}
	ids := map[string]*identity{}
	var alice, bob *identity
	for _, iv := range v.Identities {
		id := checkIdentity(t, iv)
		ids[string(id.peerID)] = id
		switch iv.Name {
		case "alice":
			alice = id
		case "bob":
			bob = id
		}
	}
	if alice == nil || bob == nil {
		t.Fatal("the vectors name no alice or no bob")
	}

	checkJoin(t, &v, alice, bob)

	prevInit, prevHash := make([]byte, 32), make([]byte, 32)
	var prev *wirepb.CommitBody
	for i, c := range v.Commits {
		if c.Epoch != uint64(i+1) {
			t.Fatalf("commit %d is of epoch %d", i, c.Epoch)
		}
		t.Run("epoch"+itoa(uint32(c.Epoch)), func(t *testing.T) {
			same(t, "PrevInitSecret (the parent's InitSecret, zero at genesis)", prevInit, c.PrevInitSecret)
			body := checkCommit(t, &v, c, prev, prevHash, ids, alice, bob)
			prev = body
		})
		prevInit, prevHash = c.InitSecret, c.Hash
	}
	if len(v.Commits) != 3 {
		t.Errorf("%d commits, want genesis, add and rekey", len(v.Commits))
	}
}

// checkIdentity recomputes an identity: "Notation" (peer ID), "Key
// packages" (HPKE keys, the package, its signature and validity).
func checkIdentity(t *testing.T, iv identityVector) *identity {
	t.Helper()
	id := &identity{name: iv.Name}
	if len(iv.Ed25519Seed) != ed25519.SeedSize {
		t.Fatalf("%s: seed of %d bytes", iv.Name, len(iv.Ed25519Seed))
	}
	id.key = ed25519.NewKeyFromSeed(iv.Ed25519Seed)
	pub := id.key.Public().(ed25519.PublicKey)
	same(t, iv.Name+".Ed25519Public", pub, iv.Ed25519Public)
	id.peerID = ed25519PeerID(pub)
	same(t, iv.Name+".PeerID", id.peerID, iv.PeerID)

	var err error
	if id.enc, err = roomKEM.NewPrivateKey(iv.HPKESeed); err != nil {
		t.Fatal(err)
	}
	priv, err := id.enc.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	same(t, iv.Name+".HPKEPrivate (RFC 9180 SerializePrivateKey, clamped)", priv, iv.HPKEPrivate)
	same(t, iv.Name+".HPKEPublic", id.enc.PublicKey().Bytes(), iv.HPKEPublic)
	if id.init, err = roomKEM.NewPrivateKey(iv.HPKEInitSeed); err != nil {
		t.Fatal(err)
	}
	same(t, iv.Name+".HPKEInitPublic", id.init.PublicKey().Bytes(), iv.HPKEInitPublic)

	var kp wirepb.KeyPackage
	unmarshalStrict(t, iv.Name+".KeyPackageBody", iv.KeyPackageBody, &kp)
	same(t, iv.Name+": KeyPackage.owner", kp.Owner, id.peerID)
	same(t, iv.Name+": KeyPackage.hpke_public_key", kp.HpkePublicKey, iv.HPKEPublic)
	same(t, iv.Name+": KeyPackage.hpke_init_key", kp.HpkeInitKey, iv.HPKEInitPublic)
	if kp.CreatedAtMs <= 0 || len(kp.Owner) > 64 || bytes.Equal(kp.HpkePublicKey, kp.HpkeInitKey) {
		t.Errorf("%s: key package breaks \"Key packages\": created %d, owner %d bytes, keys differ: %v", iv.Name, kp.CreatedAtMs, len(kp.Owner), !bytes.Equal(kp.HpkePublicKey, kp.HpkeInitKey))
	}
	for _, k := range [][]byte{kp.HpkePublicKey, kp.HpkeInitKey} {
		checkNotLowOrder(t, iv.Name, k)
	}
	sig := ed25519.Sign(id.key, cat(label0("parley/room/2 key package"), iv.KeyPackageBody))
	same(t, iv.Name+".KeyPackageSig", sig, iv.KeyPackageSig)
	var skp wirepb.SignedKeyPackage
	unmarshalStrict(t, iv.Name+".KeyPackage", iv.KeyPackage, &skp)
	same(t, iv.Name+": SignedKeyPackage.key_package", skp.KeyPackage, iv.KeyPackageBody)
	same(t, iv.Name+": SignedKeyPackage.signature", skp.Signature, iv.KeyPackageSig)
	if len(iv.KeyPackage) > 512 {
		t.Errorf("%s: SignedKeyPackage of %d bytes, over 512", iv.Name, len(iv.KeyPackage))
	}
	id.kpBody, id.kpSigned = iv.KeyPackageBody, iv.KeyPackage
	return id
}

// checkNotLowOrder applies "Key packages": an X25519 with the key yields a
// non-zero shared secret (crypto/ecdh refuses the all-zero output).
func checkNotLowOrder(t *testing.T, who string, pub []byte) {
	t.Helper()
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		t.Fatalf("%s: HPKE key %x: %v", who, pub, err)
	}
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.ECDH(p); err != nil {
		t.Errorf("%s: HPKE key %x is a low-order point: %v", who, pub, err)
	}
}

// checkJoin recomputes "Joining: tokens, links and invitations": alice's
// token at the genesis commit, bob's join request under it.
func checkJoin(t *testing.T, v *commitVector, alice, bob *identity) {
	t.Helper()
	jt := v.JoinToken
	var tok wirepb.JoinToken
	unmarshalStrict(t, "JoinToken.Body", jt.Body, &tok)
	if !bytes.Equal(tok.RoomId, v.RoomID) || len(tok.TokenId) != 16 || !bytes.Equal(tok.Issuer, alice.peerID) ||
		tok.Uses < 1 || tok.Uses > 1000 || len(tok.Invitee) != 0 || tok.Epoch != 1 || tok.ExpiresAtMs <= 0 {
		t.Errorf("JoinToken.Body = %v: want the room, a 16-byte id, alice, 1 to 1000 uses, no invitee, epoch 1", &tok)
	}
	if len(v.Commits) < 2 {
		t.Fatalf("%d commits: no genesis and welcome", len(v.Commits))
	}
	same(t, "JoinToken commit_hash (the genesis commit's hash)", tok.CommitHash, v.Commits[0].Hash)
	// "Welcome": w is by the token's issuer and w.issued_at_ms <
	// expires_at_ms.
	var w wirepb.CommitBody
	unmarshalStrict(t, "the welcome's Body", v.Commits[1].Body, &w)
	if !bytes.Equal(w.Issuer, tok.Issuer) || w.IssuedAtMs >= tok.ExpiresAtMs {
		t.Errorf("the welcome (epoch 2) is by %x at %d; the token's issuer is %x, expiring at %d", w.Issuer, w.IssuedAtMs, tok.Issuer, tok.ExpiresAtMs)
	}
	same(t, "JoinToken.Signature", ed25519.Sign(alice.key, cat(label0("parley/room/2 join token"), jt.Body)), jt.Signature)
	var stok wirepb.SignedJoinToken
	unmarshalStrict(t, "JoinToken.Token", jt.Token, &stok)
	same(t, "SignedJoinToken.token", stok.Token, jt.Body)
	same(t, "SignedJoinToken.signature", stok.Signature, jt.Signature)
	if len(jt.Token) > 512 {
		t.Errorf("SignedJoinToken of %d bytes, over 512", len(jt.Token))
	}

	jr := v.JoinRequest
	if len(jr.JoinSecret) != 32 {
		t.Errorf("join secret of %d bytes, want 32", len(jr.JoinSecret))
	}
	proofInput := cat(label0("parley/room/2 join proof"), lp(jt.Token), lp(bob.peerID), lp(bob.kpSigned))
	same(t, "JoinRequest.ProofInput", proofInput, jr.ProofInput)
	same(t, "JoinRequest.Proof", mac(jr.JoinSecret, proofInput), jr.Proof)
	consentInput := cat(label0("parley/room/2 join consent"), v.RoomID, sha(bob.kpSigned))
	same(t, "JoinRequest.ConsentInput", consentInput, jr.ConsentInput)
	same(t, "JoinRequest.Consent", ed25519.Sign(bob.key, consentInput), jr.Consent)
	var req wirepb.JoinRequest
	unmarshalStrict(t, "JoinRequest.Request", jr.Request, &req)
	want := &wirepb.JoinRequest{Token: jt.Token, KeyPackage: bob.kpSigned, Proof: jr.Proof, Consent: jr.Consent}
	if !proto.Equal(&req, want) {
		t.Errorf("JoinRequest.Request = %v, want %v", &req, want)
	}
}

// checkCommit recomputes one commit of the chain and returns its body.
func checkCommit(t *testing.T, v *commitVector, c commitEntry, prev *wirepb.CommitBody, prevHash []byte, ids map[string]*identity, alice, bob *identity) *wirepb.CommitBody {
	t.Helper()
	var body wirepb.CommitBody
	unmarshalStrict(t, "Body", c.Body, &body)
	if !bytes.Equal(body.RoomId, v.RoomID) || body.Epoch != c.Epoch || !bytes.Equal(body.Issuer, alice.peerID) || body.IssuedAtMs <= 0 {
		t.Errorf("body: room %x epoch %d issuer %x issued %d; want the room, epoch %d, alice", body.RoomId, body.Epoch, body.Issuer, body.IssuedAtMs, c.Epoch)
	}
	same(t, "parent (the previous commit's hash, zero at genesis)", body.Parent, prevHash)

	// Which members the commit adds ("Sealing"): at genesis the creator,
	// after it the subjects of ADD.
	added := map[string]bool{}
	switch {
	case prev == nil:
		// "Genesis": members = exactly the issuer as owner, changes =
		// exactly {CREATE, actor = issuer}.
		if len(body.Members) != 1 || body.Members[0].Role != wirepb.Role_ROLE_OWNER || len(body.Members[0].Consent) != 0 ||
			len(body.Changes) != 1 || body.Changes[0].Kind != wirepb.ChangeKind_CHANGE_CREATE ||
			!bytes.Equal(body.Changes[0].Actor, body.Issuer) || len(body.Changes[0].Subject) != 0 || body.Changes[0].Role != wirepb.Role_ROLE_UNSPECIFIED {
			t.Errorf("genesis body breaks \"Genesis\": %v", &body)
		}
		added[string(body.Issuer)] = true
	default:
		for _, ch := range body.Changes {
			switch ch.Kind {
			case wirepb.ChangeKind_CHANGE_ADD:
				added[string(ch.Subject)] = true
				if !bytes.Equal(ch.Actor, body.Issuer) || ch.Role == wirepb.Role_ROLE_UNSPECIFIED || len(ch.Proof) != 0 {
					t.Errorf("ADD breaks \"Successor\" rule 3: %v", ch)
				}
			case wirepb.ChangeKind_CHANGE_REKEY:
				if len(body.Changes) != 1 || !bytes.Equal(ch.Actor, body.Issuer) || len(ch.Subject) != 0 || ch.Role != wirepb.Role_ROLE_UNSPECIFIED {
					t.Errorf("REKEY breaks \"Successor\" rule 3: %v", &body)
				}
				if len(prev.Members) != len(body.Members) {
					t.Errorf("REKEY changes the roster")
				}
				// A member in both with no change keeps its role and
				// byte-identical key package.
				for i, m := range body.Members {
					if i < len(prev.Members) && (m.Role != prev.Members[i].Role || !bytes.Equal(m.KeyPackage, prev.Members[i].KeyPackage)) {
						t.Errorf("REKEY changes member %d", i)
					}
				}
			default:
				t.Errorf("change %v: the vectors hold only CREATE, ADD and REKEY", ch.Kind)
			}
		}
	}

	context := sha(label0("parley/room/2 commit body"), c.Body)
	same(t, "Context", context, c.Context)
	k := keySchedule(t, c.PrevInitSecret, c.CommitSecret, context)
	same(t, "JoinerSecret", k.joiner, c.JoinerSecret)
	same(t, "EpochSecret", k.epoch, c.EpochSecret)
	same(t, "InitSecret", k.init, c.InitSecret)
	same(t, "ConfirmationTag", k.tag, c.ConfirmationTag)
	same(t, "MembershipKey", k.membership, c.MembershipKey)

	welcomeInfo := cat([]byte("parley/room/2 welcome"), v.RoomID, u64(c.Epoch))
	secretInfo := cat([]byte("parley/room/2 commit secret"), v.RoomID, u64(c.Epoch))
	same(t, "WelcomeInfo", welcomeInfo, c.WelcomeInfo)
	same(t, "CommitSecretInfo", secretInfo, c.CommitSecretInfo)

	// One sealed entry per member, in roster order.
	var sealed wirepb.SealedSecrets
	unmarshalStrict(t, "SealedList", c.SealedList, &sealed)
	if len(sealed.Secrets) != len(body.Members) || len(c.Sealed) != len(body.Members) {
		t.Fatalf("%d members, %d sealed entries, %d in the vector", len(body.Members), len(sealed.Secrets), len(c.Sealed))
	}
	for i, m := range body.Members {
		var skp wirepb.SignedKeyPackage
		unmarshalStrict(t, "CommitMember.key_package", m.KeyPackage, &skp)
		var kp wirepb.KeyPackage
		unmarshalStrict(t, "KeyPackage", skp.KeyPackage, &kp)
		id := ids[string(kp.Owner)]
		if id == nil {
			t.Fatalf("member %d: owner %x is no identity of the vectors", i, kp.Owner)
		}
		same(t, "member key package", m.KeyPackage, id.kpSigned)
		if m.Role == wirepb.Role_ROLE_UNSPECIFIED {
			t.Errorf("member %d: ROLE_UNSPECIFIED", i)
		}
		// consent set iff this commit adds the member, not at genesis.
		if adds := added[string(kp.Owner)] && prev != nil; adds != (len(m.Consent) != 0) {
			t.Errorf("member %s: consent %d bytes, added by this commit (not genesis): %v", id.name, len(m.Consent), adds)
		} else if adds {
			same(t, id.name+": consent (the JoinRequest's)", m.Consent, v.JoinRequest.Consent)
			if !ed25519.Verify(id.key.Public().(ed25519.PublicKey), cat(label0("parley/room/2 join consent"), v.RoomID, sha(m.KeyPackage)), m.Consent) {
				t.Errorf("%s: consent does not verify", id.name)
			}
			if kp.CreatedAtMs > body.IssuedAtMs+int64(5*time.Minute/time.Millisecond) {
				t.Errorf("%s: key package created more than 5 minutes after issued_at_ms", id.name)
			}
		}

		e := c.Sealed[i]
		same(t, "Sealed[].Recipient", e.Recipient, kp.Owner)
		same(t, "SealedSecrets enc", sealed.Secrets[i].Enc, e.Enc)
		same(t, "SealedSecrets ciphertext", sealed.Secrets[i].Ciphertext, e.Ciphertext)
		if len(e.Enc) != 32 || len(e.Ciphertext) != 48 {
			t.Errorf("sealed entry %d: enc %d bytes, ciphertext %d, want 32 and 48", i, len(e.Enc), len(e.Ciphertext))
		}
		// A member this commit adds gets the joiner secret under its init
		// key; every other member the commit secret under its encryption
		// key. The entry opens only with the right key, info and aad.
		kind, priv, wrongPriv, info, wrongInfo, pt := "commit secret", id.enc, id.init, secretInfo, welcomeInfo, []byte(c.CommitSecret)
		if added[string(kp.Owner)] {
			kind, priv, wrongPriv, info, wrongInfo, pt = "welcome", id.init, id.enc, welcomeInfo, secretInfo, k.joiner
		}
		if e.Kind != kind {
			t.Errorf("sealed entry of %s is %q, want %q", id.name, e.Kind, kind)
		}
		same(t, "the key the entry is sealed to", keyOf(priv), pick(kind == "welcome", kp.HpkeInitKey, kp.HpkePublicKey))
		got, err := hpkeOpen(priv, e.Enc, info, context, e.Ciphertext)
		if err != nil {
			t.Errorf("sealed entry of %s (%s) does not open: %v", id.name, kind, err)
		} else {
			same(t, "sealed "+kind+" of "+id.name, got, pt)
		}
		if _, err := hpkeOpen(wrongPriv, e.Enc, info, context, e.Ciphertext); err == nil {
			t.Errorf("sealed entry of %s opens with the other key", id.name)
		}
		if _, err := hpkeOpen(priv, e.Enc, wrongInfo, context, e.Ciphertext); err == nil {
			t.Errorf("sealed entry of %s opens with the other kind's info", id.name)
		}
		if _, err := hpkeOpen(priv, e.Enc, info, sha(context), e.Ciphertext); err == nil {
			t.Errorf("sealed entry of %s opens with another aad", id.name)
		}
	}

	signingInput := cat(label0("parley/room/2 commit"), u32(uint32(len(c.Body))), c.Body, sha(c.SealedList), k.tag)
	same(t, "SigningInput", signingInput, c.SigningInput)
	issuer := ids[string(body.Issuer)]
	if issuer == nil {
		t.Fatalf("issuer %x is no identity", body.Issuer)
	}
	same(t, "Signature", ed25519.Sign(issuer.key, signingInput), c.Signature)
	same(t, "Hash", sha(signingInput), c.Hash)
	var sc wirepb.SignedCommit
	unmarshalStrict(t, "Commit", c.Commit, &sc)
	want := &wirepb.SignedCommit{Body: c.Body, Sealed: c.SealedList, Signature: c.Signature, ConfirmationTag: c.ConfirmationTag}
	if !proto.Equal(&sc, want) {
		t.Errorf("Commit is not SignedCommit{Body, SealedList, Signature, ConfirmationTag}")
	}
	return &body
}

func pick(cond bool, a, b []byte) []byte {
	if cond {
		return a
	}
	return b
}

func keyOf(k hpke.PrivateKey) []byte { return k.PublicKey().Bytes() }

// hpkeOpen is RFC 9180 SetupBaseR then one Open(aad, ct).
func hpkeOpen(k hpke.PrivateKey, enc, info, aad, ct []byte) ([]byte, error) {
	r, err := hpke.NewRecipient(enc, k, roomKDF, roomAEAD, info)
	if err != nil {
		return nil, err
	}
	return r.Open(aad, ct)
}

// checkPeerID checks a binary Ed25519 peer ID ("Rooms", Notation).
func checkPeerID(t *testing.T, what string, id []byte) {
	t.Helper()
	if len(id) != 38 || !bytes.Equal(id[:6], []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}) {
		t.Errorf("%s %x is not a binary Ed25519 peer ID", what, id)
	}
}

// unmarshalStrict decodes a protobuf message of room2.proto, which refuses
// unknown fields, and checks that the bytes are the message's canonical
// encoding (fields in order, no duplicates), so the vector holds exactly
// what the .proto describes.
func unmarshalStrict(t *testing.T, what string, b []byte, m proto.Message) {
	t.Helper()
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(m.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("%s holds unknown fields", what)
	}
	again, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Errorf("%s is not the canonical encoding of %v", what, m)
	}
}

type changesVector struct {
	RoomID     hx
	Identities []identityVector
	Update     identityVector
	Commits    []commitEntry
	Leave      struct{ Member, KeyPackage, Input, Signature, Proposal hx }
	Fork       struct {
		Parent hx
		Rivals []struct{ Issuer, ForkInput, ForkKey, Commit, Hash hx }
		Winner int
	}
	Rendezvous struct {
		Epoch              uint64
		RendezvousKey      hx
		Day                string
		Input, Digest, CID hx
		CIDString          string
	}
	Envelopes []struct {
		Kind, Topic    string
		Body, Envelope hx
	}
}

// TestRoomChangesVectors checks changes.json against "Private rooms
// (version 2)": "Commits" for every kind of change (ADD of two members at
// once, ROLE, UPDATE with the commit secret sealed to the new package,
// LEAVE with its proof, REMOVE sealing nothing to the removed member),
// each a valid successor of its parent ("Successor" rules 1 to 5, checked
// by the foreign client's own checkSuccessor), with its context, key
// schedule, HPKE entries, signature and hash; "Leaving" (the leave
// proof); "Fork choice" rule 4 (the tie-break of two admins' rekeys);
// "Rendezvous and connections" (the CID); "Ids and topics" (the
// RoomEnvelope of each body, re-encoded by hand).
func TestRoomChangesVectors(t *testing.T) {
	var v changesVector
	loadRoomVector(t, "changes.json", &v)
	room := []byte(v.RoomID)
	if len(room) != 32 {
		t.Fatalf("room id of %d bytes", len(room))
	}
	// Every private key of each identity, by public key.
	privs := map[string]hpke.PrivateKey{}
	ids := map[string]*identity{}
	for _, iv := range append(slices.Clone(v.Identities), v.Update) {
		id := checkIdentity(t, iv)
		ids[string(id.peerID)] = id
		privs[string(id.enc.PublicKey().Bytes())] = id.enc
		privs[string(id.init.PublicKey().Bytes())] = id.init
	}
	name := func(p []byte) string {
		for _, iv := range v.Identities {
			if bytes.Equal(iv.PeerID, p) {
				return iv.Name
			}
		}
		return hex.EncodeToString(p)
	}
	if len(v.Commits) != 6 {
		t.Fatalf("%d commits, want epochs 1 to 6", len(v.Commits))
	}
	alice, bob, carol := v.Identities[0].PeerID, v.Identities[1].PeerID, v.Identities[2].PeerID
	if !bytes.Equal(v.Update.PeerID, carol) {
		t.Fatal("the update is not carol's")
	}
	type change struct {
		kind           wirepb.ChangeKind
		subject, actor []byte
		role           wirepb.Role
	}
	wantChanges := map[uint64][]change{
		2: {{wirepb.ChangeKind_CHANGE_ADD, bob, alice, wirepb.Role_ROLE_MEMBER}, {wirepb.ChangeKind_CHANGE_ADD, carol, alice, wirepb.Role_ROLE_MEMBER}},
		3: {{wirepb.ChangeKind_CHANGE_ROLE, bob, alice, wirepb.Role_ROLE_ADMIN}, {wirepb.ChangeKind_CHANGE_ROLE, carol, alice, wirepb.Role_ROLE_ADMIN}},
		4: {{wirepb.ChangeKind_CHANGE_UPDATE, carol, carol, wirepb.Role_ROLE_UNSPECIFIED}},
		5: {{wirepb.ChangeKind_CHANGE_LEAVE, carol, carol, wirepb.Role_ROLE_UNSPECIFIED}},
		6: {{wirepb.ChangeKind_CHANGE_REMOVE, bob, alice, wirepb.Role_ROLE_UNSPECIFIED}},
	}

	prevInit := make([]byte, 32)
	var parent *parsedCommit
	chain := map[uint64]*parsedCommit{}
	for i, c := range v.Commits {
		if c.Epoch != uint64(i+1) {
			t.Fatalf("commit %d is of epoch %d", i, c.Epoch)
		}
		p, err := checkOnItsOwn(c.Commit)
		if err != nil {
			t.Fatalf("epoch %d: %v", c.Epoch, err)
		}
		if i == 0 {
			err = checkGenesis(p)
		} else {
			err = checkSuccessor(parent, p)
		}
		if err != nil {
			t.Fatalf("epoch %d: %v", c.Epoch, err)
		}
		var got []change
		for _, ch := range p.body.Changes {
			got = append(got, change{ch.Kind, ch.Subject, ch.Actor, ch.Role})
			if ch.Kind == wirepb.ChangeKind_CHANGE_LEAVE {
				same(t, "LEAVE proof (the leave proposal's signature)", ch.Proof, v.Leave.Signature)
			}
		}
		if i > 0 && fmt.Sprint(got) != fmt.Sprint(wantChanges[c.Epoch]) {
			t.Errorf("epoch %d changes %v, want %v", c.Epoch, got, wantChanges[c.Epoch])
		}
		same(t, "PrevInitSecret", c.PrevInitSecret, prevInit)
		same(t, "Body", p.sc.Body, c.Body)
		same(t, "Context", p.ctx, c.Context)
		k := keySchedule(t, c.PrevInitSecret, c.CommitSecret, p.ctx)
		same(t, "JoinerSecret", k.joiner, c.JoinerSecret)
		same(t, "EpochSecret", k.epoch, c.EpochSecret)
		same(t, "InitSecret", k.init, c.InitSecret)
		same(t, "ConfirmationTag", k.tag, c.ConfirmationTag)
		same(t, "MembershipKey", k.membership, c.MembershipKey)
		welcomeInfo := cat([]byte("parley/room/2 welcome"), room, u64(c.Epoch))
		secretInfo := cat([]byte("parley/room/2 commit secret"), room, u64(c.Epoch))
		same(t, "WelcomeInfo", welcomeInfo, c.WelcomeInfo)
		same(t, "CommitSecretInfo", secretInfo, c.CommitSecretInfo)
		same(t, "SealedList", p.sc.Sealed, c.SealedList)
		in := cat(label0("parley/room/2 commit"), u32(uint32(len(c.Body))), c.Body, sha(c.SealedList), c.ConfirmationTag)
		same(t, "SigningInput", in, c.SigningInput)
		same(t, "Signature", ed25519.Sign(ids[string(p.body.Issuer)].key, in), c.Signature)
		same(t, "Hash", p.hash, c.Hash)
		if len(c.Sealed) != len(p.body.Members) {
			t.Fatalf("epoch %d: %d sealed entries in the vector for %d members", c.Epoch, len(c.Sealed), len(p.body.Members))
		}
		for j, m := range p.body.Members {
			owner := ownerOf(m.KeyPackage)
			kp := p.kps[string(owner)]
			e := c.Sealed[j]
			same(t, "Sealed[].Recipient", e.Recipient, owner)
			same(t, "sealed enc", p.sealed.Secrets[j].Enc, e.Enc)
			same(t, "sealed ciphertext", p.sealed.Secrets[j].Ciphertext, e.Ciphertext)
			added := i == 0 || (parent != nil && parent.members[string(owner)] == nil)
			kind, key, info, wrongInfo, pt := "commit secret", kp.HpkePublicKey, secretInfo, welcomeInfo, []byte(c.CommitSecret)
			if added {
				kind, key, info, wrongInfo, pt = "welcome", kp.HpkeInitKey, welcomeInfo, secretInfo, k.joiner
			}
			if e.Kind != kind {
				t.Errorf("epoch %d: entry of %s is %q, want %q", c.Epoch, name(owner), e.Kind, kind)
			}
			priv := privs[string(key)]
			if priv == nil {
				t.Fatalf("epoch %d: no private key for %s's listed key", c.Epoch, name(owner))
			}
			got, err := hpkeOpen(priv, e.Enc, info, p.ctx, e.Ciphertext)
			if err != nil {
				t.Errorf("epoch %d: entry of %s (%s) does not open with the key the commit lists: %v", c.Epoch, name(owner), kind, err)
			} else {
				same(t, "sealed "+kind, got, pt)
			}
			if _, err := hpkeOpen(priv, e.Enc, wrongInfo, p.ctx, e.Ciphertext); err == nil {
				t.Errorf("epoch %d: entry of %s opens with the other kind's info", c.Epoch, name(owner))
			}
			// After the UPDATE, carol's old encryption key opens nothing.
			if c.Epoch == 4 && bytes.Equal(owner, carol) {
				old, err := roomKEM.NewPrivateKey(v.Identities[2].HPKESeed)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := hpkeOpen(old, e.Enc, info, p.ctx, e.Ciphertext); err == nil {
					t.Error("epoch 4: carol's entry opens with her replaced encryption key")
				}
			}
		}
		chain[c.Epoch] = p
		parent, prevInit = p, c.InitSecret
	}
	// REMOVE: bob is sealed nothing; LEAVE: carol neither.
	if _, in := chain[6].members[string(bob)]; in || len(chain[6].sealed.Secrets) != 1 {
		t.Error("epoch 6 still lists bob or seals to someone else than alice")
	}

	// "Leaving": the proof over the key package in the roster left.
	l := v.Leave
	same(t, "Leave.Member", l.Member, carol)
	same(t, "Leave.KeyPackage (carol's in epoch 4)", l.KeyPackage, chain[4].members[string(carol)].KeyPackage)
	leaveIn := cat(label0("parley/room/2 leave"), room, sha(l.KeyPackage))
	same(t, "Leave.Input", leaveIn, l.Input)
	same(t, "Leave.Signature", ed25519.Sign(ids[string(carol)].key, leaveIn), l.Signature)
	var lp wirepb.LeaveProposal
	unmarshalStrict(t, "Leave.Proposal", l.Proposal, &lp)
	if lp.Epoch != 4 || !bytes.Equal(lp.Signature, l.Signature) {
		t.Errorf("LeaveProposal %v: want epoch 4 and the signature", &lp)
	}

	// "Fork choice", rule 4.
	f := v.Fork
	same(t, "Fork.Parent (epoch 3)", f.Parent, chain[3].hash)
	if len(f.Rivals) != 2 || f.Winner < 0 || f.Winner > 1 {
		t.Fatalf("%d rivals, winner %d", len(f.Rivals), f.Winner)
	}
	var keys [][]byte
	for i, r := range f.Rivals {
		p, err := checkOnItsOwn(r.Commit)
		if err != nil {
			t.Fatalf("rival %d: %v", i, err)
		}
		if err := checkSuccessor(chain[3], p); err != nil {
			t.Fatalf("rival %d: %v", i, err)
		}
		same(t, "rival issuer", p.body.Issuer, r.Issuer)
		same(t, "rival hash", p.hash, r.Hash)
		// Rules 1 to 3 tie: both admins of the parent, neither ousts the
		// other (a REKEY changes nobody), no child.
		if role, _ := chain[3].members[string(r.Issuer)]; role == nil || role.Role != wirepb.Role_ROLE_ADMIN ||
			len(p.body.Changes) != 1 || p.body.Changes[0].Kind != wirepb.ChangeKind_CHANGE_REKEY {
			t.Fatalf("rival %d is not an admin's rekey", i)
		}
		in := cat(label0("parley/room/2 fork"), f.Parent, r.Issuer)
		same(t, "ForkInput", in, r.ForkInput)
		same(t, "ForkKey", sha(in), r.ForkKey)
		keys = append(keys, sha(in))
	}
	if bytes.Equal(f.Rivals[0].Issuer, f.Rivals[1].Issuer) {
		t.Fatal("one issuer: an equivocation, not a fork")
	}
	if want := pickIndex(bytes.Compare(keys[0], keys[1]) > 0); f.Winner != want {
		t.Errorf("Fork.Winner = %d; the smaller fork key is rival %d's", f.Winner, want)
	}

	// "Rendezvous and connections".
	rv := v.Rendezvous
	k := keySchedule(t, v.Commits[rv.Epoch-1].PrevInitSecret, v.Commits[rv.Epoch-1].CommitSecret, v.Commits[rv.Epoch-1].Context)
	same(t, "Rendezvous.RendezvousKey", k.rendezvous, rv.RendezvousKey)
	if _, err := time.Parse(time.DateOnly, rv.Day); err != nil {
		t.Errorf("Rendezvous.Day %q is not YYYY-MM-DD: %v", rv.Day, err)
	}
	rin := cat(label0("parley/room/2 rendezvous"), []byte(rv.Day))
	same(t, "Rendezvous.Input", rin, rv.Input)
	same(t, "Rendezvous.Digest", mac(rv.RendezvousKey, rin), rv.Digest)
	cidBytes := cat([]byte{0x01, 0x55, 0x12, 0x20}, rv.Digest)
	same(t, "Rendezvous.CID (CIDv1 raw, sha2-256 multihash of the digest itself)", cidBytes, rv.CID)
	if s := "b" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(cidBytes)); s != rv.CIDString {
		t.Errorf("Rendezvous.CIDString = %s, want %s", rv.CIDString, s)
	}

	// "Ids and topics": one envelope of each body, re-encoded by hand.
	fields := map[string]protowire.Number{"app": 3, "commit": 4, "key_package": 5, "join_request": 6, "leave": 7}
	seen := map[string]bool{}
	for _, e := range v.Envelopes {
		num, ok := fields[e.Kind]
		if !ok || seen[e.Kind] {
			t.Fatalf("envelope kind %q", e.Kind)
		}
		seen[e.Kind] = true
		if e.Topic != "parley/room/2/"+hex.EncodeToString(room) {
			t.Errorf("envelope topic %q", e.Topic)
		}
		var b []byte
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, 2)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, room)
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendBytes(b, e.Body)
		same(t, "Envelope ("+e.Kind+")", b, e.Envelope)
		var env wirepb.RoomEnvelope
		unmarshalStrict(t, "Envelope", e.Envelope, &env)
		if env.Version != 2 || !bytes.Equal(env.RoomId, room) || len(e.Envelope) > 16<<10 && e.Kind != "commit" {
			t.Errorf("envelope %s: %v", e.Kind, &env)
		}
		switch e.Kind {
		case "app":
			var m wirepb.AppMessage
			unmarshalStrict(t, "app", e.Body, &m)
			es := chain[m.Epoch]
			if es == nil {
				t.Fatalf("app message of epoch %d", m.Epoch)
			}
			same(t, "app epoch_hash", m.EpochHash, es.hash[:8])
			ek := keySchedule(t, v.Commits[m.Epoch-1].PrevInitSecret, v.Commits[m.Epoch-1].CommitSecret, es.ctx)
			same(t, "app MAC", mac(ek.membership, macInput(room, &m, alice)), m.MembershipMac)
			st := &epochState{body: es.body, hash: es.hash, keys: &ek}
			aead, _ := newAEAD(messageKey(t, st, alice, m.Generation))
			if _, err := aead.Open(nil, make([]byte, 12), m.Ciphertext, messageAD(room, m.Epoch, alice, m.Generation, m.MsgId, m.Hlc)); err != nil {
				t.Errorf("app message does not open under alice's chain: %v", err)
			}
		case "commit":
			same(t, "commit envelope body (epoch 6)", e.Body, v.Commits[5].Commit)
		case "key_package":
			same(t, "key_package envelope body (carol's update)", e.Body, v.Update.KeyPackage)
		case "join_request":
			var jr wirepb.JoinRequest
			unmarshalStrict(t, "join_request", e.Body, &jr)
			same(t, "join request key package (bob's)", jr.KeyPackage, chain[2].members[string(bob)].KeyPackage)
			same(t, "join request consent (copied into the add)", jr.Consent, chain[2].members[string(bob)].Consent)
		case "leave":
			same(t, "leave envelope body", e.Body, v.Leave.Proposal)
		}
	}
	if len(seen) != len(fields) {
		t.Errorf("envelopes of %d kinds, want %d", len(seen), len(fields))
	}
}

func pickIndex(second bool) int {
	if second {
		return 1
	}
	return 0
}
