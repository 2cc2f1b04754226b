package chat

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mdp/qrterminal/v3"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// qrModules returns the side of the QR code (low error correction, as
// `parley invite` prints it) of s, in modules, quiet zone excluded.
func qrModules(s string) int {
	var buf bytes.Buffer
	qrterminal.GenerateWithConfig(s, qrterminal.Config{Level: qrterminal.L, Writer: &buf, BlackChar: "#", WhiteChar: ".", QuietZone: 1})
	first, _, _ := strings.Cut(buf.String(), "\n")
	return len(first) - 2
}

// TestInviteLinkSize builds a contact link as `parley invite` does (two
// public addresses, one mailbox) and checks that it stays usable: within
// MaxLinkSize and in a QR code (at most version 40, 177 modules). It logs
// the figures, and those of the same invite in the version 1 format.
func TestInviteLinkSize(t *testing.T) {
	link, old, id, mbox := sampleLink(t)
	got, err := wire.DecodeContactInvite(link)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openInvite(got, id); err != nil {
		t.Fatalf("the link does not verify: %v", err)
	}
	oldQR, newQR := qrModules(old), qrModules(link)
	t.Logf("contact link: version 1 %d characters, QR %dx%d modules (version %d); version 2 %d characters, QR %dx%d modules (version %d)",
		len(old), oldQR, oldQR, (oldQR-17)/4, len(link), newQR, newQR, (newQR-17)/4)
	if len(link) > wire.MaxLinkSize || newQR > 177 {
		t.Fatalf("link of %d characters, QR of %d modules: not usable", len(link), newQR)
	}
	// Every signature is checked: another peer ID does not verify.
	if _, err := openInvite(got, mbox); err == nil {
		t.Fatal("the link verifies against another peer")
	}
}

// sampleLink builds a contact link as `parley invite` does, and the same
// invite in the version 1 format.
func sampleLink(t testing.TB) (link, old string, id, mbox peer.ID) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := crypto.UnmarshalEd25519PrivateKey(priv)
	id, _ = peer.IDFromPrivateKey(key)
	_, mpriv, _ := ed25519.GenerateKey(rand.Reader)
	mkey, _ := crypto.UnmarshalEd25519PrivateKey(mpriv)
	mbox, _ = peer.IDFromPrivateKey(mkey)
	ks, err := e2e.NewKeyStore(priv, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ks.LinkBundle(priv, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := b.MarshalBinary()
	inv := &wirepb.ContactInvite{Version: wire.ContactInviteVersion, PeerId: []byte(id), Name: "alice"}
	for _, a := range []string{"/ip4/203.0.113.7/tcp/4001", "/ip4/203.0.113.7/udp/4001/quic-v1"} {
		inv.Addrs = append(inv.Addrs, ma.StringCast(a).Bytes())
	}
	v1, _ := proto.Marshal(&wirepb.ContactInvite{Version: 1, PeerId: inv.PeerId, Name: inv.Name, Addrs: inv.Addrs})
	old = wire.ContactLinkPrefix + base64.RawURLEncoding.EncodeToString(v1)

	inv.Bundle = bundle
	inv.Mailboxes = [][]byte{[]byte(mbox)}
	inv.MailboxSecret = make([]byte, wire.SecretSize)
	inv.Signature = ed25519.Sign(priv, wire.ContactInviteSignedBytes(inv))
	link, err = wire.EncodeContactInvite(inv)
	if err != nil {
		t.Fatal(err)
	}
	return link, old, id, mbox
}

// FuzzOpenInvite: any string given to `parley add` is decoded and checked
// against the peer ID it names without a panic; an accepted one verifies.
func FuzzOpenInvite(f *testing.F) {
	link, old, _, _ := sampleLink(f)
	f.Add(link)
	f.Add(old)
	f.Add(link[:len(link)/2])
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := wire.DecodeContactInvite(s)
		if err != nil {
			return
		}
		id, err := peer.IDFromBytes(inv.GetPeerId())
		if err != nil {
			return
		}
		if b, err := openInvite(inv, id); err == nil && !b.PostQuantum() {
			t.Fatal("accepted a link without a PQXDH bundle")
		}
	})
}
