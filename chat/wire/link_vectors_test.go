package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

var updateVectors = flag.Bool("update", false, "rewrite testdata/links.json")

// linkVector pins one link: the message, the signed bytes of a contact
// invite, the checksum input and value, the decoded bytes and the link.
// chat/e2e/testdata/README.md describes every field.
type linkVector struct {
	Kind              string // "contact" or "room"
	SignerEd25519Seed string `json:",omitempty"` // private: the inviter's identity seed
	SignerEd25519     string `json:",omitempty"` // public, raw 32 bytes
	PeerID            string `json:",omitempty"` // binary peer ID, hex
	InviteSignedBytes string `json:",omitempty"` // what the signature covers
	InviteSignature   string `json:",omitempty"`
	Message           string // the serialized ContactInvite or RoomLink
	ChecksumInput     string // "parley/link/2 " || kind || u8 2 || Message
	Checksum          uint32 // CRC-32 (IEEE) of ChecksumInput
	Decoded           string // u8 2 || Message || u32 Checksum
	Link              string
}

func seeded(label string) []byte {
	s := sha256.Sum256([]byte("parley link vector " + label))
	return s[:]
}

// computeLinks builds the vectors from the specification (CRC-32 and
// base64url from the standard library) and checks that the encoder writes
// the same links and the decoder reads them back.
func computeLinks(t *testing.T) []linkVector {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(seeded("inviter"))
	lk, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(lk)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := ma.NewMultiaddr("/ip4/192.0.2.7/tcp/4001")
	mbox := ed25519.NewKeyFromSeed(seeded("mailbox"))
	mk, _ := crypto.UnmarshalEd25519PrivateKey(mbox)
	mid, _ := peer.IDFromPrivateKey(mk)
	inv := &wirepb.ContactInvite{
		Version: 2, PeerId: []byte(id), Name: "alice", Addrs: [][]byte{addr.Bytes()},
		// An opaque stand-in: the bundle vectors are in handshake.json.
		Bundle:    bytes.Repeat([]byte{0xb0}, 32),
		Mailboxes: [][]byte{[]byte(mid)}, MailboxSecret: seeded("mailbox secret"),
	}
	signed := ContactInviteSignedBytes(inv)
	// PROTOCOL.md §Contact links: "parley/link/2 contact-invite" ||
	// u32 version || lp(peer_id) || lp(name) || u8 n || n x lp(addr) ||
	// lp(bundle) || u8 m || m x lp(mailbox) || lp(mailbox_secret).
	lp := func(b []byte, x []byte) []byte { return append(binary.BigEndian.AppendUint16(b, uint16(len(x))), x...) }
	spec := binary.BigEndian.AppendUint32([]byte("parley/link/2 contact-invite"), inv.Version)
	spec = lp(lp(spec, inv.PeerId), []byte(inv.Name))
	spec = append(spec, byte(len(inv.Addrs)))
	for _, a := range inv.Addrs {
		spec = lp(spec, a)
	}
	spec = append(lp(spec, inv.Bundle), byte(len(inv.Mailboxes)))
	for _, m := range inv.Mailboxes {
		spec = lp(spec, m)
	}
	spec = lp(spec, inv.MailboxSecret)
	if !bytes.Equal(spec, signed) {
		t.Fatalf("invite signed bytes differ from PROTOCOL.md:\n got %x\nwant %x", signed, spec)
	}
	inv.Signature = ed25519.Sign(priv, signed)
	room := &wirepb.RoomLink{Version: 1, RoomSecret: seeded("room secret"), Name: "friends", Inviter: []byte(id), Addrs: [][]byte{addr.Bytes()}}

	var out []linkVector
	for _, tc := range []struct {
		kind, prefix string
		m            proto.Message
	}{{"contact", ContactLinkPrefix, inv}, {"room", RoomLinkPrefix, room}} {
		msg, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		in := append(append([]byte("parley/link/2 "+tc.kind), 2), msg...)
		sum := crc32.ChecksumIEEE(in)
		decoded := binary.BigEndian.AppendUint32(append([]byte{2}, msg...), sum)
		link := tc.prefix + base64.RawURLEncoding.EncodeToString(decoded)
		var got string
		if tc.kind == "contact" {
			got, err = EncodeContactInvite(inv)
			if err == nil {
				var back *wirepb.ContactInvite
				back, err = DecodeContactInvite(link)
				if err == nil && !proto.Equal(back, inv) {
					t.Fatal("the contact link decodes to another invite")
				}
			}
		} else {
			got, err = EncodeRoomLink(room)
			if err == nil {
				var back *wirepb.RoomLink
				back, err = DecodeRoomLink(link)
				if err == nil && !proto.Equal(back, room) {
					t.Fatal("the room link decodes to another link")
				}
			}
		}
		if err != nil || got != link {
			t.Fatalf("%s link: encoder wrote %q (%v), PROTOCOL.md gives %q", tc.kind, got, err, link)
		}
		v := linkVector{Kind: tc.kind, Message: hex.EncodeToString(msg), ChecksumInput: hex.EncodeToString(in),
			Checksum: sum, Decoded: hex.EncodeToString(decoded), Link: link}
		if tc.kind == "contact" {
			v.SignerEd25519Seed = hex.EncodeToString(priv.Seed())
			v.SignerEd25519 = hex.EncodeToString(priv.Public().(ed25519.PublicKey))
			v.PeerID = hex.EncodeToString([]byte(id))
			v.InviteSignedBytes = hex.EncodeToString(signed)
			v.InviteSignature = hex.EncodeToString(inv.Signature)
		}
		out = append(out, v)
	}
	return out
}

// TestKnownAnswersLinks checks testdata/links.json (go generate in
// chat/wire, or go test -run KnownAnswersLinks -update, rewrites it).
func TestKnownAnswersLinks(t *testing.T) {
	got := computeLinks(t)
	path := filepath.Join("testdata", "links.json")
	if *updateVectors {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	var want []linkVector
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("links differ from %s; if the change is intended, run go generate and review the diff", path)
	}
}
