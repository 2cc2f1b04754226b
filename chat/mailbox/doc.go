// Package mailbox is offline delivery without servers: any node can keep
// end-to-end encrypted frames for a peer that is offline, on
// /parley/mailbox/1, and every user node deposits into its contacts'
// mailboxes, drains its own and announces them to its contacts.
//
// # Roles
//
// A user node serves its contacts, as recipients, after `parley mailbox
// enable`; a bootstrap node started with --mailbox serves every peer of
// its private network. A user node drains the mailboxes chosen with
// `parley mailbox use` (by default, on a private network, its bootstrap
// nodes that offer the protocol; on the public network, none).
//
// # What a mailbox learns
//
// A deposit carries a rotating recipient tag and a sealed blob. The tag of
// UTC day d at mailbox M is SHA-256("parley/mailbox/1 tag" 0x00 K) where
// the fetch key K = HMAC-SHA256(fetch-key, u64be(d) || M) (M the
// mailbox's binary peer ID, so a key one mailbox sees is useless at
// another) derives from a 32-byte tag secret
// that the recipient gives each contact, a different one to each, in a
// MailboxList payload inside their Double Ratchet session. The blob seals
// the frame id and the ratchet envelope under that secret (Secret.Seal), so
// the mailbox sees neither the content, nor the ratchet header, nor the
// frame id, and tags of different days do not link.
//
// Deposits do not reveal the sender's peer ID: each deposit round (one
// Deposit call: every frame waiting for one recipient, to each of its
// mailboxes) runs on a throwaway libp2p host with a fresh Ed25519 identity
// and the node's transports, security and private-network key, which is
// closed before Deposit returns. The node's own host never connects to a
// mailbox to deposit. The mailbox still sees the network address the
// throwaway host dials from, and the time; an operator who also sees the
// node's own connections from that address can link them.
//
// # Quotas and registration
//
// With anonymous depositors, quotas follow the tag: each tag (one
// sender-recipient pair, one day) may receive Limits.TagItems items and
// Limits.TagBytes bytes, counted per keyed hash of the tag and day, plus
// the global caps that end floods ("mailbox full"). A bootstrap mailbox
// takes deposits under any tag, so a flooder who makes up tags is stopped
// only by the global caps. A contacts-only mailbox takes deposits only
// under tags that a recipient it serves registered: every Fetch from a
// contact, over the contact's own authenticated connection, registers the
// tags of the fetch keys it presents (past days and the TTL ahead) for the
// TTL. A stranger can therefore deposit only under a tag that a served
// recipient can fetch, and only the recipient, the one contact sharing the
// secret and the mailbox know such a tag. Registration adds nothing that
// the Fetch did not already show: a fetching recipient reveals to the
// mailbox which tags are its own, across days. Registrations are stored as
// (tag, expiry day) rows in tag order, which do not group a recipient's
// tags.
//
// # Fetch authentication
//
// A Fetch presents fetch keys, the preimages of the tags; the mailbox
// hashes each to find items. Only the recipient and the one contact that
// shares a secret can compute them. A Fetch that presents stored tags
// themselves is refused. Delete names items by the random 16-byte ids that
// only a Fetch reveals. Fetch and Delete come from the recipient's own
// identity, which a contacts-only mailbox checks.
//
// # Budgets, and allowlisted networks
//
// Every request is priced before it is read: a token bucket per peer, per
// IP address and for everyone (Limits.RequestBurst, RequestEvery; over it
// the answer is RETRY_LATER). Depositors are throwaway identities, so the
// per-IP budget is the one that bounds a flood of deposits. On a network
// with an allowlist, the node (package peer) admits depositors that are
// not on the list only while it serves a mailbox, and only for this
// protocol.
//
// # No blind spots
//
// A node that uses the default mailboxes connects to them at start and
// picks those that identify with the protocol; one that comes back later
// is picked when it identifies. A contact that lacks the node's current
// list gets it with the first message exchanged with it, and a new tag
// secret triggers a drain, which registers its tags at contacts-only
// mailboxes. Status and DrainReport say what is in use, what each drain
// fetched and when, and where each contact deposits.
//
// The full specification is in docs/PROTOCOL.md, section "Mailboxes".
package mailbox
