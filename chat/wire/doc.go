// Package wire is Parley's wire contract: the protobuf messages (in
// proto/parley/wire/v1, generated into package wirepb), the framing of
// stream protocols with hard size limits, validation of every decoded
// message, and the parley:// link codecs. The .proto comments specify each
// field; this comment specifies the protocols.
//
// # Framing
//
// Every stream protocol exchanges frames: an unsigned varint (LEB128, at
// most 5 bytes, minimally encoded) holding the length of the protobuf
// message that follows. The reader of a frame knows its limit in advance and
// refuses a larger length prefix before reading or allocating the body
// (ErrFrameTooLarge); a stream that ends inside a frame gives ErrTruncated,
// bytes that do not decode give ErrMalformed. After any such error the
// reader resets the stream. Decoded frames are then checked with the
// Validate functions; a frame that fails them is treated like a malformed
// one.
//
// Every side of every stream sets a read deadline of 30 s (ReadTimeout)
// before each read and a write deadline of 10 s (WriteTimeout) before each
// write, and resets the stream when one passes.
//
// # /parley/dm/1 (ProtocolDM)
//
// The sender of end-to-end messages opens the stream to the recipient. It
// writes DMFrame.message frames, each at most MaxFrameSize; the handler
// answers every one with exactly one DMFrame.ack carrying the same id, in
// the order the messages came. The sender may write several messages before
// reading their acks (a batch) and may reuse the stream for later batches;
// either side closes it when done. The handler commits a message before
// acking it OK; an id it has committed before is acked DUPLICATE without
// being decrypted again. An ack that does not match the oldest unacked
// message, or any other frame from the handler, is a protocol error.
// DMMessage.envelope decrypts (chat/e2e) to a Payload of at most
// MaxPayloadSize; decode it with DecodePayload.
//
// # /parley/prekeys/1 (ProtocolPrekeys)
//
// The initiator of a session opens the stream and writes one PrekeyRequest
// (at most MaxPrekeyRequest); the handler writes one PrekeyResponse (at most
// MaxPrekeyResponse) holding either a bundle or an error, and both sides
// close. Handlers rate-limit requests per peer, as each may hand out a
// one-time prekey.
//
// # Room topics (RoomTopicPrefix)
//
// A room's gossipsub topic is RoomTopic(room id). Each message's data is a
// RoomMessage of at most MaxRoomMessage bytes, signed by its author
// (StrictSign). Topic validators call DecodeRoomMessage and then check that
// room_id matches the topic, the membership MAC over MembershipMACInput
// (private rooms), the epoch, the clock skew of hlc, and a per-peer rate.
// Rosters travel as SignedRoster inside 1:1 payloads; the signature covers
// RosterSigningInput.
//
// # /parley/roomsync/1 (ProtocolRoomSync)
//
// A member that missed messages opens the stream to another member and
// writes one RoomSyncRequest (at most MaxSyncRequest) with a membership
// proof over SyncProofInput; the handler writes one RoomSyncResponse (at
// most MaxSyncResponse, at most MaxSyncMessages messages) and both sides
// close. The requester repeats with a new after_hlc while more is set,
// re-verifies each SyncedMessage's gossipsub signature and runs the topic
// validator on its data, and deduplicates on msg_id.
//
// # /parley/mailbox/1 (ProtocolMailbox)
//
// A client opens the stream and writes one MailboxRequest (at most
// MaxMailboxRequest) holding a Deposit (a sender storing a blob for a
// recipient tag), a Fetch (the recipient listing blobs under its tags) or a
// Delete (the recipient removing what it has committed); the mailbox writes
// one MailboxResponse (at most MaxMailboxResponse) and both sides close.
//
// # Links
//
// EncodeContactInvite and EncodeRoomLink make parley://contact/ and
// parley://room/ links: the prefix and the unpadded base64url of the
// serialized message, at most MaxLinkSize bytes. The decoders refuse links
// that are too long, of the other kind, not strictly encoded, of another
// version, or whose fields break the limits (at most MaxAddrs addresses,
// names of at most MaxNameSize bytes of UTF-8, a peer ID present).
//
// # Versions
//
// The protocol IDs carry the protocol version. Payload, PrekeyRequest,
// RoomMessage, RoomSyncRequest, MailboxRequest, ContactInvite and RoomLink
// also carry a version field, which must equal Version; anything else is
// refused with a VersionError (ErrUnsupportedVersion) naming the version.
package wire
