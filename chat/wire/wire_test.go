package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// samplePeerID has the length of an Ed25519 peer ID.
var samplePeerID = append([]byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}, fill(32, 7)...)

func sampleDMFrame() *wirepb.DMFrame {
	return &wirepb.DMFrame{Body: &wirepb.DMFrame_Message{Message: &wirepb.DMMessage{Id: fill(IDSize, 1), Envelope: []byte("ciphertext")}}}
}

func sampleAckFrame() *wirepb.DMFrame {
	return &wirepb.DMFrame{Body: &wirepb.DMFrame_Ack{Ack: &wirepb.DMAck{Id: fill(IDSize, 1), Status: wirepb.AckStatus_ACK_STATUS_OK}}}
}

func sampleRoster() *wirepb.Roster {
	return &wirepb.Roster{RoomId: fill(RoomIDSize, 3), Epoch: 1, IssuedAtMs: 1700000000000, Issuer: samplePeerID,
		Members: []*wirepb.RosterMember{{PeerId: samplePeerID, Role: wirepb.Role_ROLE_OWNER}}}
}

func sampleSignedRoster(t testing.TB) []byte {
	r, err := proto.Marshal(sampleRoster())
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(&wirepb.SignedRoster{Roster: r, Signature: fill(SignatureSize, 9)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func samplePayloads(t testing.TB) []*wirepb.Payload {
	return []*wirepb.Payload{
		{Version: 1, Body: &wirepb.Payload_Text{Text: &wirepb.Text{Id: fill(IDSize, 2), Body: "hi bob", SentAtMs: 1700000000000, Seq: 1}}},
		{Version: 1, Body: &wirepb.Payload_Receipt{Receipt: &wirepb.Receipt{Ids: [][]byte{fill(IDSize, 2), fill(IDSize, 3)}}}},
		{Version: 1, Body: &wirepb.Payload_Mailboxes{Mailboxes: &wirepb.MailboxList{PeerIds: [][]byte{samplePeerID}, IssuedAtMs: 1, TagSecret: fill(SecretSize, 4)}}},
		{Version: 1, Body: &wirepb.Payload_RoomInvite{RoomInvite: &wirepb.RoomInvite{RoomSecret: fill(SecretSize, 5), Name: "team", Roster: sampleSignedRoster(t)}}},
		{Version: 1, Body: &wirepb.Payload_SenderKey{SenderKey: &wirepb.SenderKey{RoomId: fill(RoomIDSize, 3), Epoch: 1, Distribution: []byte("dist")}}},
		{Version: 1, Body: &wirepb.Payload_Roster{Roster: &wirepb.RoomRosterUpdate{Roster: sampleSignedRoster(t)}}},
		{Version: 1, Body: &wirepb.Payload_Reset_{Reset_: &wirepb.ResetNotice{}}},
		{Version: 1, Body: &wirepb.Payload_RoomCommit{RoomCommit: sampleCommitDelivery()}},
	}
}

func sampleCommitDelivery() *wirepb.RoomCommitDelivery {
	return &wirepb.RoomCommitDelivery{RoomId: fill(RoomIDSize, 3), Commit: &wirepb.SignedCommit{Body: []byte("body"), Sealed: []byte("sealed"), Signature: fill(SignatureSize, 7), ConfirmationTag: fill(MACSize, 8)}}
}

func sampleRoomMessages() []*wirepb.RoomMessage {
	return []*wirepb.RoomMessage{
		{Version: 1, RoomId: fill(RoomIDSize, 3), Epoch: 1, Hlc: PackHLC(1700000000000, 1), MsgId: fill(IDSize, 6), MembershipMac: fill(MACSize, 8), Ciphertext: []byte("sealed")},
		{Version: 1, RoomId: fill(RoomIDSize, 3), Hlc: PackHLC(1700000000000, 0), MsgId: fill(IDSize, 6), Text: "hello room"},
	}
}

func sampleContactInvite() *wirepb.ContactInvite {
	return &wirepb.ContactInvite{Version: ContactInviteVersion, PeerId: samplePeerID, Name: "alice", Addrs: [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x10, 0x01}},
		Bundle: fill(1459, 3), Mailboxes: [][]byte{samplePeerID}, MailboxSecret: fill(SecretSize, 4), Signature: fill(SignatureSize, 9)}
}

func sampleRoomLink() *wirepb.RoomLink {
	return &wirepb.RoomLink{Version: 1, RoomSecret: fill(SecretSize, 5), Name: "team", Inviter: samplePeerID, Addrs: [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x10, 0x01}}}
}

func frameBytes(t testing.TB, m proto.Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteFrame(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		max  int
		in   proto.Message
		out  proto.Message
	}{
		{"dm message", MaxFrameSize, sampleDMFrame(), new(wirepb.DMFrame)},
		{"dm ack", MaxFrameSize, sampleAckFrame(), new(wirepb.DMFrame)},
		{"empty message", MaxFrameSize, &wirepb.DMFrame{}, new(wirepb.DMFrame)},
		{"prekey request", MaxPrekeyRequest, &wirepb.PrekeyRequest{Version: 1}, new(wirepb.PrekeyRequest)},
		{"prekey response", MaxPrekeyResponse, &wirepb.PrekeyResponse{Bundle: fill(300, 1)}, new(wirepb.PrekeyResponse)},
		{"sync request", MaxSyncRequest, &wirepb.RoomSyncRequest{Version: 1, RoomId: fill(RoomIDSize, 3), AfterHlc: 5, Limit: 10}, new(wirepb.RoomSyncRequest)},
		{"mailbox fetch", MaxMailboxRequest, &wirepb.MailboxRequest{Version: 1, Op: &wirepb.MailboxRequest_Fetch{Fetch: &wirepb.Fetch{Tags: [][]byte{fill(TagSize, 1)}}}}, new(wirepb.MailboxRequest)},
		{"exactly at limit", 2 + MaxEnvelopeSize + 8, &wirepb.DMMessage{Id: fill(IDSize, 1), Envelope: fill(MaxEnvelopeSize, 2)}, new(wirepb.DMMessage)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := frameBytes(t, tt.in)
			max := tt.max
			if tt.name == "exactly at limit" {
				max = proto.Size(tt.in)
			}
			// Through the buffered Reader and through the unbuffered path,
			// the latter reading one byte at a time.
			for _, read := range []func() error{
				func() error { return NewReader(bytes.NewReader(b)).ReadFrame(max, tt.out) },
				func() error { return ReadFrame(iotest.OneByteReader(bytes.NewReader(b)), max, tt.out) },
			} {
				if err := read(); err != nil {
					t.Fatalf("read: %v", err)
				}
				if !proto.Equal(tt.in, tt.out) {
					t.Fatalf("got %v, want %v", tt.out, tt.in)
				}
			}
		})
	}
}

func TestMultipleFramesOnOneStream(t *testing.T) {
	var stream bytes.Buffer
	var want []*wirepb.DMFrame
	for i := range 50 {
		f := &wirepb.DMFrame{Body: &wirepb.DMFrame_Message{Message: &wirepb.DMMessage{Id: fill(IDSize, byte(i)), Envelope: fill(i*100+1, byte(i))}}}
		want = append(want, f)
		if err := WriteFrame(&stream, f); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T, next func(*wirepb.DMFrame) error) {
		for i, w := range want {
			got := new(wirepb.DMFrame)
			if err := next(got); err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			if !proto.Equal(got, w) {
				t.Fatalf("frame %d differs", i)
			}
		}
		if err := next(new(wirepb.DMFrame)); err != io.EOF {
			t.Fatalf("after the last frame: got %v, want io.EOF", err)
		}
	}
	t.Run("Reader", func(t *testing.T) {
		r := NewReader(iotest.HalfReader(bytes.NewReader(stream.Bytes())))
		check(t, func(m *wirepb.DMFrame) error { return r.ReadFrame(MaxFrameSize, m) })
	})
	t.Run("ReadFrame", func(t *testing.T) {
		// ReadFrame must not read past a frame even on a plain io.Reader.
		r := iotest.OneByteReader(bytes.NewReader(stream.Bytes()))
		check(t, func(m *wirepb.DMFrame) error { return ReadFrame(r, MaxFrameSize, m) })
	})
}

func TestReadFrameErrors(t *testing.T) {
	good := frameBytes(t, sampleDMFrame())
	prefix := func(n uint64) []byte { return binary.AppendUvarint(nil, n) }
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"empty stream", nil, MaxFrameSize, io.EOF},
		{"oversized prefix", prefix(MaxFrameSize + 1), MaxFrameSize, ErrFrameTooLarge},
		{"huge prefix", prefix(1 << 34), MaxFrameSize, ErrFrameTooLarge},
		{"max uint64 prefix", prefix(^uint64(0)), MaxFrameSize, ErrFrameTooLarge},
		{"prefix over small limit", good, 4, ErrFrameTooLarge},
		{"truncated prefix", []byte{0x80}, MaxFrameSize, ErrTruncated},
		{"truncated body", good[:len(good)-1], MaxFrameSize, ErrTruncated},
		{"prefix only", prefix(10), MaxFrameSize, ErrTruncated},
		{"non-minimal prefix", []byte{0x85, 0x00, 1, 2, 3, 4, 5}, MaxFrameSize, ErrMalformed},
		{"garbage body", append(prefix(4), 0xff, 0xff, 0xff, 0xff), MaxFrameSize, ErrMalformed},
		{"wrong wire type", append(prefix(2), 0x0d, 0x01), MaxFrameSize, ErrMalformed},
		{"invalid utf-8 string", append(prefix(4), 0x1a, 0x02, 0xff, 0xfe), MaxFrameSize, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m proto.Message = new(wirepb.DMFrame)
			if tt.name == "invalid utf-8 string" {
				m = new(wirepb.DMAck)
			}
			err := NewReader(bytes.NewReader(tt.in)).ReadFrame(tt.max, m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.want == io.EOF && err != io.EOF {
				t.Fatalf("clean end of stream must be io.EOF unwrapped, got %#v", err)
			}
			err = ReadFrame(bytes.NewReader(tt.in), tt.max, m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadFrame: got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestOversizedPrefixReadsNothingMore checks that an oversize prefix is
// refused without reading the body or allocating room for it.
func TestOversizedPrefixReadsNothingMore(t *testing.T) {
	prefix := binary.AppendUvarint(nil, 1<<30)
	var stream []byte
	allocs := testing.AllocsPerRun(10, func() {
		stream = append(stream[:0], prefix...)
		r := io.MultiReader(bytes.NewReader(stream), iotest.ErrReader(errors.New("body must not be read")))
		err := ReadFrame(r, MaxFrameSize, new(wirepb.DMFrame))
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("got %v", err)
		}
	})
	// A few small allocations (readers, the error) are expected; the
	// point is that none of them is the 1 GiB body.
	if allocs > 30 {
		t.Fatalf("%v allocations for a refused frame", allocs)
	}
}

func TestReadFrameBadLimit(t *testing.T) {
	if err := ReadFrame(bytes.NewReader(frameBytes(t, sampleDMFrame())), 0, new(wirepb.DMFrame)); err == nil {
		t.Fatal("limit 0 accepted")
	}
}

func TestWriteFrameTooLarge(t *testing.T) {
	var buf bytes.Buffer
	err := WriteFrame(&buf, &wirepb.DMMessage{Id: fill(IDSize, 1), Envelope: make([]byte, MaxWriteFrame)})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v", err)
	}
	if buf.Len() != 0 {
		t.Fatal("wrote part of a refused frame")
	}
}

func TestWriteFrameError(t *testing.T) {
	w := errWriter{errors.New("stream reset")}
	if err := WriteFrame(w, sampleDMFrame()); err == nil || !strings.Contains(err.Error(), "stream reset") {
		t.Fatalf("got %v", err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestValidateAcceptsSamples(t *testing.T) {
	var ms []proto.Message
	ms = append(ms, sampleDMFrame(), sampleAckFrame(),
		&wirepb.PrekeyRequest{Version: 1},
		&wirepb.PrekeyResponse{Bundle: []byte("bundle")},
		&wirepb.PrekeyResponse{Error: "rate limited"},
		sampleRoster(),
		&wirepb.RoomSyncRequest{Version: 1, RoomId: fill(RoomIDSize, 3), Proof: fill(MACSize, 1)},
		&wirepb.RoomSyncResponse{Messages: []*wirepb.SyncedMessage{{From: samplePeerID, Data: []byte("x"), Seqno: fill(8, 1), Signature: fill(64, 2)}}, More: true},
		&wirepb.RoomSyncResponse{Error: "not a member"},
		&wirepb.MailboxRequest{Version: 1, Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.Deposit{Tag: fill(TagSize, 1), Blob: []byte("blob")}}},
		&wirepb.MailboxRequest{Version: 1, Op: &wirepb.MailboxRequest_Delete{Delete: &wirepb.Delete{Ids: [][]byte{fill(IDSize, 1)}}}},
		&wirepb.MailboxResponse{Status: wirepb.MailboxStatus_MAILBOX_STATUS_OK, Items: []*wirepb.MailboxItem{{Id: fill(IDSize, 1), Tag: fill(TagSize, 2), Blob: []byte("b"), ReceivedAtMs: 1}}},
		&wirepb.MailboxResponse{Status: wirepb.MailboxStatus_MAILBOX_STATUS_QUOTA_EXCEEDED, Error: "quota"},
		sampleContactInvite(), sampleRoomLink(),
	)
	for _, p := range samplePayloads(t) {
		ms = append(ms, p)
	}
	for _, m := range sampleRoomMessages() {
		ms = append(ms, m)
	}
	for _, m := range ms {
		if err := Validate(m); err != nil {
			t.Errorf("%v: %v", m, err)
		}
	}
	if err := Validate(&wirepb.Text{}); err == nil {
		t.Error("Validate accepted a type without a validator")
	}
}

func TestValidateRejects(t *testing.T) {
	text := func(mut func(*wirepb.Text)) *wirepb.Payload {
		tx := &wirepb.Text{Id: fill(IDSize, 2), Body: "hi", Seq: 1}
		mut(tx)
		return &wirepb.Payload{Version: 1, Body: &wirepb.Payload_Text{Text: tx}}
	}
	room := func(mut func(*wirepb.RoomMessage)) *wirepb.RoomMessage {
		m := sampleRoomMessages()[0]
		mut(m)
		return m
	}
	roster := func(mut func(*wirepb.Roster)) *wirepb.Roster {
		r := sampleRoster()
		mut(r)
		return r
	}
	commitDelivery := func(mut func(*wirepb.RoomCommitDelivery)) *wirepb.Payload {
		d := sampleCommitDelivery()
		mut(d)
		return &wirepb.Payload{Version: 1, Body: &wirepb.Payload_RoomCommit{RoomCommit: d}}
	}
	tests := []struct {
		name  string
		m     proto.Message
		want  error
		field string
	}{
		{"frame without body", &wirepb.DMFrame{}, ErrInvalid, "body"},
		{"short dm id", &wirepb.DMMessage{Id: fill(5, 1), Envelope: []byte("x")}, ErrInvalid, "id"},
		{"empty envelope", &wirepb.DMMessage{Id: fill(IDSize, 1)}, ErrInvalid, "envelope"},
		{"huge envelope", &wirepb.DMMessage{Id: fill(IDSize, 1), Envelope: fill(MaxEnvelopeSize+1, 1)}, ErrInvalid, "envelope"},
		{"ack without status", &wirepb.DMAck{Id: fill(IDSize, 1)}, ErrInvalid, "status"},
		{"ack unknown status", &wirepb.DMAck{Id: fill(IDSize, 1), Status: 99}, ErrInvalid, "status"},
		{"ack long reason", &wirepb.DMAck{Id: fill(IDSize, 1), Status: wirepb.AckStatus_ACK_STATUS_REJECTED, Reason: strings.Repeat("x", MaxReasonSize+1)}, ErrInvalid, "reason"},
		{"payload version 0", &wirepb.Payload{Body: &wirepb.Payload_Reset_{Reset_: &wirepb.ResetNotice{}}}, ErrUnsupportedVersion, ""},
		{"payload version 2", &wirepb.Payload{Version: 2}, ErrUnsupportedVersion, ""},
		{"payload without body", &wirepb.Payload{Version: 1}, ErrInvalid, "body"},
		{"text seq 0", text(func(t *wirepb.Text) { t.Seq = 0 }), ErrInvalid, "seq"},
		{"text empty", text(func(t *wirepb.Text) { t.Body = "" }), ErrInvalid, "body"},
		{"text too long", text(func(t *wirepb.Text) { t.Body = strings.Repeat("x", MaxTextSize+1) }), ErrInvalid, "body"},
		{"receipt empty", &wirepb.Payload{Version: 1, Body: &wirepb.Payload_Receipt{Receipt: &wirepb.Receipt{}}}, ErrInvalid, "ids"},
		{"receipt duplicate", &wirepb.Payload{Version: 1, Body: &wirepb.Payload_Receipt{Receipt: &wirepb.Receipt{Ids: [][]byte{fill(IDSize, 1), fill(IDSize, 1)}}}}, ErrInvalid, "ids[1]"},
		{"mailbox list bad secret", &wirepb.Payload{Version: 1, Body: &wirepb.Payload_Mailboxes{Mailboxes: &wirepb.MailboxList{TagSecret: fill(3, 1)}}}, ErrInvalid, "tag_secret"},
		{"mailbox list too many", &wirepb.Payload{Version: 1, Body: &wirepb.Payload_Mailboxes{Mailboxes: &wirepb.MailboxList{PeerIds: [][]byte{{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}}, TagSecret: fill(SecretSize, 1)}}}, ErrInvalid, "peer_ids"},
		{"room commit short room id", commitDelivery(func(d *wirepb.RoomCommitDelivery) { d.RoomId = fill(3, 1) }), ErrInvalid, "room_id"},
		{"room commit missing", commitDelivery(func(d *wirepb.RoomCommitDelivery) { d.Commit = nil }), ErrInvalid, "commit"},
		{"room commit without body", commitDelivery(func(d *wirepb.RoomCommitDelivery) { d.Commit.Body = nil }), ErrInvalid, "commit.body"},
		{"room commit bad signature size", commitDelivery(func(d *wirepb.RoomCommitDelivery) { d.Commit.Signature = fill(63, 1) }), ErrInvalid, "commit.signature"},
		{"room invite without roster", &wirepb.Payload{Version: 1, Body: &wirepb.Payload_RoomInvite{RoomInvite: &wirepb.RoomInvite{RoomSecret: fill(SecretSize, 1)}}}, ErrInvalid, "roster"},
		{"sender key empty", &wirepb.Payload{Version: 1, Body: &wirepb.Payload_SenderKey{SenderKey: &wirepb.SenderKey{RoomId: fill(RoomIDSize, 1)}}}, ErrInvalid, "distribution"},
		{"prekey request version 0", &wirepb.PrekeyRequest{}, ErrUnsupportedVersion, ""},
		{"prekey response empty", &wirepb.PrekeyResponse{}, ErrInvalid, "bundle"},
		{"prekey response both", &wirepb.PrekeyResponse{Bundle: []byte("b"), Error: "e"}, ErrInvalid, "bundle"},
		{"room message both bodies", room(func(m *wirepb.RoomMessage) { m.Text = "x" }), ErrInvalid, "text"},
		{"room message no body", room(func(m *wirepb.RoomMessage) { m.Ciphertext = nil }), ErrInvalid, "ciphertext"},
		{"room message no mac", room(func(m *wirepb.RoomMessage) { m.MembershipMac = nil }), ErrInvalid, "membership_mac"},
		{"public message with mac", &wirepb.RoomMessage{Version: 1, RoomId: fill(RoomIDSize, 1), Hlc: 1, MsgId: fill(IDSize, 1), MembershipMac: fill(MACSize, 1), Text: "x"}, ErrInvalid, "membership_mac"},
		{"room message hlc 0", room(func(m *wirepb.RoomMessage) { m.Hlc = 0 }), ErrInvalid, "hlc"},
		{"room message version", room(func(m *wirepb.RoomMessage) { m.Version = 7 }), ErrUnsupportedVersion, ""},
		{"roster epoch 0", roster(func(r *wirepb.Roster) { r.Epoch = 0 }), ErrInvalid, "epoch"},
		{"roster no members", roster(func(r *wirepb.Roster) { r.Members = nil }), ErrInvalid, "members"},
		{"roster duplicate", roster(func(r *wirepb.Roster) { r.Members = append(r.Members, r.Members[0]) }), ErrInvalid, "members[1].peer_id"},
		{"roster unknown role", roster(func(r *wirepb.Roster) { r.Members[0].Role = 0 }), ErrInvalid, "members[0].role"},
		{"signed roster short signature", &wirepb.SignedRoster{Roster: []byte("r"), Signature: fill(10, 1)}, ErrInvalid, "signature"},
		{"sync request bad room", &wirepb.RoomSyncRequest{Version: 1, RoomId: fill(3, 1)}, ErrInvalid, "room_id"},
		{"sync response error and messages", &wirepb.RoomSyncResponse{Error: "no", Messages: []*wirepb.SyncedMessage{{}}}, ErrInvalid, "messages"},
		{"sync response bad message", &wirepb.RoomSyncResponse{Messages: []*wirepb.SyncedMessage{{From: samplePeerID}}}, ErrInvalid, "messages[0].data"},
		{"sync response too many", &wirepb.RoomSyncResponse{Messages: make([]*wirepb.SyncedMessage, MaxSyncMessages+1)}, ErrInvalid, "messages"},
		{"mailbox request no op", &wirepb.MailboxRequest{Version: 1}, ErrInvalid, "op"},
		{"mailbox request version", &wirepb.MailboxRequest{Version: 3}, ErrUnsupportedVersion, ""},
		{"deposit short tag", &wirepb.MailboxRequest{Version: 1, Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.Deposit{Tag: fill(4, 1), Blob: []byte("b")}}}, ErrInvalid, "tag"},
		{"fetch no tags", &wirepb.MailboxRequest{Version: 1, Op: &wirepb.MailboxRequest_Fetch{Fetch: &wirepb.Fetch{}}}, ErrInvalid, "tags"},
		{"delete bad id", &wirepb.MailboxRequest{Version: 1, Op: &wirepb.MailboxRequest_Delete{Delete: &wirepb.Delete{Ids: [][]byte{{1}}}}}, ErrInvalid, "ids[0]"},
		{"mailbox response no status", &wirepb.MailboxResponse{}, ErrInvalid, "status"},
		{"mailbox response items on error", &wirepb.MailboxResponse{Status: wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, Items: []*wirepb.MailboxItem{{}}}, ErrInvalid, "items"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.field != "" {
				var ie *InvalidError
				if !errors.As(err, &ie) || ie.Field != tt.field {
					t.Fatalf("got %v, want an InvalidError on field %q", err, tt.field)
				}
			}
		})
	}
}

func TestVersionErrorMessage(t *testing.T) {
	err := ValidateContactInvite(&wirepb.ContactInvite{Version: 3, PeerId: samplePeerID})
	if err == nil || !strings.Contains(err.Error(), "version 3") || !strings.Contains(err.Error(), "update parley") {
		t.Fatalf("got %v", err)
	}
}

func TestDecoders(t *testing.T) {
	for _, p := range samplePayloads(t) {
		b, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodePayload(b)
		if err != nil || !proto.Equal(got, p) {
			t.Fatalf("DecodePayload(%v) = %v, %v", p, got, err)
		}
	}
	for _, m := range sampleRoomMessages() {
		b, _ := proto.Marshal(m)
		got, err := DecodeRoomMessage(b)
		if err != nil || !proto.Equal(got, m) {
			t.Fatalf("DecodeRoomMessage(%v) = %v, %v", m, got, err)
		}
	}
	sr, err := DecodeSignedRoster(sampleSignedRoster(t))
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeRoster(sr.GetRoster())
	if err != nil || !proto.Equal(r, sampleRoster()) {
		t.Fatalf("DecodeRoster = %v, %v", r, err)
	}

	tests := []struct {
		name   string
		decode func([]byte) error
		in     []byte
		want   error
	}{
		{"payload too large", func(b []byte) error { _, err := DecodePayload(b); return err }, make([]byte, MaxPayloadSize+1), ErrFrameTooLarge},
		{"payload garbage", func(b []byte) error { _, err := DecodePayload(b); return err }, []byte{0xff, 0xff}, ErrMalformed},
		{"payload empty", func(b []byte) error { _, err := DecodePayload(b); return err }, nil, ErrUnsupportedVersion},
		{"room message too large", func(b []byte) error { _, err := DecodeRoomMessage(b); return err }, make([]byte, MaxRoomMessage+1), ErrFrameTooLarge},
		{"room message garbage", func(b []byte) error { _, err := DecodeRoomMessage(b); return err }, []byte("\x0a\xff"), ErrMalformed},
		{"signed roster empty", func(b []byte) error { _, err := DecodeSignedRoster(b); return err }, nil, ErrInvalid},
		{"roster garbage", func(b []byte) error { _, err := DecodeRoster(b); return err }, []byte{0x08}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.decode(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestHLC(t *testing.T) {
	tests := []struct {
		ms      int64
		counter uint16
	}{{0, 1}, {1700000000123, 0}, {1700000000123, 65535}, {1<<48 - 1, 7}}
	for _, tt := range tests {
		h := PackHLC(tt.ms, tt.counter)
		ms, c := UnpackHLC(h)
		if ms != tt.ms || c != tt.counter {
			t.Errorf("UnpackHLC(PackHLC(%d, %d)) = %d, %d", tt.ms, tt.counter, ms, c)
		}
	}
	if PackHLC(1, 0) <= PackHLC(0, 65535) {
		t.Error("a later millisecond must order after any counter")
	}
}

func TestRoomTopic(t *testing.T) {
	got := RoomTopic([]byte{0xab, 0x01})
	if got != "parley/room/1/ab01" {
		t.Fatalf("got %q", got)
	}
}

// TestAuthInputs pins the byte layout of the MAC and signature inputs: any
// change to it breaks other implementations.
func TestAuthInputs(t *testing.T) {
	m := &wirepb.RoomMessage{Version: 1, RoomId: []byte{1, 2}, Epoch: 3, Hlc: 4, MsgId: []byte{5}, Ciphertext: []byte{6, 7}, Text: "8"}
	want := []byte("parley/room/1/membership-mac\x00" +
		"\x00\x00\x00\x01" + "\x00\x00\x00\x02\x01\x02" + "\x00\x00\x00\x00\x00\x00\x00\x03" +
		"\x00\x00\x00\x00\x00\x00\x00\x04" + "\x00\x00\x00\x01\x05" + "\x00\x00\x00\x02\x06\x07" + "\x00\x00\x00\x018")
	if got := MembershipMACInput(m); !bytes.Equal(got, want) {
		t.Errorf("MembershipMACInput = %q, want %q", got, want)
	}
	// The MAC must not cover itself.
	m2 := proto.Clone(m).(*wirepb.RoomMessage)
	m2.MembershipMac = []byte("mac")
	if !bytes.Equal(MembershipMACInput(m2), want) {
		t.Error("MembershipMACInput depends on membership_mac")
	}
	// Moving bytes between fields must change the input.
	m3 := &wirepb.RoomMessage{Version: 1, RoomId: []byte{1}, Epoch: 3, Hlc: 4, MsgId: []byte{2, 5}, Ciphertext: []byte{6, 7}, Text: "8"}
	if bytes.Equal(MembershipMACInput(m3), want) {
		t.Error("MembershipMACInput is ambiguous")
	}

	if got := RosterSigningInput([]byte("R")); string(got) != "parley/roster/1\x00R" {
		t.Errorf("RosterSigningInput = %q", got)
	}

	req := &wirepb.RoomSyncRequest{Version: 1, RoomId: []byte{9}, AfterHlc: 10, Limit: 11, Proof: []byte("ignored")}
	wantSync := []byte("parley/roomsync/1/proof\x00" + "\x00\x00\x00\x01a" + "\x00\x00\x00\x01b" +
		"\x00\x00\x00\x01" + "\x00\x00\x00\x01\x09" + "\x00\x00\x00\x00\x00\x00\x00\x0a" + "\x00\x00\x00\x0b")
	if got := SyncProofInput(req, []byte("a"), []byte("b")); !bytes.Equal(got, wantSync) {
		t.Errorf("SyncProofInput = %q, want %q", got, wantSync)
	}
	if bytes.Equal(SyncProofInput(req, []byte("b"), []byte("a")), wantSync) {
		t.Error("SyncProofInput does not bind the direction")
	}
}

func TestReaderBuffered(t *testing.T) {
	stream := append(frameBytes(t, sampleDMFrame()), frameBytes(t, sampleDMFrame())...)
	r := NewReader(bytes.NewReader(stream))
	if err := r.ReadFrame(MaxFrameSize, new(wirepb.DMFrame)); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Buffered(), len(stream)/2; got != want {
		t.Fatalf("Buffered() = %d after the first frame, want %d", got, want)
	}
	if err := r.ReadFrame(MaxFrameSize, new(wirepb.DMFrame)); err != nil {
		t.Fatal(err)
	}
	if r.Buffered() != 0 {
		t.Fatalf("Buffered() = %d after the last frame", r.Buffered())
	}
}
