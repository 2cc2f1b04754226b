package wire

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/wire/wirepb"
)

// Validation errors. Every error of the Validate and Decode functions
// matches one of them with errors.Is.
var (
	// ErrInvalid: a decoded message breaks a rule of the wire contract.
	ErrInvalid = errors.New("invalid message")
	// ErrUnsupportedVersion: a version field holds a version this build
	// does not speak.
	ErrUnsupportedVersion = errors.New("unsupported version")
)

// InvalidError reports the field of a message that breaks the wire
// contract. It matches ErrInvalid.
type InvalidError struct {
	Message string // protobuf message name, e.g. "DMMessage"
	Field   string // field name as in the .proto file, e.g. "id"
	Reason  string // what is wrong, e.g. "is 5 bytes, want 16"
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("wire: invalid %s: %s %s", e.Message, e.Field, e.Reason)
}

// Is reports whether target is ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// VersionError reports a version field this build does not speak. It
// matches ErrUnsupportedVersion.
type VersionError struct {
	Message string // protobuf message name, e.g. "ContactInvite"
	Got     uint32 // the version received
}

func (e *VersionError) Error() string {
	if e.Got > Version {
		return fmt.Sprintf("wire: %s version %d is newer than this build speaks (version %d): update parley", e.Message, e.Got, Version)
	}
	return fmt.Sprintf("wire: %s version %d is not supported (this build speaks version %d)", e.Message, e.Got, Version)
}

// Is reports whether target is ErrUnsupportedVersion.
func (e *VersionError) Is(target error) bool { return target == ErrUnsupportedVersion }

// Validate checks any top-level wire message: it dispatches to the
// Validate function of m's type and refuses types that have none.
func Validate(m proto.Message) error {
	switch m := m.(type) {
	case *wirepb.DMFrame:
		return ValidateDMFrame(m)
	case *wirepb.DMMessage:
		return ValidateDMMessage(m)
	case *wirepb.DMAck:
		return ValidateDMAck(m)
	case *wirepb.Payload:
		return ValidatePayload(m)
	case *wirepb.PrekeyRequest:
		return ValidatePrekeyRequest(m)
	case *wirepb.PrekeyResponse:
		return ValidatePrekeyResponse(m)
	case *wirepb.RoomMessage:
		return ValidateRoomMessage(m)
	case *wirepb.Roster:
		return ValidateRoster(m)
	case *wirepb.SignedRoster:
		return ValidateSignedRoster(m)
	case *wirepb.RoomSyncRequest:
		return ValidateRoomSyncRequest(m)
	case *wirepb.RoomSyncResponse:
		return ValidateRoomSyncResponse(m)
	case *wirepb.MailboxRequest:
		return ValidateMailboxRequest(m)
	case *wirepb.MailboxResponse:
		return ValidateMailboxResponse(m)
	case *wirepb.ContactInvite:
		return ValidateContactInvite(m)
	case *wirepb.RoomLink:
		return ValidateRoomLink(m)
	case *wirepb.RoomInvitation:
		return ValidateRoomInvitation(m)
	}
	return fmt.Errorf("wire: no validator for %T", m)
}

// ValidateDMFrame checks a frame read from /parley/dm/1: exactly one body,
// itself valid.
func ValidateDMFrame(f *wirepb.DMFrame) error {
	switch b := f.GetBody().(type) {
	case *wirepb.DMFrame_Message:
		return ValidateDMMessage(b.Message)
	case *wirepb.DMFrame_Ack:
		return ValidateDMAck(b.Ack)
	}
	return invalid("DMFrame", "body", "is not set")
}

// ValidateDMMessage checks that the id is IDSize bytes and the envelope is
// non-empty and at most MaxEnvelopeSize.
func ValidateDMMessage(m *wirepb.DMMessage) error {
	const msg = "DMMessage"
	if m == nil {
		return invalid(msg, "message", "is missing")
	}
	if err := checkFixed(msg, "id", m.GetId(), IDSize); err != nil {
		return err
	}
	return checkBytes(msg, "envelope", m.GetEnvelope(), 1, MaxEnvelopeSize)
}

// ValidateDMAck checks the id, that the status is a known one, and the
// reason's size.
func ValidateDMAck(a *wirepb.DMAck) error {
	const msg = "DMAck"
	if a == nil {
		return invalid(msg, "ack", "is missing")
	}
	if err := checkFixed(msg, "id", a.GetId(), IDSize); err != nil {
		return err
	}
	switch a.GetStatus() {
	case wirepb.AckStatus_ACK_STATUS_OK, wirepb.AckStatus_ACK_STATUS_DUPLICATE,
		wirepb.AckStatus_ACK_STATUS_REJECTED, wirepb.AckStatus_ACK_STATUS_RETRY_LATER:
	default:
		return invalid(msg, "status", fmt.Sprintf("is %d, not a known status", int32(a.GetStatus())))
	}
	return checkString(msg, "reason", a.GetReason(), 0, MaxReasonSize)
}

// ValidatePayload checks a decrypted payload: the version, exactly one
// body, and that body's fields.
func ValidatePayload(p *wirepb.Payload) error {
	const msg = "Payload"
	if p == nil {
		return invalid(msg, "payload", "is missing")
	}
	if err := checkVersion(msg, p.GetVersion()); err != nil {
		return err
	}
	switch b := p.GetBody().(type) {
	case *wirepb.Payload_Text:
		return validateText(b.Text)
	case *wirepb.Payload_Receipt:
		return checkIDs("Receipt", "ids", b.Receipt.GetIds(), IDSize, 1, MaxReceiptIDs)
	case *wirepb.Payload_Mailboxes:
		return validateMailboxList(b.Mailboxes)
	case *wirepb.Payload_RoomInvite:
		return validateRoomInvite(b.RoomInvite)
	case *wirepb.Payload_SenderKey:
		return validateSenderKey(b.SenderKey)
	case *wirepb.Payload_Roster:
		return checkBytes("RoomRosterUpdate", "roster", b.Roster.GetRoster(), 1, MaxRosterSize)
	case *wirepb.Payload_Reset_:
		return nil
	case *wirepb.Payload_RoomInvitation:
		return ValidateRoomInvitation(b.RoomInvitation)
	case *wirepb.Payload_RoomCommit:
		return validateRoomCommitDelivery(b.RoomCommit)
	}
	return invalid(msg, "body", "is not set")
}

func validateText(t *wirepb.Text) error {
	const msg = "Text"
	if err := checkFixed(msg, "id", t.GetId(), IDSize); err != nil {
		return err
	}
	if err := checkString(msg, "body", t.GetBody(), 1, MaxTextSize); err != nil {
		return err
	}
	if t.GetSeq() == 0 {
		return invalid(msg, "seq", "is 0; sequence numbers start at 1")
	}
	return nil
}

func validateMailboxList(l *wirepb.MailboxList) error {
	const msg = "MailboxList"
	if err := checkPeerIDs(msg, "peer_ids", l.GetPeerIds(), 0, MaxMailboxes); err != nil {
		return err
	}
	return checkFixed(msg, "tag_secret", l.GetTagSecret(), SecretSize)
}

func validateRoomInvite(r *wirepb.RoomInvite) error {
	const msg = "RoomInvite"
	if err := checkFixed(msg, "room_secret", r.GetRoomSecret(), SecretSize); err != nil {
		return err
	}
	if err := checkString(msg, "name", r.GetName(), 0, MaxNameSize); err != nil {
		return err
	}
	return checkBytes(msg, "roster", r.GetRoster(), 1, MaxRosterSize)
}

func validateSenderKey(k *wirepb.SenderKey) error {
	const msg = "SenderKey"
	if err := checkFixed(msg, "room_id", k.GetRoomId(), RoomIDSize); err != nil {
		return err
	}
	return checkBytes(msg, "distribution", k.GetDistribution(), 1, MaxDistributionSize)
}

// PrekeyVersionPQ is the PrekeyRequest version that asks for a version 2
// (PQXDH) bundle; version 1 asks for an X3DH bundle, for peers from before
// PQXDH.
const PrekeyVersionPQ = 2

// ValidatePrekeyRequest checks the version (1 or PrekeyVersionPQ).
func ValidatePrekeyRequest(r *wirepb.PrekeyRequest) error {
	if r == nil {
		return invalid("PrekeyRequest", "request", "is missing")
	}
	if r.GetVersion() == PrekeyVersionPQ {
		return nil
	}
	return checkVersion("PrekeyRequest", r.GetVersion())
}

// ValidatePrekeyResponse checks that exactly one of bundle and error is set
// and both are within their limits.
func ValidatePrekeyResponse(r *wirepb.PrekeyResponse) error {
	const msg = "PrekeyResponse"
	if r == nil {
		return invalid(msg, "response", "is missing")
	}
	if err := checkString(msg, "error", r.GetError(), 0, MaxReasonSize); err != nil {
		return err
	}
	switch {
	case len(r.GetBundle()) > 0 && r.GetError() != "":
		return invalid(msg, "bundle", "is set together with error")
	case r.GetError() != "":
		return nil
	}
	return checkBytes(msg, "bundle", r.GetBundle(), 1, MaxBundleSize)
}

// ValidateRoomMessage checks a room message's fields: version, sizes, a
// non-zero hlc, and either a private message (ciphertext with a
// MACSize membership MAC, no text) or a public one (text, no ciphertext, no
// MAC). It does not check the MAC, the epoch or the clock.
func ValidateRoomMessage(m *wirepb.RoomMessage) error {
	const msg = "RoomMessage"
	if m == nil {
		return invalid(msg, "message", "is missing")
	}
	if err := checkVersion(msg, m.GetVersion()); err != nil {
		return err
	}
	if err := checkFixed(msg, "room_id", m.GetRoomId(), RoomIDSize); err != nil {
		return err
	}
	if m.GetHlc() == 0 {
		return invalid(msg, "hlc", "is 0")
	}
	if err := checkFixed(msg, "msg_id", m.GetMsgId(), IDSize); err != nil {
		return err
	}
	switch {
	case len(m.GetCiphertext()) > 0 && m.GetText() != "":
		return invalid(msg, "text", "is set together with ciphertext")
	case len(m.GetCiphertext()) > 0:
		return checkFixed(msg, "membership_mac", m.GetMembershipMac(), MACSize)
	case m.GetText() != "":
		if len(m.GetMembershipMac()) != 0 {
			return invalid(msg, "membership_mac", "is set on a public (text) message")
		}
		return checkString(msg, "text", m.GetText(), 1, MaxRoomText)
	}
	return invalid(msg, "ciphertext", "and text are both empty")
}

// ValidateRoster checks a roster's fields: room id, epoch at least 1, 1 to
// MaxRosterMembers members with known roles and no peer ID twice, and an
// issuer. Whether the issuer may issue it is for the room to decide.
func ValidateRoster(r *wirepb.Roster) error {
	const msg = "Roster"
	if r == nil {
		return invalid(msg, "roster", "is missing")
	}
	if err := checkFixed(msg, "room_id", r.GetRoomId(), RoomIDSize); err != nil {
		return err
	}
	if r.GetEpoch() == 0 {
		return invalid(msg, "epoch", "is 0; epochs start at 1")
	}
	if err := checkBytes(msg, "issuer", r.GetIssuer(), 1, MaxPeerIDSize); err != nil {
		return err
	}
	members := r.GetMembers()
	if len(members) == 0 || len(members) > MaxRosterMembers {
		return invalid(msg, "members", fmt.Sprintf("has %d entries, want 1 to %d", len(members), MaxRosterMembers))
	}
	seen := make(map[string]struct{}, len(members))
	for i, mem := range members {
		field := fmt.Sprintf("members[%d]", i)
		if err := checkBytes(msg, field+".peer_id", mem.GetPeerId(), 1, MaxPeerIDSize); err != nil {
			return err
		}
		if _, dup := seen[string(mem.GetPeerId())]; dup {
			return invalid(msg, field+".peer_id", "appears twice")
		}
		seen[string(mem.GetPeerId())] = struct{}{}
		switch mem.GetRole() {
		case wirepb.Role_ROLE_MEMBER, wirepb.Role_ROLE_ADMIN, wirepb.Role_ROLE_OWNER:
		default:
			return invalid(msg, field+".role", fmt.Sprintf("is %d, not a known role", int32(mem.GetRole())))
		}
	}
	return nil
}

// ValidateSignedRoster checks the sizes of a signed roster. It neither
// verifies the signature nor decodes the roster: verify the signature over
// RosterSigningInput first, then use DecodeRoster.
func ValidateSignedRoster(s *wirepb.SignedRoster) error {
	const msg = "SignedRoster"
	if s == nil {
		return invalid(msg, "roster", "is missing")
	}
	if err := checkBytes(msg, "roster", s.GetRoster(), 1, MaxRosterSize); err != nil {
		return err
	}
	return checkFixed(msg, "signature", s.GetSignature(), SignatureSize)
}

// ValidateRoomSyncRequest checks the version, room id and the proof's size.
func ValidateRoomSyncRequest(r *wirepb.RoomSyncRequest) error {
	const msg = "RoomSyncRequest"
	if r == nil {
		return invalid(msg, "request", "is missing")
	}
	if err := checkVersion(msg, r.GetVersion()); err != nil {
		return err
	}
	if err := checkFixed(msg, "room_id", r.GetRoomId(), RoomIDSize); err != nil {
		return err
	}
	return checkBytes(msg, "proof", r.GetProof(), 0, MaxProofSize)
}

// ValidateRoomSyncResponse checks the count and sizes of the messages and
// that an error comes without messages. Each SyncedMessage's signature and
// data are for the caller to verify, as a gossipsub validator would.
func ValidateRoomSyncResponse(r *wirepb.RoomSyncResponse) error {
	const msg = "RoomSyncResponse"
	if r == nil {
		return invalid(msg, "response", "is missing")
	}
	if err := checkString(msg, "error", r.GetError(), 0, MaxReasonSize); err != nil {
		return err
	}
	msgs := r.GetMessages()
	if r.GetError() != "" && (len(msgs) > 0 || r.GetMore()) {
		return invalid(msg, "messages", "are set together with error")
	}
	if len(msgs) > MaxSyncMessages {
		return invalid(msg, "messages", fmt.Sprintf("has %d entries, want at most %d", len(msgs), MaxSyncMessages))
	}
	for i, m := range msgs {
		field := fmt.Sprintf("messages[%d]", i)
		if err := checkBytes(msg, field+".from", m.GetFrom(), 1, MaxPeerIDSize); err != nil {
			return err
		}
		if err := checkBytes(msg, field+".data", m.GetData(), 1, MaxRoomMessage); err != nil {
			return err
		}
		if err := checkBytes(msg, field+".seqno", m.GetSeqno(), 1, MaxSeqnoSize); err != nil {
			return err
		}
		if err := checkBytes(msg, field+".signature", m.GetSignature(), 1, MaxSyncSignatureSize); err != nil {
			return err
		}
		if err := checkBytes(msg, field+".key", m.GetKey(), 0, MaxSyncSignatureSize); err != nil {
			return err
		}
	}
	return nil
}

// ValidateMailboxRequest checks the version, that exactly one operation is
// set, and that operation's fields.
func ValidateMailboxRequest(r *wirepb.MailboxRequest) error {
	const msg = "MailboxRequest"
	if r == nil {
		return invalid(msg, "request", "is missing")
	}
	if err := checkVersion(msg, r.GetVersion()); err != nil {
		return err
	}
	switch op := r.GetOp().(type) {
	case *wirepb.MailboxRequest_Deposit:
		if err := checkFixed("Deposit", "tag", op.Deposit.GetTag(), TagSize); err != nil {
			return err
		}
		return checkBytes("Deposit", "blob", op.Deposit.GetBlob(), 1, MaxEnvelopeSize)
	case *wirepb.MailboxRequest_Fetch:
		return checkIDs("Fetch", "tags", op.Fetch.GetTags(), TagSize, 1, MaxFetchTags)
	case *wirepb.MailboxRequest_Delete:
		return checkIDs("Delete", "ids", op.Delete.GetIds(), IDSize, 1, MaxDeleteIDs)
	}
	return invalid(msg, "op", "is not set")
}

// ValidateMailboxResponse checks the status, the error's size and the
// items.
func ValidateMailboxResponse(r *wirepb.MailboxResponse) error {
	const msg = "MailboxResponse"
	if r == nil {
		return invalid(msg, "response", "is missing")
	}
	if r.GetStatus() <= wirepb.MailboxStatus_MAILBOX_STATUS_UNSPECIFIED ||
		r.GetStatus() > wirepb.MailboxStatus_MAILBOX_STATUS_UNSUPPORTED {
		return invalid(msg, "status", fmt.Sprintf("is %d, not a known status", int32(r.GetStatus())))
	}
	if err := checkString(msg, "error", r.GetError(), 0, MaxReasonSize); err != nil {
		return err
	}
	items := r.GetItems()
	if len(items) > MaxFetchItems {
		return invalid(msg, "items", fmt.Sprintf("has %d entries, want at most %d", len(items), MaxFetchItems))
	}
	if len(items) > 0 && r.GetStatus() != wirepb.MailboxStatus_MAILBOX_STATUS_OK {
		return invalid(msg, "items", "are set on a response that is not OK")
	}
	for i, it := range items {
		field := fmt.Sprintf("items[%d]", i)
		if err := checkFixed("MailboxItem", field+".id", it.GetId(), IDSize); err != nil {
			return err
		}
		if err := checkFixed("MailboxItem", field+".tag", it.GetTag(), TagSize); err != nil {
			return err
		}
		if err := checkBytes("MailboxItem", field+".blob", it.GetBlob(), 1, MaxEnvelopeSize); err != nil {
			return err
		}
	}
	return nil
}

// ValidateContactInvite checks the version (ContactInviteVersion), a peer
// ID, the name, at most MaxAddrs addresses, a bundle, at most MaxMailboxes
// mailboxes with a secret (or neither) and a signature. It does not verify
// the signature or the bundle: that needs the peer ID's key.
func ValidateContactInvite(inv *wirepb.ContactInvite) error {
	const msg = "ContactInvite"
	if inv == nil {
		return invalid(msg, "invite", "is missing")
	}
	if v := inv.GetVersion(); v != ContactInviteVersion {
		return &VersionError{Message: msg, Got: v}
	}
	if err := checkBytes(msg, "peer_id", inv.GetPeerId(), 1, MaxPeerIDSize); err != nil {
		return err
	}
	if err := checkString(msg, "name", inv.GetName(), 0, MaxNameSize); err != nil {
		return err
	}
	if err := checkAddrs(msg, inv.GetAddrs()); err != nil {
		return err
	}
	if err := checkBytes(msg, "bundle", inv.GetBundle(), 1, MaxBundleSize); err != nil {
		return err
	}
	if len(inv.GetMailboxes()) > MaxMailboxes {
		return invalid(msg, "mailboxes", fmt.Sprintf("has %d entries, limit %d", len(inv.GetMailboxes()), MaxMailboxes))
	}
	for i, m := range inv.GetMailboxes() {
		if err := checkBytes(msg, fmt.Sprintf("mailboxes[%d]", i), m, 1, MaxPeerIDSize); err != nil {
			return err
		}
	}
	if len(inv.GetMailboxes()) > 0 || len(inv.GetMailboxSecret()) > 0 {
		if err := checkFixed(msg, "mailbox_secret", inv.GetMailboxSecret(), SecretSize); err != nil {
			return err
		}
		if len(inv.GetMailboxes()) == 0 {
			return invalid(msg, "mailbox_secret", "is set without mailboxes")
		}
	}
	return checkFixed(msg, "signature", inv.GetSignature(), SignatureSize)
}

// ValidateRoomLink checks the version, the room secret, the inviter, the
// name, and at most MaxAddrs addresses.
func ValidateRoomLink(l *wirepb.RoomLink) error {
	const msg = "RoomLink"
	if l == nil {
		return invalid(msg, "link", "is missing")
	}
	if err := checkVersion(msg, l.GetVersion()); err != nil {
		return err
	}
	if err := checkFixed(msg, "room_secret", l.GetRoomSecret(), SecretSize); err != nil {
		return err
	}
	if err := checkBytes(msg, "inviter", l.GetInviter(), 1, MaxPeerIDSize); err != nil {
		return err
	}
	if err := checkString(msg, "name", l.GetName(), 0, MaxNameSize); err != nil {
		return err
	}
	return checkAddrs(msg, l.GetAddrs())
}

// RoomInvitationVersion is the version of a RoomInvitation (private rooms
// version 2).
const RoomInvitationVersion = 2

// MaxTokenSize bounds a RoomInvitation's serialized SignedJoinToken.
const MaxTokenSize = 512

// ValidateRoomInvitation checks a RoomInvitation (a room link's content, or
// an invitation sent to a contact): version 2, a 32-byte room id, a name of
// at most MaxNameSize bytes, a token of at most MaxTokenSize bytes, a
// 32-byte join secret, and at most MaxAddrs addresses. The token's
// signature and the rest are the room service's to check.
func ValidateRoomInvitation(r *wirepb.RoomInvitation) error {
	const msg = "RoomInvitation"
	if r == nil {
		return invalid(msg, "invitation", "is missing")
	}
	switch v := r.GetVersion(); {
	case v == 1:
		return fmt.Errorf("%w: %w", ErrUnsupportedVersion, invalid(msg, "version", "is 1: a room link of an older release (private rooms version 1, retired); ask for a new link"))
	case v != RoomInvitationVersion:
		return fmt.Errorf("%w: %w", ErrUnsupportedVersion, invalid(msg, "version", fmt.Sprintf("is %d; this release speaks version %d: update parley", v, RoomInvitationVersion)))
	}
	if err := checkFixed(msg, "room_id", r.GetRoomId(), RoomIDSize); err != nil {
		return err
	}
	if err := checkString(msg, "name", r.GetName(), 0, MaxNameSize); err != nil {
		return err
	}
	if err := checkBytes(msg, "token", r.GetToken(), 1, MaxTokenSize); err != nil {
		return err
	}
	if err := checkFixed(msg, "join_secret", r.GetJoinSecret(), SecretSize); err != nil {
		return err
	}
	return checkAddrs(msg, r.GetAddrs())
}

// validateRoomCommitDelivery checks the frame of a commit delivered 1:1: a
// 32-byte room id and a commit with its body and signature present. The
// commit itself (sizes, signature, chain) is the room service's to check,
// as for a commit fetched by sync.
func validateRoomCommitDelivery(d *wirepb.RoomCommitDelivery) error {
	const msg = "RoomCommitDelivery"
	if err := checkFixed(msg, "room_id", d.GetRoomId(), RoomIDSize); err != nil {
		return err
	}
	if d.GetCommit() == nil {
		return invalid(msg, "commit", "is missing")
	}
	if err := checkBytes(msg, "commit.body", d.GetCommit().GetBody(), 1, MaxPayloadSize); err != nil {
		return err
	}
	return checkFixed(msg, "commit.signature", d.GetCommit().GetSignature(), SignatureSize)
}

func invalid(msg, field, reason string) error {
	return &InvalidError{Message: msg, Field: field, Reason: reason}
}

func checkVersion(msg string, v uint32) error {
	if v != Version {
		return &VersionError{Message: msg, Got: v}
	}
	return nil
}

// checkFixed checks that b is exactly n bytes.
func checkFixed(msg, field string, b []byte, n int) error {
	if len(b) != n {
		return invalid(msg, field, fmt.Sprintf("is %d bytes, want %d", len(b), n))
	}
	return nil
}

// checkBytes checks that b is min to max bytes.
func checkBytes(msg, field string, b []byte, min, max int) error {
	switch {
	case len(b) == 0 && min > 0:
		return invalid(msg, field, "is empty")
	case len(b) < min || len(b) > max:
		return invalid(msg, field, fmt.Sprintf("is %d bytes, want %d to %d", len(b), min, max))
	}
	return nil
}

// checkString checks that s is valid UTF-8 of min to max bytes.
func checkString(msg, field, s string, min, max int) error {
	switch {
	case len(s) == 0 && min > 0:
		return invalid(msg, field, "is empty")
	case len(s) < min || len(s) > max:
		return invalid(msg, field, fmt.Sprintf("is %d bytes, want %d to %d", len(s), min, max))
	case !utf8.ValidString(s):
		return invalid(msg, field, "is not valid UTF-8")
	}
	return nil
}

// checkIDs checks min to max distinct ids of size bytes each.
func checkIDs(msg, field string, ids [][]byte, size, min, max int) error {
	if len(ids) < min || len(ids) > max {
		return invalid(msg, field, fmt.Sprintf("has %d entries, want %d to %d", len(ids), min, max))
	}
	seen := make(map[string]struct{}, len(ids))
	for i, id := range ids {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := checkFixed(msg, f, id, size); err != nil {
			return err
		}
		if _, dup := seen[string(id)]; dup {
			return invalid(msg, f, "appears twice")
		}
		seen[string(id)] = struct{}{}
	}
	return nil
}

// checkPeerIDs checks min to max distinct binary peer IDs.
func checkPeerIDs(msg, field string, ids [][]byte, min, max int) error {
	if len(ids) < min || len(ids) > max {
		return invalid(msg, field, fmt.Sprintf("has %d entries, want %d to %d", len(ids), min, max))
	}
	seen := make(map[string]struct{}, len(ids))
	for i, id := range ids {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := checkBytes(msg, f, id, 1, MaxPeerIDSize); err != nil {
			return err
		}
		if _, dup := seen[string(id)]; dup {
			return invalid(msg, f, "appears twice")
		}
		seen[string(id)] = struct{}{}
	}
	return nil
}

func checkAddrs(msg string, addrs [][]byte) error {
	if len(addrs) > MaxAddrs {
		return invalid(msg, "addrs", fmt.Sprintf("has %d entries, want at most %d", len(addrs), MaxAddrs))
	}
	for i, a := range addrs {
		if err := checkBytes(msg, fmt.Sprintf("addrs[%d]", i), a, 1, MaxAddrSize); err != nil {
			return err
		}
	}
	return nil
}
