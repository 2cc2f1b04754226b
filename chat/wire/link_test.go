package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

func TestContactInviteRoundTrip(t *testing.T) {
	full := sampleContactInvite()
	noMailbox := sampleContactInvite()
	noMailbox.Mailboxes, noMailbox.MailboxSecret, noMailbox.Addrs = nil, nil, nil
	eight := sampleContactInvite()
	eight.Name = "żółw 🐢"
	eight.Addrs = [][]byte{{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}}
	long := sampleContactInvite()
	long.Name = strings.Repeat("n", MaxNameSize)
	for name, inv := range map[string]*wirepb.ContactInvite{"full": full, "no mailboxes, no addrs": noMailbox, "eight addrs": eight, "64-byte name": long} {
		t.Run(name, func(t *testing.T) {
			link, err := EncodeContactInvite(inv)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(link, "parley://contact/") || strings.ContainsAny(link[len(ContactLinkPrefix):], "=+/") {
				t.Fatalf("link %q is not prefix + unpadded base64url", link)
			}
			got, err := DecodeContactInvite(link)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, inv) {
				t.Fatalf("got %v, want %v", got, inv)
			}
			// Line breaks and spaces from copying are ignored.
			wrapped := link[:40] + "\n  " + link[40:80] + " " + link[80:]
			if got, err := DecodeContactInvite(wrapped); err != nil || !proto.Equal(got, inv) {
				t.Fatalf("wrapped link: %v", err)
			}
		})
	}
}

func TestRoomLinkRoundTrip(t *testing.T) {
	l := sampleRoomLink()
	link, err := EncodeRoomLink(l)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, RoomLinkPrefix) {
		t.Fatalf("link %q", link)
	}
	got, err := DecodeRoomLink(link)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, l) {
		t.Fatalf("got %v, want %v", got, l)
	}
}

// mustLink encodes m as a version 2 link without validating it.
func mustLink(t *testing.T, kind, prefix string, m proto.Message) string {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	raw := append([]byte{LinkVersion}, b...)
	raw = binary.BigEndian.AppendUint32(raw, linkChecksum(kind, LinkVersion, b))
	return prefix + linkEncoding.EncodeToString(raw)
}

// oldContactLink is a link as version 1 made it: the bare message.
func oldContactLink() string {
	b, _ := proto.Marshal(&wirepb.ContactInvite{Version: 1, PeerId: samplePeerID, Name: "alice"})
	return ContactLinkPrefix + linkEncoding.EncodeToString(b)
}

const linkAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestLinkTypos: every single-character substitution of a real-size link
// (anywhere, with any base64url character or a few others), every swap of
// two neighbouring characters, every deletion and every doubled character
// is refused with ErrInvalidLink: a typo never yields another valid link.
func TestLinkTypos(t *testing.T) {
	for _, kind := range []struct {
		name   string
		link   func() (string, error)
		decode func(string) error
	}{
		{"contact", func() (string, error) { return EncodeContactInvite(sampleContactInvite()) }, func(s string) error { _, err := DecodeContactInvite(s); return err }},
		{"room", func() (string, error) { return EncodeRoomLink(sampleRoomLink()) }, func(s string) error { _, err := DecodeRoomLink(s); return err }},
	} {
		t.Run(kind.name, func(t *testing.T) {
			link, err := kind.link()
			if err != nil {
				t.Fatal(err)
			}
			if err := kind.decode(link); err != nil {
				t.Fatalf("positive control: %v", err)
			}
			tried, accepted := 0, 0
			check := func(what, s string) {
				tried++
				if s == link {
					return
				}
				err := kind.decode(s)
				if err == nil {
					accepted++
					if accepted < 5 {
						t.Errorf("%s accepted", what)
					}
					return
				}
				if !errors.Is(err, ErrInvalidLink) {
					t.Errorf("%s: error %v does not match ErrInvalidLink", what, err)
				}
			}
			for i := range len(link) {
				for _, c := range linkAlphabet + "+/=.~" {
					if byte(c) != link[i] {
						check(fmt.Sprintf("substitution %q at %d", c, i), link[:i]+string(c)+link[i+1:])
					}
				}
				if i+1 < len(link) && link[i] != link[i+1] {
					check(fmt.Sprintf("swap at %d", i), link[:i]+link[i+1:i+2]+link[i:i+1]+link[i+2:])
				}
				check(fmt.Sprintf("deletion at %d", i), link[:i]+link[i+1:])
				check(fmt.Sprintf("doubling at %d", i), link[:i+1]+link[i:])
			}
			if accepted > 0 {
				t.Fatalf("%d of %d typos accepted", accepted, tried)
			}
			t.Logf("%s link of %d characters: %d typos, all refused", kind.name, len(link), tried)
		})
	}
}

func TestDecodeContactInviteRejects(t *testing.T) {
	good, err := EncodeContactInvite(sampleContactInvite())
	if err != nil {
		t.Fatal(err)
	}
	roomLink, err := EncodeRoomLink(sampleRoomLink())
	if err != nil {
		t.Fatal(err)
	}
	with := func(mut func(*wirepb.ContactInvite)) string {
		inv := sampleContactInvite()
		mut(inv)
		return mustLink(t, "contact", ContactLinkPrefix, inv)
	}
	// A room link's body under the contact prefix fails the checksum,
	// which covers the kind.
	roomBody := ContactLinkPrefix + roomLink[len(RoomLinkPrefix):]
	newer := func() string {
		raw, _ := linkEncoding.DecodeString(good[len(ContactLinkPrefix):])
		raw[0] = 3
		msg := raw[1 : len(raw)-4]
		binary.BigEndian.PutUint32(raw[len(raw)-4:], linkChecksum("contact", 3, msg))
		return ContactLinkPrefix + linkEncoding.EncodeToString(raw)
	}()
	tests := []struct {
		name    string
		link    string
		want    error
		mention string
	}{
		{"empty", "", ErrInvalidLink, "starts with parley://contact/"},
		{"bare peer id", "12D3KooWexample", ErrInvalidLink, "starts with"},
		{"wrong scheme", "https://contact/" + good[len(ContactLinkPrefix):], ErrInvalidLink, "starts with"},
		{"upper case", strings.ToUpper(good), ErrInvalidLink, "starts with"},
		{"room link", roomLink, ErrInvalidLink, "room link, not a contact link"},
		{"room body", roomBody, ErrLinkChecksum, "checksum does not match"},
		{"nothing after prefix", ContactLinkPrefix, ErrInvalidLink, "nothing after"},
		{"padded", good + "==", ErrLinkChecksum, "damaged"},
		{"standard base64", ContactLinkPrefix + "+/+/", ErrLinkChecksum, "damaged"},
		{"truncated", good[:len(good)-3], ErrLinkChecksum, ""},
		{"too long", ContactLinkPrefix + strings.Repeat("A", MaxLinkSize), ErrInvalidLink, "longer than"},
		{"garbage", ContactLinkPrefix + "____", ErrLinkChecksum, "truncated"},
		{"long garbage", ContactLinkPrefix + "________________", ErrLinkChecksum, "checksum does not match"},
		{"version 1 link", oldContactLink(), ErrLinkVersion, "older version of parley"},
		{"newer link", newer, ErrLinkVersion, "newer version of parley"},
		{"invite version 1", with(func(i *wirepb.ContactInvite) { i.Version = 1 }), ErrUnsupportedVersion, "version 1"},
		{"invite version 3", with(func(i *wirepb.ContactInvite) { i.Version = 3 }), ErrUnsupportedVersion, "update parley"},
		{"no peer id", with(func(i *wirepb.ContactInvite) { i.PeerId = nil }), ErrInvalid, "peer_id is empty"},
		{"long name", with(func(i *wirepb.ContactInvite) { i.Name = strings.Repeat("n", MaxNameSize+1) }), ErrInvalid, "name is 65 bytes"},
		{"nine addrs", with(func(i *wirepb.ContactInvite) {
			i.Addrs = [][]byte{{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}}
		}), ErrInvalid, "addrs has 9 entries"},
		{"empty addr", with(func(i *wirepb.ContactInvite) { i.Addrs = [][]byte{{}} }), ErrInvalid, "addrs[0] is empty"},
		{"no bundle", with(func(i *wirepb.ContactInvite) { i.Bundle = nil }), ErrInvalid, "bundle is empty"},
		{"no signature", with(func(i *wirepb.ContactInvite) { i.Signature = nil }), ErrInvalid, "signature"},
		{"secret without mailboxes", with(func(i *wirepb.ContactInvite) { i.Mailboxes = nil }), ErrInvalid, "mailbox_secret"},
		{"mailboxes without secret", with(func(i *wirepb.ContactInvite) { i.MailboxSecret = nil }), ErrInvalid, "mailbox_secret"},
		{"nine mailboxes", with(func(i *wirepb.ContactInvite) { i.Mailboxes = make([][]byte, 9) }), ErrInvalid, "mailboxes has 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := DecodeContactInvite(tt.link)
			if err == nil {
				t.Fatalf("accepted: %v", inv)
			}
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrInvalidLink) {
				t.Fatalf("got %v, want %v and ErrInvalidLink", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

func TestDecodeContactInviteInvalidUTF8Name(t *testing.T) {
	// proto3 strings must be UTF-8: hand-encode a name field of 0xff.
	b := []byte{0x08, 0x02, 0x12, 0x01, 0x01, 0x1a, 0x01, 0xff}
	raw := append([]byte{LinkVersion}, b...)
	raw = binary.BigEndian.AppendUint32(raw, linkChecksum("contact", LinkVersion, b))
	if _, err := DecodeContactInvite(ContactLinkPrefix + linkEncoding.EncodeToString(raw)); !errors.Is(err, ErrInvalidLink) {
		t.Fatalf("got %v", err)
	}
}

func TestContactInviteSignedBytes(t *testing.T) {
	inv := sampleContactInvite()
	base := ContactInviteSignedBytes(inv)
	inv.Signature = fill(SignatureSize, 1)
	if string(ContactInviteSignedBytes(inv)) != string(base) {
		t.Fatal("signed bytes cover the signature")
	}
	for name, mut := range map[string]func(*wirepb.ContactInvite){
		"version":   func(i *wirepb.ContactInvite) { i.Version++ },
		"peer id":   func(i *wirepb.ContactInvite) { i.PeerId = append(i.PeerId, 0) },
		"name":      func(i *wirepb.ContactInvite) { i.Name += "x" },
		"addr":      func(i *wirepb.ContactInvite) { i.Addrs[0] = []byte{1} },
		"bundle":    func(i *wirepb.ContactInvite) { i.Bundle[0] ^= 1 },
		"mailboxes": func(i *wirepb.ContactInvite) { i.Mailboxes = append(i.Mailboxes, []byte{1}) },
		"secret":    func(i *wirepb.ContactInvite) { i.MailboxSecret[0] ^= 1 },
		// Moving bytes between neighbouring fields changes the encoding.
		"name into addrs": func(i *wirepb.ContactInvite) { i.Name = ""; i.Addrs = [][]byte{[]byte("alice")} },
	} {
		x := sampleContactInvite()
		mut(x)
		if string(ContactInviteSignedBytes(x)) == string(base) {
			t.Errorf("%s: change not covered by the signature", name)
		}
	}
}

func TestDecodeRoomLinkRejects(t *testing.T) {
	contact, err := EncodeContactInvite(sampleContactInvite())
	if err != nil {
		t.Fatal(err)
	}
	with := func(mut func(*wirepb.RoomLink)) string {
		l := sampleRoomLink()
		mut(l)
		return mustLink(t, "room", RoomLinkPrefix, l)
	}
	old, _ := proto.Marshal(sampleRoomLink())
	tests := []struct {
		name    string
		link    string
		want    error
		mention string
	}{
		{"contact link", contact, ErrInvalidLink, "contact link, not a room link"},
		{"no prefix", "team", ErrInvalidLink, "starts with parley://room/"},
		{"version 1 link", RoomLinkPrefix + linkEncoding.EncodeToString(old), ErrLinkVersion, "older version"},
		{"version 2", with(func(l *wirepb.RoomLink) { l.Version = 2 }), ErrUnsupportedVersion, "version 2"},
		{"short secret", with(func(l *wirepb.RoomLink) { l.RoomSecret = l.RoomSecret[:16] }), ErrInvalid, "room_secret is 16 bytes, want 32"},
		{"no inviter", with(func(l *wirepb.RoomLink) { l.Inviter = nil }), ErrInvalid, "inviter is empty"},
		{"long name", with(func(l *wirepb.RoomLink) { l.Name = strings.Repeat("n", 65) }), ErrInvalid, "name"},
		{"nine addrs", with(func(l *wirepb.RoomLink) { l.Addrs = make([][]byte, 9) }), ErrInvalid, "addrs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRoomLink(tt.link)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrInvalidLink) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

func TestEncodeLinkRefusesInvalid(t *testing.T) {
	if _, err := EncodeContactInvite(&wirepb.ContactInvite{Version: ContactInviteVersion}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invite without peer id: got %v", err)
	}
	if _, err := EncodeRoomLink(&wirepb.RoomLink{Version: 1, Inviter: samplePeerID}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("room link without secret: got %v", err)
	}
	big := sampleContactInvite()
	big.Addrs = nil
	for range MaxAddrs {
		big.Addrs = append(big.Addrs, fill(MaxAddrSize, 1))
	}
	if _, err := EncodeContactInvite(big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("link over %d bytes: got %v", MaxLinkSize, err)
	}
}

func ExampleEncodeRoomLink() {
	l := &wirepb.RoomLink{Version: 1, RoomSecret: make([]byte, 32), Inviter: []byte{0x00, 0x01, 0x02}, Name: "team"}
	link, err := EncodeRoomLink(l)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(link)
	back, err := DecodeRoomLink(link)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(back.GetName())
	// Output:
	// parley://room/AggBEiAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABoEdGVhbSIDAAEC-Acu6Q
	// team
}
