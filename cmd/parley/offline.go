package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/parley-im/parley/chat"
	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/client"
	"github.com/parley-im/parley/peer/identity"
)

// offline is a home read while no node runs in it: the verbs that only
// read (id, invite, contacts, log, search, verify) fall back to it when the
// node does not answer. It opens the database read-only and takes no lock,
// so a node may start meanwhile.
type offline struct {
	*chat.Reader
	db      *store.DB
	self    peer.ID
	network string
	listen  []ma.Multiaddr
}

// openOffline opens home for reading.
func openOffline(ctx context.Context, home string) (*offline, error) {
	id, err := identity.Load(filepath.Join(home, identity.FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, noNodeEver(home)
	}
	if err != nil {
		return nil, err
	}
	db, err := store.OpenReadOnly(ctx, filepath.Join(home, store.FileName))
	if errors.Is(err, store.ErrNoDatabase) {
		return nil, noNodeEver(home)
	}
	if err != nil {
		return nil, err
	}
	o := &offline{Reader: chat.NewReader(db, id.PeerID()), db: db, self: id.PeerID(), network: "public"}
	o.SetIdentityKey(id.Ed25519())
	if v, ok, err := db.GetMeta(ctx, "network"); err == nil && ok {
		o.network = v
	}
	if v, ok, err := db.GetMeta(ctx, "listen"); err == nil && ok {
		for _, s := range strings.Split(v, "\n") {
			if a, err := ma.NewMultiaddr(s); err == nil {
				o.listen = append(o.listen, a)
			}
		}
	}
	return o, nil
}

// noNodeEver is the error for a home where no node has ever run.
func noNodeEver(home string) error {
	return fmt.Errorf("%w in %s, and none has ever run there (start one with `parley up`)", client.ErrNoNode, home)
}

func (o *offline) Close() error { return o.db.Close() }

// addrs are the addresses the node listened on when it last ran, with the
// unspecified ones (0.0.0.0, ::) expanded to this machine's interfaces.
func (o *offline) addrs() []ma.Multiaddr {
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return o.listen
	}
	out, err := manet.ResolveUnspecifiedAddresses(o.listen, ifaces)
	if err != nil {
		return o.listen
	}
	return out
}

func (o *offline) ID() apitype.ID {
	p2p := ma.StringCast("/p2p/" + o.self.String())
	id := apitype.ID{PeerID: o.self.String(), Network: o.network, Version: buildVersion(), Addrs: []string{}}
	for _, a := range o.addrs() {
		id.Addrs = append(id.Addrs, a.Encapsulate(p2p).String())
	}
	return id
}

// readOnly calls online; if no node answers in c's home, it opens the home
// read-only and calls off instead.
func readOnly(ctx context.Context, c *client.Client, online func() error, off func(o *offline) error) error {
	err := online()
	if !errors.Is(err, client.ErrNoNode) {
		return err
	}
	o, oerr := openOffline(ctx, c.Home())
	if oerr != nil {
		return oerr
	}
	defer o.Close()
	return off(o)
}
