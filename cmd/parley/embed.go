package main

import (
	"context"

	"github.com/parley-im/parley/peer"
)

// newNode builds a node with every service of a user node attached.
func newNode(ctx context.Context, cfg peer.Config) (*peer.Node, error) {
	return peer.New(ctx, cfg)
}
