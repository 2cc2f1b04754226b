package wire

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// Link prefixes. A link is a prefix followed by the unpadded base64url
// encoding of the link encoding version, the serialized message and a
// checksum (see LinkVersion).
const (
	ContactLinkPrefix = "parley://contact/"
	RoomLinkPrefix    = "parley://room/"
)

// LinkVersion is the link encoding this build writes and reads: the
// decoded bytes are u8 LinkVersion || serialized message || CRC-32 (IEEE,
// big-endian) of "parley/link/2 " || kind || u8 LinkVersion || serialized
// message, kind being "contact" or "room".
//
// A CRC-32 detects every error burst of up to 32 bits. One mistyped
// character of base64url changes at most 6 consecutive bits of the decoded
// bytes (or makes the text invalid base64url), and two swapped neighbours
// at most 12, so every such typo is refused: a typo can never turn a link
// into another valid link. The checksum is no defence against someone who
// edits a link on purpose; that is what the signatures inside are for.
const LinkVersion = 2

// ContactInviteVersion is the version of the ContactInvite message this
// build writes and reads (the one with a bundle and a signature).
const ContactInviteVersion = 2

const linkChecksumSize = 4

// Link errors. Every link error matches ErrInvalidLink; a link of another
// version also matches ErrLinkVersion, and a mistyped one ErrLinkChecksum.
var (
	// ErrInvalidLink: a string that is not a well-formed parley:// link of
	// the kind expected. Link errors also match ErrInvalid or
	// ErrUnsupportedVersion when a field is at fault.
	ErrInvalidLink = errors.New("invalid parley link")
	// ErrLinkVersion: a link from an older (or newer) version of Parley.
	ErrLinkVersion = errors.New("link from another version of parley")
	// ErrLinkChecksum: the link's checksum does not match: it was mistyped,
	// truncated or damaged.
	ErrLinkChecksum = errors.New("link checksum mismatch")
)

// linkError wraps ErrInvalidLink and a more specific sentinel.
type linkError struct {
	kind error
	msg  string
}

func (e *linkError) Error() string { return "wire: " + ErrInvalidLink.Error() + ": " + e.msg }

func (e *linkError) Is(target error) bool { return target == ErrInvalidLink || target == e.kind }

var linkEncoding = base64.RawURLEncoding.Strict()

// EncodeContactInvite returns the parley://contact/ link of inv. It refuses
// an invite that DecodeContactInvite would refuse, so every link it makes
// can be read back (the signature is not checked here: see
// ContactInviteSignedBytes).
func EncodeContactInvite(inv *wirepb.ContactInvite) (string, error) {
	return encodeLink("contact", ContactLinkPrefix, inv)
}

// DecodeContactInvite parses and validates a parley://contact/ link: its
// version, its checksum and the fields of the invite. The caller must still
// verify the invite's signature and bundle against its peer ID.
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

// EncodeRoomInvitation returns the parley://room/ link of a private room's
// invitation (rooms version 2). The link holds the token's join secret:
// whoever has it can ask to join, until the token expires, is used up or
// is revoked.
func EncodeRoomInvitation(inv *wirepb.RoomInvitation) (string, error) {
	return encodeLink("room", RoomLinkPrefix, inv)
}

// DecodeRoomInvitation parses and validates a parley://room/ link of rooms
// version 2. A link of rooms version 1 is refused with ErrUnsupportedVersion.
func DecodeRoomInvitation(s string) (*wirepb.RoomInvitation, error) {
	inv := new(wirepb.RoomInvitation)
	if err := decodeLink(s, "room", RoomLinkPrefix, inv); err != nil {
		return nil, err
	}
	return inv, nil
}

// linkChecksum is the CRC-32 of the link's kind, version and message.
func linkChecksum(kind string, version byte, msg []byte) uint32 {
	h := crc32.NewIEEE()
	h.Write([]byte("parley/link/2 " + kind))
	h.Write([]byte{version})
	h.Write(msg)
	return h.Sum32()
}

func encodeLink(kind, prefix string, m proto.Message) (string, error) {
	if err := Validate(m); err != nil {
		return "", fmt.Errorf("wire: encode %s link: %w", kind, err)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("wire: encode %s link: %w", kind, err)
	}
	raw := make([]byte, 0, 1+len(b)+linkChecksumSize)
	raw = append(raw, LinkVersion)
	raw = append(raw, b...)
	raw = binary.BigEndian.AppendUint32(raw, linkChecksum(kind, LinkVersion, b))
	link := prefix + linkEncoding.EncodeToString(raw)
	if len(link) > MaxLinkSize {
		return "", fmt.Errorf("wire: encode %s link: %d bytes exceeds limit %d; use fewer or shorter addresses: %w", kind, len(link), MaxLinkSize, ErrFrameTooLarge)
	}
	return link, nil
}

// stripSpace removes the ASCII white space that wrapping or copying a
// link inserts; none of it can be part of a link.
func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r':
			return -1
		}
		return r
	}, s)
}

func decodeLink(s, kind, prefix string, m proto.Message) error {
	if len(s) > 2*MaxLinkSize {
		return &linkError{ErrInvalidLink, fmt.Sprintf("%d bytes is longer than the %d-byte limit", len(s), MaxLinkSize)}
	}
	s = stripSpace(s)
	if len(s) > MaxLinkSize {
		return &linkError{ErrInvalidLink, fmt.Sprintf("%d bytes is longer than the %d-byte limit", len(s), MaxLinkSize)}
	}
	data, ok := strings.CutPrefix(s, prefix)
	if !ok {
		for _, other := range []struct{ kind, prefix string }{{"contact", ContactLinkPrefix}, {"room", RoomLinkPrefix}} {
			if strings.HasPrefix(s, other.prefix) {
				return &linkError{ErrInvalidLink, fmt.Sprintf("this is a %s link, not a %s link", other.kind, kind)}
			}
		}
		return &linkError{ErrInvalidLink, fmt.Sprintf("a %s link starts with %s", kind, prefix)}
	}
	if data == "" {
		return &linkError{ErrInvalidLink, fmt.Sprintf("%s link has nothing after %s", kind, prefix)}
	}
	raw, err := linkEncoding.DecodeString(data)
	if err != nil {
		return &linkError{ErrLinkChecksum, fmt.Sprintf("%s link is damaged (a character is mistyped, missing or not allowed): %v", kind, err)}
	}
	if raw[0] == 0x08 {
		// Version 1: the bare message, whose first byte is the tag of
		// field 1 (version). It has no checksum, so a typo in it could
		// name another peer: refuse it.
		return &linkError{ErrLinkVersion, fmt.Sprintf("this %s link is from an older version of parley and has no checksum; ask for a new link (parley invite)", kind)}
	}
	if len(raw) < 1+linkChecksumSize+1 {
		return &linkError{ErrLinkChecksum, fmt.Sprintf("%s link is truncated", kind)}
	}
	msg := raw[1 : len(raw)-linkChecksumSize]
	sum := binary.BigEndian.Uint32(raw[len(raw)-linkChecksumSize:])
	if sum != linkChecksum(kind, raw[0], msg) {
		return &linkError{ErrLinkChecksum, fmt.Sprintf("%s link checksum does not match: the link is mistyped, truncated or damaged; copy it again", kind)}
	}
	if raw[0] != LinkVersion {
		// Later link versions keep the version byte and the trailing
		// checksum, so a link that checks out under another version is
		// from another release, not damaged.
		return &linkError{ErrLinkVersion, fmt.Sprintf("this %s link is from a newer version of parley (link version %d); upgrade parley", kind, raw[0])}
	}
	if err := proto.Unmarshal(msg, m); err != nil {
		return &linkError{ErrInvalidLink, fmt.Sprintf("%s link does not hold a %s: %v", kind, msgName(m), err)}
	}
	if err := Validate(m); err != nil {
		return fmt.Errorf("%w: %w", &linkError{ErrInvalidLink, kind + " link"}, err)
	}
	return nil
}

// ContactInviteSignedBytes is what the inviter's Ed25519 identity signs in
// a ContactInvite, every field but the signature in a fixed layout:
//
//	"parley/link/2 contact-invite" || u32 version || lp(peer_id) ||
//	lp(name) || u8 n || n × lp(addr) || lp(bundle) || u8 m ||
//	m × lp(mailbox) || lp(mailbox_secret)
//
// where lp(x) is u16 length (big-endian) || x. It depends on the field
// values only, not on how the message was serialized.
func ContactInviteSignedBytes(inv *wirepb.ContactInvite) []byte {
	lp := func(b []byte, x []byte) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(len(x)))
		return append(b, x...)
	}
	b := []byte("parley/link/2 contact-invite")
	b = binary.BigEndian.AppendUint32(b, inv.GetVersion())
	b = lp(b, inv.GetPeerId())
	b = lp(b, []byte(inv.GetName()))
	b = append(b, byte(len(inv.GetAddrs())))
	for _, a := range inv.GetAddrs() {
		b = lp(b, a)
	}
	b = lp(b, inv.GetBundle())
	b = append(b, byte(len(inv.GetMailboxes())))
	for _, m := range inv.GetMailboxes() {
		b = lp(b, m)
	}
	return lp(b, inv.GetMailboxSecret())
}
