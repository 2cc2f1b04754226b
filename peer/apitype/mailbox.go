package apitype

import "time"

// MailboxStatus is the answer of GET /v1/mailbox and of the mailbox verbs.
type MailboxStatus struct {
	// Serving is whom this node's mailbox serves: "off", "contacts" (a
	// user node after `parley mailbox enable`) or "network" (a bootstrap
	// node started with --mailbox).
	Serving string `json:"serving"`
	// Quota is the limit per recipient tag (one sender–recipient pair) per day.
	QuotaItems int   `json:"quota_items"`
	QuotaBytes int64 `json:"quota_bytes"`
	TTLDays    int64 `json:"ttl_days"`
	// Stored and StoredBytes are what this node holds for others.
	Stored      int   `json:"stored"`
	StoredBytes int64 `json:"stored_bytes"`
	// Use are the mailboxes this node drains and announces to contacts;
	// Auto says they are the defaults (the private network's bootstrap
	// nodes that offer mailboxes) rather than chosen with `mailbox use`.
	Use  []string `json:"use"`
	Auto bool     `json:"auto"`
	// Defaults are the default mailboxes (the private network's bootstrap
	// nodes) when Auto; those not in Use have not (yet) said that they
	// serve mailboxes.
	Defaults []string `json:"defaults,omitempty"`
	// LastDrain is when the node last drained at least one of its
	// mailboxes successfully, and LastFetched how many messages that
	// drain received.
	LastDrain   time.Time `json:"last_drain,omitzero"`
	LastFetched int       `json:"last_fetched"`
	// Drains is the outcome of the last drain of each mailbox in Use.
	Drains []MailboxDrain `json:"drains"`
	// Contacts are the mailboxes each contact announced: where this node
	// deposits for them when they are offline. A contact missing here
	// announced none (yet).
	Contacts []ContactMailboxes `json:"contacts"`
}

// MailboxDrain is the last drain of one mailbox.
type MailboxDrain struct {
	Mailbox string    `json:"mailbox"`
	At      time.Time `json:"at"`
	Fetched int       `json:"fetched"`         // messages received from it
	Error   string    `json:"error,omitempty"` // why it failed
}

// ContactMailboxes is the mailbox list a contact announced, and what waits
// for that contact.
type ContactMailboxes struct {
	Contact   string   `json:"contact"`
	PeerID    string   `json:"peer_id"`
	Mailboxes []string `json:"mailboxes"`
	// Waiting counts the frames (messages, receipts, control payloads)
	// queued for the contact and not yet acknowledged by it directly;
	// Deposited counts those of them already deposited in at least one
	// of its mailboxes.
	Waiting   int `json:"waiting"`
	Deposited int `json:"deposited"`
}

// MailboxEnableRequest is the body of POST /v1/mailbox/enable.
type MailboxEnableRequest struct {
	Off   bool `json:"off,omitempty"`   // stop serving
	Quota int  `json:"quota,omitempty"` // items per recipient tag per day; 0 keeps the current one
}

// MailboxUseRequest is the body of POST /v1/mailbox/use.
type MailboxUseRequest struct {
	Peers []string `json:"peers"`          // peer IDs, at most 8; empty: none
	Auto  bool     `json:"auto,omitempty"` // return to the defaults
}

// MailboxDrainResult is the answer of POST /v1/mailbox/drain.
type MailboxDrainResult struct {
	Received int    `json:"received"`
	Error    string `json:"error,omitempty"`
	// Mailboxes are the mailboxes drained, each with its outcome; empty
	// when the node uses none (then Note says why).
	Mailboxes []MailboxDrain `json:"mailboxes"`
	Note      string         `json:"note,omitempty"`
}
