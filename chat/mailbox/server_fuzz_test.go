package mailbox

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

// FuzzServe feeds arbitrary bytes to the request decoder and handler of
// the mailbox: it must answer every input with a valid response and never
// panic.
func FuzzServe(f *testing.F) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(f.TempDir(), "db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	s := &server{db: db, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now, usageKey: make([]byte, 32)}
	lim := Limits{TagItems: 50}.withDefaults()
	s.limits.Store(&lim)
	var sec Secret
	k := sec.FetchKey(peer.ID("mailbox"), DayOf(time.Now()))
	tag := TagOf(k[:])
	blob, _ := sec.Seal(make([]byte, 16), []byte("e"))
	for _, m := range []*wirepb.MailboxRequest{
		{Version: 1, Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.Deposit{Tag: tag[:], Blob: blob}}},
		{Version: 1, Op: &wirepb.MailboxRequest_Fetch{Fetch: &wirepb.Fetch{Tags: [][]byte{k[:]}, Limit: 3}}},
		{Version: 1, Op: &wirepb.MailboxRequest_Delete{Delete: &wirepb.Delete{Ids: [][]byte{make([]byte, 16)}}}},
		{Version: 2},
	} {
		var buf bytes.Buffer
		wire.WriteFrame(&buf, m)
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	remote := peer.ID("fuzzer")
	f.Fuzz(func(t *testing.T, b []byte) {
		resp := s.serve(ctx, remote, bytes.NewReader(b))
		if err := wire.ValidateMailboxResponse(resp); err != nil {
			t.Fatalf("invalid response %v: %v", resp, err)
		}
	})
}
