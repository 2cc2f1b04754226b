package apitype

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
	Member string `json:"member,omitempty"` // invite/kick: contact name or peer ID
	Link   bool   `json:"link,omitempty"`   // invite: make a parley://room/ link
}
