// Package conformance checks a running Parley node against docs/PROTOCOL.md
// from the outside.
//
// It holds only tests. Each test starts a real node in process (as
// `parley up` would, on loopback) and drives it over its wire protocols
// with a bare libp2p host, the way a client written in another language
// would: it uses the node's mailbox, asks for prekeys, sets up 1:1 sessions with X3DH and PQXDH,
// writes dm frames and reads acks, serves the node's own dm streams,
// publishes and reads on a public room's gossipsub topic, joins a private
// room and follows its commits as a member would, and
// checks every normative sentence with an observable effect: each ack
// status, each limit, each refusal and each ordering rule. Every test
// names the section of PROTOCOL.md it checks, so that a change to the
// text or to the node that makes them disagree fails here.
//
// Coverage, by section of PROTOCOL.md:
//
//   - Transport (frame caps, minimal varints): TestFrameSizeLimit,
//     TestPrekeyRequestLimit.
//   - Prekeys: TestPrekeyVersions, TestPrekeyUnknownVersion,
//     TestPrekeyRequestLimit, TestPrekeyRateLimit, TestPrekeyAddressBudget,
//     TestNodeNegotiatesPrekeyVersion, TestNodeAcceptsBundleFromTheFuture.
//   - Direct messages: TestHandshake, TestTextIDIsFrameID, TestAckStatuses,
//     TestNonMessageFrameEndsStream, TestMismatchedAckIsProtocolError,
//     TestRefusedPayloadDropped,
//     TestBatchOrder, TestResetOrderAndSequence.
//   - Receiving: TestBlockedPeer, TestStreamsPerPeer, TestFailureBudget,
//     TestStrangerBudget, TestEnvelopeVersion.
//   - Contacts, message requests, blocks: TestRequestGetsNoReceiptUntilAccepted,
//     TestDeclineDeletesSession, TestBlockedPeer.
//   - Payloads: TestPayloadVersion, TestTextBodyLimit, TestSequenceGap,
//     TestReceiptPerBatch, TestReceiptMarksDelivered.
//   - Contact links (contactlink_test.go: the node's link decoded with the
//     standard library, links made by the client handed to `parley add`):
//     TestContactLinkFromNode (layout, CRC-32, 4 KiB, fields, signature
//     layout, the link bundle without one-time prekeys),
//     TestContactLinkRefusals (white space ignored; a typo, version 1, a
//     newer version, over 4 KiB, bad signatures, another peer's bundle, a
//     version-1 room link refused), TestNodeAddsLink (a session from the
//     link at once; a stale link bundle waits for /parley/prekeys/1).
//   - Safety numbers: TestSafetyNumber.
//   - X3DH, PQXDH: TestHandshake, TestPrekeyMessageReplay; a link's first
//     message (no one-time prekey) replayed after its session is gone:
//     TestContactLinkFromNode.
//   - Mailboxes (who may use one, deposit, fetch and delete, quotas,
//     malformed requests): TestMailboxWhoMayUse,
//     TestMailboxDepositFetchDelete, TestMailboxTagQuota,
//     TestMailboxMalformed. "First messages from a link", with the node as
//     the inviter and a second node as its mailbox: a genuine, a forged
//     and a non-prekey item deposited under the link secret
//     (TestLinkFirstMessagesThroughMailbox). "Gaps": TestSequenceGap,
//     TestGapFilled. The byte layouts (fetch keys bound to a
//     mailbox, tags, sealing) are pinned by chat/mailbox/testdata/seal.json.
//   - Public rooms (id, topic, message layout, dedup on (room, author,
//     msg_id)), with "Validation" and "Clocks, own messages, sending":
//     TestPublicRoomReceive, TestPublicRoomSend, TestPublicRoomRefusals,
//     TestPublicRoomTextLimit, TestPublicRoomDedup, from a bare host with
//     its own gossipsub router.
//   - /parley/roomsync/1 (public rooms: pages, order, the 256-message and
//     4 KiB limits, refusals): TestRoomSyncPages, TestRoomSyncLimit,
//     TestRoomSyncRefusals, TestRoomSyncVersionError; the node as requester
//     (sync on a peer joining, signature and clock checks on what is
//     served): TestRoomSyncRequester.
//   - Private rooms (version 2), from a foreign client
//     (privateclient_test.go: stdlib, x/crypto, libp2p, pubsub and wirepb
//     only, never chat/room or chat/room/group) on the room's topic:
//     "Joining", "/parley/roomjoin/2" (link decoding, token, key package,
//     join request, the welcome on the topic and the chain fetched with
//     the token, HPKE, key schedule, confirmation tag; used-up, bad-proof
//     and copied requests): TestPrivateRoomJoin; the request on the
//     topic and the welcome published again, at most once per 6 seconds:
//     TestPrivateRoomJoinOnTopic;
//     the welcome fetched with the token: TestPrivateRoomWelcomeBySync.
//     "Key packages" (UPDATE): TestPrivateRoomKeyPackageUpdate, and
//     TestPrivateRoomPromoteWithPendingUpdate.
//     "Leaving": TestPrivateRoomLeave; the node as the leaver, its leave
//     published again to a late peer: TestNodeLeaves. "Messages" both ways:
//     TestPrivateRoomReceive (MAC, AD binding of author and msg_id,
//     epoch_hash, consecutive generations), TestPrivateRoomSend. Refusals,
//     each against a control the node shows: TestPrivateRoomRefusals
//     (wrong MAC, replayed generation, AD of another msg_id, a copy under
//     another author, a generation over 1000 ahead, skipped generations,
//     another branch's epoch_hash, a newer epoch, an author not in the
//     roster, an epoch whose keys are erased and a late one of the
//     previous epoch, after ROLE and ADD commits checked as successors).
//     "Clocks": TestPrivateRoomClock (a member's hlc over 5 minutes ahead
//     refused and not moving the node's clock, over 5 minutes behind
//     refused live, 4 minutes ahead shown and moving it; synced, over 5
//     minutes ahead refused, an hour old taken),
//     TestPrivateRoomClockSeededAtStart (the node restarted on its home
//     seeds the clock from its log); a key package on the topic dated over
//     5 minutes ahead ignored: TestPrivateRoomKeyPackageClock; a commit
//     listing a package dated over 5 minutes after its issued_at_ms
//     refused ("Successor" rule 3, ADD and UPDATE):
//     TestCommitKeyPackageDate.
//     "Fork choice" and "Own messages", with the node a member of a room
//     the foreign owner made: an admin's commit, then the owner's rival
//     (rule 2): the node heals and publishes its message again at the
//     winning epoch (TestForkHealResendsMessages); as an admin whose kick
//     lost, it re-makes the kick on top of the winner
//     (TestForkHealRemakesKick); a rival with a child beats the childless
//     commit (rule 3, TestForkHealByChild); an owner's equivocation is
//     reported and the smaller hash followed (TestForkEquivocation).
//     "Removal": TestPrivateRoomRemoval (the REMOVE commit, nothing sealed
//     to the removed member, its old-epoch message refused, the removed
//     member's fetch); a member removed and re-added:
//     TestPrivateRoomRejoin. "/parley/roomsync/2": TestPrivateRoomFetch (the
//     chain's parent hashes and signatures, messages, pages, proofs of the
//     current and previous epoch, commits without a proof, refusals);
//     TestPrivateRoomFetchHighCursor; the node as requester (its proof,
//     paging): TestPrivateRoomSyncRequester.
//   - "Commits through mailboxes", the sending side: an owner node hands
//     its commits (a ROLE, then the REMOVE of that member) to an offline
//     member that is its contact, byte for byte as published, and nothing
//     to a connected one (TestCommitDeliverySent). The receiving side,
//     with the node as a plain member of a room a foreign owner made (privateowner_test.go: genesis, token and
//     link, /parley/roomjoin/2 and /parley/roomsync/2 served as the
//     issuer, commits signed by any identity the test holds) and foreign
//     1:1 clients handing it Payload.room_commit: an owner's next commit
//     is applied, whoever delivers it (TestCommitDeliveryOwnerApplied);
//     an admin's, a plain member's and a removed admin's are hints that
//     prompt a fetch (TestCommitDeliveryNotOwner); so are the owner's
//     rival of the current commit and older commits
//     (TestCommitDeliveryOldOrRival); a commit on a missing parent is
//     held and applied when the parent comes by sync, on the topic or by
//     delivery, unless its issuer is no longer an owner then
//     (TestCommitDeliveryHeld, TestCommitDeliveryHeldEight), at most 8
//     (TestCommitDeliveryHeldBound); the commit budget per deliverer and
//     per claimed issuer, the successor exempt (TestCommitDeliveryBudget);
//     64 queued payloads per sender (TestCommitDeliveryQueueCap); one fork
//     alert per commit (TestCommitDeliveryForkAlertOnce); an unknown room
//     (TestCommitDeliveryUnknownRoom); refused room_commit payloads
//     (TestCommitDeliveryRefused). A later payload the node must act on
//     (the owner's next commit, or an invitation from a contact, held for
//     consent) shows that it judged the earlier ones.
//   - Rooms version 2, byte layouts: TestRoomKeyScheduleVectors,
//     TestRoomCommitVectors and TestRoomChangesVectors (ROLE, UPDATE,
//     LEAVE and REMOVE commits, the fork tie-break, the rendezvous CID,
//     the RoomEnvelope of each body) recompute every value of
//     chat/room/group/testdata from the text with the standard library and
//     x/crypto, without chat/room/group.
//
// docs/CONFORMANCE.md maps each normative sentence of PROTOCOL.md to its
// test and lists those not yet checked from the outside.
//
// Checked elsewhere, below the wire: the ratchet's receiving rules, skipped
// keys, session ranking and convergence (chat/e2e tests); the byte layouts
// and derivations (the vectors in chat/e2e/testdata, chat/wire/testdata,
// chat/testdata); links, typos and versions (chat/wire tests); storage
// failures answered RETRY_LATER and crash durability (chat tests).
//
// The end-to-end layer of the client is chat/e2e, the same code the node
// uses; the byte-level constructions that layer implements are pinned
// separately by the known-answer vectors in chat/e2e/testdata, which a
// foreign implementation checks its own code against.
package conformance
