package apitype

import "time"

// Message states, in the order a sent message moves through them.
const (
	StatePending   = "pending"   // stored, not yet accepted by the peer's node
	StateSent      = "sent"      // the peer's node committed it (transport ack)
	StateDelivered = "delivered" // the peer's E2E receipt arrived
	StateReceived  = "received"  // an incoming message
	StateRefused   = "refused"   // the peer's node took the frame but refused its content (never resent)
)

// Contact is one entry of GET /v1/contacts.
type Contact struct {
	Name     string    `json:"name"`
	PeerID   string    `json:"peer_id"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Verified bool      `json:"verified"`
	Session  bool      `json:"session"` // an E2E session exists
	// PostQuantum: the session was set up with PQXDH (ML-KEM-768 mixed
	// into the root key); false for X3DH sessions and peers from before.
	PostQuantum bool `json:"post_quantum"`
	Unread      int  `json:"unread"`
	Muted       bool `json:"muted,omitempty"`
}

// AddContactRequest is the body of POST /v1/contacts.
type AddContactRequest struct {
	Link string `json:"link"` // parley://contact/... link or a bare peer ID
	Name string `json:"name"` // optional; defaults to the name in the link
}

// Invite answers GET /v1/invite.
type Invite struct {
	Link   string `json:"link"`
	PeerID string `json:"peer_id"`
	Name   string `json:"name"`
}

// SafetyNumber answers GET /v1/verify?contact=NAME and POST /v1/verify.
type SafetyNumber struct {
	Contact  string `json:"contact"`
	PeerID   string `json:"peer_id"`
	Number   string `json:"number"` // 60 digits, in 12 groups of 5 separated by spaces
	Verified bool   `json:"verified"`
	// Session and PostQuantum: an E2E session exists, and it was set up
	// with PQXDH.
	Session     bool `json:"session"`
	PostQuantum bool `json:"post_quantum"`
}

// VerifyRequest is the body of POST /v1/verify.
type VerifyRequest struct {
	Contact string `json:"contact"`
	Confirm bool   `json:"confirm"`
}

// SendRequest is the body of POST /v1/messages.
type SendRequest struct {
	To   string `json:"to"` // contact name, peer ID or '#room'
	Text string `json:"text"`
	// ID optionally fixes the message id (32 hex digits). Sending again with
	// the same id returns the stored message instead of a second copy, so a
	// script can retry safely after a crash or timeout.
	ID string `json:"id,omitempty"`
}

// Message is a stored message (1:1 or room). GET /v1/messages?conv=C&limit=N
// returns the last N of a conversation, oldest first; with &before=ID, the N
// before the message ID (the previous page).
type Message struct {
	ID       string    `json:"id"`   // hex
	Conv     string    `json:"conv"` // contact name (or peer ID) or '#room'
	From     string    `json:"from"` // sender peer ID
	FromName string    `json:"from_name,omitempty"`
	Outgoing bool      `json:"outgoing"`
	Text     string    `json:"text"`
	SentAt   time.Time `json:"sent_at"`
	Seq      uint64    `json:"seq,omitempty"`
	State    string    `json:"state"`
	Gap      int       `json:"gap,omitempty"` // messages missing before this one
}

// Conversation is one entry of GET /v1/conversations.
type Conversation struct {
	Name     string    `json:"name"` // contact name or '#room'
	PeerID   string    `json:"peer_id,omitempty"`
	Room     bool      `json:"room"`
	Unread   int       `json:"unread"`
	Online   bool      `json:"online"`
	Verified bool      `json:"verified"`
	Last     time.Time `json:"last,omitzero"`
}

// ResetRequest is the body of POST /v1/reset.
type ResetRequest struct {
	Contact string `json:"contact"`
}

// Event is one line of the GET /v1/events stream (NDJSON). With
// ?since=<RFC 3339 time>, the stream first replays, as "message" events,
// the messages the node stored after that time (Time is when each was
// stored), then the live events, with no message twice. The stream ends
// when the node stops (or drops a client that fell behind).
type Event struct {
	Type    string    `json:"type"` // message, receipt, presence
	Time    time.Time `json:"time"`
	Message *Message  `json:"message,omitempty"` // type message and receipt (with its new state)
	Contact string    `json:"contact,omitempty"` // type presence
	PeerID  string    `json:"peer_id,omitempty"` // type presence
	Online  bool      `json:"online,omitempty"`  // type presence
	// Request is set on a "request" event (an unknown peer's first
	// authenticated message; PeerID says who) and on "message" events of a
	// message request.
	Request bool `json:"request,omitempty"`
	// Muted is set on "message" events of a muted contact.
	Muted bool `json:"muted,omitempty"`
}

// Request is one entry of GET /v1/requests: an unknown peer whose first
// message authenticated. Handle ("peer-" and the ID's last six characters)
// is a local handle for `parley accept`, never a name: requests have none.
type Request struct {
	PeerID   string    `json:"peer_id"`
	Handle   string    `json:"handle"`
	FirstAt  time.Time `json:"first_at"`
	LastAt   time.Time `json:"last_at"`
	Messages int       `json:"messages"`
	Last     string    `json:"last,omitempty"` // the latest message's text (peer-chosen: sanitise before printing)
}

// ContactAction is the body of POST /v1/contacts/{accept,decline,block,
// unblock,remove,rename,mute,unmute}. Peer is a contact name, a peer ID,
// or a request's handle; Name is the new name (accept, rename).
type ContactAction struct {
	Peer string `json:"peer"`
	Name string `json:"name,omitempty"`
}

// ContactActionResult answers a ContactAction: who it applied to, and the
// contact as it is now (accept, rename, mute, unmute).
type ContactActionResult struct {
	PeerID  string   `json:"peer_id"`
	Action  string   `json:"action"`
	Contact *Contact `json:"contact,omitempty"`
}

// Blocked is one entry of GET /v1/blocked.
type Blocked struct {
	PeerID string    `json:"peer_id"`
	At     time.Time `json:"at"`
}
