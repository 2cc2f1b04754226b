package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// handshakeVector is a whole 1:1 session start with fixed keys: the
// responder's bundle, the initiator's first message and the responder's
// reply, with every intermediate value. testdata/README.md describes each
// field (private or public, encoding). Field order is the order in which
// an implementer computes them.
type handshakeVector struct {
	Protocol string // "X3DH" (bundle version 1, envelope type 2) or "PQXDH" (2, 3)
	TimeUnix int64  // the clock of both parties, Unix seconds

	// Identities.
	InitiatorEd25519Seed, InitiatorEd25519 string
	ResponderEd25519Seed, ResponderEd25519 string

	// The responder's bundle and its parts.
	ResponderIdentityDHPrivate, ResponderIdentityDH  string
	ResponderIdentityDHSignature                     string
	SignedPrekeyID                                   uint32
	SignedPrekeyCreated                              int64
	SignedPrekeyPrivate, SignedPrekey                string
	SignedPrekeySignedMessage, SignedPrekeySignature string
	OneTimePrekeyID                                  uint32
	OneTimePrekeyPrivate, OneTimePrekey              string
	KEMPrekeyID                                      uint32 `json:",omitempty"`
	KEMPrekeyKind                                    byte   `json:",omitempty"`
	KEMPrekeySeed, KEMPrekey                         string `json:",omitempty"`
	KEMPrekeySignedMessage, KEMPrekeySignature       string `json:",omitempty"`
	Bundle                                           string

	// The initiator's key agreement.
	InitiatorIdentityDHPrivate, InitiatorIdentityDH string
	InitiatorIdentityDHSignature                    string
	EphemeralPrivate, Ephemeral                     string
	DH1, DH2, DH3, DH4                              string
	EncapsulationRandomness                         string `json:",omitempty"`
	KEMCiphertext, KEMSharedSecret                  string `json:",omitempty"`
	KDFInput, KDFInfo                               string
	SK                                              string

	// The initiator's first ratchet step and first message.
	InitiatorRatchetPrivate, InitiatorRatchet string
	RootDH                                    string // DH(InitiatorRatchet, SignedPrekey)
	RootKey1, SendingChainKey1                string
	Generation                                uint64
	Plaintext1                                string
	MessageKey1, NextChainKey1                string
	AEADKey1, Nonce1                          string
	Head1, AD1, Ciphertext1                   string
	Envelope1                                 string

	// The responder's reply (a type 1 message after its DH ratchet step).
	ResponderRatchetPrivate, ResponderRatchet string
	ReceivingChainKey2                        string // KDF_RK(SK, DH(SPK, InitiatorRatchet)).CK
	RootKey2                                  string
	RootDH3                                   string // DH(ResponderRatchet, InitiatorRatchet)
	RootKey3, SendingChainKey3                string
	Plaintext2                                string
	MessageKey2, AEADKey2, Nonce2             string
	Head2, AD2, Ciphertext2                   string
	Envelope2                                 string
}

// recorder keeps what a deterministic randomness source handed out.
type recorder struct {
	r   io.Reader
	got []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.got = append(r.got, p[:n]...)
	return n, err
}

// specKDF is HKDF-SHA256 as PROTOCOL.md writes it.
func specKDF(t *testing.T, salt, ikm []byte, info string, n int) []byte {
	t.Helper()
	out, err := hkdf.Key(sha256.New, ikm, salt, info, n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func specDH(t *testing.T, priv, pub []byte) []byte {
	t.Helper()
	out, err := curve25519.X25519(priv, pub)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func specPub(t *testing.T, priv []byte) []byte { return specDH(t, priv, curve25519.Basepoint) }

func specHMAC(k []byte, b byte) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte{b})
	return m.Sum(nil)
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// computeHandshake runs a real session start between two parties with
// deterministic randomness and rebuilds every value from PROTOCOL.md with
// the primitives alone (not this package's helpers); the envelopes and the
// bundle the package produced must equal the rebuilt ones byte for byte.
func computeHandshake(t *testing.T, pq bool) handshakeVector {
	detEncapsulate(t)
	seedA, seedB := byte(21), byte(22)
	proto, bundleVersion, envType := "X3DH", byte(1), byte(2)
	if pq {
		seedA, seedB, proto, bundleVersion, envType = 31, 32, "PQXDH", 2, 3
	}
	a, b := newParty(t, seedA), newParty(t, seedB)
	v := handshakeVector{Protocol: proto, TimeUnix: t0.Unix()}
	v.InitiatorEd25519Seed, v.InitiatorEd25519 = h(a.id.Seed()), h(a.pub)
	v.ResponderEd25519Seed, v.ResponderEd25519 = h(b.id.Seed()), h(b.pub)
	eda, edb := []byte(a.pub), []byte(b.pub)

	// The bundle.
	issue := b.ks.Bundle
	if pq {
		issue = b.ks.BundlePQ
	}
	bundle, err := issue(b.id, t0)
	if err != nil {
		t.Fatal(err)
	}
	bundleBytes, err := bundle.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ikbPriv := b.ks.idDH.priv[:]
	spk := b.ks.spks[0]
	var opkPriv []byte
	for _, k := range b.ks.otpks {
		if k.id == bundle.OneTimePrekeyID {
			opkPriv = k.kp.priv[:]
		}
	}
	if !bundle.HasOneTimePrekey || opkPriv == nil {
		t.Fatal("the vector needs a bundle with a one-time prekey")
	}
	v.ResponderIdentityDHPrivate, v.ResponderIdentityDH = h(ikbPriv), h(specPub(t, ikbPriv))
	v.ResponderIdentityDHSignature = h(ed25519.Sign(b.id, cat([]byte("parley/e2e/v1 identity-dh"), specPub(t, ikbPriv))))
	v.SignedPrekeyID, v.SignedPrekeyCreated = spk.id, spk.created
	v.SignedPrekeyPrivate, v.SignedPrekey = h(spk.kp.priv[:]), h(specPub(t, spk.kp.priv[:]))
	spkMsg := cat([]byte("parley/e2e/v1 signed-prekey"), be32(spk.id), be64(uint64(spk.created)), specPub(t, spk.kp.priv[:]))
	v.SignedPrekeySignedMessage, v.SignedPrekeySignature = h(spkMsg), h(ed25519.Sign(b.id, spkMsg))
	v.OneTimePrekeyID, v.OneTimePrekeyPrivate, v.OneTimePrekey = bundle.OneTimePrekeyID, h(opkPriv), h(specPub(t, opkPriv))
	flags := byte(1)
	want := cat([]byte{bundleVersion}, nil)
	var kemPub []byte
	var kemSeed []byte
	var kemKind byte
	if pq {
		for _, k := range append(append([]kemPrekey{}, b.ks.okps...), b.ks.lrks...) {
			if k.id == bundle.KEMPrekeyID {
				kemSeed, kemKind = k.seed[:], k.kind
			}
		}
		dk, err := mlkem.NewDecapsulationKey768(kemSeed)
		if err != nil {
			t.Fatal(err)
		}
		kemPub = dk.EncapsulationKey().Bytes()
		kemMsg := cat([]byte("parley/e2e/v2 kem-prekey"), be32(bundle.KEMPrekeyID), []byte{kemKind, 0x01}, kemPub)
		v.KEMPrekeyID, v.KEMPrekeyKind, v.KEMPrekeySeed, v.KEMPrekey = bundle.KEMPrekeyID, kemKind, h(kemSeed), h(kemPub)
		v.KEMPrekeySignedMessage, v.KEMPrekeySignature = h(kemMsg), h(ed25519.Sign(b.id, kemMsg))
		if kemKind == 2 {
			flags |= 2
		}
	}
	want = cat(want, []byte{flags}, specPub(t, ikbPriv), mustHex(t, v.ResponderIdentityDHSignature),
		be32(spk.id), be64(uint64(spk.created)), specPub(t, spk.kp.priv[:]), mustHex(t, v.SignedPrekeySignature),
		be32(bundle.OneTimePrekeyID), specPub(t, opkPriv))
	if pq {
		want = cat(want, be32(bundle.KEMPrekeyID), []byte{0x01}, kemPub, mustHex(t, v.KEMPrekeySignature))
	}
	if !bytes.Equal(want, bundleBytes) {
		t.Fatalf("%s: the bundle differs from PROTOCOL.md's layout:\n got %x\nwant %x", proto, bundleBytes, want)
	}
	v.Bundle = h(bundleBytes)

	// The initiator: Initiate reads the ephemeral key, the first ratchet
	// key and (PQXDH) the 32 bytes of encapsulation randomness, in order.
	rec := &recorder{r: a.rnd}
	if err := a.ch.Initiate(a.id, a.ks, b.pub, bundle, rec, t0); err != nil {
		t.Fatal(err)
	}
	ikaPriv := a.ks.idDH.priv[:]
	ekPriv, dhsPriv := rec.got[0:32], rec.got[32:64]
	v.InitiatorIdentityDHPrivate, v.InitiatorIdentityDH = h(ikaPriv), h(specPub(t, ikaPriv))
	v.InitiatorIdentityDHSignature = h(ed25519.Sign(a.id, cat([]byte("parley/e2e/v1 identity-dh"), specPub(t, ikaPriv))))
	v.EphemeralPrivate, v.Ephemeral = h(ekPriv), h(specPub(t, ekPriv))
	dh1 := specDH(t, ikaPriv, specPub(t, spk.kp.priv[:]))
	dh2 := specDH(t, ekPriv, specPub(t, ikbPriv))
	dh3 := specDH(t, ekPriv, specPub(t, spk.kp.priv[:]))
	dh4 := specDH(t, ekPriv, specPub(t, opkPriv))
	v.DH1, v.DH2, v.DH3, v.DH4 = h(dh1), h(dh2), h(dh3), h(dh4)
	ikm := cat(bytes.Repeat([]byte{0xFF}, 32), dh1, dh2, dh3, dh4)
	info := cat([]byte("parley/e2e/v1 x3dh"), eda, edb)
	var ct []byte
	if pq {
		m := rec.got[64:96]
		dk, _ := mlkem.NewDecapsulationKey768(kemSeed)
		ss, c, err := mlkemtest.Encapsulate768(dk.EncapsulationKey(), m)
		if err != nil {
			t.Fatal(err)
		}
		ct = c
		v.EncapsulationRandomness, v.KEMCiphertext, v.KEMSharedSecret = h(m), h(ct), h(ss)
		ikm = cat(ikm, ss)
		th := sha256.Sum256(cat([]byte{0x01}, kemPub, ct))
		info = cat([]byte("parley/e2e/v2 pqxdh X25519 SHA-256 ML-KEM-768"), eda, edb, th[:])
	}
	v.KDFInput, v.KDFInfo = h(ikm), h(info)
	sk := specKDF(t, make([]byte, 32), ikm, string(info), 32)
	v.SK = h(sk)

	// First ratchet step and the first message.
	v.InitiatorRatchetPrivate, v.InitiatorRatchet = h(dhsPriv), h(specPub(t, dhsPriv))
	rootDH := specDH(t, dhsPriv, specPub(t, spk.kp.priv[:]))
	rk1ck := specKDF(t, sk, rootDH, "parley/e2e/v1 root", 64)
	v.RootDH, v.RootKey1, v.SendingChainKey1 = h(rootDH), h(rk1ck[:32]), h(rk1ck[32:])
	v.Generation = uint64(t0.UnixMilli())
	v.Plaintext1 = "hello bob, this is the first message"
	mk1, next1 := specHMAC(rk1ck[32:], 0x01), specHMAC(rk1ck[32:], 0x02)
	v.MessageKey1, v.NextChainKey1 = h(mk1), h(next1)
	kn1 := specKDF(t, make([]byte, 32), mk1, "parley/e2e/v1 message-key", 44)
	v.AEADKey1, v.Nonce1 = h(kn1[:32]), h(kn1[32:])
	head1 := cat([]byte{1, envType}, be64(v.Generation), specPub(t, ikaPriv), mustHex(t, v.InitiatorIdentityDHSignature),
		specPub(t, ekPriv), be32(spk.id), []byte{1}, be32(bundle.OneTimePrekeyID))
	if pq {
		head1 = cat(head1, eda, be32(bundle.KEMPrekeyID), []byte{kemKind}, ct)
	}
	head1 = cat(head1, specPub(t, dhsPriv), be32(0), be32(0))
	ad1 := cat([]byte{1}, eda, edb, head1)
	aead1, _ := chacha20poly1305.New(kn1[:32])
	ct1 := aead1.Seal(nil, kn1[32:], []byte(v.Plaintext1), ad1)
	v.Head1, v.AD1, v.Ciphertext1 = h(head1), h(ad1), h(ct1)
	env1, err := a.ch.Encrypt(a.id, a.ks, []byte(v.Plaintext1), a.rnd, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(env1, cat(head1, ct1)) {
		t.Fatalf("%s: the first envelope differs from PROTOCOL.md:\n got %x\nwant %x", proto, env1, cat(head1, ct1))
	}
	v.Envelope1 = h(env1)

	// The responder decrypts (one DH ratchet step, reading its new ratchet
	// key from its randomness) and replies.
	recB := &recorder{r: b.rnd}
	got, err := b.ch.Decrypt(b.id, b.ks, a.pub, env1, recB, t0)
	if err != nil || string(got) != v.Plaintext1 {
		t.Fatalf("%s: responder: %q, %v", proto, got, err)
	}
	dhsB := recB.got[0:32]
	v.ResponderRatchetPrivate, v.ResponderRatchet = h(dhsB), h(specPub(t, dhsB))
	rk2ck := specKDF(t, sk, specDH(t, spk.kp.priv[:], specPub(t, dhsPriv)), "parley/e2e/v1 root", 64)
	v.RootKey2, v.ReceivingChainKey2 = h(rk2ck[:32]), h(rk2ck[32:])
	rootDH3 := specDH(t, dhsB, specPub(t, dhsPriv))
	rk3ck := specKDF(t, rk2ck[:32], rootDH3, "parley/e2e/v1 root", 64)
	v.RootDH3, v.RootKey3, v.SendingChainKey3 = h(rootDH3), h(rk3ck[:32]), h(rk3ck[32:])
	v.Plaintext2 = "hi alice, got it"
	mk2 := specHMAC(rk3ck[32:], 0x01)
	kn2 := specKDF(t, make([]byte, 32), mk2, "parley/e2e/v1 message-key", 44)
	v.MessageKey2, v.AEADKey2, v.Nonce2 = h(mk2), h(kn2[:32]), h(kn2[32:])
	head2 := cat([]byte{1, 1}, specPub(t, dhsB), be32(0), be32(0))
	ad2 := cat([]byte{1}, eda, edb, head2) // initiator first, whoever sends
	aead2, _ := chacha20poly1305.New(kn2[:32])
	ct2 := aead2.Seal(nil, kn2[32:], []byte(v.Plaintext2), ad2)
	v.Head2, v.AD2, v.Ciphertext2 = h(head2), h(ad2), h(ct2)
	env2, err := b.ch.Encrypt(b.id, b.ks, []byte(v.Plaintext2), b.rnd, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(env2, cat(head2, ct2)) {
		t.Fatalf("%s: the reply differs from PROTOCOL.md:\n got %x\nwant %x", proto, env2, cat(head2, ct2))
	}
	v.Envelope2 = h(env2)
	a.recv(t, b, env2, v.Plaintext2, t0)
	return v
}

// TestKnownAnswersHandshake checks testdata/handshake.json, the full X3DH
// and PQXDH session starts with every intermediate value (rewrite it with
// go generate, which runs this test with -update).
func TestKnownAnswersHandshake(t *testing.T) {
	vs := []handshakeVector{computeHandshake(t, false), computeHandshake(t, true)}
	checkGolden(t, "handshake.json", vs)
}
