package mailbox_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/mailbox"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

func deposit(tag, blob []byte) *wirepb.MailboxRequest {
	return &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.Deposit{Tag: tag, Blob: blob}}}
}

func fetch(keys ...[]byte) *wirepb.MailboxRequest {
	return &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Fetch{Fetch: &wirepb.Fetch{Tags: keys}}}
}

func wantRefused(t *testing.T, err error, status wirepb.MailboxStatus, reason string) {
	t.Helper()
	var re *mailbox.RefusedError
	if !errors.As(err, &re) || re.Status != status || !strings.Contains(re.Reason, reason) {
		t.Fatalf("got %v, want %s containing %q", err, status, reason)
	}
}

// rawRequest writes b on a fresh mailbox stream and reads the response.
func rawRequest(t *testing.T, from *peertest.Running, to peer.ID, b []byte) *wirepb.MailboxResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := from.Host().NewStream(ctx, to, wire.ProtocolMailbox)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	go func() { st.Write(b); st.CloseWrite() }()
	var resp wirepb.MailboxResponse
	if err := wire.ReadFrame(st, wire.MaxMailboxResponse, &resp); err != nil {
		t.Fatal(err)
	}
	return &resp
}

// TestAbuseIsRefused: strangers, deposits under unregistered tags, floods,
// oversized, malformed and foreign fetches are refused with a clear error,
// and bob's items survive them.
func TestAbuseIsRefused(t *testing.T) {
	ctx := context.Background()
	m := peertest.Start(t, peertest.Config(t, peertest.Home(t)), nil)
	bob := peertest.Start(t, peertest.Config(t, peertest.Home(t), m.Addr()), nil)
	carol := peertest.Start(t, peertest.Config(t, peertest.Home(t), m.Addr()), nil)
	stranger := peertest.Start(t, peertest.Config(t, peertest.Home(t), m.Addr()), nil)
	befriend(t, m, bob, "bob")
	befriend(t, m, carol, "carol")
	if err := m.Mailbox().Enable(ctx, true, 3); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*peertest.Running{bob, carol, stranger} {
		if err := r.Host().Connect(ctx, m.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	mid := m.Host().ID()

	// bob's secret; bob registers today's tag by fetching with its
	// preimage, then a stranger (anyone: depositors are anonymous)
	// deposits three items under it.
	var secret mailbox.Secret
	copy(secret[:], bytes.Repeat([]byte{7}, 32))
	day := mailbox.DayOf(time.Now())
	tag := secret.Tag(mid, day)
	k := secret.FetchKey(mid, day)
	if resp, err := bob.Mailbox().Request(ctx, mid, fetch(k[:])); err != nil || len(resp.Items) != 0 {
		t.Fatalf("registering fetch: %d items, %v", len(resp.GetItems()), err)
	}
	for i := range 3 {
		blob, err := secret.Seal(bytes.Repeat([]byte{byte(i)}, 16), []byte("envelope"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stranger.Mailbox().Request(ctx, mid, deposit(tag[:], blob)); err != nil {
			t.Fatalf("deposit %d: %v", i, err)
		}
		// Idempotent: the same frame again is OK and stored once.
		if _, err := stranger.Mailbox().Request(ctx, mid, deposit(tag[:], blob)); err != nil {
			t.Fatalf("re-deposit %d: %v", i, err)
		}
	}
	if got := stored(t, m); got != 3 {
		t.Fatalf("stored %d, want 3", got)
	}

	t.Run("unregistered tag", func(t *testing.T) {
		other := secret.Tag(mid, day-30) // a tag nobody registered
		for _, r := range []*peertest.Running{stranger, carol} {
			_, err := r.Mailbox().Request(ctx, mid, deposit(other[:], []byte("x")))
			wantRefused(t, err, wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "unregistered tag")
		}
	})
	t.Run("non-contact cannot register", func(t *testing.T) {
		var s2 mailbox.Secret
		copy(s2[:], bytes.Repeat([]byte{8}, 32))
		k2, t2 := s2.FetchKey(mid, day), s2.Tag(mid, day)
		_, err := stranger.Mailbox().Request(ctx, mid, fetch(k2[:]))
		wantRefused(t, err, wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "serves only its owner's contacts")
		_, err = stranger.Mailbox().Request(ctx, mid, deposit(t2[:], []byte("x")))
		wantRefused(t, err, wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "unregistered tag")
	})
	t.Run("non-contact fetch", func(t *testing.T) {
		k := secret.FetchKey(mid, day)
		_, err := stranger.Mailbox().Request(ctx, mid, fetch(k[:]))
		wantRefused(t, err, wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "serves only its owner's contacts")
	})
	t.Run("over quota", func(t *testing.T) {
		// The quota follows the tag, whoever deposits.
		for _, r := range []*peertest.Running{stranger, carol, bob} {
			_, err := r.Mailbox().Request(ctx, mid, deposit(tag[:], []byte("a fourth blob")))
			wantRefused(t, err, wirepb.MailboxStatus_MAILBOX_STATUS_QUOTA_EXCEEDED, "quota exceeded")
		}
	})
	t.Run("oversized blob", func(t *testing.T) {
		_, err := carol.Mailbox().Request(ctx, mid, deposit(tag[:], make([]byte, wire.MaxEnvelopeSize+1)))
		wantRefused(t, err, wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "invalid request")
	})
	t.Run("oversized frame", func(t *testing.T) {
		b := binary.AppendUvarint(nil, wire.MaxMailboxRequest+1)
		b = append(b, make([]byte, 1024)...)
		resp := rawRequest(t, carol, mid, b)
		if resp.Status != wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED || !strings.Contains(resp.Error, "request too large") {
			t.Fatalf("got %s %q", resp.Status, resp.Error)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		resp := rawRequest(t, carol, mid, append(binary.AppendUvarint(nil, 4), 0xff, 0xff, 0xff, 0xff))
		if resp.Status != wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED || !strings.Contains(resp.Error, "malformed") {
			t.Fatalf("got %s %q", resp.Status, resp.Error)
		}
	})
	t.Run("bad tag", func(t *testing.T) {
		_, err := carol.Mailbox().Request(ctx, mid, deposit([]byte("short"), []byte("x")))
		wantRefused(t, err, wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "invalid request")
	})
	t.Run("other version", func(t *testing.T) {
		var buf bytes.Buffer
		if err := wire.WriteFrame(&buf, &wirepb.MailboxRequest{Version: 2, Op: fetch(tag[:]).Op}); err != nil {
			t.Fatal(err)
		}
		resp := rawRequest(t, carol, mid, buf.Bytes())
		if resp.Status != wirepb.MailboxStatus_MAILBOX_STATUS_UNSUPPORTED {
			t.Fatalf("got %s %q", resp.Status, resp.Error)
		}
	})
	t.Run("fetch with the tags themselves", func(t *testing.T) {
		_, err := carol.Mailbox().Request(ctx, mid, fetch(tag[:]))
		wantRefused(t, err, wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "present the fetch keys")
	})
	t.Run("fetch with guessed keys", func(t *testing.T) {
		resp, err := carol.Mailbox().Request(ctx, mid, fetch(bytes.Repeat([]byte{9}, 32)))
		if err != nil || len(resp.Items) != 0 {
			t.Fatalf("got %v items, %v", len(resp.GetItems()), err)
		}
	})
	t.Run("delete with guessed ids", func(t *testing.T) {
		_, err := carol.Mailbox().Request(ctx, mid, &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Delete{
			Delete: &wirepb.Delete{Ids: [][]byte{bytes.Repeat([]byte{1}, 16)}}}})
		if err != nil {
			t.Fatal(err)
		}
	})

	// Nothing of bob's was lost or revealed: he fetches all three.
	resp, err := bob.Mailbox().Request(ctx, mid, fetch(k[:]))
	if err != nil || len(resp.Items) != 3 {
		t.Fatalf("bob fetched %d items, %v", len(resp.GetItems()), err)
	}
	for i, it := range resp.Items {
		id, env, err := secret.Open(it.Blob)
		if err != nil || id[0] != byte(i) || string(env) != "envelope" {
			t.Fatalf("item %d: %x %q %v", i, id, env, err)
		}
	}
}
