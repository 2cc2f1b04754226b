package group

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// FINDING (low-medium: padded join requests travel the whole mesh). A
// JoinRequest holds at most 512 + 512 bytes, but ParseEnvelope lets a
// join_request envelope be 384 KiB (the commit cap) and protobuf keeps
// unknown fields silently: a joiner (anyone holding a link token, which is
// public on the topic, see TestReviewLinkTokenReplayedFromTopic) pads its
// request to 384 KiB and it stays valid, so every node forwards it. The
// same padding fits in any envelope up to its cap. Fix: cap join_request
// envelopes at a few KiB, and refuse unknown fields in RoomEnvelope and
// its bodies (len(unknown) != 0).
func TestReviewPaddedJoinRequest(t *testing.T) {
	a, j := newIdent(t, "alice"), newIdent(t, "joiner")
	r := newRoom(t, a)
	tok, err := NewJoinToken(a.priv, r.states["alice"].Commit, 5, t0.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	req, err := NewJoinRequest(j.priv, tok, tok.Secret, j.kp)
	if err != nil {
		t.Fatal(err)
	}
	env := &wirepb.RoomEnvelope{Version: Version, RoomId: r.id[:], Body: &wirepb.RoomEnvelope_JoinRequest{JoinRequest: req}}
	plain := marshal(env)
	// Control: the honest request passes.
	e, err := ParseEnvelope(r.id, plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ParseJoinRequest(j.id, e.GetJoinRequest()); err != nil {
		t.Fatal(err)
	}
	padded := protowire.AppendTag(append([]byte(nil), plain...), 99, protowire.BytesType)
	padded = protowire.AppendBytes(padded, make([]byte, 300<<10))
	// A few bytes of padding, well under the cap, are refused too.
	small := protowire.AppendTag(append([]byte(nil), plain...), 99, protowire.BytesType)
	small = protowire.AppendBytes(small, make([]byte, 16))
	if _, err := ParseEnvelope(r.id, small); err == nil {
		t.Errorf("a join request with an unknown field passes ParseEnvelope")
	}
	e, err = ParseEnvelope(r.id, padded)
	if err != nil {
		wantErr(t, err, ErrInvalid)
		return
	}
	if _, _, err := ParseJoinRequest(j.id, e.GetJoinRequest()); err == nil {
		t.Errorf("a join request padded to %d bytes (honest: %d) passes ParseEnvelope and ParseJoinRequest", len(padded), len(plain))
	}
}
