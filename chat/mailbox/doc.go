// Package mailbox is offline delivery without servers: any node can keep
// end-to-end encrypted frames for a peer that is offline, on
// /parley/mailbox/1, and every user node deposits into its contacts'
// mailboxes, drains its own and announces them to its contacts.
//
// # Roles
//
// A user node serves its contacts after `parley mailbox enable`; a
// bootstrap node started with --mailbox serves every peer of its private
// network. A user node drains the mailboxes chosen with `parley mailbox
// use` (by default, on a private network, its bootstrap nodes that offer
// the protocol; on the public network, none).
//
// # What a mailbox learns
//
// A deposit carries a rotating recipient tag and a sealed blob. The tag of
// UTC day d is SHA-256("parley/mailbox/1 tag" 0x00 K_d) where the fetch key
// K_d = HMAC-SHA256(fetch-key, u64be(d)) derives from a 32-byte tag secret
// that the recipient gives each contact, a different one to each, in a
// MailboxList payload inside their Double Ratchet session. The blob seals
// the frame id and the ratchet envelope under that secret (Secret.Seal), so
// the mailbox sees neither the content, nor the ratchet header, nor the
// frame id, and tags of different days do not link. It does see the peer
// ID of the depositing connection, which it uses for quotas only: items
// record no depositor, and usage is counted per keyed hash and day.
//
// # Fetch authentication
//
// A Fetch presents fetch keys, the preimages of the tags; the mailbox
// hashes each to find items. Only the recipient and the one contact that
// shares a secret can compute them. A Fetch that presents stored tags
// themselves is refused. Delete names items by the random 16-byte ids that
// only a Fetch reveals.
//
// The full specification is in docs/PROTOCOL.md, section "Mailboxes".
package mailbox
