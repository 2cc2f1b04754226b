// Package room runs Parley's group rooms on gossipsub: public rooms (signed
// clear text, joined by name) and private rooms (the default: end-to-end
// encrypted with per-member sender keys under an admin-signed roster).
// docs/PROTOCOL.md ("Rooms") is the normative specification; this comment
// summarises it.
//
// # Ids, topics and keys
//
// A public room's id is SHA-256("parley/v1 public-room" 0x00 ||
// lowercase(name)). A private room is made from a random 32-byte secret;
// its id is HKDF-SHA256(secret, salt empty, info "parley/room/1 room-id").
// Either way the topic is "parley/room/1/" + hex(id). A private room has
// epochs: epoch 1's secret is the room secret; every roster change makes a
// fresh random secret for the next epoch. From an epoch secret S:
//
//	membership key = HKDF-SHA256(S, salt room id, "parley/room/1 membership-key")
//	rendezvous key = HKDF-SHA256(S, salt room id, "parley/room/1 rendezvous-key")
//
// # Messages
//
// Every gossipsub message is a wirepb.RoomMessage, signed by its author
// (StrictSign). In a private room its ciphertext is the author's sender-key
// message (chat/e2e.SenderChain) over the text, with associated data
// "parley/room/1 sender-key-ad" 0x00 lp(room id) u64(epoch) lp(author)
// lp(msg id) u64(hlc), and membership_mac is HMAC-SHA256 under the epoch's
// membership key over wire.MembershipMACInput. Each member makes a new chain
// for every epoch and hands its distribution to every other member in a
// SenderKey payload over the 1:1 end-to-end session.
//
// # Validation (before a message is delivered or forwarded)
//
// Reject (the forwarder's score drops): larger than 16 KiB, undecodable,
// room id not the topic's, hlc more than 5 minutes ahead of our clock (any
// message, live or synced) or behind it (live messages), clear
// text in a private room, author not in the roster of the message's epoch,
// wrong membership MAC, and, when the author is the forwarder, author over
// its rate limit or (live messages) no longer in our current roster: a
// removed member keeps the keys of its old epochs. Ignore: an epoch we hold
// no keys for, a message already in the log (the same author and msg id:
// anyone may copy an id, so a copy never suppresses the original), a
// rate-limited or removed author relayed by someone else. Our own
// publications skip the rate limit and clock check. Peer scoring (P4,
// invalid deliveries, weight -100, squared) takes a peer below the
// graylist threshold (-1000) after about four invalid messages.
//
// # Rosters and epochs
//
// A SignedRoster is signed by its issuer's Ed25519 identity key. It is
// accepted when the signature verifies against the issuer's peer ID, the
// issuer is an admin or owner of our current epoch (and, if not the owner,
// keeps the owner), and its epoch is later than ours. An admin changing the
// roster (invite, kick, join by link, a member leaving) sends every member
// of the new roster a RoomInvite holding the new epoch's secret and roster,
// and removed members a RoomRosterUpdate (roster only). A member that
// leaves sends the others a roster it signed itself without it; the owner
// (else the admin with the smallest peer ID) then issues the next epoch.
// A removed member keeps the keys of old epochs but never receives the new
// secret or anyone's new sender key, so it can neither pass the validators
// nor decrypt anything sent afterwards.
//
// A member added at epoch n receives sender keys of epoch n only: it
// cannot decrypt anything sent before it joined (the chains of earlier
// epochs were never given to it, and each chain only runs forward). It can
// fetch the older ciphertexts over roomsync but they stay unreadable.
//
// # History
//
// Every member logs each accepted message as the author signed it (from,
// data, seqno, signature, key) in room_log, ordered by (hlc, msg_id).
// A member that was away asks connected members (of its current roster,
// in a private room) over /parley/roomsync/1 for what it missed (from 5
// minutes before its newest message not after now), pages while more is
// set, re-verifies each signature, runs the validator on each message
// (the clock bound ahead included), and deduplicates on (author, msg_id).
// Each room has its own hybrid logical clock, seeded at start from its log
// ignoring values beyond the bound.
//
// Validators run inline in the gossipsub pipeline and never wait for the
// database's writes: "already logged?" is answered by an in-memory index
// of the log (logindex.go; the database only for a "maybe"), and the
// room's reader stores the messages that arrived while its previous
// transaction ran in one transaction, letting go of the group lock once
// that transaction has begun. A message is shown only once it is stored.
//
// Send stores a message as pending with the bytes to publish
// (room_outbox), publishes it, then marks it sent; pending messages are
// published again at start and every minute.
//
// # Invitations and links
//
// An invitation into a room we are not in is held for the user's consent
// (Invites, AcceptInvite, DeclineInvite) when it comes from a contact, at
// most 4 per contact, and dropped otherwise. A join link holds the secret
// of the epoch it was made at; the admin's node admits a joiner proving
// that secret only while the link (room_links) has uses left, has not
// expired and is not revoked. A join whose admin does not answer waits in
// room_joins and is asked again every Config.JoinRetry, across restarts.
// Roster changes a node makes are serialised per room. Membership changes
// are lines of the room's history (state "system").
//
// # Rendezvous
//
// Members advertise themselves as DHT providers of a CID derived from the
// room: for public rooms SHA-256("parley/room/1 rendezvous" 0x00 topic);
// for private rooms HMAC-SHA256(rendezvous key, "parley/room/1 rendezvous"
// 0x00 YYYY-MM-DD), which rotates with the UTC date and names nothing
// permanent. They re-provide every 6 hours and when the key changes, look
// for providers often while they have no topic peer, and connect to them;
// gossipsub then meshes the members.
//
// # Lifecycle
//
//	New ──► Run(ctx) ──(ctx done)──► stopped
//
// New makes the gossipsub router. Run loads the joined rooms, starts per
// room a reader, a topic-event watcher and a rendezvous loop, plus one
// inbox loop (1:1 payloads, applied after their frame commits) and one sync
// loop; when ctx ends it stops them all and waits.
package room
