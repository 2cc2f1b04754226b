package group

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// changesFile pins testdata/changes.json: a chain with every kind of
// change after ADD (ROLE, UPDATE, LEAVE, REMOVE), a fork of two admins'
// rekeys decided by the tie-break, the version-2 rendezvous CID and the
// RoomEnvelope of each body. testdata/README.md describes every field.
type changesFile struct {
	RoomID     Hex
	Identities []identityVector // alice (owner), bob, carol
	Update     identityVector   // carol's newer key package (the UPDATE)
	Commits    []commitVector   // epochs 1 to 6
	Leave      leaveVector
	Fork       forkVector
	Rendezvous rendezvousVector
	Envelopes  []envelopeVector
}

type leaveVector struct {
	Member     Hex // binary peer ID of the leaver
	KeyPackage Hex // its SignedKeyPackage in the roster it leaves (epoch 4)
	Input      Hex // "parley/room/2 leave" || 0x00 || room id || SHA-256(KeyPackage)
	Signature  Hex // the leaver's Ed25519 signature over Input
	Proposal   Hex // serialized wirepb.LeaveProposal
}

type forkVector struct {
	Parent Hex // hash of the commit both rivals follow (epoch 3)
	Rivals []forkRival
	Winner int // index in Rivals of the commit that wins
}

type forkRival struct {
	Issuer    Hex // binary peer ID
	ForkInput Hex // "parley/room/2 fork" || 0x00 || Parent || Issuer
	ForkKey   Hex // SHA-256(ForkInput)
	Commit    Hex // serialized wirepb.SignedCommit (a REKEY by Issuer)
	Hash      Hex // its commit hash
}

type rendezvousVector struct {
	Epoch         uint64
	RendezvousKey Hex    // the epoch's rendezvous key (commit of that epoch in Commits)
	Day           string // UTC date, YYYY-MM-DD
	Input         Hex    // "parley/room/2 rendezvous" || 0x00 || Day
	Digest        Hex    // HMAC-SHA256(RendezvousKey, Input)
	CID           Hex    // binary CIDv1: 0x01 0x55 (raw) 0x12 0x20 (sha2-256, 32 bytes) || Digest
	CIDString     string // its multibase base32 text form
}

type envelopeVector struct {
	Kind     string // the body: app, commit, key_package, join_request, leave
	Topic    string // "parley/room/2/" || hex(room id)
	Body     Hex    // the serialized body message
	Envelope Hex    // serialized wirepb.RoomEnvelope{version 2, room_id, body}
}

// TestKnownAnswersChanges checks testdata/changes.json (rewritten with
// -update). As in TestKnownAnswersCommit, HPKE's ephemeral keys come from
// a fixed crypto/rand that Go does not promise across versions: the check
// opens the recorded sealed entries and recomputes everything else.
func TestKnownAnswersChanges(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 2027)
	var room RoomID
	copy(room[:], seed("room"))
	a, av := vectorIdent(t, "alice")
	b, bv := vectorIdent(t, "bob")
	c, cv := vectorIdent(t, "carol")
	ck, _ := hpkeKEM.NewPrivateKey(seed("hpke carol 2"))
	cik, _ := hpkeKEM.NewPrivateKey(seed("hpke init carol 2"))
	ckp, _, err := newKeyPackage(c.priv, ck, cik, t0.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	chpriv, _ := ck.Bytes()
	ckps := ckp.Proto()
	uv := identityVector{Name: "carol", Ed25519Seed: cv.Ed25519Seed, Ed25519Public: cv.Ed25519Public, PeerID: cv.PeerID,
		HPKESeed: seed("hpke carol 2"), HPKEPrivate: chpriv, HPKEPublic: ckp.PublicKey, HPKEInitSeed: seed("hpke init carol 2"),
		HPKEInitPublic: ckp.InitKey, KeyPackageBody: ckps.KeyPackage, KeyPackageSig: ckps.Signature, KeyPackage: ckp.Marshal()}

	secrets := make([][]byte, 7)
	for i := range secrets {
		secrets[i] = seed("changes secret " + string(rune('0'+i)))
	}
	g, ge, err := create(bytes.NewReader(secrets[1]), room, a.priv, a.kp, t0)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := newJoinToken(a.priv, g, [16]byte(seed("changes token")), seed("changes join secret"), 5, t0.Add(24*time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := NewJoinRequest(b.priv, tok, tok.Secret, b.kp)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := NewJoinRequest(c.priv, tok, tok.Secret, c.kp)
	if err != nil {
		t.Fatal(err)
	}
	step := func(n int, pe *Epoch, p Proposal) (*Commit, *Epoch) {
		t.Helper()
		cm, e, err := newCommit(bytes.NewReader(secrets[n]), pe, a.priv, p, t0.Add(time.Duration(n)*time.Minute))
		if err != nil {
			t.Fatalf("epoch %d: %v", n, err)
		}
		if err := CheckSuccessor(pe.commit, cm); err != nil {
			t.Fatalf("epoch %d: %v", n, err)
		}
		return cm, e
	}
	c2, e2 := step(2, ge, Proposal{Add: []Addition{{KeyPackage: b.kp, Consent: rb.Consent}, {KeyPackage: c.kp, Consent: rc.Consent}}})
	c3, e3 := step(3, e2, Proposal{Roles: []RoleChange{{ID: b.id, Role: RoleAdmin}, {ID: c.id, Role: RoleAdmin}}})
	c4, e4 := step(4, e3, Proposal{Update: []*KeyPackage{ckp}})
	leave, err := NewLeaveProposal(c.priv, c4)
	if err != nil {
		t.Fatal(err)
	}
	c5, e5 := step(5, e4, Proposal{Leave: []Leave{{Member: c.id, Signature: leave.Signature}}})
	c6, _ := step(6, e5, Proposal{Remove: []peer.ID{b.id}})

	// The fork: bob and carol, both admins of epoch 3, each rekey it.
	var fork forkVector
	fork.Parent = c3.hash[:]
	var rivals []*Commit
	for i, x := range []*ident{b, c} {
		r, _, err := newCommit(bytes.NewReader(seed("fork secret "+x.name)), e3, x.priv, Proposal{}, t0.Add(4*time.Minute+time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckSuccessor(c3, r); err != nil || !SameSlot(r, c4) {
			t.Fatalf("rival of %s: %v", x.name, err)
		}
		in := cat([]byte("parley/room/2 fork\x00"), c3.hash[:], []byte(x.id))
		k := forkKey(r)
		if !bytes.Equal(sum(in), k[:]) {
			t.Fatal("fork key differs from the specification")
		}
		fork.Rivals = append(fork.Rivals, forkRival{Issuer: []byte(x.id), ForkInput: in, ForkKey: k[:], Commit: r.Marshal(), Hash: r.hash[:]})
		rivals = append(rivals, r)
	}
	if Wins(c3, rivals[1], rivals[0], false, false) {
		fork.Winner = 1
	}
	if Wins(c3, rivals[fork.Winner], rivals[1-fork.Winner], false, false) != (bytes.Compare(fork.Rivals[fork.Winner].ForkKey, fork.Rivals[1-fork.Winner].ForkKey) < 0) {
		t.Fatal("Wins disagrees with the tie-break of the specification")
	}

	// The rendezvous CID of epoch 2 on one day.
	k2 := specSchedule(mustInit(t, ge), secrets[2], c2.bodyHash[:])
	if !bytes.Equal(k2.rendezvous, e2.RendezvousKey()) {
		t.Fatal("rendezvous key differs from the specification")
	}
	rv := rendezvousVector{Epoch: 2, RendezvousKey: k2.rendezvous, Day: "2027-01-15"}
	rv.Input = cat([]byte("parley/room/2 rendezvous\x00"), []byte(rv.Day))
	rv.Digest = hmacSHA256(rv.RendezvousKey, rv.Input)
	mh, err := multihash.Encode(rv.Digest, multihash.SHA2_256)
	if err != nil {
		t.Fatal(err)
	}
	id := cid.NewCidV1(cid.Raw, mh)
	rv.CID, rv.CIDString = id.Bytes(), id.String()
	if !bytes.Equal(rv.CID, cat([]byte{0x01, 0x55, 0x12, 0x20}, rv.Digest)) {
		t.Fatal("CID bytes differ from the specification")
	}

	// One envelope per body.
	topic := "parley/room/2/" + hex.EncodeToString(room[:])
	app, err := e5.Seal(a.id, seed("changes msg id")[:16], uint64(t0.Add(6*time.Minute).UnixMilli())<<16, []byte("hello, envelope"))
	if err != nil {
		t.Fatal(err)
	}
	var envs []envelopeVector
	for _, x := range []struct {
		kind string
		num  protowire.Number
		body proto.Message
		env  *wirepb.RoomEnvelope
	}{
		{"app", 3, app, &wirepb.RoomEnvelope{Body: &wirepb.RoomEnvelope_App{App: app}}},
		{"commit", 4, c6.Proto(), &wirepb.RoomEnvelope{Body: &wirepb.RoomEnvelope_Commit{Commit: c6.Proto()}}},
		{"key_package", 5, ckp.Proto(), &wirepb.RoomEnvelope{Body: &wirepb.RoomEnvelope_KeyPackage{KeyPackage: ckp.Proto()}}},
		{"join_request", 6, rb, &wirepb.RoomEnvelope{Body: &wirepb.RoomEnvelope_JoinRequest{JoinRequest: rb}}},
		{"leave", 7, leave, &wirepb.RoomEnvelope{Body: &wirepb.RoomEnvelope_Leave{Leave: leave}}},
	} {
		x.env.Version, x.env.RoomId = Version, room[:]
		data := marshal(x.env)
		if _, err := ParseEnvelope(room, data); err != nil {
			t.Fatalf("envelope %s: %v", x.kind, err)
		}
		body := marshal(x.body)
		var want []byte
		want = protowire.AppendTag(want, 1, protowire.VarintType)
		want = protowire.AppendVarint(want, Version)
		want = protowire.AppendTag(want, 2, protowire.BytesType)
		want = protowire.AppendBytes(want, room[:])
		want = protowire.AppendTag(want, x.num, protowire.BytesType)
		want = protowire.AppendBytes(want, body)
		if !bytes.Equal(want, data) {
			t.Fatalf("envelope %s: encoding differs from the specification", x.kind)
		}
		envs = append(envs, envelopeVector{Kind: x.kind, Topic: topic, Body: body, Envelope: data})
	}

	got := changesFile{
		RoomID:     room[:],
		Identities: []identityVector{av, bv, cv},
		Update:     uv,
		Commits: []commitVector{
			commitVectorOf(g, make([]byte, 32), secrets[1]),
			commitVectorOf(c2, mustInit(t, ge), secrets[2]),
			commitVectorOf(c3, mustInit(t, e2), secrets[3]),
			commitVectorOf(c4, mustInit(t, e3), secrets[4]),
			commitVectorOf(c5, mustInit(t, e4), secrets[5]),
			commitVectorOf(c6, mustInit(t, e5), secrets[6]),
		},
		Leave: leaveVector{Member: []byte(c.id), KeyPackage: ckp.Marshal(), Input: cat([]byte("parley/room/2 leave\x00"), room[:], sum(ckp.Marshal())),
			Signature: leave.Signature, Proposal: marshal(leave)},
		Fork:       fork,
		Rendezvous: rv,
		Envelopes:  envs,
	}
	raw := checkFile(t, "changes.json", got)
	var want changesFile
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}

	// What does not depend on HPKE's ephemeral keys must match.
	same := func(what string, x, y any) {
		t.Helper()
		xb, _ := json.Marshal(x)
		yb, _ := json.Marshal(y)
		if !bytes.Equal(xb, yb) {
			t.Fatalf("%s differs from testdata/changes.json; if intended, run go test -run KnownAnswers -update and review the diff", what)
		}
	}
	same("identities", got.Identities, want.Identities)
	same("update", got.Update, want.Update)
	same("rendezvous", got.Rendezvous, want.Rendezvous)
	if !bytes.Equal(got.RoomID, want.RoomID) || len(want.Commits) != len(got.Commits) || len(want.Fork.Rivals) != 2 || len(want.Envelopes) != len(got.Envelopes) {
		t.Fatal("changes.json: room id or counts differ")
	}
	encKeys := map[string][]hpke.PrivateKey{}
	initKeys := map[string][]hpke.PrivateKey{}
	for _, iv := range append(want.Identities, want.Update) {
		k, _ := hpkeKEM.NewPrivateKey(iv.HPKESeed)
		ik, _ := hpkeKEM.NewPrivateKey(iv.HPKEInitSeed)
		encKeys[string(iv.PeerID)] = append(encKeys[string(iv.PeerID)], k)
		initKeys[string(iv.PeerID)] = append(initKeys[string(iv.PeerID)], ik)
	}
	var parent *Commit
	for i, wv := range want.Commits {
		gv := got.Commits[i]
		if !bytes.Equal(wv.Body, gv.Body) || !bytes.Equal(wv.Context, gv.Context) || !bytes.Equal(wv.CommitSecret, gv.CommitSecret) {
			t.Fatalf("commit %d: body differs", i)
		}
		cm, err := ParseCommit(wv.Commit)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			err = CheckGenesis(cm)
		} else {
			err = CheckSuccessor(parent, cm)
		}
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		k := specSchedule(wv.PrevInitSecret, wv.CommitSecret, wv.Context)
		if !bytes.Equal(k.tag, wv.ConfirmationTag) || !bytes.Equal(k.init, wv.InitSecret) || (i > 0 && !bytes.Equal(wv.PrevInitSecret, want.Commits[i-1].InitSecret)) {
			t.Fatalf("commit %d: key schedule differs", i)
		}
		for _, sv := range wv.Sealed {
			keys, info, pt := encKeys[string(sv.Recipient)], wv.CommitSecretInfo, []byte(wv.CommitSecret)
			if sv.Kind == "welcome" {
				keys, info, pt = initKeys[string(sv.Recipient)], wv.WelcomeInfo, wv.JoinerSecret
			}
			opened := false
			for _, key := range keys {
				r, err := hpke.NewRecipient(sv.Enc, key, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), info)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := r.Open(wv.Context, sv.Ciphertext); err == nil && bytes.Equal(got, pt) {
					opened = true
				}
			}
			if !opened {
				t.Fatalf("commit %d: sealed entry for %x does not open", i, sv.Recipient)
			}
		}
		parent = cm
	}
	var c3w *Commit
	if c3w, err = ParseCommit(want.Commits[2].Commit); err != nil {
		t.Fatal(err)
	}
	var wr []*Commit
	for i, r := range want.Fork.Rivals {
		rc, err := ParseCommit(r.Commit)
		if err != nil || CheckSuccessor(c3w, rc) != nil || !bytes.Equal(sum(r.ForkInput), r.ForkKey) || rc.Hash() != Hash(r.Hash) {
			t.Fatalf("fork rival %d: %v", i, err)
		}
		k := forkKey(rc)
		if !bytes.Equal(k[:], r.ForkKey) {
			t.Fatalf("fork rival %d: fork key", i)
		}
		wr = append(wr, rc)
	}
	if !Wins(c3w, wr[want.Fork.Winner], wr[1-want.Fork.Winner], false, false) {
		t.Fatal("the fork's winner does not win")
	}
	same("leave", got.Leave, want.Leave)
	for i, e := range want.Envelopes {
		gotEnv := got.Envelopes[i]
		if e.Kind != gotEnv.Kind || e.Topic != gotEnv.Topic {
			t.Fatalf("envelope %d: kind or topic differs", i)
		}
		if e.Kind != "commit" && (!bytes.Equal(e.Envelope, gotEnv.Envelope) || !bytes.Equal(e.Body, gotEnv.Body)) {
			t.Fatalf("envelope %s differs", e.Kind)
		}
		if _, err := ParseEnvelope(room, e.Envelope); err != nil {
			t.Fatalf("envelope %s: %v", e.Kind, err)
		}
	}
	var lp wirepb.LeaveProposal
	if err := proto.Unmarshal(want.Leave.Proposal, &lp); err != nil || lp.Epoch != 4 {
		t.Fatalf("leave proposal: %v, epoch %d", err, lp.Epoch)
	}
	sha := sha256.Sum256(want.Leave.KeyPackage)
	if !bytes.Equal(want.Leave.Input, cat([]byte("parley/room/2 leave\x00"), room[:], sha[:])) {
		t.Fatal("leave input differs")
	}
}

func mustInit(t *testing.T, e *Epoch) []byte {
	t.Helper()
	i, ok := e.initSecret()
	if !ok {
		t.Fatal("init secret erased")
	}
	return i
}
