package apitype

import "time"

// Room is one entry of GET /v1/rooms, and the answer of the room verbs.
type Room struct {
	Name    string       `json:"name"` // '#name'
	ID      string       `json:"id"`   // hex room id
	Public  bool         `json:"public"`
	Topic   string       `json:"topic"`
	Epoch   uint64       `json:"epoch,omitempty"`
	Role    string       `json:"role,omitempty"` // our role: owner, admin, member
	Members []RoomMember `json:"members,omitempty"`
	Peers   int          `json:"peers"` // topic peers connected now
	Link    string       `json:"link,omitempty"`
	// State is joined, waiting (a join sent, the admin has not admitted us
	// yet), removed (kicked: history stays readable) or left.
	State string `json:"state,omitempty"`
	// Detail says, in a sentence, why a room is not joined (removed by whom,
	// waiting for whom).
	Detail string `json:"detail,omitempty"`
}

// RoomMember is one member of a private room's roster.
type RoomMember struct {
	PeerID string `json:"peer_id"`
	Name   string `json:"name,omitempty"` // contact name, if a contact
	Role   string `json:"role"`
	Self   bool   `json:"self,omitempty"`
}

// RoomRequest is the body of the POST /v1/rooms/... verbs.
type RoomRequest struct {
	Name   string `json:"name"`             // room name, with or without '#'
	Public bool   `json:"public,omitempty"` // create/join: a public room
	Member string `json:"member,omitempty"` // invite/kick/promote: contact name or peer ID
	Link   bool   `json:"link,omitempty"`   // invite: make a join link
	// Uses (invite --link): how many joins the link admits; 0 means 1.
	Uses int `json:"uses,omitempty"`
	// Expires (invite --link): how long the link is valid; 0 means 7 days.
	Expires time.Duration `json:"expires,omitempty"`
	// Token (revoke): the link's token id as listed by GET /v1/rooms/links,
	// or the whole link.
	Token string `json:"token,omitempty"`
	// Invite (accept, decline): the id of a pending invitation.
	Invite string `json:"invite,omitempty"`
}

// RoomLink is one join link an admin made: an entry of
// GET /v1/rooms/links?name=ROOM, and the answer of invite --link.
type RoomLink struct {
	Token   string    `json:"token"` // hex token id
	Link    string    `json:"link"`
	Uses    int       `json:"uses"` // joins admitted in all
	Used    int       `json:"used"` // joins admitted so far
	Expires time.Time `json:"expires"`
	Revoked bool      `json:"revoked,omitempty"`
}

// JoinResult answers POST /v1/rooms/join (with a link) and
// POST /v1/rooms/accept: Status is "joined" or "waiting" (the join was
// sent; the admin admits it when it is online), never an error for a join
// that is under way.
type JoinResult struct {
	Status string `json:"status"`
	Room   Room   `json:"room"`
	Detail string `json:"detail,omitempty"`
}

// RoomInvite is a pending invitation from a contact: an entry of
// GET /v1/rooms/invites. Invitations from non-contacts are dropped.
type RoomInvite struct {
	ID       string    `json:"id"`   // accept/decline by this id
	Room     string    `json:"room"` // the room's suggested name, '#name'
	RoomID   string    `json:"room_id"`
	From     string    `json:"from"` // inviter's peer ID
	FromName string    `json:"from_name,omitempty"`
	At       time.Time `json:"at"`
	Expires  time.Time `json:"expires"`
}
