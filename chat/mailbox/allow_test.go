package mailbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/parley-im/parley/chat/wire"
	ppeer "github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/identity"
	"github.com/parley-im/parley/peer/peertest"
)

// TestMailboxOnAllowlistedNetwork: the documented private setup, a swarm
// key and an allowlist naming the three nodes. bob's bootstrap mailbox
// admits alice's deposits, which come from throwaway identities that no
// allowlist names, and bob gets them after alice is gone. The allowlist
// is not opened to anything else: a stranger holding the swarm key
// reaches the mailbox protocol of the mailbox node only, and no other
// protocol there; a node that serves no mailbox still refuses it.
func TestMailboxOnAllowlistedNetwork(t *testing.T) {
	const n = 3
	ctx := context.Background()
	key := swarmKey(t)
	homes := map[string]string{}
	var ids []string
	for _, name := range []string{"m", "alice", "bob"} {
		homes[name] = peertest.Home(t)
		if err := os.MkdirAll(homes[name], 0o700); err != nil {
			t.Fatal(err)
		}
		id, _, err := identity.LoadOrCreate(homes[name])
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id.PeerID().String())
	}
	allow := filepath.Join(t.TempDir(), "allow")
	if err := os.WriteFile(allow, []byte(strings.Join(ids, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgOf := func(name string, boot ...string) ppeer.Config {
		c := peertest.Config(t, homes[name], boot...)
		c.SwarmKey, c.Allowlist = key, allow
		return c
	}
	mcfg := cfgOf("m")
	mcfg.Role, mcfg.Mailbox = ppeer.RoleBootstrap, true
	m := peertest.Start(t, mcfg, nil)
	alice := peertest.Start(t, cfgOf("alice", m.Addr()), nil)
	bob := peertest.Start(t, cfgOf("bob", m.Addr()), nil)
	peertest.Eventually(t, 30*time.Second, "bob uses the bootstrap mailbox", func() bool {
		return len(bob.Mailbox().Mailboxes()) == 1
	})
	befriend(t, alice, bob, "bob")
	befriend(t, bob, alice, "alice")
	if err := alice.Host().Connect(ctx, bob.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	aev, cancel := alice.Chat().Subscribe()
	defer cancel()
	first := send(t, alice, "bob", "before")
	waitFor(t, aev, "first message delivered", func(ev apitype.Event) bool {
		return ev.Type == "receipt" && ev.Message.ID == first.ID && ev.Message.State == apitype.StateDelivered
	})
	peertest.Eventually(t, 30*time.Second, "alice learns bob's mailbox", func() bool {
		l, err := alice.Mailbox().ListOf(ctx, bob.Host().ID())
		return err == nil && len(l) == 1
	})

	bob.Stop(t)
	for i := range n {
		send(t, alice, "bob", fmt.Sprintf("offline %d", i))
	}
	peertest.Eventually(t, 60*time.Second, "alice's deposits reach the mailbox", func() bool {
		alice.Chat().Kick(bob.Host().ID())
		return stored(t, m) >= n
	})
	alice.Stop(t)
	var bev <-chan apitype.Event
	bob2 := peertest.Start(t, cfgOf("bob", m.Addr()), func(nd *ppeer.Node) {
		var cancel func()
		bev, cancel = nd.Chat().Subscribe()
		t.Cleanup(cancel)
	})
	waitMessages(t, bev, n)

	// A stranger with the swarm key (a throwaway identity, as a depositor
	// has): admitted by the mailbox node for the mailbox protocol only.
	psk, err := ppeer.LoadSwarmKey(key)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.PrivateNetwork(psk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// bob's node serves his contacts as a mailbox too: the same holds
	// there, where the chat protocols are served.
	if err := bob2.Mailbox().Enable(ctx, true, 0); err != nil {
		t.Fatal(err)
	}
	for _, target := range []*peertest.Running{m, bob2} {
		tid := target.Host().ID()
		if err := h.Connect(ctx, target.AddrInfo()); err != nil {
			t.Fatalf("a mailbox node refused a depositor: %v", err)
		}
		if _, err := h.NewStream(ctx, tid, wire.ProtocolMailbox); err != nil {
			t.Fatalf("control: mailbox protocol refused to a depositor: %v", err)
		}
		for _, proto := range []protocol.ID{wire.ProtocolDM, wire.ProtocolPrekeys, wire.ProtocolRoomSync, ping.ID,
			protocol.ID(string(mustPrefix(t, target)) + "/kad/1.0.0")} {
			if !slices.Contains(target.Host().Mux().Protocols(), proto) {
				continue // not served there at all
			}
			st, err := h.NewStream(ctx, tid, proto)
			refused := err != nil
			if !refused {
				// Negotiation may finish before the reset arrives: the
				// first read must find the stream reset (not time out).
				st.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err = st.Read(make([]byte, 1))
				refused = errors.Is(err, network.ErrReset)
				st.Close()
			}
			if !refused {
				t.Errorf("a depositor opened %s on %s (%v)", proto, tid, err)
			}
		}
	}
	// alice's node serves no mailbox: no stranger gets in.
	alice2 := peertest.Start(t, cfgOf("alice", m.Addr()), nil)
	aid := alice2.Host().ID()
	// The handshake may complete on the dialer's side before alice's
	// gater closes the connection, so look for a working stream.
	err = h.Connect(ctx, peer.AddrInfo{ID: aid, Addrs: alice2.Host().Addrs()})
	if err == nil {
		var st network.Stream
		if st, err = h.NewStream(ctx, aid, wire.ProtocolMailbox, ping.ID); err == nil {
			st.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = st.Read(make([]byte, 1))
			st.Close()
		}
	}
	if err == nil {
		t.Fatal("a node that serves no mailbox let a stranger in")
	}
	if alice2.Host().Network().Connectedness(h.ID()) == network.Connected {
		t.Fatal("a node that serves no mailbox keeps a stranger's connection")
	}
}

// mustPrefix returns the DHT protocol prefix of r's private network.
func mustPrefix(t *testing.T, r *peertest.Running) protocol.ID {
	t.Helper()
	for _, p := range r.Host().Mux().Protocols() {
		if s := string(p); strings.HasSuffix(s, "/kad/1.0.0") {
			return protocol.ID(strings.TrimSuffix(s, "/kad/1.0.0"))
		}
	}
	t.Fatal("no DHT protocol")
	return ""
}
