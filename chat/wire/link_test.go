package wire

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

func TestContactInviteRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		inv  *wirepb.ContactInvite
	}{
		{"full", sampleContactInvite()},
		{"no name, no addrs", &wirepb.ContactInvite{Version: 1, PeerId: samplePeerID}},
		{"eight addrs", &wirepb.ContactInvite{Version: 1, PeerId: samplePeerID, Name: "żółw 🐢", Addrs: [][]byte{{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}}}},
		{"64-byte name", &wirepb.ContactInvite{Version: 1, PeerId: samplePeerID, Name: strings.Repeat("n", MaxNameSize)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			link, err := EncodeContactInvite(tt.inv)
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
			if !proto.Equal(got, tt.inv) {
				t.Fatalf("got %v, want %v", got, tt.inv)
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

func mustLink(t *testing.T, prefix string, m proto.Message) string {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + linkEncoding.EncodeToString(b)
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
		return mustLink(t, ContactLinkPrefix, inv)
	}
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
		{"nothing after prefix", ContactLinkPrefix, ErrInvalidLink, "nothing after"},
		{"padded", good + "==", ErrInvalidLink, "base64url"},
		{"standard base64", ContactLinkPrefix + "+/+/", ErrInvalidLink, "base64url"},
		{"trailing space", good + " ", ErrInvalidLink, "base64url"},
		{"truncated", good[:len(good)-3], ErrInvalidLink, ""},
		{"too long", ContactLinkPrefix + strings.Repeat("A", MaxLinkSize), ErrInvalidLink, "longer than"},
		{"garbage", ContactLinkPrefix + "____", ErrInvalidLink, "does not hold"},
		{"version 0", with(func(i *wirepb.ContactInvite) { i.Version = 0 }), ErrUnsupportedVersion, "version 0"},
		{"version 2", with(func(i *wirepb.ContactInvite) { i.Version = 2 }), ErrUnsupportedVersion, "update parley"},
		{"no peer id", with(func(i *wirepb.ContactInvite) { i.PeerId = nil }), ErrInvalid, "peer_id is empty"},
		{"long name", with(func(i *wirepb.ContactInvite) { i.Name = strings.Repeat("n", MaxNameSize+1) }), ErrInvalid, "name is 65 bytes"},
		{"nine addrs", with(func(i *wirepb.ContactInvite) {
			i.Addrs = [][]byte{{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}}
		}), ErrInvalid, "addrs has 9 entries"},
		{"empty addr", with(func(i *wirepb.ContactInvite) { i.Addrs = [][]byte{{}} }), ErrInvalid, "addrs[0] is empty"},
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
	b := []byte{0x08, 0x01, 0x12, 0x01, 0x01, 0x1a, 0x01, 0xff}
	if _, err := DecodeContactInvite(ContactLinkPrefix + linkEncoding.EncodeToString(b)); !errors.Is(err, ErrInvalidLink) {
		t.Fatalf("got %v", err)
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
		return mustLink(t, RoomLinkPrefix, l)
	}
	tests := []struct {
		name    string
		link    string
		want    error
		mention string
	}{
		{"contact link", contact, ErrInvalidLink, "contact link, not a room link"},
		{"no prefix", "team", ErrInvalidLink, "starts with parley://room/"},
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
	if _, err := EncodeContactInvite(&wirepb.ContactInvite{Version: 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invite without peer id: got %v", err)
	}
	if _, err := EncodeRoomLink(&wirepb.RoomLink{Version: 1, Inviter: samplePeerID}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("room link without secret: got %v", err)
	}
	big := &wirepb.ContactInvite{Version: 1, PeerId: samplePeerID}
	for range MaxAddrs {
		big.Addrs = append(big.Addrs, fill(MaxAddrSize, 1))
	}
	if _, err := EncodeContactInvite(big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("link over %d bytes: got %v", MaxLinkSize, err)
	}
}

func ExampleEncodeContactInvite() {
	inv := &wirepb.ContactInvite{Version: 1, PeerId: []byte{0x00, 0x01, 0x02}, Name: "alice"}
	link, err := EncodeContactInvite(inv)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(link)
	back, err := DecodeContactInvite(link)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(back.GetName())
	// Output:
	// parley://contact/CAESAwABAhoFYWxpY2U
	// alice
}
