package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/parley-im/parley/peer/apitype"
)

// Invite returns this node's contact link; a non-empty name is stored as
// the name offered in invites from now on.
func (c *Client) Invite(ctx context.Context, name string) (apitype.Invite, error) {
	var v apitype.Invite
	var q url.Values
	if name != "" {
		q = url.Values{"name": {name}}
	}
	return v, c.Do(ctx, "GET", "/v1/invite", q, nil, &v)
}

// Contacts lists contacts.
func (c *Client) Contacts(ctx context.Context) ([]apitype.Contact, error) {
	var v []apitype.Contact
	return v, c.Do(ctx, "GET", "/v1/contacts", nil, nil, &v)
}

// AddContact adds a contact from a link or peer ID.
func (c *Client) AddContact(ctx context.Context, link, name string) (apitype.Contact, error) {
	var v apitype.Contact
	return v, c.Do(ctx, "POST", "/v1/contacts", nil, apitype.AddContactRequest{Link: link, Name: name}, &v)
}

// SafetyNumber returns the safety number shared with a contact.
func (c *Client) SafetyNumber(ctx context.Context, contact string) (apitype.SafetyNumber, error) {
	var v apitype.SafetyNumber
	return v, c.Do(ctx, "GET", "/v1/verify", url.Values{"contact": {contact}}, nil, &v)
}

// Verify marks a contact verified (after comparing safety numbers).
func (c *Client) Verify(ctx context.Context, contact string) (apitype.SafetyNumber, error) {
	var v apitype.SafetyNumber
	return v, c.Do(ctx, "POST", "/v1/verify", nil, apitype.VerifyRequest{Contact: contact, Confirm: true}, &v)
}

// Send queues a message; it returns once the message is stored (pending).
func (c *Client) Send(ctx context.Context, to, text string) (apitype.Message, error) {
	var v apitype.Message
	return v, c.Do(ctx, "POST", "/v1/messages", nil, apitype.SendRequest{To: to, Text: text}, &v)
}

// SendWithID is Send with a caller-chosen id (32 hex digits): retrying with
// the same id never stores the message twice.
func (c *Client) SendWithID(ctx context.Context, to, text, id string) (apitype.Message, error) {
	var v apitype.Message
	return v, c.Do(ctx, "POST", "/v1/messages", nil, apitype.SendRequest{To: to, Text: text, ID: id}, &v)
}

// Log returns the last limit messages of a conversation, oldest first.
func (c *Client) Log(ctx context.Context, conv string, limit int) ([]apitype.Message, error) {
	var v []apitype.Message
	q := url.Values{"conv": {conv}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return v, c.Do(ctx, "GET", "/v1/messages", q, nil, &v)
}

// LogBefore returns up to limit messages of a conversation that come
// before the message with id before, oldest first: the previous page.
func (c *Client) LogBefore(ctx context.Context, conv, before string, limit int) ([]apitype.Message, error) {
	var v []apitype.Message
	q := url.Values{"conv": {conv}, "before": {before}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return v, c.Do(ctx, "GET", "/v1/messages", q, nil, &v)
}

// Search runs a full-text search over the history.
func (c *Client) Search(ctx context.Context, text string, limit int) ([]apitype.Message, error) {
	var v []apitype.Message
	q := url.Values{"q": {text}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return v, c.Do(ctx, "GET", "/v1/search", q, nil, &v)
}

// Conversations lists conversations with unread counts, most recent first.
func (c *Client) Conversations(ctx context.Context) ([]apitype.Conversation, error) {
	var v []apitype.Conversation
	return v, c.Do(ctx, "GET", "/v1/conversations", nil, nil, &v)
}

// MarkRead marks a conversation read.
func (c *Client) MarkRead(ctx context.Context, conv string) error {
	return c.Do(ctx, "POST", "/v1/read", url.Values{"conv": {conv}}, nil, nil)
}

// Reset drops the E2E session with a contact; the next message starts a new one.
func (c *Client) Reset(ctx context.Context, contact string) error {
	return c.Do(ctx, "POST", "/v1/reset", nil, apitype.ResetRequest{Contact: contact}, nil)
}

// Events streams events until ctx ends or the node stops; fn is called for
// each one, and a non-nil error from fn stops the stream.
func (c *Client) Events(ctx context.Context, fn func(apitype.Event) error) error {
	return c.EventsSince(ctx, time.Time{}, fn)
}

// EventsSince is Events that first replays the messages the node stored
// after since (when since is not zero). When the stream ends without ctx
// ending -- the node stopped, or dropped a client that fell behind -- it
// returns an error wrapping ErrNodeGone; a caller that finds the node still
// answering may reconnect from the last event's time.
func (c *Client) EventsSince(ctx context.Context, since time.Time, fn func(apitype.Event) error) error {
	var q url.Values
	if !since.IsZero() {
		q = url.Values{"since": {since.UTC().Format(time.RFC3339Nano)}}
	}
	resp, err := c.Open(ctx, "GET", "/v1/events", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev apitype.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w (%s): event stream: %v", ErrNodeGone, c.home, err)
	}
	return fmt.Errorf("%w (%s): the event stream ended", ErrNodeGone, c.home)
}
