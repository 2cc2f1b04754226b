package wire

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// Link prefixes. A link is a prefix followed by the unpadded base64url
// encoding of the serialized message.
const (
	ContactLinkPrefix = "parley://contact/"
	RoomLinkPrefix    = "parley://room/"
)

// ErrInvalidLink: a string that is not a well-formed parley:// link of the
// kind expected. Link errors also match ErrInvalid or
// ErrUnsupportedVersion when a field is at fault.
var ErrInvalidLink = errors.New("invalid parley link")

var linkEncoding = base64.RawURLEncoding.Strict()

// EncodeContactInvite returns the parley://contact/ link of inv. It refuses
// an invite that DecodeContactInvite would refuse, so every link it makes
// can be read back.
func EncodeContactInvite(inv *wirepb.ContactInvite) (string, error) {
	return encodeLink("contact", ContactLinkPrefix, inv)
}

// DecodeContactInvite parses and validates a parley://contact/ link.
func DecodeContactInvite(s string) (*wirepb.ContactInvite, error) {
	inv := new(wirepb.ContactInvite)
	if err := decodeLink(s, "contact", ContactLinkPrefix, inv); err != nil {
		return nil, err
	}
	return inv, nil
}

// EncodeRoomLink returns the parley://room/ link of l. It refuses a link
// that DecodeRoomLink would refuse. The link holds the room secret: whoever
// has it can join the room.
func EncodeRoomLink(l *wirepb.RoomLink) (string, error) {
	return encodeLink("room", RoomLinkPrefix, l)
}

// DecodeRoomLink parses and validates a parley://room/ link.
func DecodeRoomLink(s string) (*wirepb.RoomLink, error) {
	l := new(wirepb.RoomLink)
	if err := decodeLink(s, "room", RoomLinkPrefix, l); err != nil {
		return nil, err
	}
	return l, nil
}

func encodeLink(kind, prefix string, m proto.Message) (string, error) {
	if err := Validate(m); err != nil {
		return "", fmt.Errorf("wire: encode %s link: %w", kind, err)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("wire: encode %s link: %w", kind, err)
	}
	link := prefix + linkEncoding.EncodeToString(b)
	if len(link) > MaxLinkSize {
		return "", fmt.Errorf("wire: encode %s link: %d bytes exceeds limit %d; use fewer or shorter addresses: %w", kind, len(link), MaxLinkSize, ErrFrameTooLarge)
	}
	return link, nil
}

func decodeLink(s, kind, prefix string, m proto.Message) error {
	if len(s) > MaxLinkSize {
		return fmt.Errorf("wire: %w: %d bytes is longer than the %d-byte limit", ErrInvalidLink, len(s), MaxLinkSize)
	}
	data, ok := strings.CutPrefix(s, prefix)
	if !ok {
		for _, other := range []struct{ kind, prefix string }{{"contact", ContactLinkPrefix}, {"room", RoomLinkPrefix}} {
			if strings.HasPrefix(s, other.prefix) {
				return fmt.Errorf("wire: %w: this is a %s link, not a %s link", ErrInvalidLink, other.kind, kind)
			}
		}
		return fmt.Errorf("wire: %w: a %s link starts with %s", ErrInvalidLink, kind, prefix)
	}
	if data == "" {
		return fmt.Errorf("wire: %w: %s link has nothing after %s", ErrInvalidLink, kind, prefix)
	}
	b, err := linkEncoding.DecodeString(data)
	if err != nil {
		return fmt.Errorf("wire: %w: %s link is not unpadded base64url (truncated or mistyped?): %v", ErrInvalidLink, kind, err)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("wire: %w: %s link does not hold a %s: %v", ErrInvalidLink, kind, msgName(m), err)
	}
	if err := Validate(m); err != nil {
		return fmt.Errorf("wire: %w: %s link: %w", ErrInvalidLink, kind, err)
	}
	return nil
}
