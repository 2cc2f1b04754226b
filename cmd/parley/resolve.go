package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/peer/client"
)

// resolvePeer turns a contact name or a peer ID into a peer ID, with a
// clear error (and the closest contact name) for anything else.
func resolvePeer(ctx context.Context, c *client.Client, s string) (string, error) {
	if id, err := lpeer.Decode(s); err == nil {
		return id.String(), nil
	}
	names, err := contactNames(ctx, c)
	if err != nil && !errors.Is(err, client.ErrNoChat) {
		return "", err
	}
	for name, id := range names {
		if strings.EqualFold(name, s) {
			return id, nil
		}
	}
	return "", fmt.Errorf("%q is neither a contact name nor a peer ID%s (see `parley contacts`)", s, suggest(s, keys(names)))
}

// contactNames maps contact names to peer IDs.
func contactNames(ctx context.Context, c *client.Client) (map[string]string, error) {
	cs, err := c.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(cs))
	for _, ct := range cs {
		out[ct.Name] = ct.PeerID
	}
	return out, nil
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// unknownContact improves the node's "unknown contact" answer to a send,
// log or verify to NAME: a room of that name, a peer ID that is not a
// contact, or a contact name close to it.
func unknownContact(ctx context.Context, c *client.Client, to string, err error) error {
	var api *client.APIError
	if !errors.As(err, &api) || api.Status != http.StatusNotFound || strings.HasPrefix(to, "#") {
		return err
	}
	if rooms, rerr := c.Rooms(ctx); rerr == nil {
		for _, r := range rooms {
			if strings.EqualFold(strings.TrimPrefix(r.Name, "#"), to) {
				return fmt.Errorf("no contact %q, but you are in the room #%s: rooms take a '#' (parley send '#%s' ...)", to, strings.TrimPrefix(r.Name, "#"), strings.TrimPrefix(r.Name, "#"))
			}
		}
	}
	if id, perr := lpeer.Decode(to); perr == nil {
		return fmt.Errorf("%s is not a contact; add it first: parley add %s --name NAME", id, id)
	}
	if names, nerr := contactNames(ctx, c); nerr == nil {
		if s := closest(to, keys(names)); s != "" {
			return fmt.Errorf("unknown contact %q; did you mean %q? (see `parley contacts`)", to, s)
		}
	}
	return fmt.Errorf("unknown contact %q (add it with `parley add LINK --name %s`; see `parley contacts`)", to, to)
}
