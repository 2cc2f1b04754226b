package chat_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// exchange writes frames on a new dm stream and reads one ack per frame
// (fewer if the stream ends).
func exchange(t testing.TB, h host.Host, to peer.ID, msgs []*wirepb.DMMessage) ([]*wirepb.DMAck, error) {
	t.Helper()
	st, err := h.NewStream(context.Background(), to, wire.ProtocolDM)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := wire.WriteFrame(&buf, &wirepb.DMFrame{Body: &wirepb.DMFrame_Message{Message: m}}); err != nil {
			t.Fatal(err)
		}
	}
	st.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := st.Write(buf.Bytes()); err != nil {
		return nil, err
	}
	r := wire.NewReader(st)
	var acks []*wirepb.DMAck
	for len(acks) < len(msgs) {
		var fr wirepb.DMFrame
		if err := r.ReadFrame(wire.MaxFrameSize, &fr); err != nil {
			return acks, err
		}
		acks = append(acks, fr.GetAck())
	}
	return acks, nil
}

// garbage is an n-byte envelope of type typ (1 message, 2 prekey) with
// random contents after the version and type bytes.
func garbage(typ byte, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	b[0], b[1] = e2e.Version, typ
	return b
}

// frameID is a fresh random frame id.
func frameID() []byte {
	id := make([]byte, 16)
	rand.Read(id)
	return id
}

// rawPeer is a bare libp2p host with an end-to-end session to a target,
// set up by hand, so a test can send frames of its choosing: honest ones
// and forged ones.
type rawPeer struct {
	host.Host
	key  ed25519.PrivateKey
	ks   *e2e.KeyStore
	ch   *e2e.Channel
	bob  ed25519.PublicKey
	to   peer.ID
	seqs uint64
}

func newRawPeer(t testing.TB, target *peertest.Running) *rawPeer {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := priv.Raw()
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Connect(context.Background(), target.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{Host: h, key: ed25519.PrivateKey(raw), to: target.Host().ID(), ch: new(e2e.Channel)}
	if p.ks, err = e2e.NewKeyStore(p.key, rand.Reader, time.Now()); err != nil {
		t.Fatal(err)
	}
	pub, _ := target.Host().ID().ExtractPublicKey()
	bpub, _ := pub.Raw()
	p.bob = bpub
	st, err := h.NewStream(context.Background(), p.to, wire.ProtocolPrekeys)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := wire.WriteFrame(st, &wirepb.PrekeyRequest{Version: 1}); err != nil {
		t.Fatal(err)
	}
	var resp wirepb.PrekeyResponse
	if err := wire.NewReader(st).ReadFrame(wire.MaxPrekeyResponse, &resp); err != nil || resp.Error != "" {
		t.Fatalf("prekeys: %v %s", err, resp.Error)
	}
	var b e2e.Bundle
	if err := b.UnmarshalBinary(resp.Bundle); err != nil {
		t.Fatal(err)
	}
	if err := p.ch.Initiate(p.key, p.ks, p.bob, b, rand.Reader, time.Now()); err != nil {
		t.Fatal(err)
	}
	return p
}

// honest returns a frame carrying a text message, encrypted for real.
func (p *rawPeer) honest(t testing.TB, text string) *wirepb.DMMessage {
	t.Helper()
	p.seqs++
	id := frameID()
	pt, err := proto.Marshal(&wirepb.Payload{Version: 1, Body: &wirepb.Payload_Text{Text: &wirepb.Text{
		Id: id, Body: text, SentAtMs: time.Now().UnixMilli(), Seq: p.seqs}}})
	if err != nil {
		t.Fatal(err)
	}
	env, err := p.ch.Encrypt(p.key, p.ks, pt, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &wirepb.DMMessage{Id: id, Envelope: env}
}

// forged returns a ~100-byte frame built to cost its receiver the most
// before it fails: a new ratchet key (a DH step on every session) and
// message numbers at the skip limit (MaxSkip chain keys derived twice).
func forged() *wirepb.DMMessage {
	env := garbage(1, 2+32+4+4+16+40)
	binary.BigEndian.PutUint32(env[34:], e2e.MaxSkip)
	binary.BigEndian.PutUint32(env[38:], e2e.MaxSkip)
	return &wirepb.DMMessage{Id: frameID(), Envelope: env}
}
