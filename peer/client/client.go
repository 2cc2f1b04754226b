// Package client is the CLI's client for a running node's local API (see
// peer/localapi). It imports no libp2p package, so the client side of the
// binary stays light.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/parley-im/parley/peer/apitype"
)

// ErrNoNode is returned when no node answers in the home.
var ErrNoNode = errors.New("no parley node is running")

// ErrNodeGone is returned when the node went away during a request: the
// request may or may not have taken effect.
var ErrNodeGone = errors.New("the node went away")

// ErrNoChat is returned for a chat request to a node that has no chat
// service (a bootstrap node).
var ErrNoChat = errors.New("the node does not serve this request")

// APIError is an error reported by the node.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Client talks to one node.
type Client struct {
	home string
	sock string
	http *http.Client
}

// New returns a client for the node whose home is home.
func New(home string) *Client {
	sock := filepath.Join(home, "api.sock")
	return &Client{
		home: home,
		sock: sock,
		http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			DisableCompression: true,
		}},
	}
}

func (c *Client) noNode(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("%w in %s (start one with `parley up`)", ErrNoNode, c.home)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%w (%s): connection lost", ErrNodeGone, c.home)
	}
	return fmt.Errorf("talk to node in %s: %w", c.home, err)
}

// Home returns the home of the node this client talks to.
func (c *Client) Home() string { return c.home }

// Do sends a request with an optional JSON body and decodes the JSON answer
// into out (if non-nil).
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	resp, err := c.Open(ctx, method, path, query, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return c.noNode(err)
		}
		return fmt.Errorf("decode %s answer: %w", path, err)
	}
	return nil
}

// Open sends a request and returns the response for streaming endpoints. The
// caller closes the body. Non-2xx answers become *APIError.
func (c *Client) Open(ctx context.Context, method, path string, query url.Values, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	u := "http://parley" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.noNode(err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e apitype.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/v1/") {
				// No route: the node does not serve this part of the API.
				return nil, fmt.Errorf("%w (%s %s): the node in %s is probably a bootstrap node, which keeps no contacts, messages or rooms; use the home of a `parley up` node", ErrNoChat, method, path, c.home)
			}
			e.Error = fmt.Sprintf("node answered %s", resp.Status)
		}
		return nil, &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

// ID returns the node's identity and addresses.
func (c *Client) ID(ctx context.Context) (apitype.ID, error) {
	var v apitype.ID
	return v, c.Do(ctx, "GET", "/v1/id", nil, nil, &v)
}

// Peers returns the connected peers.
func (c *Client) Peers(ctx context.Context) ([]apitype.Peer, error) {
	var v []apitype.Peer
	return v, c.Do(ctx, "GET", "/v1/peers", nil, nil, &v)
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (apitype.Status, error) {
	var v apitype.Status
	return v, c.Do(ctx, "GET", "/v1/status", nil, nil, &v)
}

// Find looks a peer up in the DHT.
func (c *Client) Find(ctx context.Context, peerID string) (apitype.FindResult, error) {
	var v apitype.FindResult
	return v, c.Do(ctx, "GET", "/v1/find", url.Values{"peer": {peerID}}, nil, &v)
}

// Connect dials a peer by multiaddr.
func (c *Client) Connect(ctx context.Context, addr string) (apitype.ConnectResult, error) {
	var v apitype.ConnectResult
	return v, c.Do(ctx, "POST", "/v1/connect", nil, apitype.ConnectRequest{Addr: addr}, &v)
}
