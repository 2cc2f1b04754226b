package group

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

var update = flag.Bool("update", false, "rewrite testdata/keyschedule.json and testdata/commit.json")

// Hex is a byte string written as lowercase hex in the vector files.
type Hex []byte

func (h Hex) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

func (h *Hex) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

// keyScheduleVector pins the key schedule of one epoch, two sender chains,
// one message and one sync proof. testdata/README.md describes each field.
type keyScheduleVector struct {
	RoomID          Hex
	Epoch           uint64
	CommitHash      Hex // hash of the epoch's commit (arbitrary here)
	EpochHash       Hex // its first 8 bytes: AppMessage.epoch_hash
	Context         Hex // the commit context (arbitrary here)
	PrevInitSecret  Hex // private: init secret of epoch - 1
	CommitSecret    Hex // private
	JoinerSecret    Hex // private
	EpochSecret     Hex // private
	ConfirmationKey Hex // private
	ConfirmationTag Hex
	InitSecret      Hex // private: for the next epoch
	MembershipKey   Hex
	RendezvousKey   Hex
	SyncKey         Hex
	Senders         []senderVector
	Message         messageVector
	SyncProof       syncProofVector
}

type senderVector struct {
	Author     Hex // binary peer ID
	SenderInfo Hex // HKDF info: "parley/room/2 sender" || Author
	Chain      []chainStep
}

type chainStep struct {
	Generation uint32
	ChainKey   Hex
	MessageKey Hex
}

type messageVector struct {
	Author     Hex
	Generation uint32
	Hlc        uint64
	MsgID      Hex
	Plaintext  Hex
	MessageKey Hex
	AD         Hex
	Ciphertext Hex
	MACInput   Hex
	MAC        Hex
	AppMessage Hex // serialized wirepb.AppMessage
}

type syncProofVector struct {
	Requester Hex
	Responder Hex
	Request   Hex // serialized wirepb.RoomFetchRequest without proof
	Input     Hex
	Proof     Hex
}

// identityVector is one Ed25519 identity with one HPKE key package.
type identityVector struct {
	Name           string
	Ed25519Seed    Hex // private
	Ed25519Public  Hex
	PeerID         Hex // binary peer ID (identity multihash of the libp2p public key)
	HPKESeed       Hex // private: input to DHKEM(X25519).NewPrivateKey (encryption key)
	HPKEPrivate    Hex // private: SerializePrivateKey
	HPKEPublic     Hex
	HPKEInitSeed   Hex // private: the same for the one-time init key
	HPKEInitPublic Hex
	KeyPackageBody Hex // serialized wirepb.KeyPackage
	KeyPackageSig  Hex // over "parley/room/2 key package" || 0x00 || KeyPackageBody
	KeyPackage     Hex // serialized wirepb.SignedKeyPackage
}

type sealedVector struct {
	Recipient  Hex    // binary peer ID
	Kind       string // "welcome" (joiner secret, init key) or "commit secret" (encryption key)
	Enc        Hex
	Ciphertext Hex
}

type commitVector struct {
	Epoch            uint64
	PrevInitSecret   Hex // private: the parent epoch's init secret (zeros at genesis)
	CommitSecret     Hex // private
	Body             Hex // serialized wirepb.CommitBody
	Context          Hex // SHA-256("parley/room/2 commit body" || 0x00 || Body): HPKE aad and key schedule context
	JoinerSecret     Hex // private
	EpochSecret      Hex // private
	ConfirmationTag  Hex
	WelcomeInfo      Hex // HPKE info: "parley/room/2 welcome" || room id || u64(epoch)
	CommitSecretInfo Hex // HPKE info: "parley/room/2 commit secret" || room id || u64(epoch)
	Sealed           []sealedVector
	SealedList       Hex // serialized wirepb.SealedSecrets
	SigningInput     Hex
	Signature        Hex
	Hash             Hex // SHA-256(SigningInput)
	Commit           Hex // serialized wirepb.SignedCommit
	MembershipKey    Hex // as in keyschedule.json
	InitSecret       Hex // private
}

type commitFile struct {
	RoomID      Hex
	Identities  []identityVector
	Commits     []commitVector
	JoinToken   tokenVector
	JoinRequest joinRequestVector
}

type tokenVector struct {
	Body      Hex // serialized wirepb.JoinToken
	Signature Hex // over "parley/room/2 join token" || 0x00 || Body
	Token     Hex // serialized wirepb.SignedJoinToken
}

type joinRequestVector struct {
	JoinSecret   Hex // private to the link's holders
	ProofInput   Hex // "parley/room/2 join proof" || 0x00 || lp(token) || lp(joiner) || lp(key package)
	Proof        Hex // HMAC-SHA256(JoinSecret, ProofInput)
	ConsentInput Hex // "parley/room/2 join consent" || 0x00 || room id || SHA-256(key package)
	Consent      Hex // the joiner's Ed25519 signature over ConsentInput
	Request      Hex // serialized wirepb.JoinRequest
}

// checkFile compares got with the JSON file at name (rewriting it with
// -update).
func checkFile(t *testing.T, name string, got any) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	gb, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	gb = append(gb, '\n')
	if *update {
		if err := os.WriteFile(path, gb, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run KnownAnswers -update to create it)", err)
	}
	return b
}

func hmacSHA256(key []byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func lp(b []byte) []byte         { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) }
func u64(v uint64) []byte        { return binary.BigEndian.AppendUint64(nil, v) }
func u32(v uint32) []byte        { return binary.BigEndian.AppendUint32(nil, v) }
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// ks computes the key schedule from the specification with the standard
// library's HKDF and HMAC.
type ks struct{ joiner, epoch, confirmKey, tag, init, membership, rendezvous, sync []byte }

func specSchedule(prevInit, commitSecret, ctx []byte) ks {
	expCtx := func(prk []byte, label string) []byte {
		k, _ := hkdf.Expand(sha256.New, prk, label+"\x00"+string(ctx), 32)
		return k
	}
	exp := func(prk []byte, info string) []byte { k, _ := hkdf.Expand(sha256.New, prk, info, 32); return k }
	var k ks
	prk, _ := hkdf.Extract(sha256.New, commitSecret, prevInit)
	k.joiner = expCtx(prk, "parley/room/2 joiner")
	member, _ := hkdf.Extract(sha256.New, make([]byte, 32), k.joiner)
	k.epoch = expCtx(member, "parley/room/2 epoch")
	k.confirmKey = exp(k.epoch, "parley/room/2 confirm")
	k.tag = hmacSHA256(k.confirmKey, ctx)
	k.init = exp(k.epoch, "parley/room/2 init")
	k.membership = exp(k.epoch, "parley/room/2 membership")
	k.rendezvous = exp(k.epoch, "parley/room/2 rendezvous")
	k.sync = exp(k.epoch, "parley/room/2 sync")
	return k
}

// computeKeySchedule computes the key schedule from the specification
// (docs/PROTOCOL.md, with the standard library's HKDF, HMAC and x/crypto's
// ChaCha20-Poly1305) and checks the implementation agrees.
func computeKeySchedule(t *testing.T) keyScheduleVector {
	var room RoomID
	copy(room[:], seed("room"))
	a, b := newIdent(t, "alice"), newIdent(t, "bob")
	v := keyScheduleVector{RoomID: room[:], Epoch: 3, CommitHash: seed("commit hash"), Context: seed("commit context"),
		PrevInitSecret: seed("init secret 2"), CommitSecret: seed("commit secret 3")}
	v.EpochHash = v.CommitHash[:8]
	k := specSchedule(v.PrevInitSecret, v.CommitSecret, v.Context)
	v.JoinerSecret, v.EpochSecret, v.ConfirmationKey, v.ConfirmationTag, v.InitSecret = k.joiner, k.epoch, k.confirmKey, k.tag, k.init
	v.MembershipKey, v.RendezvousKey, v.SyncKey = k.membership, k.rendezvous, k.sync
	exp := func(info string) Hex { k, _ := hkdf.Expand(sha256.New, v.EpochSecret, info, 32); return k }
	for _, p := range []*ident{a, b} {
		info := cat([]byte("parley/room/2 sender"), []byte(p.id))
		sv := senderVector{Author: []byte(p.id), SenderInfo: info}
		ck := exp(string(info))
		for g := range uint32(3) {
			sv.Chain = append(sv.Chain, chainStep{Generation: g, ChainKey: ck, MessageKey: hmacSHA256(ck, []byte{1})})
			ck = hmacSHA256(ck, []byte{2})
		}
		v.Senders = append(v.Senders, sv)
	}
	m := messageVector{Author: []byte(b.id), Generation: 2, Hlc: 1_800_000_000_000<<16 | 5, MsgID: seed("msg id")[:16], Plaintext: []byte("hello, room")}
	m.MessageKey = v.Senders[1].Chain[2].MessageKey
	m.AD = cat([]byte("parley/room/2 message\x00"), lp(room[:]), u64(v.Epoch), lp(m.Author), u32(m.Generation), lp(m.MsgID), u64(m.Hlc))
	aead, _ := chacha20poly1305.New(m.MessageKey)
	m.Ciphertext = aead.Seal(nil, make([]byte, 12), m.Plaintext, m.AD)
	m.MACInput = cat([]byte("parley/room/2 membership mac\x00"), lp(room[:]), u64(v.Epoch), lp(v.EpochHash), lp(m.Author), u32(m.Generation), u64(m.Hlc), lp(m.MsgID), lp(m.Ciphertext))
	m.MAC = hmacSHA256(v.MembershipKey, m.MACInput)
	app := &wirepb.AppMessage{Epoch: v.Epoch, EpochHash: v.EpochHash, Generation: m.Generation, Hlc: m.Hlc, MsgId: m.MsgID, Ciphertext: m.Ciphertext, MembershipMac: m.MAC}
	m.AppMessage = marshal(app)
	v.Message = m
	req := &wirepb.RoomFetchRequest{Version: 2, RoomId: room[:], Epoch: v.Epoch, CommitsAfter: 2, AfterHlc: m.Hlc, Limit: 100}
	sp := syncProofVector{Requester: []byte(a.id), Responder: []byte(b.id), Request: marshal(req)}
	sp.Input = cat([]byte("parley/room/2 sync proof\x00"), lp(room[:]), u64(v.Epoch), u64(2), u64(m.Hlc), u32(100), lp(sp.Requester), lp(sp.Responder))
	sp.Proof = hmacSHA256(v.SyncKey, sp.Input)
	v.SyncProof = sp

	// The implementation, from the same inputs.
	c := &Commit{Room: room, Epoch: v.Epoch, Members: []Member{{ID: a.id, Role: RoleOwner, KeyPackage: a.kp}, {ID: b.id, Role: RoleMember, KeyPackage: b.kp}}}
	c.index = map[peer.ID]int{a.id: 0, b.id: 1}
	copy(c.hash[:], v.CommitHash)
	copy(c.bodyHash[:], v.Context)
	joiner := joinerSecret(v.PrevInitSecret, v.CommitSecret, c.bodyHash)
	secret := epochSecret(joiner, c.bodyHash)
	tag := confirmationTag(secret, c.bodyHash)
	if !bytes.Equal(joiner[:], v.JoinerSecret) || !bytes.Equal(secret[:], v.EpochSecret) || !bytes.Equal(tag[:], v.ConfirmationTag) {
		t.Fatal("joiner secret, epoch secret or confirmation tag differ from the specification")
	}
	copy(c.tag[:], tag[:])
	send, err := c.finish(joiner)
	if err != nil {
		t.Fatal(err)
	}
	recv := deriveEpoch(c, secret)
	init, _ := send.initSecret()
	if !bytes.Equal(send.membershipKey[:], v.MembershipKey) || !bytes.Equal(send.RendezvousKey(), v.RendezvousKey) || !bytes.Equal(send.syncKey[:], v.SyncKey) ||
		!bytes.Equal(init, v.InitSecret) {
		t.Fatal("derived keys differ from the specification")
	}
	for i := range 3 {
		got, err := send.Seal(b.id, m.MsgID, m.Hlc, m.Plaintext)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 && !proto.Equal(got, app) {
			t.Fatalf("Seal made %x, the specification %x", marshal(got), m.AppMessage)
		}
	}
	if pt, err := recv.Open(b.id, app); err != nil || !bytes.Equal(pt, m.Plaintext) {
		t.Fatal("Open of the vector message:", err)
	}
	if got := recv.SyncProof(a.id, b.id, req); !bytes.Equal(got, sp.Proof) {
		t.Fatal("sync proof differs from the specification")
	}
	return v
}

// TestKnownAnswersKeySchedule checks testdata/keyschedule.json.
func TestKnownAnswersKeySchedule(t *testing.T) {
	got := computeKeySchedule(t)
	b := checkFile(t, "keyschedule.json", got)
	var want keyScheduleVector
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Fatal("key schedule differs from testdata/keyschedule.json; if intended, run go test -run KnownAnswers -update and review the diff")
	}
}

// vectorIdent is newIdent with its vector.
func vectorIdent(t *testing.T, name string) (*ident, identityVector) {
	i := newIdent(t, name)
	edSeed := seed("identity " + name)
	hk, _ := hpkeKEM.NewPrivateKey(seed("hpke " + name))
	hpriv, _ := hk.Bytes()
	s := i.kp.Proto()
	return i, identityVector{
		Name:           name,
		Ed25519Seed:    edSeed,
		Ed25519Public:  Hex(ed25519.NewKeyFromSeed(edSeed).Public().(ed25519.PublicKey)),
		PeerID:         []byte(i.id),
		HPKESeed:       seed("hpke " + name),
		HPKEPrivate:    hpriv,
		HPKEPublic:     i.kp.PublicKey,
		HPKEInitSeed:   seed("hpke init " + name),
		HPKEInitPublic: i.kp.InitKey,
		KeyPackageBody: s.KeyPackage,
		KeyPackageSig:  s.Signature,
		KeyPackage:     i.kp.Marshal(),
	}
}

func commitVectorOf(c *Commit, prevInit, commitSecret []byte) commitVector {
	k := specSchedule(prevInit, commitSecret, c.bodyHash[:])
	v := commitVector{
		Epoch:            c.Epoch,
		PrevInitSecret:   prevInit,
		CommitSecret:     commitSecret,
		Body:             c.signed.Body,
		Context:          c.bodyHash[:],
		JoinerSecret:     k.joiner,
		EpochSecret:      k.epoch,
		ConfirmationTag:  c.tag[:],
		WelcomeInfo:      welcomeInfo(c.Room, c.Epoch),
		CommitSecretInfo: commitSecretInfo(c.Room, c.Epoch),
		SealedList:       c.signed.Sealed,
		SigningInput:     commitSigningInput(c.signed.Body, c.signed.Sealed, c.tag[:]),
		Signature:        c.signed.Signature,
		Hash:             c.hash[:],
		Commit:           c.raw,
		MembershipKey:    k.membership,
		InitSecret:       k.init,
	}
	for i, ss := range c.sealed {
		kind := "commit secret"
		if c.Welcomes(c.Members[i].ID) {
			kind = "welcome"
		}
		v.Sealed = append(v.Sealed, sealedVector{Recipient: []byte(c.Members[i].ID), Kind: kind, Enc: ss.Enc, Ciphertext: ss.Ciphertext})
	}
	return v
}

// TestKnownAnswersCommit checks testdata/commit.json: a genesis commit by
// alice, the commit adding bob (a Welcome) and a rekey (commit secrets to
// both), with fixed identities, HPKE keys and commit secrets, plus a join
// token and join request. HPKE encapsulation draws its ephemeral key from
// crypto/rand, which the generator fixes with testing/cryptotest; Go does
// not promise the same draw across versions, so the check does not redo
// the encapsulation: it opens the recorded sealed secrets with the
// recipients' private keys and recomputes everything else.
func TestKnownAnswersCommit(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 2026)
	var room RoomID
	copy(room[:], seed("room"))
	a, av := vectorIdent(t, "alice")
	b, bv := vectorIdent(t, "bob")
	s1, s2, s3 := seed("secret 1"), seed("secret 2"), seed("secret 3")
	g, ge, err := create(bytes.NewReader(s1), room, a.priv, a.kp, t0)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := newJoinToken(a.priv, g, [16]byte(seed("token")), seed("join secret"), 5, t0.Add(24*time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	req, err := NewJoinRequest(b.priv, tok, tok.Secret, b.kp)
	if err != nil {
		t.Fatal(err)
	}
	c2, e2, err := newCommit(bytes.NewReader(s2), ge, a.priv, Proposal{Add: []Addition{{KeyPackage: b.kp, Consent: req.Consent}}}, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	c3, _, err := newCommit(bytes.NewReader(s3), e2, a.priv, Proposal{}, t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	i1, _ := ge.initSecret()
	i2, _ := e2.initSecret()
	var st wirepb.SignedJoinToken
	_ = proto.Unmarshal(tok.raw, &st)
	got := commitFile{
		RoomID:     room[:],
		Identities: []identityVector{av, bv},
		Commits:    []commitVector{commitVectorOf(g, make([]byte, 32), s1), commitVectorOf(c2, i1, s2), commitVectorOf(c3, i2, s3)},
		JoinToken:  tokenVector{Body: st.Token, Signature: st.Signature, Token: tok.raw},
		JoinRequest: joinRequestVector{
			JoinSecret:   tok.Secret,
			ProofInput:   cat([]byte("parley/room/2 join proof\x00"), lp(tok.raw), lp([]byte(b.id)), lp(b.kp.raw)),
			Proof:        req.Proof,
			ConsentInput: cat([]byte("parley/room/2 join consent\x00"), room[:], sum(b.kp.raw)),
			Consent:      req.Consent,
			Request:      marshal(req),
		},
	}
	raw := checkFile(t, "commit.json", got)
	var want commitFile
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}

	// Everything that does not depend on HPKE's ephemeral keys must match
	// what this build computes.
	for i := range got.Identities {
		gb, _ := json.Marshal(got.Identities[i])
		wb, _ := json.Marshal(want.Identities[i])
		if !bytes.Equal(gb, wb) {
			t.Fatalf("identity %s differs", want.Identities[i].Name)
		}
	}
	gj, _ := json.Marshal(got.JoinRequest)
	wj, _ := json.Marshal(want.JoinRequest)
	if !bytes.Equal(got.JoinToken.Token, want.JoinToken.Token) || !bytes.Equal(got.RoomID, want.RoomID) || !bytes.Equal(gj, wj) {
		t.Fatal("join token, join request or room id differs")
	}
	jr := want.JoinRequest
	if !bytes.Equal(hmacSHA256(jr.JoinSecret, jr.ProofInput), jr.Proof) {
		t.Fatal("join proof differs from the specification")
	}
	encKeys := map[string]hpke.PrivateKey{}
	initKeys := map[string]hpke.PrivateKey{}
	signers := map[string]crypto.PrivKey{}
	for _, iv := range want.Identities {
		k, err := hpkeKEM.NewPrivateKey(iv.HPKESeed)
		if err != nil {
			t.Fatal(err)
		}
		ik, err := hpkeKEM.NewPrivateKey(iv.HPKEInitSeed)
		if err != nil {
			t.Fatal(err)
		}
		encKeys[string(iv.PeerID)], initKeys[string(iv.PeerID)] = k, ik
		signers[string(iv.PeerID)] = identKey(t, iv.Name)
		if err := verify(peer.ID(iv.PeerID), labelConsent, jr.ConsentInput[len(labelConsent)+1:], jr.Consent); err != nil && iv.Name == "bob" {
			t.Fatal("consent signature:", err)
		}
	}
	var parent *Commit
	epochs := map[string]*Epoch{}
	for i, cv := range want.Commits {
		if !bytes.Equal(cv.Body, got.Commits[i].Body) {
			t.Fatalf("commit %d body differs", i)
		}
		c, err := ParseCommit(cv.Commit)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			err = CheckGenesis(c)
		} else {
			err = CheckSuccessor(parent, c)
		}
		if err != nil {
			t.Fatal(err)
		}
		k := specSchedule(cv.PrevInitSecret, cv.CommitSecret, cv.Context)
		in := cat([]byte("parley/room/2 commit\x00"), u32(uint32(len(cv.Body))), cv.Body, sum(cv.SealedList), cv.ConfirmationTag)
		bh := sha256.Sum256(cat([]byte("parley/room/2 commit body\x00"), cv.Body))
		info := cat([]byte("parley/room/2 welcome"), want.RoomID, u64(cv.Epoch))
		csInfo := cat([]byte("parley/room/2 commit secret"), want.RoomID, u64(cv.Epoch))
		if !bytes.Equal(in, cv.SigningInput) || !bytes.Equal(sum(in), cv.Hash) || c.Hash() != Hash(cv.Hash) ||
			!bytes.Equal(bh[:], cv.Context) || !bytes.Equal(info, cv.WelcomeInfo) || !bytes.Equal(csInfo, cv.CommitSecretInfo) ||
			!bytes.Equal(k.joiner, cv.JoinerSecret) || !bytes.Equal(k.epoch, cv.EpochSecret) || !bytes.Equal(k.tag, cv.ConfirmationTag) ||
			!bytes.Equal(k.membership, cv.MembershipKey) || !bytes.Equal(k.init, cv.InitSecret) {
			t.Fatalf("commit %d: signing input, hash, context, info or key schedule differ", i)
		}
		if i > 0 && !bytes.Equal(cv.PrevInitSecret, want.Commits[i-1].InitSecret) {
			t.Fatalf("commit %d: init secret not chained", i)
		}
		sig, err := signers[string(c.Issuer)].Sign(in)
		if err != nil || !bytes.Equal(sig, cv.Signature) {
			t.Fatalf("commit %d: signature differs", i)
		}
		next := map[string]*Epoch{}
		for _, sv := range cv.Sealed {
			key, inf, wantPT := encKeys[string(sv.Recipient)], csInfo, cv.CommitSecret
			if sv.Kind == "welcome" {
				key, inf, wantPT = initKeys[string(sv.Recipient)], info, cv.JoinerSecret
			}
			rcp, err := hpke.NewRecipient(sv.Enc, key, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), inf)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := rcp.Open(bh[:], sv.Ciphertext)
			if err != nil || !bytes.Equal(pt, wantPT) {
				t.Fatalf("commit %d: sealed secret for %x: %v", i, sv.Recipient, err)
			}
			id := peer.ID(sv.Recipient)
			kpp := &KeyPackagePrivate{PublicKey: encKeys[string(id)].PublicKey().Bytes(), priv: encKeys[string(id)],
				InitKey: initKeys[string(id)].PublicKey().Bytes(), init: initKeys[string(id)]}
			var e *Epoch
			if sv.Kind == "welcome" {
				e, err = c.Open(id, []*KeyPackagePrivate{kpp})
			} else {
				e, err = epochs[string(id)].Next(c, id, []*KeyPackagePrivate{kpp})
			}
			if err != nil || !bytes.Equal(e.membershipKey[:], cv.MembershipKey) {
				t.Fatalf("commit %d: Open for %x: %v", i, sv.Recipient, err)
			}
			// What a member stores holds none of the commit's secrets.
			stored, err := e.MarshalBinary()
			if err != nil || bytes.Contains(stored, cv.CommitSecret) || bytes.Contains(stored, cv.JoinerSecret) ||
				bytes.Contains(stored, cv.EpochSecret) || i > 0 && bytes.Contains(stored, cv.PrevInitSecret) {
				t.Fatalf("commit %d: the stored epoch holds a secret of the key schedule (%v)", i, err)
			}
			next[string(id)] = e
		}
		epochs = next
		parent = c
	}
	tk, err := ParseJoinToken(want.JoinToken.Token)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Check(parent, b.id, t0); err != nil {
		t.Fatal(err)
	}
}

func sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
