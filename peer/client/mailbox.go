package client

import (
	"context"

	"github.com/parley-im/parley/peer/apitype"
)

// Mailbox returns the node's mailbox settings and state.
func (c *Client) Mailbox(ctx context.Context) (apitype.MailboxStatus, error) {
	var v apitype.MailboxStatus
	return v, c.Do(ctx, "GET", "/v1/mailbox", nil, nil, &v)
}

// MailboxEnable turns serving a mailbox for contacts on or off.
func (c *Client) MailboxEnable(ctx context.Context, req apitype.MailboxEnableRequest) (apitype.MailboxStatus, error) {
	var v apitype.MailboxStatus
	return v, c.Do(ctx, "POST", "/v1/mailbox/enable", nil, req, &v)
}

// MailboxUse chooses the mailboxes the node drains and announces.
func (c *Client) MailboxUse(ctx context.Context, req apitype.MailboxUseRequest) (apitype.MailboxStatus, error) {
	var v apitype.MailboxStatus
	return v, c.Do(ctx, "POST", "/v1/mailbox/use", nil, req, &v)
}

// MailboxDrain drains the node's mailboxes now.
func (c *Client) MailboxDrain(ctx context.Context) (apitype.MailboxDrainResult, error) {
	var v apitype.MailboxDrainResult
	return v, c.Do(ctx, "POST", "/v1/mailbox/drain", nil, nil, &v)
}
