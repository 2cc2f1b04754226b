package conformance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

// startNode starts a real node on loopback.
func startNode(t *testing.T) *peertest.Running {
	t.Helper()
	return peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
}

// client is a foreign client: a bare libp2p host with its own end-to-end
// state, talking to one node.
type client struct {
	t       *testing.T
	h       host.Host
	key     ed25519.PrivateKey
	node    peer.ID
	nodeKey ed25519.PublicKey

	mu  sync.Mutex // guards ks, ch, seq, ack
	ks  *e2e.KeyStore
	ch  *e2e.Channel
	seq uint64
	// ack, if set, chooses the ack the client's dm handler answers to a
	// frame from the node; nil acks OK.
	ack func(m *wirepb.DMMessage) *wirepb.DMAck
	// seen holds the frame ids the client decrypted (and so took).
	seen map[string]bool

	// prekeyAnswer, if set, chooses the answer of the client's prekey
	// handler to a request; nil serves the bundle asked for.
	prekeyAnswer func(req *wirepb.PrekeyRequest) *wirepb.PrekeyResponse
	// prekeyRequests receives every request the node made.
	prekeyRequests chan uint32

	// inbox receives every frame the node sent on /parley/dm/1, with its
	// decrypted payload (nil if it did not decrypt).
	inbox chan inbound
}

type inbound struct {
	frame   *wirepb.DMMessage
	payload *wirepb.Payload
	err     error
	dup     bool // a frame id taken before: acked DUPLICATE, not decrypted
}

func newClient(t *testing.T, node *peertest.Running) *client {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newClientKey(t, node, priv)
}

// newClientKey is newClient with the identity key given: a fresh host
// with that key, connected to the node.
func newClientKey(t *testing.T, node *peertest.Running, priv crypto.PrivKey) *client {
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	raw, _ := priv.Raw()
	c := attachClient(t, node, h, ed25519.PrivateKey(raw))
	if err := h.Connect(context.Background(), node.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	return c
}

// attachClient makes the host h, whose identity key is key, a 1:1 client
// of the node: it serves /parley/dm/1 and /parley/prekeys/1 from a fresh
// key store. (A room client's host becomes a 1:1 client this way.)
func attachClient(t *testing.T, node *peertest.Running, h host.Host, key ed25519.PrivateKey) *client {
	t.Helper()
	c := &client{t: t, h: h, key: key, node: node.Host().ID(), ch: new(e2e.Channel), inbox: make(chan inbound, 1024), prekeyRequests: make(chan uint32, 64), seen: map[string]bool{}}
	var err error
	if c.ks, err = e2e.NewKeyStore(c.key, rand.Reader, time.Now()); err != nil {
		t.Fatal(err)
	}
	pub, err := c.node.ExtractPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	nraw, _ := pub.Raw()
	c.nodeKey = ed25519.PublicKey(nraw)
	h.SetStreamHandler(wire.ProtocolDM, c.serveDM)
	h.SetStreamHandler(wire.ProtocolPrekeys, c.servePrekeys)
	return c
}

func (c *client) id() string { return c.h.ID().String() }

// serveDM answers the node's dm frames as PROTOCOL.md says a receiver does.
func (c *client) serveDM(st network.Stream) {
	defer st.Close()
	r := wire.NewReader(st)
	for {
		st.SetReadDeadline(time.Now().Add(30 * time.Second))
		var fr wirepb.DMFrame
		if err := r.ReadFrame(wire.MaxFrameSize, &fr); err != nil {
			return
		}
		m := fr.GetMessage()
		if m == nil {
			return
		}
		c.mu.Lock()
		if c.seen[string(m.Id)] {
			c.mu.Unlock()
			c.inbox <- inbound{frame: m, dup: true}
			if err := wire.WriteFrame(st, &wirepb.DMFrame{Body: &wirepb.DMFrame_Ack{Ack: &wirepb.DMAck{Id: m.Id, Status: wirepb.AckStatus_ACK_STATUS_DUPLICATE}}}); err != nil {
				return
			}
			continue
		}
		plain, err := c.ch.Decrypt(c.key, c.ks, c.nodeKey, m.Envelope, rand.Reader, time.Now())
		ackf := c.ack
		c.mu.Unlock()
		in := inbound{frame: m, err: err}
		if err == nil {
			in.payload, in.err = wire.DecodePayload(plain)
		}
		ack := &wirepb.DMAck{Id: m.Id, Status: wirepb.AckStatus_ACK_STATUS_OK}
		if err != nil {
			ack = &wirepb.DMAck{Id: m.Id, Status: wirepb.AckStatus_ACK_STATUS_REJECTED, Reason: "cannot decrypt"}
		}
		if ackf != nil {
			ack = ackf(m)
		}
		if err == nil && (ack.Status == wirepb.AckStatus_ACK_STATUS_OK || ack.Status == wirepb.AckStatus_ACK_STATUS_DUPLICATE) {
			c.mu.Lock()
			c.seen[string(m.Id)] = true // taken
			c.mu.Unlock()
			c.inbox <- in
		}
		st.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := wire.WriteFrame(st, &wirepb.DMFrame{Body: &wirepb.DMFrame_Ack{Ack: ack}}); err != nil {
			return
		}
	}
}

// servePrekeys serves the client's version 2 bundle.
func (c *client) servePrekeys(st network.Stream) {
	defer st.Close()
	var req wirepb.PrekeyRequest
	if err := wire.NewReader(st).ReadFrame(wire.MaxPrekeyRequest, &req); err != nil {
		st.Reset()
		return
	}
	c.prekeyRequests <- req.Version
	c.mu.Lock()
	answer := c.prekeyAnswer
	var b e2e.Bundle
	var err error
	if req.Version == 2 {
		b, err = c.ks.BundlePQ(c.key, time.Now())
	} else {
		b, err = c.ks.Bundle(c.key, time.Now())
	}
	c.mu.Unlock()
	resp := &wirepb.PrekeyResponse{}
	if err != nil {
		resp.Error = err.Error()
	} else if resp.Bundle, err = b.MarshalBinary(); err != nil {
		resp.Error = err.Error()
	}
	if answer != nil {
		resp = answer(&req)
	}
	wire.WriteFrame(st, resp)
}

// next returns the next frame the node sent, or fails the test.
func (c *client) next() inbound {
	c.t.Helper()
	select {
	case in := <-c.inbox:
		return in
	case <-time.After(30 * time.Second):
		c.t.Fatal("timed out waiting for a frame from the node")
		return inbound{}
	}
}

// nextPayload returns the next payload of the node for which ok holds.
func (c *client) nextPayload(ok func(*wirepb.Payload) bool) *wirepb.Payload {
	c.t.Helper()
	for {
		in := c.next()
		if in.dup {
			continue
		}
		if in.err != nil {
			c.t.Fatalf("frame from the node: %v", in.err)
		}
		if ok(in.payload) {
			return in.payload
		}
	}
}

// rawPrekeys writes raw as the whole request frame body (after its length
// prefix) and reads the response. A stream the node resets gives an error.
func (c *client) rawPrekeys(body []byte) (*wirepb.PrekeyResponse, error) {
	c.t.Helper()
	st, err := c.h.NewStream(context.Background(), c.node, wire.ProtocolPrekeys)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := st.Write(append(uvarint(len(body)), body...)); err != nil {
		return nil, err
	}
	var resp wirepb.PrekeyResponse
	if err := wire.NewReader(st).ReadFrame(wire.MaxPrekeyResponse, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (c *client) prekeys(version uint32) (*wirepb.PrekeyResponse, error) {
	c.t.Helper()
	b, err := proto.Marshal(&wirepb.PrekeyRequest{Version: version})
	if err != nil {
		c.t.Fatal(err)
	}
	return c.rawPrekeys(b)
}

// handshake fetches a bundle of the version given and starts a session.
func (c *client) handshake(version uint32) e2e.Bundle {
	c.t.Helper()
	resp, err := c.prekeys(version)
	if err != nil || resp.Error != "" {
		c.t.Fatalf("prekeys: %v %q", err, resp.GetError())
	}
	var b e2e.Bundle
	if err := b.UnmarshalBinary(resp.Bundle); err != nil {
		c.t.Fatal(err)
	}
	if err := b.Verify(c.nodeKey); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ch.Initiate(c.key, c.ks, c.nodeKey, b, rand.Reader, time.Now()); err != nil {
		c.t.Fatal(err)
	}
	return b
}

// seal encrypts a payload in the client's session into a dm frame.
func (c *client) seal(id []byte, p *wirepb.Payload) *wirepb.DMFrame {
	c.t.Helper()
	pt, err := proto.Marshal(p)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	env, err := c.ch.Encrypt(c.key, c.ks, pt, rand.Reader, time.Now())
	c.mu.Unlock()
	if err != nil {
		c.t.Fatal(err)
	}
	return msgFrame(id, env)
}

// text returns a frame with a Text whose id is the frame id.
func (c *client) text(body string) *wirepb.DMFrame {
	c.t.Helper()
	c.seq++
	id := newID()
	return c.seal(id, &wirepb.Payload{Version: 1, Body: &wirepb.Payload_Text{Text: &wirepb.Text{
		Id: id, Body: body, SentAtMs: time.Now().UnixMilli(), Seq: c.seq}}})
}

func msgFrame(id, env []byte) *wirepb.DMFrame {
	return &wirepb.DMFrame{Body: &wirepb.DMFrame_Message{Message: &wirepb.DMMessage{Id: id, Envelope: env}}}
}

// exchange opens a dm stream, writes the frames in one write, closes its
// side and reads acks until the node ends the stream. end is nil if the
// node closed the stream cleanly (EOF) and the read error otherwise.
func (c *client) exchange(frames ...*wirepb.DMFrame) (acks []*wirepb.DMAck, end error) {
	c.t.Helper()
	var buf bytes.Buffer
	for _, f := range frames {
		if err := wire.WriteFrame(&buf, f); err != nil {
			c.t.Fatal(err)
		}
	}
	return c.exchangeRaw(buf.Bytes())
}

func (c *client) exchangeRaw(b []byte) (acks []*wirepb.DMAck, end error) {
	c.t.Helper()
	st, err := c.h.NewStream(context.Background(), c.node, wire.ProtocolDM)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := st.Write(b); err != nil {
		return nil, err
	}
	st.CloseWrite()
	r := wire.NewReader(st)
	for {
		var fr wirepb.DMFrame
		if err := r.ReadFrame(wire.MaxFrameSize, &fr); err != nil {
			if errors.Is(err, io.EOF) {
				return acks, nil
			}
			return acks, err
		}
		if fr.GetAck() == nil {
			c.t.Fatalf("node sent a frame that is not an ack: %v", &fr)
		}
		acks = append(acks, fr.GetAck())
	}
}

func newID() []byte {
	id := make([]byte, wire.IDSize)
	rand.Read(id)
	return id
}

func uvarint(n int) []byte {
	var b []byte
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}

// waitEvent reads node events until ok holds.
func waitEvent(t *testing.T, ch <-chan apitype.Event, what string, ok func(apitype.Event) bool) apitype.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-ch:
			if ok(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
			return apitype.Event{}
		}
	}
}

// status checks one ack.
func status(t *testing.T, ack *wirepb.DMAck, id []byte, want wirepb.AckStatus) {
	t.Helper()
	if ack == nil {
		t.Fatalf("no ack, want %v", want)
	}
	if !bytes.Equal(ack.Id, id) || ack.Status != want {
		t.Fatalf("ack = {%x %v %q}, want {%x %v}", ack.Id, ack.Status, ack.Reason, id, want)
	}
}
