package chat_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/peertest"
)

func contactOf(t *testing.T, p *peertest.Running, name string) apitype.Contact {
	t.Helper()
	cs, err := p.Chat().Contacts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no contact %q", name)
	return apitype.Contact{}
}

// TestSessionsArePostQuantum: two current nodes set up a PQXDH session
// over /parley/prekeys/1, and both say so.
func TestSessionsArePostQuantum(t *testing.T) {
	alice, bob := pair(t)
	bev, cancel := bob.Chat().Subscribe()
	defer cancel()
	m := send(t, alice, "bob", "post-quantum hello")
	waitFor(t, bev, "bob receives", received(m.ID))
	if c := contactOf(t, alice, "bob"); !c.Session || !c.PostQuantum {
		t.Fatalf("alice's session with bob: session %v, post-quantum %v", c.Session, c.PostQuantum)
	}
	if c := contactOf(t, bob, "alice"); !c.PostQuantum {
		t.Fatal("bob's session with alice is not post-quantum")
	}
	sn, err := alice.Chat().SafetyNumber(context.Background(), "bob")
	if err != nil || !sn.PostQuantum {
		t.Fatalf("verify: post-quantum %v, %v", sn.PostQuantum, err)
	}
}

// oldPeer is a raw host that behaves like a node from before PQXDH (or,
// with downgrade, like an attacker answering a version 2 request with a
// version 1 bundle): it serves version 1 bundles only and decrypts what
// arrives on /parley/dm/1.
type oldPeer struct {
	h      host.Host
	id     ed25519.PrivateKey
	ks     *e2e.KeyStore
	ch     e2e.Channel
	got    chan string
	served chan struct{} // one per bundle request answered
	asked  chan uint32   // the version of each bundle request answered
	from   ed25519.PublicKey
}

func startOldPeer(t *testing.T, target *peertest.Running, downgrade bool) *oldPeer {
	t.Helper()
	return startOldPeerWith(t, target, downgrade, func(o *oldPeer) {
		if _, err := target.Chat().AddContact(context.Background(), o.h.ID().String(), "old"); err != nil {
			t.Fatal(err)
		}
	})
}

// startOldPeerWith is startOldPeer with add making it target's contact.
func startOldPeerWith(t *testing.T, target *peertest.Running, downgrade bool, add func(*oldPeer)) *oldPeer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ks, err := e2e.NewKeyStore(priv, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	o := &oldPeer{h: h, id: priv, ks: ks, got: make(chan string, 4), served: make(chan struct{}, 64), asked: make(chan uint32, 64)}
	o.from, _ = edKey(target.Host().ID())
	h.SetStreamHandler(wire.ProtocolPrekeys, func(st network.Stream) {
		defer st.Close()
		var req wirepb.PrekeyRequest
		if err := wire.NewReader(st).ReadFrame(64, &req); err != nil {
			st.Reset()
			return
		}
		resp := &wirepb.PrekeyResponse{}
		if req.Version != 1 && !downgrade {
			resp.Error = "unsupported prekey protocol version 2" // what a version 1 node answers
		} else {
			b, _ := o.ks.Bundle(o.id, time.Now())
			resp.Bundle, _ = b.MarshalBinary()
		}
		wire.WriteFrame(st, resp)
		select {
		case o.served <- struct{}{}:
		default:
		}
		select {
		case o.asked <- req.Version:
		default:
		}
	})
	h.SetStreamHandler(wire.ProtocolDM, func(st network.Stream) {
		defer st.Close()
		r := wire.NewReader(st)
		for {
			var fr wirepb.DMFrame
			if err := r.ReadFrame(wire.MaxFrameSize, &fr); err != nil {
				return
			}
			m := fr.GetMessage()
			pt, err := o.ch.Decrypt(o.id, o.ks, o.from, m.GetEnvelope(), rand.Reader, time.Now())
			status := wirepb.AckStatus_ACK_STATUS_OK
			if err != nil {
				status = wirepb.AckStatus_ACK_STATUS_REJECTED
			} else if p, err := wire.DecodePayload(pt); err == nil && p.GetText() != nil {
				o.got <- p.GetText().GetBody()
			}
			wire.WriteFrame(st, &wirepb.DMFrame{Body: &wirepb.DMFrame_Ack{Ack: &wirepb.DMAck{Id: m.GetId(), Status: status}}})
		}
	})
	if err := h.Connect(context.Background(), target.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	add(o)
	return o
}

func edKey(id peer.ID) (ed25519.PublicKey, error) {
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return nil, err
	}
	raw, err := pk.Raw()
	return ed25519.PublicKey(raw), err
}

// TestOldPeerGetsX3DH: a peer that answers a version 2 prekey request
// with "unsupported" (a node from before PQXDH) still gets messages, on
// an X3DH session.
func TestOldPeerGetsX3DH(t *testing.T) {
	alice := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	old := startOldPeer(t, alice, false)
	send(t, alice, "old", "hello from the future")
	select {
	case got := <-old.got:
		if got != "hello from the future" {
			t.Fatalf("old peer decrypted %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the old peer never got the message")
	}
	if c := contactOf(t, alice, "old"); !c.Session || c.PostQuantum {
		t.Fatalf("session with an old peer: session %v, post-quantum %v", c.Session, c.PostQuantum)
	}
}

// TestPrekeyDowngradeRefused: a peer that answers a version 2 request
// with a version 1 bundle is refused (no session, nothing sent), while the
// same peer answering honestly (TestOldPeerGetsX3DH) is served.
func TestPrekeyDowngradeRefused(t *testing.T) {
	alice := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	old := startOldPeer(t, alice, true)
	send(t, alice, "old", "must not leave")
	// The deliverer of one peer runs one attempt at a time: once the
	// bundle was asked for a second time (after the backoff), the first
	// attempt has finished.
	for i := range 2 {
		select {
		case <-old.served:
		case <-time.After(30 * time.Second):
			t.Fatalf("bundle request %d never came", i+1)
		}
	}
	select {
	case got := <-old.got:
		t.Fatalf("downgraded peer got %q", got)
	default:
	}
	if c := contactOf(t, alice, "old"); c.Session {
		t.Fatal("a session was made from a downgraded bundle")
	}
}

// TestTamperedLinkRefused: a link whose checksum is right but whose
// content was altered (the signature, the KEM prekey in its bundle, the
// mailbox list, the peer ID) is refused and nothing is stored; the
// unaltered link is accepted (positive control).
func TestTamperedLinkRefused(t *testing.T) {
	alice := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	bob := peertest.Start(t, peertest.Config(t, peertest.Home(t), alice.Addr()), nil)
	ctx := context.Background()
	inv, err := alice.Chat().Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mallory := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	for name, mut := range map[string]func(*wirepb.ContactInvite){
		"signature":  func(i *wirepb.ContactInvite) { i.Signature[0] ^= 1 },
		"KEM prekey": func(i *wirepb.ContactInvite) { i.Bundle[300] ^= 1 },
		"KEM signature": func(i *wirepb.ContactInvite) {
			i.Bundle[len(i.Bundle)-1] ^= 1
		},
		"mailboxes": func(i *wirepb.ContactInvite) { i.Mailboxes = [][]byte{[]byte(mallory.Host().ID())} },
		"name":      func(i *wirepb.ContactInvite) { i.Name = "bank" },
		"peer ID":   func(i *wirepb.ContactInvite) { i.PeerId = []byte(mallory.Host().ID()) },
	} {
		got, err := wire.DecodeContactInvite(inv.Link)
		if err != nil {
			t.Fatal(err)
		}
		mut(got)
		if got.MailboxSecret == nil && len(got.Mailboxes) > 0 {
			got.MailboxSecret = make([]byte, wire.SecretSize)
		}
		link, err := wire.EncodeContactInvite(got)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Chat().AddContact(ctx, link, ""); err == nil {
			t.Errorf("%s: altered link accepted", name)
		}
		if cs, _ := bob.Chat().Contacts(ctx); len(cs) != 0 {
			t.Fatalf("%s: a refused link stored %d contacts", name, len(cs))
		}
	}
	c, err := bob.Chat().AddContact(ctx, inv.Link, "")
	if err != nil {
		t.Fatalf("positive control: %v", err)
	}
	if ac := contactOf(t, bob, c.Name); !ac.Session || !ac.PostQuantum {
		t.Fatalf("no post-quantum session from the link: %+v", ac)
	}
}

// TestLinkPinsPostQuantum: a contact added from a version 2 link it signed
// speaks PQXDH, so when it later answers a version 2 prekey request with
// "unsupported" (what a node from before PQXDH says, and what a rolled-back
// or misbehaving node could say) the session is not silently downgraded to
// X3DH: no session is made and nothing is sent. The link's bundle here is
// too old to use, so the first message must fetch a bundle. The same peer
// added by bare peer ID gets X3DH (TestOldPeerGetsX3DH, positive control).
func TestLinkPinsPostQuantum(t *testing.T) {
	alice := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	old := startOldPeerWith(t, alice, false, func(o *oldPeer) {
		then := time.Now().Add(-e2e.SignedPrekeyMaxAge - time.Hour)
		ks, err := e2e.NewKeyStore(o.id, rand.Reader, then)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ks.LinkBundle(o.id, then)
		if err != nil {
			t.Fatal(err)
		}
		inv := &wirepb.ContactInvite{Version: wire.ContactInviteVersion, PeerId: []byte(o.h.ID()), Name: "old"}
		if inv.Bundle, err = b.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
		inv.Signature = ed25519.Sign(o.id, wire.ContactInviteSignedBytes(inv))
		link, err := wire.EncodeContactInvite(inv)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Chat().AddContact(context.Background(), link, ""); err != nil {
			t.Fatal(err)
		}
	})
	if c := contactOf(t, alice, "old"); c.Session {
		t.Fatal("a session was made from a stale link bundle")
	}
	send(t, alice, "old", "must not leave on X3DH")
	// Two attempts, each a version 2 request answered "unsupported" and no
	// version 1 request (it would waste a one-time prekey for nothing): once
	// the second is answered, the first attempt has finished.
	for i := 0; i < 2; {
		select {
		case v := <-old.asked:
			if v != wire.PrekeyVersionPQ {
				t.Fatalf("a PQXDH contact was asked for a version %d bundle", v)
			}
			i++
		case got := <-old.got:
			t.Fatalf("a PQXDH contact got %q on X3DH", got)
		case <-time.After(30 * time.Second):
			t.Fatalf("bundle request %d never came", i+1)
		}
	}
	select {
	case got := <-old.got:
		t.Fatalf("a PQXDH contact got %q on X3DH", got)
	default:
	}
	if c := contactOf(t, alice, "old"); c.Session {
		t.Fatal("an X3DH session was made with a contact that speaks PQXDH")
	}
}
