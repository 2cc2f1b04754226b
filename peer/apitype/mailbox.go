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
	// LastDrain is when the node last drained its mailboxes.
	LastDrain time.Time `json:"last_drain,omitzero"`
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
}
