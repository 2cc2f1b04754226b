package client

import (
	"context"
	"net/url"

	"github.com/parley-im/parley/peer/apitype"
)

// Rooms lists the joined rooms.
func (c *Client) Rooms(ctx context.Context) ([]apitype.Room, error) {
	var v []apitype.Room
	return v, c.Do(ctx, "GET", "/v1/rooms", nil, nil, &v)
}

// Room describes one joined room, with its members.
func (c *Client) Room(ctx context.Context, name string) (apitype.Room, error) {
	var v apitype.Room
	return v, c.Do(ctx, "GET", "/v1/rooms", url.Values{"name": {name}}, nil, &v)
}

// RoomVerb runs one of the room verbs: create, join, invite, kick, leave.
func (c *Client) RoomVerb(ctx context.Context, verb string, req apitype.RoomRequest) (apitype.Room, error) {
	var v apitype.Room
	return v, c.Do(ctx, "POST", "/v1/rooms/"+verb, nil, req, &v)
}
