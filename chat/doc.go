// Package chat is the messaging service of a node: contacts, 1:1
// conversations over an end-to-end Double Ratchet (chat/e2e) carried on
// /parley/dm/1, the durable outbox, delivery receipts, history with
// full-text search, and the events that feed `parley watch` and the
// terminal UI.
//
// # Durability
//
// Sending never waits for the peer. Service.Send stores the message row and
// an outbox row (its plaintext payload) in one transaction and returns. The
// deliverer of that peer, once a session exists, encrypts queued payloads in
// order: each ratchet step and the resulting envelope are committed together,
// so a crash can never reuse a message key, and every retry sends the same
// bytes. The receiver decrypts a batch of frames, commits the ratchet state,
// the message rows and the frame ids in one transaction and only then acks;
// a retransmitted frame whose id is already committed is acked as a
// duplicate without touching the ratchet. Delivery receipts are ordinary
// payloads inside the ratchet, queued in the receiver's outbox in the same
// transaction as the messages they acknowledge.
//
// A message moves pending → sent (the peer's node acked the frame) →
// delivered (the peer's end-to-end receipt arrived).
//
// # Contacts and requests
//
// Contacts are chosen by the user (relations.go): a stranger's first text
// that authenticates is a message request, readable and nothing more;
// IsContact is the predicate other services use before granting a
// contact's privileges. Untrusted frames are priced before they are paid
// for (budget.go): blocked peers and peers out of budget are refused
// before a byte is read, and the crypto runs on a copy of the session,
// outside the service's lock and any transaction.
package chat
