package wire

import "time"

// Protocol IDs and the room topic prefix. The trailing number is the protocol
// version; an incompatible change gets a new ID.
const (
	ProtocolDM       = "/parley/dm/1"
	ProtocolPrekeys  = "/parley/prekeys/1"
	ProtocolRoomSync = "/parley/roomsync/1"
	ProtocolMailbox  = "/parley/mailbox/1"
	// RoomTopicPrefix is followed by the lowercase hex room id (see RoomTopic).
	RoomTopicPrefix = "parley/room/1/"
)

// Version is the only version this build speaks in the version fields of
// Payload, PrekeyRequest, RoomMessage, RoomSyncRequest, MailboxRequest,
// ContactInvite and RoomLink.
const Version = 1

// Deadlines that stream handlers and openers set on every stream.
const (
	ReadTimeout  = 30 * time.Second
	WriteTimeout = 10 * time.Second
)

// Frame size limits, length prefix excluded. A reader passes the limit of the
// frame it expects to ReadFrame, which refuses a longer length prefix before
// reading or allocating anything.
const (
	// MaxFrameSize caps every frame on /parley/dm/1 (DMFrame).
	MaxFrameSize = 96 << 10
	// MaxPrekeyRequest caps a PrekeyRequest frame.
	MaxPrekeyRequest = 256
	// MaxPrekeyResponse caps a PrekeyResponse frame.
	MaxPrekeyResponse = 8 << 10
	// MaxRoomMessage caps a serialized RoomMessage (gossipsub data).
	MaxRoomMessage = 16 << 10
	// MaxSyncRequest caps a RoomSyncRequest frame.
	MaxSyncRequest = 4 << 10
	// MaxSyncResponse caps a RoomSyncResponse frame.
	MaxSyncResponse = 1 << 20
	// MaxMailboxRequest caps a MailboxRequest frame.
	MaxMailboxRequest = 128 << 10
	// MaxMailboxResponse caps a MailboxResponse frame.
	MaxMailboxResponse = 1 << 20
	// MaxMailboxFrame is the largest frame in either direction on
	// /parley/mailbox/1. Handlers read requests with the tighter
	// MaxMailboxRequest.
	MaxMailboxFrame = MaxMailboxResponse
	// MaxWriteFrame is the largest frame WriteFrame writes: the largest of
	// the limits above.
	MaxWriteFrame = 1 << 20
)

// Field limits.
const (
	// IDSize is the size of every random message or item id.
	IDSize = 16
	// RoomIDSize is the size of a room id.
	RoomIDSize = 32
	// SecretSize is the size of a room secret and of a mailbox tag secret.
	SecretSize = 32
	// TagSize is the size of a mailbox recipient tag.
	TagSize = 32
	// MACSize is the size of an HMAC-SHA256 (membership MAC).
	MACSize = 32
	// SignatureSize is the size of an Ed25519 signature.
	SignatureSize = 64
	// MaxPeerIDSize bounds a binary peer ID.
	MaxPeerIDSize = 64
	// MaxAddrSize bounds one binary multiaddr.
	MaxAddrSize = 256
	// MaxAddrs bounds the addresses in an invite or room link.
	MaxAddrs = 8
	// MaxNameSize bounds a contact or room name, in bytes of UTF-8.
	MaxNameSize = 64
	// MaxReasonSize bounds every human-readable error or reason string.
	MaxReasonSize = 256
	// MaxEnvelopeSize bounds an end-to-end envelope: a MaxPayloadSize
	// payload plus ratchet header, session-setup keys and AEAD tag.
	MaxEnvelopeSize = 66 << 10
	// MaxPayloadSize bounds a serialized Payload (the ratchet plaintext).
	MaxPayloadSize = 64 << 10
	// MaxTextSize bounds a text message body of a direct message.
	MaxTextSize = 32 << 10
	// MaxRoomText bounds the text of a public room's message (a private
	// room's is bounded by its plaintext limit, 12 KiB).
	MaxRoomText = 8 << 10
	// MaxBundleSize bounds an opaque prekey bundle.
	MaxBundleSize = 4 << 10
	// MaxDistributionSize bounds an opaque sender-key distribution message.
	MaxDistributionSize = 1 << 10
	// MaxRosterSize bounds a serialized SignedRoster.
	MaxRosterSize = 48 << 10
	// MaxRosterMembers bounds the members of a room.
	MaxRosterMembers = 1000
	// MaxReceiptIDs bounds the ids in one Receipt.
	MaxReceiptIDs = 256
	// MaxMailboxes bounds the peers in a MailboxList.
	MaxMailboxes = 8
	// MaxProofSize bounds a room sync membership proof.
	MaxProofSize = 1 << 10
	// MaxSyncMessages bounds the messages in one RoomSyncResponse.
	MaxSyncMessages = 256
	// MaxSyncSignatureSize bounds a gossipsub signature or key in a
	// SyncedMessage.
	MaxSyncSignatureSize = 1 << 10
	// MaxSeqnoSize bounds a gossipsub seqno.
	MaxSeqnoSize = 8
	// MaxFetchTags bounds the tags in one Fetch.
	MaxFetchTags = 64
	// MaxFetchItems bounds the items in one MailboxResponse.
	MaxFetchItems = 64
	// MaxDeleteIDs bounds the ids in one Delete.
	MaxDeleteIDs = 256
	// MaxLinkSize bounds a parley:// link, in bytes: a contact link carries
	// a PQXDH bundle (about 1.5 KiB) and a signature.
	MaxLinkSize = 4 << 10
)
