package client

import (
	"context"

	"github.com/parley-im/parley/peer/apitype"
)

// Requests lists pending message requests.
func (c *Client) Requests(ctx context.Context) ([]apitype.Request, error) {
	var v []apitype.Request
	return v, c.Do(ctx, "GET", "/v1/requests", nil, nil, &v)
}

// Blocked lists blocked peers.
func (c *Client) Blocked(ctx context.Context) ([]apitype.Blocked, error) {
	var v []apitype.Blocked
	return v, c.Do(ctx, "GET", "/v1/blocked", nil, nil, &v)
}

// ContactAction runs accept, decline, block, unblock, remove, rename, mute
// or unmute on peer (a contact name, a peer ID or a request's handle);
// name is the new name for accept and rename.
func (c *Client) ContactAction(ctx context.Context, action, peer, name string) (apitype.ContactActionResult, error) {
	var v apitype.ContactActionResult
	return v, c.Do(ctx, "POST", "/v1/contacts/"+action, nil, apitype.ContactAction{Peer: peer, Name: name}, &v)
}
