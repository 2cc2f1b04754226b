package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parley-im/parley/chat"
	"github.com/parley-im/parley/discovery"
	"github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/apitype"
)

func init() {
	register(command{name: "demo", summary: "run a throwaway local network and show discovery, E2E chat and a room", run: runDemo,
		group: "Start",
		long: `Starts several nodes on 127.0.0.1 with their own DHT and temporary homes,
and shows discovery, an end-to-end encrypted exchange and a private room.
Touches nothing outside a temporary directory; exits 0 when all worked.`,
		examples: []string{"parley demo", "parley demo --keep  # keep the homes to look at"}})
}

// demoNode is one node of the demo network.
type demoNode struct {
	name string
	*peer.Node
}

func runDemo(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "demo", false)
	keep := f.Bool("keep", false, "keep the temporary homes and print where they are")
	timeout := f.Duration("timeout", time.Minute, "give up after this `DURATION`")
	pos, err := f.parse(args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return usagef("demo takes no arguments")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usagef("invalid --log-level %q", f.logLevel)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if f.logLevel != "info" {
		logger = newLogger(e.stderr, lvl)
	} else {
		newLogger(io.Discard, slog.LevelError) // keep libp2p quiet
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "parley-demo-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(e.stdout, "homes kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	d := &demo{e: e, start: time.Now(), log: logger, dir: dir}
	err = d.run(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("demo did not finish within %v", *timeout)
	}
	return err
}

type demo struct {
	e     *env
	start time.Time
	log   *slog.Logger
	dir   string
	g     *errgroup.Group
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.e.stdout, "[%5.2fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) startNode(ctx context.Context, name string, role peer.Role, bootstrap []string) (*demoNode, error) {
	mode := discovery.ModeServer
	n, err := peer.New(ctx, peer.Config{
		Home:      filepath.Join(d.dir, name),
		Role:      role,
		Listen:    []string{"/ip4/127.0.0.1/tcp/0"},
		Bootstrap: bootstrap,
		NoPortMap: true,
		DHTMode:   &mode,
		Logger:    d.log.With("node", name),
		Version:   buildVersion(),
	})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d.g.Go(func() error { return n.Run(ctx) })
	return &demoNode{name: name, Node: n}, nil
}

func (d *demo) run(parent context.Context) error {
	ctx, stop := context.WithCancel(parent)
	g, gctx := errgroup.WithContext(ctx)
	d.g = g
	var nodes []*demoNode
	defer func() {
		stop()
		g.Wait()
		for _, n := range nodes {
			n.Close()
		}
	}()

	fmt.Fprintln(d.e.stdout, "parley demo: a throwaway network on 127.0.0.1 (own DHT, no mDNS, temporary homes)")
	boot, err := d.startNode(gctx, "bootstrap", peer.RoleBootstrap, nil)
	if err != nil {
		return err
	}
	nodes = append(nodes, boot)
	bootAddr := boot.IDInfo().Addrs[0]
	d.say("bootstrap node up: %s", bootAddr)
	users := map[string]*demoNode{}
	for _, name := range []string{"alice", "bob", "carol"} {
		n, err := d.startNode(gctx, name, peer.RoleUser, []string{bootAddr})
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
		users[name] = n
		d.say("%-5s up: %s (knows only the bootstrap node)", name, n.Host().ID())
	}
	alice, bob, carol := users["alice"], users["bob"], users["carol"]

	// Discovery: alice looks bob and carol up in the DHT by peer ID alone.
	for _, other := range []*demoNode{bob, carol} {
		info, err := d.findUntil(gctx, alice, other)
		if err != nil {
			return err
		}
		d.say("alice found %s through the DHT at %s", other.name, info)
	}

	// Contacts by bare peer ID: no addresses are exchanged out of band.
	for _, pair := range [][2]*demoNode{{alice, bob}, {bob, alice}, {alice, carol}, {carol, alice}} {
		if _, err := pair[0].Chat().AddContact(gctx, pair[1].Host().ID().String(), pair[1].name); err != nil {
			return err
		}
	}
	sn, err := alice.Chat().SafetyNumber(gctx, "bob")
	if err != nil {
		return err
	}
	d.say("safety number alice ↔ bob: %s", sn.Number)

	exchange := []struct {
		from, to *demoNode
		text     string
	}{
		{alice, bob, "Hi Bob! This went through X3DH and the Double Ratchet."},
		{bob, alice, "Hi Alice, loud and clear. No server saw this."},
		{alice, carol, "Carol, are you there?"},
		{carol, alice, "Here! Found you through the DHT."},
		{bob, alice, "One more, to show the ratchet stepping."},
	}
	for _, x := range exchange {
		if err := d.sendAndWait(gctx, x.from, x.to, x.text); err != nil {
			return err
		}
	}
	if err := d.room(gctx, alice, bob, carol); err != nil {
		return err
	}
	fmt.Fprintln(d.e.stdout, "demo finished: every message was end-to-end encrypted and delivered")
	return nil
}

func (d *demo) findUntil(ctx context.Context, from, to *demoNode) (string, error) {
	for {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := from.Discovery().FindPeer(lctx, to.Host().ID())
		cancel()
		if err == nil && len(info.Addrs) > 0 {
			return info.Addrs[0].String(), nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s could not find %s: %w", from.name, to.name, err)
		}
		// The routing tables are still filling: try again shortly.
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sendAndWait sends text and waits until the sender sees it delivered and
// the recipient has it.
func (d *demo) sendAndWait(ctx context.Context, from, to *demoNode, text string) error {
	sent, cancelSent := from.Chat().Subscribe()
	defer cancelSent()
	got, cancelGot := to.Chat().Subscribe()
	defer cancelGot()
	m, err := from.Chat().Send(ctx, to.name, text)
	if err != nil {
		return err
	}
	d.say("%s → %s: %q", from.name, to.name, text)
	if err := waitEvent(ctx, got, func(ev apitype.Event) bool {
		return ev.Type == "message" && ev.Message.ID == m.ID
	}); err != nil {
		return fmt.Errorf("%s never received the message: %w", to.name, err)
	}
	d.say("  %s decrypted it", to.name)
	if err := waitEvent(ctx, sent, func(ev apitype.Event) bool {
		return ev.Type == "receipt" && ev.Message.ID == m.ID && ev.Message.State == apitype.StateDelivered
	}); err != nil {
		return fmt.Errorf("no delivery receipt from %s: %w", to.name, err)
	}
	d.say("  %s sees ✓✓ delivered (the receipt travelled inside the ratchet)", from.name)
	return nil
}

func waitEvent(ctx context.Context, ch <-chan apitype.Event, ok func(apitype.Event) bool) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, open := <-ch:
			if !open {
				return errors.New("event stream closed")
			}
			if ok(ev) {
				return nil
			}
		}
	}
}

// room shows a private room among the three users (when rooms are available).
func (d *demo) room(ctx context.Context, alice, bob, carol *demoNode) error {
	if alice.Rooms() == nil {
		return nil
	}
	_ = strings.TrimSpace
	_ = chat.MaxTextLen
	members := []*demoNode{alice, bob, carol}
	type sub struct {
		ch     <-chan apitype.Event
		cancel func()
	}
	subs := make([]sub, len(members))
	for i, m := range members {
		ch, cancel := m.Chat().Subscribe()
		defer cancel()
		subs[i] = sub{ch, cancel}
	}
	info, err := alice.Rooms().Create(ctx, "team")
	if err != nil {
		return err
	}
	d.say("alice created private room %s (topic %s…, a random id; keys sealed to each member)", info.Name, info.Topic[:30])
	for _, m := range []*demoNode{bob, carol} {
		if _, err := alice.Rooms().Invite(ctx, "team", m.name); err != nil {
			return err
		}
	}
	// An invitation waits for its invitee's consent: bob and carol accept.
	for i, m := range members[1:] {
		var id string
		invited := func() bool {
			invs, err := m.Rooms().Invites(ctx)
			for _, inv := range invs {
				if err == nil && inv.RoomID == info.ID {
					id = inv.ID
				}
			}
			return id != ""
		}
		if !invited() {
			if err := waitEvent(ctx, subs[i+1].ch, func(ev apitype.Event) bool { return ev.Type == "room" && invited() }); err != nil {
				return fmt.Errorf("%s waiting for the invitation: %w", m.name, err)
			}
		}
		if _, err := m.Rooms().AcceptInvite(ctx, id); err != nil {
			return fmt.Errorf("%s accepting the invitation: %w", m.name, err)
		}
		d.say("  %s accepted alice's invitation (invitations wait for consent)", m.name)
	}
	// Wait until everyone is at the last epoch (3).
	for i, m := range members {
		ready := func() bool {
			info, err := m.Rooms().Info(ctx, "team")
			return err == nil && info.Epoch >= 3
		}
		if !ready() {
			if err := waitEvent(ctx, subs[i].ch, func(ev apitype.Event) bool { return ev.Type == "room" && ready() }); err != nil {
				return fmt.Errorf("%s joining #team: %w", m.name, err)
			}
		}
		d.say("  %s follows the commit chain to epoch 3 (its secret sealed to each member, the confirmation tag checked)", m.name)
	}
	lines := []struct {
		from *demoNode
		text string
	}{
		{alice, "Welcome to #team, everyone."},
		{bob, "Thanks! One hash ratchet per sender, keys erased once used."},
		{carol, "And the relays see only ciphertext."},
	}
	for _, l := range lines {
		m, err := l.from.Rooms().Send(ctx, "#team", l.text)
		if err != nil {
			return err
		}
		d.say("%s → #team: %q", l.from.name, l.text)
		for i, other := range members {
			if other == l.from {
				continue
			}
			if err := waitEvent(ctx, subs[i].ch, func(ev apitype.Event) bool {
				return ev.Type == "message" && ev.Message != nil && ev.Message.ID == m.ID
			}); err != nil {
				return fmt.Errorf("%s waiting for %q: %w", other.name, l.text, err)
			}
			d.say("  %s decrypted it", other.name)
		}
	}
	return nil
}
