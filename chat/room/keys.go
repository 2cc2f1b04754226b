package room

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/parley-im/parley/chat/wire"
)

// Key-derivation labels. Every derivation is HKDF-SHA256 (RFC 5869) with the
// label as info; the labels are part of the protocol (docs/PROTOCOL.md).
const (
	publicIDLabel    = "parley/v1 public-room\x00"
	rendezvousLabel  = "parley/room/1 rendezvous"
	rendezvous2Label = "parley/room/2 rendezvous"
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

func mac(key, input []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(input)
	return m.Sum(nil)
}

// rendezvousCID returns the DHT key under which members of a public room
// advertise themselves: SHA-256 of the label, 0x00 and the topic.
func rendezvousCID(id ID) cid.Cid {
	sum := sha256.Sum256([]byte(rendezvousLabel + "\x00" + id.Topic()))
	return digestCID(sum[:])
}

// rendezvousCID2 returns the DHT key of a private room (version 2) on day
// (UTC): HMAC-SHA256 under the epoch's rendezvous key of the label, 0x00
// and the date as YYYY-MM-DD, so the record rotates daily and with every
// epoch, and names nothing permanent.
func rendezvousCID2(key []byte, day time.Time) cid.Cid {
	return digestCID(mac(key, []byte(rendezvous2Label+"\x00"+day.UTC().Format(time.DateOnly))))
}

// digestCID is the CIDv1 raw of a SHA2-256 multihash whose digest is d.
func digestCID(d []byte) cid.Cid {
	mh, err := multihash.Encode(d, multihash.SHA2_256)
	if err != nil {
		panic("room: multihash: " + err.Error()) // cannot happen for 32 bytes
	}
	return cid.NewCidV1(cid.Raw, mh)
}
