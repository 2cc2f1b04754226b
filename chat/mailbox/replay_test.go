package mailbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/mailbox"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// TestFetchKeysBoundToMailbox: bob uses two network mailboxes (which serve
// fetches from anyone); the first is malicious. The fetch keys bob presents
// there are useless at the second: replayed there they fetch nothing, the
// items stay, and bob still gets every message. Positive control: the same
// keys at the mailbox they were made for fetch every item.
func TestFetchKeysBoundToMailbox(t *testing.T) {
	const n = 5
	ctx := context.Background()
	tn := newNet(t, 2, true)
	evil, honest := tn.mailboxes[0], tn.mailboxes[1]
	var raw []byte
	if err := tn.bob.DB().SQL().QueryRow("SELECT secret FROM mailbox_secrets WHERE peer_id = ?",
		tn.alice.Host().ID().String()).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var secret mailbox.Secret
	copy(secret[:], raw)
	tn.sendOffline(n)

	// What bob presents at the evil mailbox: the keys of the days a drain
	// covers, made for that mailbox.
	keysAt := func(m peer.ID) [][]byte {
		var keys [][]byte
		today := mailbox.DayOf(time.Now())
		for d := today - 2; d <= today+2; d++ {
			k := secret.FetchKey(m, d)
			keys = append(keys, k[:])
		}
		return keys
	}
	seen := keysAt(evil.Host().ID())
	fetchAt := func(m peer.ID) []*wirepb.MailboxItem {
		t.Helper()
		resp, err := evil.Mailbox().Request(ctx, m, &wirepb.MailboxRequest{Version: wire.Version,
			Op: &wirepb.MailboxRequest_Fetch{Fetch: &wirepb.Fetch{Tags: seen}}})
		if err != nil {
			t.Fatalf("fetch at %s: %v", m, err)
		}
		return resp.Items
	}
	if got := fetchAt(evil.Host().ID()); len(got) != n {
		t.Fatalf("control: the keys fetch %d items at their own mailbox, want %d", len(got), n)
	}
	if got := fetchAt(honest.Host().ID()); len(got) != 0 {
		t.Fatalf("replayed at another mailbox, bob's keys fetched %d items", len(got))
	}
	if got := stored(t, honest); got != n {
		t.Fatalf("the honest mailbox holds %d items after the replay, want %d", got, n)
	}
	// The evil mailbox drops everything it holds; bob loses nothing.
	if _, err := evil.DB().SQL().Exec("DELETE FROM mailbox_items"); err != nil {
		t.Fatal(err)
	}
	_, bev := restart(t, tn.bob, tn.bootAddrs()...)
	waitMessages(t, bev, n)
}
