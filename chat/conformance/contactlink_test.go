package conformance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/chat/e2e"
	"github.com/parley-im/parley/chat/mailbox"
	"github.com/parley-im/parley/chat/wire/wirepb"
	"github.com/parley-im/parley/peer/peertest"
)

// The tests in this file check "Contact links", "Safety numbers" and the
// parts of "First messages from a link" a foreign client sees: the node's
// own link decoded with the standard library alone, links made by the
// client given to the node (`parley add`, through the node's API, the
// surface where a user pastes a link), and first messages made from a
// link's bundle.

// linkChecksum is "CRC-32 (IEEE) of "parley/link/2 " || kind || u8 version
// || message".
func linkChecksum(kind string, version byte, msg []byte) uint32 {
	return crc32.ChecksumIEEE(cat([]byte("parley/link/2 "+kind), []byte{version}, msg))
}

// encodeLink lays a link out per "Contact links" with the version byte
// given: prefix, unpadded base64url of u8 version ‖ message ‖ u32 crc.
func encodeLink(kind string, version byte, msg []byte) string {
	raw := cat([]byte{version}, msg, binary.BigEndian.AppendUint32(nil, linkChecksum(kind, version, msg)))
	return "parley://" + kind + "/" + base64.RawURLEncoding.EncodeToString(raw)
}

// decodeLink undoes encodeLink and checks the version byte and checksum.
func decodeLink(t *testing.T, kind, link string) []byte {
	t.Helper()
	data, ok := strings.CutPrefix(link, "parley://"+kind+"/")
	if !ok {
		t.Fatalf("link %.40q... does not start with parley://%s/", link, kind)
	}
	if len(link) > 4096 {
		t.Fatalf("link of %d characters, over 4 KiB", len(link))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(data)
	if err != nil || len(raw) < 6 {
		t.Fatalf("link is not unpadded base64url: %v", err)
	}
	msg := raw[1 : len(raw)-4]
	if raw[0] != 2 {
		t.Fatalf("link encoding version %d, want 2", raw[0])
	}
	if got, want := binary.BigEndian.Uint32(raw[len(raw)-4:]), linkChecksum(kind, 2, msg); got != want {
		t.Fatalf("link checksum %08x, want %08x", got, want)
	}
	return msg
}

// inviteSigned is the signed input of a ContactInvite:
// "parley/link/2 contact-invite" || u32 version || lp(peer_id) || lp(name)
// || u8 n || n x lp(addr) || lp(bundle) || u8 m || m x lp(mailbox) ||
// lp(mailbox_secret), lp(x) = u16 len(x) || x.
func inviteSigned(inv *wirepb.ContactInvite) []byte {
	lp16 := func(x []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(x))), x...) }
	b := cat([]byte("parley/link/2 contact-invite"), binary.BigEndian.AppendUint32(nil, inv.Version), lp16(inv.PeerId), lp16([]byte(inv.Name)), []byte{byte(len(inv.Addrs))})
	for _, a := range inv.Addrs {
		b = append(b, lp16(a)...)
	}
	b = cat(b, lp16(inv.Bundle), []byte{byte(len(inv.Mailboxes))})
	for _, m := range inv.Mailboxes {
		b = append(b, lp16(m)...)
	}
	return append(b, lp16(inv.MailboxSecret)...)
}

// checkLinkBundle checks a link's bundle per "Bundle" with the standard
// library: version 2, no one-time prekey (flags 0: the last-resort KEM
// prekey), 1459 bytes, and every signature by the key given.
func checkLinkBundle(t *testing.T, b []byte, key ed25519.PublicKey) {
	t.Helper()
	if len(b) != 1459 || b[0] != 2 || b[1] != 0 {
		t.Fatalf("link bundle: %d bytes, version %d, flags %d; want 1459, 2, 0 (no one-time prekey)", len(b), b[0], b[1])
	}
	ik, sigIK := b[2:34], b[34:98]
	spk := b[98:142] // spk_id, created, SPK_pub
	sigSPK := b[142:206]
	kem := b[206:1395] // kem_id, 0x01, PQPK_pub
	sigPQ := b[1395:1459]
	if kem[4] != 0x01 {
		t.Fatalf("KEM type %d, want 0x01 (ML-KEM-768)", kem[4])
	}
	for _, s := range []struct {
		what     string
		msg, sig []byte
	}{
		{"sig_IK", cat([]byte("parley/e2e/v1 identity-dh"), ik), sigIK},
		{"sig_SPK", cat([]byte("parley/e2e/v1 signed-prekey"), spk), sigSPK},
		{"sig_PQ (last-resort)", cat([]byte("parley/e2e/v2 kem-prekey"), kem[:4], []byte{1}, kem[4:]), sigPQ},
	} {
		if !ed25519.Verify(key, s.msg, s.sig) {
			t.Fatalf("link bundle: %s does not verify", s.what)
		}
	}
}

// TestContactLinkFromNode checks "Contact links" on the node's own link,
// decoded with the standard library: the prefix, "the unpadded base64url
// encoding of u8 2 ‖ message ‖ u32 crc", the CRC-32 over "parley/link/2
// contact" ‖ 2 ‖ message, "at most 4 KiB"; ContactInvite version 2 with
// the node's peer ID, at most 8 addresses, "mailboxes, mailbox_secret ...
// both or neither", the signature over the layout given, and "the
// inviter's version 2 Bundle without one-time prekeys".
//
// Then "First messages from a link" and "PQXDH": a first message made from
// that bundle (no one-time prekey) is taken as a request; after the request
// is declined (its session deleted), the same prekey message under another
// frame id is REJECTED as a replay: "the key store remembers their base
// keys ... refuses a prekey message with a remembered base key with
// ErrReplay".
func TestContactLinkFromNode(t *testing.T) {
	ctx := context.Background()
	node := startNode(t)
	inviteLink, err := node.Chat().Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var inv wirepb.ContactInvite
	if err := proto.Unmarshal(decodeLink(t, "contact", inviteLink.Link), &inv); err != nil {
		t.Fatal(err)
	}
	if inv.Version != 2 || !bytes.Equal(inv.PeerId, []byte(node.Host().ID())) || len(inv.Name) > 64 || len(inv.Addrs) > 8 ||
		len(inv.Mailboxes) > 8 || (len(inv.Mailboxes) == 0) != (len(inv.MailboxSecret) == 0) || (len(inv.MailboxSecret) != 0 && len(inv.MailboxSecret) != 32) {
		t.Fatalf("ContactInvite %v breaks \"Contact links\"", &inv)
	}
	nodeKey, err := ed25519Of(inv.PeerId)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(nodeKey, inviteSigned(&inv), inv.Signature) {
		t.Fatal("the invite's signature does not verify over the layout of \"Contact links\"")
	}
	checkLinkBundle(t, inv.Bundle, nodeKey)

	// A first message from the link's bundle, no /parley/prekeys/1.
	c := newClient(t, node)
	var b e2e.Bundle
	if err := b.UnmarshalBinary(inv.Bundle); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	err = c.ch.Initiate(c.key, c.ks, c.nodeKey, b, rand.Reader, time.Now())
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	first := c.text("from the link")
	if env := first.GetMessage().Envelope; len(env) < 2 || env[1] != 3 {
		t.Fatal("the first message from a link is not a PQXDH prekey message (type 3)")
	}
	acks, err := c.exchange(first)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], first.GetMessage().Id, ok)
	if reqs, err := node.Chat().Requests(ctx); err != nil || len(reqs) != 1 {
		t.Fatalf("requests %v, %v; want the link's first message as a request", reqs, err)
	}
	if _, err := node.Chat().Decline(ctx, c.id()); err != nil {
		t.Fatal(err)
	}
	replay := msgFrame(newID(), first.GetMessage().Envelope)
	acks, err = c.exchange(replay)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
	status(t, acks[0], replay.GetMessage().Id, rejected)
	if !strings.Contains(acks[0].Reason, "replay") {
		t.Fatalf("replayed first message refused with %q, want a replay", acks[0].Reason)
	}
	if reqs, err := node.Chat().Requests(ctx); err != nil || len(reqs) != 0 {
		t.Fatalf("requests %v, %v; the replay made a request", reqs, err)
	}
}

// foreignLink is the client's contact link, made with the standard
// library: its link bundle (made at made), its host's addresses. edit, if
// set, changes the invite before it is signed.
func (c *client) foreignLink(made time.Time, edit func(*wirepb.ContactInvite)) (*wirepb.ContactInvite, string) {
	t := c.t
	t.Helper()
	c.mu.Lock()
	b, err := c.ks.LinkBundle(c.key, made)
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	bb, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	inv := &wirepb.ContactInvite{Version: 2, PeerId: []byte(c.h.ID()), Name: "foreign", Bundle: bb}
	for _, a := range c.h.Addrs() {
		inv.Addrs = append(inv.Addrs, a.Bytes())
	}
	if edit != nil {
		edit(inv)
	}
	inv.Signature = ed25519.Sign(c.key, inviteSigned(inv))
	return inv, encodeLink("contact", 2, marshalDet(t, inv))
}

// TestContactLinkRefusals checks the refusals of "Contact links" at the
// node's `parley add` (its API): "ASCII white space in a pasted link is
// ignored"; a one-character typo is refused; "Links whose first decoded
// byte is 0x08 are version 1 links ... refused with "this link is from an
// older version of parley and has no checksum; ask for a new link""; "A
// link that checks out under a higher version byte is refused as "from a
// newer version""; "the whole link is at most 4 KiB"; and `parley add`
// "verifies the signature and every signature of the bundle against the
// key of peer_id, and refuses the link on any mismatch". A refused link
// adds no contact.
func TestContactLinkRefusals(t *testing.T) {
	ctx := context.Background()
	node := startNode(t)
	c := newClient(t, node)
	inv, good := c.foreignLink(time.Now(), nil)
	msg := marshalDet(t, inv)

	other := newClient(t, node)
	otherInv, _ := other.foreignLink(time.Now(), nil)
	edited := func(edit func(*wirepb.ContactInvite)) string {
		i := proto.Clone(inv).(*wirepb.ContactInvite)
		edit(i)
		return encodeLink("contact", 2, marshalDet(t, i))
	}
	typo := []byte(good)
	i := len("parley://contact/") + 40
	typo[i] = map[bool]byte{true: 'B', false: 'A'}[typo[i] == 'A']
	v1 := "parley://contact/" + base64.RawURLEncoding.EncodeToString(msg)

	for _, tc := range []struct {
		name, link, want string
	}{
		{"typo", string(typo), "checksum"},
		{"version 1", v1, "is from an older version of parley and has no checksum; ask for a new link"},
		{"newer version", encodeLink("contact", 3, msg), "from a newer version of parley"},
		{"over 4 KiB", good + strings.Repeat("A", 4097-len(good)), "limit"},
		{"signature by another key", edited(func(i *wirepb.ContactInvite) { i.Signature = ed25519.Sign(other.key, inviteSigned(i)) }), "not signed by the peer it names"},
		{"altered after signing", edited(func(i *wirepb.ContactInvite) { i.Name = "altered" }), "not signed by the peer it names"},
		{"another peer's bundle", c.signedWith(inv, func(i *wirepb.ContactInvite) { i.Bundle = otherInv.Bundle }), "not signed by the peer it names"},
	} {
		_, err := node.Chat().AddContact(ctx, tc.link, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: add = %v, want a refusal containing %q", tc.name, err, tc.want)
		}
	}
	if cs, err := node.Chat().Contacts(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("contacts after refused links: %v, %v", cs, err)
	}
	// "A link holding a version-1 RoomLink (its message's version field
	// is 1) is refused with a message saying that private rooms version 1
	// are retired."
	old := encodeLink("room", 2, marshalDet(t, &wirepb.RoomLink{Version: 1, RoomSecret: newID32(), Name: "old", Inviter: []byte(c.h.ID())}))
	if _, err := node.Rooms().JoinLink(ctx, old); err == nil || !strings.Contains(err.Error(), "retired") {
		t.Errorf("join of a version-1 room link = %v, want a refusal saying version 1 is retired", err)
	}
	// White space (a link wrapped over lines) is ignored.
	wrapped := good[:30] + "\n  " + good[30:60] + "\t" + good[60:] + "\r\n"
	if _, err := node.Chat().AddContact(ctx, wrapped, ""); err != nil {
		t.Fatalf("add of a link with white space: %v", err)
	}
	if sn, err := node.Chat().SafetyNumber(ctx, c.id()); err != nil || !sn.Session || !sn.PostQuantum {
		t.Fatalf("after add from a link: %+v, %v; want a PQXDH session at once", sn, err)
	}
}

// signedWith is inv edited then signed by c.
func (c *client) signedWith(inv *wirepb.ContactInvite, edit func(*wirepb.ContactInvite)) string {
	i := proto.Clone(inv).(*wirepb.ContactInvite)
	edit(i)
	i.Signature = ed25519.Sign(c.key, inviteSigned(i))
	return encodeLink("contact", 2, marshalDet(c.t, i))
}

// TestNodeAddsLink checks `parley add LINK` of "Contact links" from the
// inviter's side: the node "starts a PQXDH session from the bundle at once
// (Channel.Initiate)", so its first message is a type 3 prekey message on
// the link's bundle and no /parley/prekeys/1 request is made; and "A bundle
// whose signed prekey is 21 days old or more is refused by Initiate ...
// the contact is still added ... and the message waits for a fresh bundle
// over /parley/prekeys/1".
func TestNodeAddsLink(t *testing.T) {
	ctx := context.Background()
	node := startNode(t)

	fresh := newClient(t, node)
	_, link := fresh.foreignLink(time.Now(), nil)
	if _, err := node.Chat().AddContact(ctx, link, "fresh"); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Chat().Send(ctx, "fresh", "hello link"); err != nil {
		t.Fatal(err)
	}
	in := fresh.next()
	if in.err != nil || len(in.frame.Envelope) < 2 || in.frame.Envelope[1] != 3 {
		t.Fatalf("the node's first message: %v (type %d); want a PQXDH prekey message from the link's bundle", in.err, in.frame.Envelope[1])
	}
	for in.payload.GetText() == nil {
		in = fresh.next()
	}
	if in.payload.GetText().Body != "hello link" {
		t.Fatalf("text %q", in.payload.GetText().Body)
	}
	select {
	case v := <-fresh.prekeyRequests:
		t.Fatalf("the node asked for a version %d bundle although the link carried one", v)
	default:
	}

	// A link whose signed prekey is 22 days old.
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stale := newClientKey(t, node, priv)
	made := time.Now().Add(-22 * 24 * time.Hour)
	if stale.ks, err = e2e.NewKeyStore(stale.key, rand.Reader, made); err != nil {
		t.Fatal(err)
	}
	_, link = stale.foreignLink(made, nil)
	if _, err := stale.ks.Maintain(stale.key, rand.Reader, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Chat().AddContact(ctx, link, "stale"); err != nil {
		t.Fatalf("add of a link with a stale bundle: %v; want the contact added", err)
	}
	if sn, err := node.Chat().SafetyNumber(ctx, "stale"); err != nil || sn.Session {
		t.Fatalf("after add of a stale link: %+v, %v; want no session yet", sn, err)
	}
	if _, err := node.Chat().Send(ctx, "stale", "hello stale"); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-stale.prekeyRequests:
		if v != 2 {
			t.Fatalf("the node asked for a version %d bundle, want 2", v)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the node never asked for a fresh bundle")
	}
	p := stale.nextPayload(func(p *wirepb.Payload) bool { return p.GetText() != nil })
	if p.GetText().Body != "hello stale" {
		t.Fatalf("text %q", p.GetText().Body)
	}
}

// TestSafetyNumber checks "Safety numbers" against the node's `parley
// verify`: h0 = SHA-512("parley/v1 safety-number" ‖ pub ‖ id), 5199 more
// rounds of SHA-512(h ‖ pub), six 5-byte chunks mod 100000 per identity,
// the smaller fingerprint first, 12 groups of 5 digits.
func TestSafetyNumber(t *testing.T) {
	ctx := context.Background()
	node := startNode(t)
	c := newClient(t, node)
	if _, err := node.Chat().AddContact(ctx, c.id(), ""); err != nil {
		t.Fatal(err)
	}
	sn, err := node.Chat().SafetyNumber(ctx, c.id())
	if err != nil {
		t.Fatal(err)
	}
	fp := func(id peer.ID) string {
		pub, err := ed25519Of([]byte(id))
		if err != nil {
			t.Fatal(err)
		}
		h := sha512.Sum512(cat([]byte("parley/v1 safety-number"), pub, []byte(id)))
		for range 5199 {
			h = sha512.Sum512(cat(h[:], pub))
		}
		var s string
		for j := range 6 {
			var n [8]byte
			copy(n[3:], h[5*j:5*j+5])
			s += fmt.Sprintf("%05d", binary.BigEndian.Uint64(n[:])%100000)
		}
		return s
	}
	a, b := fp(node.Host().ID()), fp(c.h.ID())
	if b < a {
		a, b = b, a
	}
	var groups []string
	for i := 0; i < 60; i += 5 {
		groups = append(groups, (a + b)[i:i+5])
	}
	if want := strings.Join(groups, " "); sn.Number != want {
		t.Fatalf("safety number %q, want %q", sn.Number, want)
	}
}

// TestLinkFirstMessagesThroughMailbox checks "First messages from a link"
// with the node as the inviter: its link carries its mailbox and its link
// tag secret; "its deposits for the inviter ... are tagged and sealed
// exactly as in "Keys, tags and sealing", under the link secret"; "The
// inviter drains the link secret's fetch keys with its own (which also
// registers those tags at a contacts-only mailbox)"; "the inviter takes
// the sender from the sealed envelope, which must be a PQXDH prekey
// message (type 3 ...)"; "a frame that does not [authenticate] is refused
// and deleted with no contact, request, session or consumed prekey
// created"; "Items under the link secret that are not type 3 name no
// sender and are deleted".
//
// The mailbox is a second node serving its contacts (the node under test
// is one); a foreign sender deposits, from a fresh identity, its genuine
// first message, a forged one naming another peer, and an item that is
// not a prekey message. After one drain the sender's text is a request,
// nobody else is, and the mailbox holds nothing.
func TestLinkFirstMessagesThroughMailbox(t *testing.T) {
	ctx := context.Background()
	mbox := startNode(t)
	if err := mbox.Mailbox().Enable(ctx, true, 10); err != nil {
		t.Fatal(err)
	}
	node := startNode(t)
	if _, err := mbox.Chat().AddContact(ctx, node.Host().ID().String(), "inviter"); err != nil {
		t.Fatal(err)
	}
	if err := node.Host().Connect(ctx, mbox.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if err := node.Mailbox().Use(ctx, []peer.ID{mbox.Host().ID()}, false); err != nil {
		t.Fatal(err)
	}
	il, err := node.Chat().Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var inv wirepb.ContactInvite
	if err := proto.Unmarshal(decodeLink(t, "contact", il.Link), &inv); err != nil {
		t.Fatal(err)
	}
	if len(inv.Mailboxes) != 1 || !bytes.Equal(inv.Mailboxes[0], []byte(mbox.Host().ID())) || len(inv.MailboxSecret) != 32 {
		t.Fatalf("the link carries mailboxes %x and a %d-byte secret; want the node's mailbox and a 32-byte secret", inv.Mailboxes, len(inv.MailboxSecret))
	}
	// The drain registers the link secret's tags at the mailbox.
	if _, err := node.Mailbox().Drain(ctx); err != nil {
		t.Fatal(err)
	}
	var secret mailbox.Secret
	copy(secret[:], inv.MailboxSecret)
	tag := secret.Tag(mbox.Host().ID(), mailbox.DayOf(time.Now()))
	var b e2e.Bundle
	if err := b.UnmarshalBinary(inv.Bundle); err != nil {
		t.Fatal(err)
	}
	first := func(c *client, body string) *wirepb.DMMessage {
		c.mu.Lock()
		err := c.ch.Initiate(c.key, c.ks, c.nodeKey, b, rand.Reader, time.Now())
		c.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		return c.text(body).GetMessage()
	}
	sender, forger := newClient(t, node), newClient(t, node)
	genuine := first(sender, "through the mailbox")
	forged := first(forger, "forged")
	forged.Envelope[len(forged.Envelope)-1] ^= 1 // claims forger, authenticates as nobody
	notPrekey := &wirepb.DMMessage{Id: newID(), Envelope: append([]byte{1, 1}, make([]byte, 60)...)}

	depositor := bareHost(t, mbox)
	for _, m := range []*wirepb.DMMessage{forged, notPrekey, genuine} {
		blob, err := secret.Seal(m.Id, m.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		wantMailbox(t, "deposit under the link tag", mailboxReq(t, depositor, mbox, depositReq(tag[:], blob)), wirepb.MailboxStatus_MAILBOX_STATUS_OK, "")
	}
	if n, _, err := mbox.Mailbox().Stored(ctx); err != nil || n != 3 {
		t.Fatalf("the mailbox holds %d items, %v; want 3", n, err)
	}
	if _, err := node.Mailbox().Drain(ctx); err != nil {
		t.Fatal(err)
	}
	reqs, err := node.Chat().Requests(ctx)
	if err != nil || len(reqs) != 1 || reqs[0].PeerID != sender.id() {
		t.Fatalf("requests after the drain: %+v, %v; want the sender's alone", reqs, err)
	}
	if reqs[0].Messages != 1 || reqs[0].Last != "through the mailbox" {
		t.Fatalf("the sender's request: %+v; want its one text", reqs[0])
	}
	peertest.Eventually(t, 30*time.Second, "the drained items to be deleted", func() bool {
		n, _, err := mbox.Mailbox().Stored(ctx)
		return err == nil && n == 0
	})
}
