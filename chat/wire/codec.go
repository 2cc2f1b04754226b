package wire

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// DecodePayload decodes and validates a decrypted ratchet plaintext of at
// most MaxPayloadSize bytes.
func DecodePayload(b []byte) (*wirepb.Payload, error) {
	p := new(wirepb.Payload)
	if err := decode(b, MaxPayloadSize, p); err != nil {
		return nil, err
	}
	return p, nil
}

// DecodeRoomMessage decodes and validates the data of a gossipsub message
// on a room topic (at most MaxRoomMessage bytes). Topic validators call it
// first; they still check the room id against the topic, the membership
// MAC, the epoch and the clock.
func DecodeRoomMessage(b []byte) (*wirepb.RoomMessage, error) {
	m := new(wirepb.RoomMessage)
	if err := decode(b, MaxRoomMessage, m); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeSignedRoster decodes and validates a serialized SignedRoster (at
// most MaxRosterSize bytes), as carried by RoomInvite.roster and
// RoomRosterUpdate.roster. The signature is not verified.
func DecodeSignedRoster(b []byte) (*wirepb.SignedRoster, error) {
	s := new(wirepb.SignedRoster)
	if err := decode(b, MaxRosterSize, s); err != nil {
		return nil, err
	}
	return s, nil
}

// DecodeRoster decodes and validates SignedRoster.roster. Call it only once
// the signature over RosterSigningInput has been verified.
func DecodeRoster(b []byte) (*wirepb.Roster, error) {
	r := new(wirepb.Roster)
	if err := decode(b, MaxRosterSize, r); err != nil {
		return nil, err
	}
	return r, nil
}

// decode unmarshals b of at most max bytes into m and validates it.
func decode(b []byte, max int, m proto.Message) error {
	if len(b) > max {
		return fmt.Errorf("wire: decode %s: %d bytes exceeds limit %d: %w", msgName(m), len(b), max, ErrFrameTooLarge)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("wire: decode %s: %w: %v", msgName(m), ErrMalformed, err)
	}
	return Validate(m)
}

// Domain-separation labels of the byte strings that are signed or MACed.
// Each is followed by a zero byte in the input.
const (
	MembershipMACLabel = "parley/room/1/membership-mac"
	RosterSigningLabel = "parley/roster/1"
	SyncProofLabel     = "parley/roomsync/1/proof"
)

// MembershipMACInput returns the bytes that RoomMessage.membership_mac
// authenticates, independent of protobuf encoding:
//
//	"parley/room/1/membership-mac" 0x00
//	u32(version) lp(room_id) u64(epoch) u64(hlc) lp(msg_id)
//	lp(ciphertext) lp(text)
//
// where u32 and u64 are big-endian and lp(x) is u32(len(x)) followed by x.
func MembershipMACInput(m *wirepb.RoomMessage) []byte {
	b := make([]byte, 0, len(MembershipMACLabel)+1+4+4+RoomIDSize+8+8+4+IDSize+4+len(m.GetCiphertext())+4+len(m.GetText()))
	b = append(b, MembershipMACLabel...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint32(b, m.GetVersion())
	b = appendLP(b, m.GetRoomId())
	b = binary.BigEndian.AppendUint64(b, m.GetEpoch())
	b = binary.BigEndian.AppendUint64(b, m.GetHlc())
	b = appendLP(b, m.GetMsgId())
	b = appendLP(b, m.GetCiphertext())
	b = appendLP(b, []byte(m.GetText()))
	return b
}

// RosterSigningInput returns the bytes that SignedRoster.signature signs:
// "parley/roster/1" 0x00 followed by the serialized Roster exactly as
// carried in SignedRoster.roster.
func RosterSigningInput(roster []byte) []byte {
	b := make([]byte, 0, len(RosterSigningLabel)+1+len(roster))
	b = append(b, RosterSigningLabel...)
	b = append(b, 0)
	return append(b, roster...)
}

// SyncProofInput returns the bytes that RoomSyncRequest.proof
// authenticates (HMAC-SHA256 under the epoch's membership key). It binds
// the requester and responder peer IDs, taken from the connection, so a
// proof cannot be replayed by another peer or to another member:
//
//	"parley/roomsync/1/proof" 0x00
//	lp(requester) lp(responder)
//	u32(version) lp(room_id) u64(after_hlc) u32(limit)
func SyncProofInput(r *wirepb.RoomSyncRequest, requester, responder []byte) []byte {
	b := make([]byte, 0, len(SyncProofLabel)+1+8+len(requester)+len(responder)+4+4+RoomIDSize+8+4)
	b = append(b, SyncProofLabel...)
	b = append(b, 0)
	b = appendLP(b, requester)
	b = appendLP(b, responder)
	b = binary.BigEndian.AppendUint32(b, r.GetVersion())
	b = appendLP(b, r.GetRoomId())
	b = binary.BigEndian.AppendUint64(b, r.GetAfterHlc())
	b = binary.BigEndian.AppendUint32(b, r.GetLimit())
	return b
}

func appendLP(b, x []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
	return append(b, x...)
}

// RoomTopic returns the gossipsub topic of a room: RoomTopicPrefix followed
// by the lowercase hex of the room id.
func RoomTopic(roomID []byte) string {
	return RoomTopicPrefix + hex.EncodeToString(roomID)
}

// hlcMSMask keeps the 48 bits of milliseconds in a hybrid logical clock.
const hlcMSMask = 1<<48 - 1

// PackHLC returns the hybrid logical clock value ms<<16 | counter, where ms
// is Unix time in milliseconds (its low 48 bits are kept: enough until the
// year 10889).
func PackHLC(ms int64, counter uint16) uint64 {
	return (uint64(ms)&hlcMSMask)<<16 | uint64(counter)
}

// UnpackHLC splits a hybrid logical clock value into Unix milliseconds and
// counter.
func UnpackHLC(h uint64) (ms int64, counter uint16) {
	return int64(h >> 16), uint16(h)
}
