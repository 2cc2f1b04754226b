package chat_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// attacker is a bare libp2p host connected to target.
func attacker(t *testing.T, target *peertest.Running) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Connect(context.Background(), target.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	return h
}

func open(t *testing.T, h host.Host, target *peertest.Running, proto protocol.ID) network.Stream {
	t.Helper()
	st, err := h.NewStream(context.Background(), target.Host().ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDMHandlerRefusesGarbage sends, each on its own stream: random bytes,
// a length prefix far above the cap, a truncated frame, a valid frame with a
// bad message id, an envelope for a session that does not exist, and a
// stream that never writes. Each is refused (stream reset or REJECTED ack)
// and bob keeps serving alice afterwards.
func TestDMHandlerRefusesGarbage(t *testing.T) {
	alice, bob := pair(t)
	evil := attacker(t, bob)

	hugePrefix := binary.AppendUvarint(nil, 1<<30)
	truncated := append(binary.AppendUvarint(nil, 100), make([]byte, 10)...)
	for name, raw := range map[string][]byte{
		"random bytes":     bytes.Repeat([]byte{0xff, 0x13, 0x37}, 100),
		"oversized prefix": hugePrefix,
		"truncated frame":  truncated,
	} {
		t.Run(name, func(t *testing.T) {
			st := open(t, evil, bob, wire.ProtocolDM)
			defer st.Close()
			st.Write(raw)
			st.CloseWrite()
			st.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(st)
			if err == nil && len(got) > 0 {
				t.Fatalf("handler answered garbage with %d bytes", len(got))
			}
		})
	}
	for name, m := range map[string]*wirepb.DMMessage{
		"short id":        {Id: []byte{1, 2}, Envelope: []byte{1}},
		"empty envelope":  {Id: make([]byte, 16)},
		"unknown session": {Id: bytes.Repeat([]byte{7}, 16), Envelope: append([]byte{1}, bytes.Repeat([]byte{9}, 200)...)},
		"unknown version": {Id: bytes.Repeat([]byte{8}, 16), Envelope: append([]byte{99}, bytes.Repeat([]byte{9}, 200)...)},
	} {
		t.Run(name, func(t *testing.T) {
			st := open(t, evil, bob, wire.ProtocolDM)
			defer st.Close()
			if err := wire.WriteFrame(st, &wirepb.DMFrame{Body: &wirepb.DMFrame_Message{Message: m}}); err != nil {
				t.Fatal(err)
			}
			st.SetReadDeadline(time.Now().Add(10 * time.Second))
			var fr wirepb.DMFrame
			if err := wire.NewReader(st).ReadFrame(wire.MaxFrameSize, &fr); err != nil {
				t.Fatalf("no ack: %v", err)
			}
			if fr.GetAck().GetStatus() != wirepb.AckStatus_ACK_STATUS_REJECTED || fr.GetAck().GetReason() == "" {
				t.Fatalf("ack = %v, want REJECTED with a reason", fr.GetAck())
			}
		})
	}
	// A stream that never writes: the handler must not hold anything up.
	idle := open(t, evil, bob, wire.ProtocolDM)
	defer idle.Close()

	if n, _ := bob.Chat().Log(context.Background(), "alice", 0); len(n) != 0 {
		t.Fatalf("garbage reached bob's history: %+v", n)
	}
	aev, cancel := alice.Chat().Subscribe()
	defer cancel()
	m := send(t, alice, "bob", "still there?")
	waitFor(t, aev, "delivery after the attack", delivered(m.ID))
}

// TestPrekeyFloodIsRateLimited asks for bundles far beyond the budget: the
// first few are served, the rest refused, and the one-time prekey pool is
// not drained, so alice can still start a session.
func TestPrekeyFloodIsRateLimited(t *testing.T) {
	alice, bob := pair(t)
	evil := attacker(t, bob)
	served, refused := 0, 0
	for range 50 {
		st := open(t, evil, bob, wire.ProtocolPrekeys)
		if err := wire.WriteFrame(st, &wirepb.PrekeyRequest{Version: 1}); err != nil {
			t.Fatal(err)
		}
		var resp wirepb.PrekeyResponse
		if err := wire.NewReader(st).ReadFrame(wire.MaxPrekeyResponse, &resp); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if resp.Error != "" {
			refused++
		} else {
			served++
		}
	}
	if served > 5 || refused < 45 {
		t.Fatalf("served %d, refused %d bundles to one peer", served, refused)
	}
	aev, cancel := alice.Chat().Subscribe()
	defer cancel()
	m := send(t, alice, "bob", "hi")
	waitFor(t, aev, "delivery after the flood", delivered(m.ID))

	// A wrong version is refused with an error, not served.
	st := open(t, evil, bob, wire.ProtocolPrekeys)
	defer st.Close()
	wire.WriteFrame(st, &wirepb.PrekeyRequest{Version: 9})
	var resp wirepb.PrekeyResponse
	if err := wire.NewReader(st).ReadFrame(wire.MaxPrekeyResponse, &resp); err != nil || resp.Error == "" {
		t.Fatalf("version 9 request: %v %+v", err, &resp)
	}
}
