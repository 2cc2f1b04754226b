package group

import (
	"fmt"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// Envelope limits and version.
const (
	// Version is the RoomEnvelope version of private rooms v2.
	Version = 2
	// TopicPrefix is followed by the lowercase hex room id.
	TopicPrefix = "parley/room/2/"
	// MaxEnvelopeSize bounds a RoomEnvelope holding an app message, a key
	// package or a leave proposal.
	MaxEnvelopeSize = 16 << 10
	// MaxLargeEnvelopeSize bounds a RoomEnvelope holding a commit.
	MaxLargeEnvelopeSize = MaxCommitSize
	// MaxJoinEnvelopeSize bounds a RoomEnvelope holding a join request.
	MaxJoinEnvelopeSize = MaxJoinRequestSize
)

// ParseEnvelope decodes the data of a gossipsub message on room's topic and
// checks its shape: the size for its kind, version 2, the room id, exactly
// one body, no unknown field anywhere. The body's own checks (signatures, MACs) are the caller's, with
// ParseCommit, KeyPackageFromProto, ParseJoinRequest or Epoch.VerifyMAC.
func ParseEnvelope(room RoomID, data []byte) (*wirepb.RoomEnvelope, error) {
	var env wirepb.RoomEnvelope
	if err := unmarshal("room envelope", data, MaxLargeEnvelopeSize, &env); err != nil {
		return nil, err
	}
	if env.Version != Version {
		return nil, fmt.Errorf("%w: room envelope version %d", ErrInvalid, env.Version)
	}
	if string(env.RoomId) != string(room[:]) {
		return nil, fmt.Errorf("%w: envelope of another room", ErrWrongRoom)
	}
	switch env.Body.(type) {
	case *wirepb.RoomEnvelope_Commit:
	case *wirepb.RoomEnvelope_JoinRequest:
		if len(data) > MaxJoinEnvelopeSize {
			return nil, fmt.Errorf("%w: join request envelope: %d bytes, limit %d", ErrInvalid, len(data), MaxJoinEnvelopeSize)
		}
	case *wirepb.RoomEnvelope_App, *wirepb.RoomEnvelope_KeyPackage, *wirepb.RoomEnvelope_Leave:
		if len(data) > MaxEnvelopeSize {
			return nil, fmt.Errorf("%w: room envelope: %d bytes, limit %d", ErrInvalid, len(data), MaxEnvelopeSize)
		}
	default:
		return nil, fmt.Errorf("%w: room envelope without a body", ErrInvalid)
	}
	return &env, nil
}
