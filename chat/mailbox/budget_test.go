package mailbox

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-im/parley/chat/store"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
)

func testHost(t *testing.T, ip string) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/"+ip+"/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestRequestBudgetPerIP: depositors are throwaway identities, so a
// flood comes under ever new peer IDs from one address. The address's
// budget stops it before any request is read, and a depositor at another
// address is still served (positive control).
func TestRequestBudgetPerIP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	mh := testHost(t, "127.0.0.1")
	srv := &server{host: mh, db: db, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	if err := srv.loadKey(ctx); err != nil {
		t.Fatal(err)
	}
	const burst = 5
	lim := Limits{RequestBurst: burst, RequestEvery: time.Hour}.withDefaults()
	srv.limits.Store(&lim)
	srv.start(ctx)
	defer srv.stop()
	info := peer.AddrInfo{ID: mh.ID(), Addrs: mh.Addrs()}

	var sec Secret
	depositFrom := func(ip string, i int) *wirepb.MailboxResponse {
		h := testHost(t, ip) // a new identity for every deposit
		defer h.Close()
		if err := h.Connect(ctx, info); err != nil {
			t.Fatal(err)
		}
		tag := sec.Tag(mh.ID(), DayOf(time.Now()))
		blob, err := sec.Seal(make([]byte, 16), []byte{byte(i), 1})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := roundTrip(ctx, h, mh.ID(), &wirepb.MailboxRequest{Version: wire.Version,
			Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.Deposit{Tag: tag[:], Blob: blob}}})
		if resp == nil { // no answer at all; a refusal comes with one
			t.Fatal(err)
		}
		return resp
	}
	ok, busy := 0, 0
	for i := range 3 * burst {
		switch r := depositFrom("127.0.0.1", i); r.Status {
		case wirepb.MailboxStatus_MAILBOX_STATUS_OK:
			ok++
		case wirepb.MailboxStatus_MAILBOX_STATUS_RETRY_LATER:
			busy++
		default:
			t.Fatalf("deposit %d: %s %s", i, r.Status, r.Error)
		}
	}
	if ok != burst || busy != 2*burst {
		t.Fatalf("one address with fresh identities: %d stored, %d refused; want %d and %d", ok, busy, burst, 2*burst)
	}
	if r := depositFrom("127.0.0.2", 99); r.Status != wirepb.MailboxStatus_MAILBOX_STATUS_OK {
		t.Fatalf("a depositor at another address: %s %s", r.Status, r.Error)
	}
	if n, _, _ := srv.stored(ctx); n != burst+1 {
		t.Fatalf("stored %d items, want %d", n, burst+1)
	}
}
