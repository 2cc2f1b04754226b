package room

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"golang.org/x/crypto/hkdf"

	"github.com/parley-im/parley/chat/wire"
)

// Key-derivation labels. Every derivation is HKDF-SHA256 (RFC 5869) with the
// label as info; the labels are part of the protocol (docs/PROTOCOL.md).
const (
	publicIDLabel      = "parley/v1 public-room\x00"
	roomIDLabel        = "parley/room/1 room-id"
	membershipKeyLabel = "parley/room/1 membership-key"
	rendezvousKeyLabel = "parley/room/1 rendezvous-key"
	rendezvousLabel    = "parley/room/1 rendezvous"
	adLabel            = "parley/room/1 sender-key-ad"
)

// ID is a room id: 32 bytes, shown as lowercase hex.
type ID [wire.RoomIDSize]byte

// String returns the lowercase hex of the id.
func (id ID) String() string { return fmt.Sprintf("%x", id[:]) }

// Topic returns the room's gossipsub topic.
func (id ID) Topic() string { return wire.RoomTopic(id[:]) }

// conv returns the messages.conv value of the room.
func (id ID) conv() string { return "#" + id.String() }

// LogValue keeps room ids short in logs.
func (id ID) LogValue() string { return id.String()[:16] }

func idFromBytes(b []byte) (ID, error) {
	var id ID
	if len(b) != len(id) {
		return id, fmt.Errorf("room id is %d bytes, want %d", len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

// PublicID returns the id of the public room called name: SHA-256 of
// "parley/v1 public-room" 0x00 followed by the lowercased name.
func PublicID(name string) ID {
	return sha256.Sum256([]byte(publicIDLabel + strings.ToLower(name)))
}

// hkdf32 expands secret under salt and info into 32 bytes.
func hkdf32(secret, salt []byte, info string) []byte {
	out := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, salt, []byte(info)), out); err != nil {
		panic("room: hkdf: " + err.Error()) // cannot happen for 32 bytes
	}
	return out
}

// PrivateID returns the id of the private room created from secret (the
// epoch-1 secret): HKDF-SHA256(secret, salt empty, info "parley/room/1 room-id").
func PrivateID(secret []byte) ID {
	var id ID
	copy(id[:], hkdf32(secret, nil, roomIDLabel))
	return id
}

// membershipKey returns the HMAC key of an epoch: HKDF-SHA256(epoch secret,
// salt room id, info "parley/room/1 membership-key").
func membershipKey(secret []byte, id ID) []byte {
	return hkdf32(secret, id[:], membershipKeyLabel)
}

func mac(key, input []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(input)
	return m.Sum(nil)
}

// rendezvousCID returns the DHT key under which members of a room advertise
// themselves on day (UTC). Public rooms: SHA-256 of the label and topic.
// Private rooms: HMAC-SHA256 under HKDF(epoch secret, salt room id, info
// "parley/room/1 rendezvous-key") of the label, 0x00 and the date as
// YYYY-MM-DD, so the record rotates daily and names nothing permanent.
func rendezvousCID(id ID, secret []byte, day time.Time) cid.Cid {
	var digest []byte
	if secret == nil {
		sum := sha256.Sum256([]byte(rendezvousLabel + "\x00" + id.Topic()))
		digest = sum[:]
	} else {
		key := hkdf32(secret, id[:], rendezvousKeyLabel)
		digest = mac(key, []byte(rendezvousLabel+"\x00"+day.UTC().Format(time.DateOnly)))
	}
	mh, err := multihash.Encode(digest, multihash.SHA2_256)
	if err != nil {
		panic("room: multihash: " + err.Error()) // cannot happen for 32 bytes
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// senderKeyAD is the associated data bound into every sender-key message:
// the label, 0x00, then lp(room id) u64(epoch) lp(author peer id) lp(msg id)
// u64(hlc), big-endian, lp(x) = u32(len(x)) || x.
func senderKeyAD(id ID, epoch uint64, author, msgID []byte, hlc uint64) []byte {
	b := append([]byte(adLabel), 0)
	b = appendLP(b, id[:])
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = appendLP(b, author)
	b = appendLP(b, msgID)
	return binary.BigEndian.AppendUint64(b, hlc)
}

func appendLP(b, x []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
	return append(b, x...)
}
