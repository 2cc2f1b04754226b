package chat_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// linkWriter is a peer holding bob's contact link and nothing else: it
// starts a PQXDH session from the link's bundle, as a first message sent
// through bob's link mailbox does.
type linkWriter struct {
	priv ed25519.PrivateKey
	id   peer.ID
	ks   *e2e.KeyStore
	ch   e2e.Channel
}

func newLinkWriter(t *testing.T, link string) *linkWriter {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	w := &linkWriter{priv: priv, id: peerOf(t, pub)}
	if w.ks, err = e2e.NewKeyStore(priv, rand.Reader, time.Now()); err != nil {
		t.Fatal(err)
	}
	inv, err := wire.DecodeContactInvite(link)
	if err != nil {
		t.Fatal(err)
	}
	var b e2e.Bundle
	if err := b.UnmarshalBinary(inv.Bundle); err != nil {
		t.Fatal(err)
	}
	to, err := peer.IDFromBytes(inv.PeerId)
	if err != nil {
		t.Fatal(err)
	}
	bobKey, err := to.ExtractPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := bobKey.Raw()
	if err := w.ch.Initiate(priv, w.ks, raw, b, rand.Reader, time.Now()); err != nil {
		t.Fatal(err)
	}
	return w
}

func peerOf(t *testing.T, pub ed25519.PublicKey) peer.ID {
	t.Helper()
	k, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// frame encrypts a text message as a mailbox frame.
func (w *linkWriter) frame(t *testing.T, text string) *wirepb.DMMessage {
	t.Helper()
	id := make([]byte, 16)
	rand.Read(id)
	pt, err := proto.Marshal(&wirepb.Payload{Version: 1, Body: &wirepb.Payload_Text{Text: &wirepb.Text{
		Id: id, Body: text, SentAtMs: time.Now().UnixMilli(), Seq: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	env, err := w.ch.Encrypt(w.priv, w.ks, pt, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fid := make([]byte, 16)
	rand.Read(fid)
	return &wirepb.DMMessage{Id: fid, Envelope: env}
}

func knows(t *testing.T, r *peertest.Running, p peer.ID) bool {
	t.Helper()
	cs, err := r.Chat().Contacts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.PeerID == p.String() {
			return true
		}
	}
	// A first message from a link holder makes a message request, not a
	// contact: known either way.
	rs, err := r.Chat().Requests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range rs {
		if q.PeerID == p.String() {
			return true
		}
	}
	return false
}

// TestForgedLinkFirstMessageCreatesNothing: anyone holding bob's link can
// deposit under its secret a PQXDH first message whose header names any
// peer (here victim) as its initiator. Received from bob's link mailbox it
// must be refused before anything about victim is recorded: no contact or
// request, no session. The honest first message (positive control) is
// received and makes its author known.
func TestForgedLinkFirstMessageCreatesNothing(t *testing.T) {
	ctx := context.Background()
	bob := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	inv, err := bob.Chat().Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mallory := newLinkWriter(t, inv.Link)
	victimPub, _, _ := ed25519.GenerateKey(rand.Reader)
	victim := peerOf(t, victimPub)

	honest := mallory.frame(t, "hello bob")
	forged := proto.Clone(honest).(*wirepb.DMMessage)
	forged.Id = bytes.Clone(forged.Id)
	forged.Id[0] ^= 1
	i := bytes.Index(forged.Envelope, mallory.priv.Public().(ed25519.PublicKey))
	if i < 0 {
		t.Fatal("the PQXDH header does not name its initiator")
	}
	copy(forged.Envelope[i:], victimPub)

	acks := bob.Chat().ReceiveLinkFrames(ctx, victim, []*wirepb.DMMessage{forged})
	if len(acks) != 1 || acks[0].Status != wirepb.AckStatus_ACK_STATUS_REJECTED {
		t.Fatalf("forged first message acked %v", acks)
	}
	// The honest frame handed over under the victim's name is refused too.
	acks = bob.Chat().ReceiveLinkFrames(ctx, victim, []*wirepb.DMMessage{honest})
	if acks[0].Status != wirepb.AckStatus_ACK_STATUS_REJECTED {
		t.Fatalf("mallory's frame accepted as victim's: %v", acks[0])
	}
	if knows(t, bob, victim) {
		t.Fatal("a forged first message made the victim known to bob")
	}

	ev, cancel := bob.Chat().Subscribe()
	defer cancel()
	acks = bob.Chat().ReceiveLinkFrames(ctx, mallory.id, []*wirepb.DMMessage{honest})
	if acks[0].Status != wirepb.AckStatus_ACK_STATUS_OK {
		t.Fatalf("positive control: honest first message acked %v", acks[0])
	}
	waitFor(t, ev, "bob receives the honest first message", func(e apitype.Event) bool {
		return e.Type == "message" && e.Message != nil && e.Message.Text == "hello bob"
	})
	if !knows(t, bob, mallory.id) {
		t.Fatal("positive control: the author of an authenticated first message is unknown")
	}
	if knows(t, bob, victim) {
		t.Fatal("victim became known")
	}
}
