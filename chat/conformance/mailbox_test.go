package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/mailbox"
	"github.com/parley-im/parley/chat/wire"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// The tests in this file check "Mailboxes" of PROTOCOL.md against a node
// that serves a mailbox for its contacts (`parley mailbox enable`), from
// bare hosts: the recipient R (a contact of the node), an anonymous
// depositor D (a fresh identity, as every deposit round uses) and a
// stranger S.

// mailboxNode starts a node serving its contacts with a per-tag quota of
// quota items, and a recipient host that is its contact.
func mailboxNode(t *testing.T, quota int) (node *peertest.Running, r host.Host) {
	t.Helper()
	node = startNode(t)
	if err := node.Mailbox().Enable(context.Background(), true, quota); err != nil {
		t.Fatal(err)
	}
	r = bareHost(t, node)
	if _, err := node.Chat().AddContact(context.Background(), r.ID().String(), "recipient"); err != nil {
		t.Fatal(err)
	}
	return node, r
}

// bareHost is a fresh identity connected to node.
func bareHost(t *testing.T, node *peertest.Running) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Connect(context.Background(), node.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	return h
}

// mailboxRaw writes b on a fresh /parley/mailbox/1 stream and reads the
// one response.
func mailboxRaw(t *testing.T, h host.Host, node *peertest.Running, b []byte) *wirepb.MailboxResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := h.NewStream(ctx, node.Host().ID(), wire.ProtocolMailbox)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { st.Write(b); st.CloseWrite() }()
	var resp wirepb.MailboxResponse
	if err := wire.ReadFrame(st, wire.MaxMailboxResponse, &resp); err != nil {
		t.Fatalf("reading the mailbox response: %v", err)
	}
	if err := wire.ValidateMailboxResponse(&resp); err != nil {
		t.Fatalf("the node's response breaks the .proto rules: %v", err)
	}
	return &resp
}

func mailboxReq(t *testing.T, h host.Host, node *peertest.Running, req *wirepb.MailboxRequest) *wirepb.MailboxResponse {
	t.Helper()
	if req.Version == 0 {
		req.Version = 1
	}
	var b bytes.Buffer
	if err := wire.WriteFrame(&b, req); err != nil {
		t.Fatal(err)
	}
	return mailboxRaw(t, h, node, b.Bytes())
}

func depositReq(tag, blob []byte) *wirepb.MailboxRequest {
	return &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.Deposit{Tag: tag, Blob: blob}}}
}

func fetchReq(keys ...[]byte) *wirepb.MailboxRequest {
	return &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Fetch{Fetch: &wirepb.Fetch{Tags: keys}}}
}

func deleteReq(ids ...[]byte) *wirepb.MailboxRequest {
	return &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Delete{Delete: &wirepb.Delete{Ids: ids}}}
}

func wantMailbox(t *testing.T, what string, resp *wirepb.MailboxResponse, status wirepb.MailboxStatus, reason string) {
	t.Helper()
	if resp.Status != status || !strings.Contains(resp.Error, reason) {
		t.Fatalf("%s: %v %q, want %v with %q", what, resp.Status, resp.Error, status, reason)
	}
}

func randomSecret(t *testing.T) mailbox.Secret {
	var s mailbox.Secret
	rand.Read(s[:])
	return s
}

// TestMailboxWhoMayUse checks "Who may use a mailbox, registration,
// quotas, TTL": a stranger's Fetch and Delete are refused; a deposit under
// a tag nobody registered is refused; a contact's Fetch registers the tags
// of the keys it presents, after which an anonymous deposit under such a
// tag is taken (the positive control of the same deposit).
func TestMailboxWhoMayUse(t *testing.T) {
	node, r := mailboxNode(t, 3)
	stranger, depositor := bareHost(t, node), bareHost(t, node)
	m := node.Host().ID()
	s := randomSecret(t)
	day := mailbox.DayOf(time.Now())
	k, tag := s.FetchKey(m, day), s.Tag(m, day)
	blob, err := s.Seal(newID(), []byte("envelope"))
	if err != nil {
		t.Fatal(err)
	}

	wantMailbox(t, "a stranger's fetch", mailboxReq(t, stranger, node, fetchReq(k[:])),
		wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "not served: this mailbox serves only its owner's contacts")
	wantMailbox(t, "a stranger's delete", mailboxReq(t, stranger, node, deleteReq(newID())),
		wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "not served: this mailbox serves only its owner's contacts")
	wantMailbox(t, "a deposit under an unregistered tag", mailboxReq(t, depositor, node, depositReq(tag[:], blob)),
		wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "unregistered tag")

	// R registers today's tag by fetching with its preimage; nothing is
	// there yet.
	if resp := mailboxReq(t, r, node, fetchReq(k[:])); resp.Status != wirepb.MailboxStatus_MAILBOX_STATUS_OK || len(resp.Items) != 0 {
		t.Fatalf("registering fetch: %v %q, %d items", resp.Status, resp.Error, len(resp.Items))
	}
	wantMailbox(t, "the same deposit after registration", mailboxReq(t, depositor, node, depositReq(tag[:], blob)),
		wirepb.MailboxStatus_MAILBOX_STATUS_OK, "")
}

// TestMailboxDepositFetchDelete checks "Deposit" and "Fetch and delete":
// deposits are idempotent per blob; a Fetch presents fetch keys and gets
// the item with its tag and blob unchanged; presenting the stored tag
// itself is refused; Delete removes by id; a blob deposited again after
// its delivery (within the TTL) is answered OK and not stored again.
func TestMailboxDepositFetchDelete(t *testing.T) {
	node, r := mailboxNode(t, 10)
	depositor := bareHost(t, node)
	m := node.Host().ID()
	s := randomSecret(t)
	day := mailbox.DayOf(time.Now())
	k, tag := s.FetchKey(m, day), s.Tag(m, day)
	mailboxReq(t, r, node, fetchReq(k[:]))
	blob, err := s.Seal(newID(), []byte("envelope"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		wantMailbox(t, "deposit", mailboxReq(t, depositor, node, depositReq(tag[:], blob)), wirepb.MailboxStatus_MAILBOX_STATUS_OK, "")
	}
	resp := mailboxReq(t, r, node, fetchReq(k[:]))
	if resp.Status != wirepb.MailboxStatus_MAILBOX_STATUS_OK || len(resp.Items) != 1 {
		t.Fatalf("fetch after two identical deposits: %v %q, %d items (want 1)", resp.Status, resp.Error, len(resp.Items))
	}
	it := resp.Items[0]
	if !bytes.Equal(it.Tag, tag[:]) || !bytes.Equal(it.Blob, blob) || len(it.Id) != wire.IDSize || it.ReceivedAtMs <= 0 {
		t.Fatalf("item: tag %x blob equal %v id %d bytes received %d", it.Tag, bytes.Equal(it.Blob, blob), len(it.Id), it.ReceivedAtMs)
	}
	wantMailbox(t, "a fetch presenting the tag itself", mailboxReq(t, r, node, fetchReq(tag[:])),
		wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "present the fetch keys (tag preimages) of the recipient, not the tags")

	wantMailbox(t, "delete", mailboxReq(t, r, node, deleteReq(it.Id)), wirepb.MailboxStatus_MAILBOX_STATUS_OK, "")
	if resp := mailboxReq(t, r, node, fetchReq(k[:])); len(resp.Items) != 0 {
		t.Fatalf("%d items after delete", len(resp.Items))
	}
	wantMailbox(t, "the delivered blob deposited again", mailboxReq(t, depositor, node, depositReq(tag[:], blob)), wirepb.MailboxStatus_MAILBOX_STATUS_OK, "")
	if resp := mailboxReq(t, r, node, fetchReq(k[:])); len(resp.Items) != 0 {
		t.Fatalf("a delivered blob was stored again: %d items", len(resp.Items))
	}
}

// TestMailboxTagQuota checks the per-tag quota: with `--quota 3`, the
// fourth distinct deposit under one tag is QUOTA_EXCEEDED, and deleting
// does not return quota; another tag is unaffected.
func TestMailboxTagQuota(t *testing.T) {
	node, r := mailboxNode(t, 3)
	depositor := bareHost(t, node)
	m := node.Host().ID()
	day := mailbox.DayOf(time.Now())
	s, other := randomSecret(t), randomSecret(t)
	k, tag := s.FetchKey(m, day), s.Tag(m, day)
	ko, tagOther := other.FetchKey(m, day), other.Tag(m, day)
	mailboxReq(t, r, node, fetchReq(k[:], ko[:]))
	seal := func(s mailbox.Secret) []byte {
		b, err := s.Seal(newID(), []byte("envelope"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for range 3 {
		wantMailbox(t, "deposit within quota", mailboxReq(t, depositor, node, depositReq(tag[:], seal(s))), wirepb.MailboxStatus_MAILBOX_STATUS_OK, "")
	}
	wantMailbox(t, "the fourth deposit", mailboxReq(t, depositor, node, depositReq(tag[:], seal(s))),
		wirepb.MailboxStatus_MAILBOX_STATUS_QUOTA_EXCEEDED, "quota exceeded: each recipient tag may receive 3 items")
	resp := mailboxReq(t, r, node, fetchReq(k[:]))
	var ids [][]byte
	for _, it := range resp.Items {
		ids = append(ids, it.Id)
	}
	mailboxReq(t, r, node, deleteReq(ids...))
	wantMailbox(t, "a deposit after deleting", mailboxReq(t, depositor, node, depositReq(tag[:], seal(s))),
		wirepb.MailboxStatus_MAILBOX_STATUS_QUOTA_EXCEEDED, "quota exceeded")
	wantMailbox(t, "another tag", mailboxReq(t, depositor, node, depositReq(tagOther[:], seal(other))), wirepb.MailboxStatus_MAILBOX_STATUS_OK, "")
}

// TestMailboxMalformed checks "Requests larger than 128 KiB, malformed,
// with invalid fields, or of another version are answered REJECTED (or
// UNSUPPORTED) with the reason", each on its own stream, and that the
// node keeps serving afterwards.
func TestMailboxMalformed(t *testing.T) {
	node, r := mailboxNode(t, 3)
	depositor := bareHost(t, node)
	frame := func(req *wirepb.MailboxRequest) []byte {
		body, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		return append(uvarint(len(body)), body...)
	}
	tag := make([]byte, wire.TagSize)
	var tooMany [][]byte
	for i := range wire.MaxFetchTags + 1 {
		k := make([]byte, wire.TagSize)
		k[0] = byte(i)
		tooMany = append(tooMany, k)
	}
	cases := []struct {
		name   string
		raw    []byte
		status wirepb.MailboxStatus
		reason string
	}{
		{"another version", frame(&wirepb.MailboxRequest{Version: 2, Op: depositReq(tag, []byte{1}).Op}), wirepb.MailboxStatus_MAILBOX_STATUS_UNSUPPORTED, "version"},
		{"over 128 KiB", append(uvarint(wire.MaxMailboxRequest+1), make([]byte, 64)...), wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "request too large: the limit is 131072 bytes"},
		{"not protobuf", append(uvarint(3), 0xff, 0xff, 0xff), wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "malformed request"},
		{"no operation", frame(&wirepb.MailboxRequest{Version: 1}), wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "invalid request"},
		{"short tag", frame(&wirepb.MailboxRequest{Version: 1, Op: depositReq(tag[:5], []byte{1}).Op}), wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "invalid request"},
		{"empty blob", frame(&wirepb.MailboxRequest{Version: 1, Op: depositReq(tag, nil).Op}), wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "invalid request"},
		{"65 fetch keys", frame(&wirepb.MailboxRequest{Version: 1, Op: fetchReq(tooMany...).Op}), wirepb.MailboxStatus_MAILBOX_STATUS_REJECTED, "invalid request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantMailbox(t, c.name, mailboxRaw(t, depositor, node, c.raw), c.status, c.reason)
		})
	}
	// Still serving: the recipient's fetch works.
	s := randomSecret(t)
	k := s.FetchKey(node.Host().ID(), mailbox.DayOf(time.Now()))
	wantMailbox(t, "a fetch after the garbage", mailboxReq(t, r, node, fetchReq(k[:])), wirepb.MailboxStatus_MAILBOX_STATUS_OK, "")
}
