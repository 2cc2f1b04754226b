package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// Every decoder here must return (never panic, never hang) on any input,
// and whatever it accepts must be valid and re-encode to something it
// accepts again.

func FuzzReadFrame(f *testing.F) {
	f.Add(frameBytes(f, sampleDMFrame()))
	f.Add(append(frameBytes(f, sampleDMFrame()), frameBytes(f, sampleAckFrame())...))
	f.Add(binary.AppendUvarint(nil, MaxFrameSize+1))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{0x85, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		for range 100 {
			var fr wirepb.DMFrame
			err := r.ReadFrame(MaxFrameSize, &fr)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) {
					t.Fatalf("untyped error: %v", err)
				}
				return
			}
		}
	})
}

// fuzzStream reads one frame of a stream handler's kind, validates it and
// checks that an accepted message round-trips.
func fuzzStream[T proto.Message](t *testing.T, b []byte, max int, newMsg func() T) {
	m := newMsg()
	if err := ReadFrame(bytes.NewReader(b), max, m); err != nil {
		return
	}
	if err := Validate(m); err != nil {
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("untyped validation error: %v", err)
		}
		return
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, m); err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	m2 := newMsg()
	if err := ReadFrame(&buf, max+16, m2); err != nil {
		t.Fatalf("re-read: %v", err)
	}
	if err := Validate(m2); err != nil {
		t.Fatalf("re-validate: %v", err)
	}
	if !proto.Equal(m, m2) {
		t.Fatal("round trip changed the message")
	}
}

func addFrames(f *testing.F, ms ...proto.Message) {
	for _, m := range ms {
		f.Add(frameBytes(f, m))
	}
	f.Add([]byte{})
	f.Add([]byte{0x02, 0x08, 0x01})
}

func FuzzDMFrame(f *testing.F) {
	addFrames(f, sampleDMFrame(), sampleAckFrame())
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzStream(t, b, MaxFrameSize, func() *wirepb.DMFrame { return new(wirepb.DMFrame) })
	})
}

func FuzzPrekeyRequest(f *testing.F) {
	addFrames(f, &wirepb.PrekeyRequest{Version: 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzStream(t, b, MaxPrekeyRequest, func() *wirepb.PrekeyRequest { return new(wirepb.PrekeyRequest) })
	})
}

func FuzzPrekeyResponse(f *testing.F) {
	addFrames(f, &wirepb.PrekeyResponse{Bundle: []byte("bundle")}, &wirepb.PrekeyResponse{Error: "no"})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzStream(t, b, MaxPrekeyResponse, func() *wirepb.PrekeyResponse { return new(wirepb.PrekeyResponse) })
	})
}

func FuzzRoomSyncRequest(f *testing.F) {
	addFrames(f, &wirepb.RoomSyncRequest{Version: 1, RoomId: fill(RoomIDSize, 3), AfterHlc: 9, Limit: 5, Proof: fill(MACSize, 1)})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzStream(t, b, MaxSyncRequest, func() *wirepb.RoomSyncRequest { return new(wirepb.RoomSyncRequest) })
	})
}

func FuzzRoomSyncResponse(f *testing.F) {
	data, _ := proto.Marshal(sampleRoomMessages()[0])
	addFrames(f, &wirepb.RoomSyncResponse{Messages: []*wirepb.SyncedMessage{{From: samplePeerID, Data: data, Seqno: fill(8, 1), Signature: fill(64, 2)}}, More: true},
		&wirepb.RoomSyncResponse{Error: "not a member"})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzStream(t, b, MaxSyncResponse, func() *wirepb.RoomSyncResponse { return new(wirepb.RoomSyncResponse) })
	})
}

func FuzzMailboxRequest(f *testing.F) {
	addFrames(f,
		&wirepb.MailboxRequest{Version: 1, Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.Deposit{Tag: fill(TagSize, 1), Blob: []byte("blob")}}},
		&wirepb.MailboxRequest{Version: 1, Op: &wirepb.MailboxRequest_Fetch{Fetch: &wirepb.Fetch{Tags: [][]byte{fill(TagSize, 1)}, Limit: 3}}},
		&wirepb.MailboxRequest{Version: 1, Op: &wirepb.MailboxRequest_Delete{Delete: &wirepb.Delete{Ids: [][]byte{fill(IDSize, 1)}}}})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzStream(t, b, MaxMailboxRequest, func() *wirepb.MailboxRequest { return new(wirepb.MailboxRequest) })
	})
}

func FuzzMailboxResponse(f *testing.F) {
	addFrames(f,
		&wirepb.MailboxResponse{Status: wirepb.MailboxStatus_MAILBOX_STATUS_OK, Items: []*wirepb.MailboxItem{{Id: fill(IDSize, 1), Tag: fill(TagSize, 2), Blob: []byte("b"), ReceivedAtMs: 1}}},
		&wirepb.MailboxResponse{Status: wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, Error: "no"})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzStream(t, b, MaxMailboxResponse, func() *wirepb.MailboxResponse { return new(wirepb.MailboxResponse) })
	})
}

// fuzzBytes checks a byte-slice decoder: no panic, typed errors, and an
// accepted message that re-encodes to something accepted again.
func fuzzBytes[T proto.Message](t *testing.T, b []byte, decode func([]byte) (T, error)) {
	m, err := decode(b)
	if err != nil {
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("untyped error: %v", err)
		}
		return
	}
	b2, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	if _, err := decode(b2); err != nil {
		t.Fatalf("re-decode: %v", err)
	}
}

func FuzzDecodePayload(f *testing.F) {
	for _, p := range samplePayloads(f) {
		b, _ := proto.Marshal(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { fuzzBytes(t, b, DecodePayload) })
}

func FuzzDecodeRoomMessage(f *testing.F) {
	for _, m := range sampleRoomMessages() {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { fuzzBytes(t, b, DecodeRoomMessage) })
}

func FuzzDecodeSignedRoster(f *testing.F) {
	f.Add(sampleSignedRoster(f))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzBytes(t, b, DecodeSignedRoster) })
}

func FuzzDecodeRoster(f *testing.F) {
	b, _ := proto.Marshal(sampleRoster())
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzBytes(t, b, DecodeRoster) })
}

// fuzzLink checks a link decoder: no panic, ErrInvalidLink on refusal, and
// an accepted link that re-encodes to a link decoding to the same message.
func fuzzLink[T proto.Message](t *testing.T, s string, decode func(string) (T, error), encode func(T) (string, error)) {
	m, err := decode(s)
	if err != nil {
		if !errors.Is(err, ErrInvalidLink) {
			t.Fatalf("error does not match ErrInvalidLink: %v", err)
		}
		return
	}
	s2, err := encode(m)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	m2, err := decode(s2)
	if err != nil {
		t.Fatalf("re-decode: %v", err)
	}
	if !proto.Equal(m, m2) {
		t.Fatal("round trip changed the message")
	}
}

func FuzzDecodeContactInvite(f *testing.F) {
	link, _ := EncodeContactInvite(sampleContactInvite())
	f.Add(link)
	f.Add(link[:len(link)-1] + "A")
	f.Add(oldContactLink())
	f.Add(ContactLinkPrefix)
	f.Add("parley://room/AAAA")
	f.Fuzz(func(t *testing.T, s string) { fuzzLink(t, s, DecodeContactInvite, EncodeContactInvite) })
}

func FuzzDecodeRoomLink(f *testing.F) {
	link, _ := EncodeRoomLink(sampleRoomLink())
	f.Add(link)
	f.Add(RoomLinkPrefix)
	f.Add("parley://contact/AAAA")
	f.Fuzz(func(t *testing.T, s string) { fuzzLink(t, s, DecodeRoomLink, EncodeRoomLink) })
}
