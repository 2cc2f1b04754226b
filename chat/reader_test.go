package chat_test

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/chat"
	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/identity"
	"github.com/parley-im/parley/peer/peertest"
)

const offlinePeer = "12D3KooWBtTzK9jkJEtZq8RmtrnFpwRyjXLDCN75rJYanwyMnGzs"

func texts(ms []apitype.Message) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return strings.Join(out, "|")
}

// TestHistoryPagesAndReplay covers what the CLI and the TUI read: prefix
// search, the page before a message, the messages stored since a time.
func TestHistoryPagesAndReplay(t *testing.T) {
	ctx := context.Background()
	alice := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	if _, err := alice.Chat().AddContact(ctx, offlinePeer, "bob"); err != nil {
		t.Fatal(err)
	}
	var sent []apitype.Message
	for _, s := range []string{"hello linux users", "second", "third", "fourth"} {
		sent = append(sent, send(t, alice, "bob", s))
		if s == "second" {
			time.Sleep(2 * time.Millisecond) // received_at is in ms: a clean boundary
		}
	}

	found, err := alice.Chat().Search(ctx, "lin us", 0)
	if err != nil || texts(found) != "hello linux users" {
		t.Fatalf("prefix search: %q, %v", texts(found), err)
	}
	if found, _ := alice.Chat().Search(ctx, "inux", 0); len(found) != 0 {
		t.Errorf("a word's middle matched: %q", texts(found))
	}

	page, err := alice.Chat().LogBefore(ctx, "bob", mustHex(t, sent[3].ID), 2)
	if err != nil || texts(page) != "second|third" {
		t.Fatalf("LogBefore the fourth, 2: %q, %v", texts(page), err)
	}
	if page, _ := alice.Chat().LogBefore(ctx, "bob", mustHex(t, sent[0].ID), 10); len(page) != 0 {
		t.Errorf("a page before the first message: %q", texts(page))
	}
	if _, err := alice.Chat().LogBefore(ctx, "bob", make([]byte, 16), 10); err == nil {
		t.Error("LogBefore an unknown message succeeded")
	}

	all, err := alice.Chat().MessagesSince(ctx, time.Time{})
	if err != nil || len(all) != 4 || all[0].Type != "message" || all[0].Message.Text != "hello linux users" {
		t.Fatalf("MessagesSince(zero): %d events, %v", len(all), err)
	}
	later, err := alice.Chat().MessagesSince(ctx, all[1].Time)
	if err != nil {
		t.Fatal(err)
	}
	var got []apitype.Message
	for _, ev := range later {
		got = append(got, *ev.Message)
	}
	if texts(got) != "third|fourth" {
		t.Fatalf("MessagesSince(second's time) = %q", texts(got))
	}
}

// TestReader reads a live node's database through a read-only handle:
// the same answers as the service, nobody online, and search finding
// messages the node has not indexed yet.
func TestReader(t *testing.T) {
	ctx := context.Background()
	alice := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	if _, err := alice.Chat().AddContact(ctx, offlinePeer, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Chat().SetName(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	send(t, alice, "bob", "indexed later perhaps")
	if _, err := alice.Chat().Search(ctx, "indexed", 0); err != nil { // indexes it
		t.Fatal(err)
	}
	send(t, alice, "bob", "not indexed yet")

	db, err := store.OpenReadOnly(ctx, filepath.Join(alice.Home, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := chat.NewReader(db, alice.Host().ID())
	id, err := identity.Load(filepath.Join(alice.Home, identity.FileName))
	if err != nil {
		t.Fatal(err)
	}
	r.SetIdentityKey(id.Ed25519())

	cs, err := r.Contacts(ctx)
	if err != nil || len(cs) != 1 || cs[0].Name != "bob" || cs[0].Online {
		t.Fatalf("Contacts = %+v, %v", cs, err)
	}
	want, _ := alice.Chat().Log(ctx, "bob", 0)
	got, err := r.Log(ctx, "bob", 0)
	if err != nil || texts(got) != texts(want) {
		t.Fatalf("Log = %q, %v; the service says %q", texts(got), err, texts(want))
	}
	for q, w := range map[string]string{"ind": "not indexed yet|indexed later perhaps", "yet": "not indexed yet", "perh": "indexed later perhaps", "zebra": ""} {
		found, err := r.Search(ctx, q, 0)
		if err != nil || texts(found) != w {
			t.Errorf("Search(%q) = %q, %v; want %q", q, texts(found), err, w)
		}
	}
	sn, err := r.SafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if live, _ := alice.Chat().SafetyNumber(ctx, "bob"); live.Number != sn.Number {
		t.Errorf("safety number %q, the service says %q", sn.Number, live.Number)
	}
	inv, err := r.Invite(ctx, nil)
	if err != nil || inv.Name != "alice" || inv.PeerID != alice.Host().ID().String() || !strings.HasPrefix(inv.Link, "parley://contact/") {
		t.Fatalf("Invite = %+v, %v", inv, err)
	}
	// The offline link is a real one: signed, with a PQXDH bundle that
	// another node accepts.
	carol := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	if c, err := carol.Chat().AddContact(ctx, inv.Link, ""); err != nil || c.ID != alice.Host().ID() {
		t.Fatalf("adding the offline link: %+v, %v", c, err)
	}
	if _, err := r.Log(ctx, "#nosuch", 0); err == nil || !strings.Contains(err.Error(), "no room #nosuch") {
		t.Errorf("Log of an unknown room: %v", err)
	}
	if _, err := r.Log(ctx, "carol", 0); err == nil {
		t.Error("Log of an unknown contact succeeded")
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
