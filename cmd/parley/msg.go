package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mdp/qrterminal/v3"

	"github.com/parley-im/parley/cmd/parley/tui"
	"github.com/parley-im/parley/internal/safetext"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/client"
)

func init() {
	register(command{name: "invite", args: "[--name NAME] [--no-qr]", summary: "print your parley:// contact link and its QR code", run: runInvite,
		group: "Start",
		long: `Prints a parley://contact/ link (your peer ID, the name you offer and your
addresses, with a checksum) and its QR code. Give it to a contact any way
you like; they run ` + "`parley add LINK`" + `. Works with no node running (the
link then holds the addresses of the node's last start).`,
		examples: []string{"parley invite --name alice", "parley invite --no-qr | wl-copy"}})
	register(command{name: "add", args: "LINK|PEERID [--name NAME]", summary: "add a contact", run: runAdd,
		group: "Contacts",
		long: `Adds a contact from its parley://contact/ link (or a bare peer ID). Only
contacts get your node's full service; compare safety numbers afterwards
with ` + "`parley verify NAME`" + ` to rule out a man in the middle.`,
		examples: []string{"parley add 'parley://contact/...'", "parley add 12D3KooWQ... --name bob"}})
	register(command{name: "contacts", args: "[remove NAME | rename OLD NEW]", summary: "list contacts: name, peer ID, online/last seen, verified; remove or rename one", run: runContacts,
		group: "Contacts",
		long: `Lists your contacts. Works with no node running (then nobody shows online).
"contacts remove NAME" forgets a contact (its history stays readable by peer
ID); "contacts rename OLD NEW" changes your name for it. Both need a node.`,
		examples: []string{"parley contacts", "parley contacts --json | jq -r '.[].name'", "parley contacts rename bob bob-work", "parley contacts remove mallory"}})
	register(command{name: "verify", args: "NAME [--confirm]", summary: "show the safety number shared with a contact; --confirm marks it verified", run: runVerify,
		group: "Contacts",
		long: `Prints the 60-digit safety number you share with a contact, and its QR code.
Compare it with your contact's screen in person or over a channel you
trust; if it matches, --confirm marks the contact verified. Showing the
number works with no node running; --confirm needs one.`,
		examples: []string{"parley verify bob", "parley verify bob --confirm"}})
	register(command{name: "send", args: "NAME|#room [TEXT]", summary: "send a message (TEXT, or each line of stdin)", run: runSend,
		group: "Messages",
		long: `Sends TEXT to a contact or a room. Without TEXT, each line of stdin is a
message, sent as soon as it is read: "tail -f | parley send" streams. Each
line is acknowledged once the node has stored it (it is then delivered,
now or when the peer comes back); if the node goes away, send stops and
says which lines were stored and which were not. Empty lines are skipped.`,
		examples: []string{
			`parley send bob "build green"`,
			`parley send '#team' "standup in 5"`,
			`tail -f build.log | parley send ops`,
			`parley send bob "deploy done" --json | jq -r .id`,
		}})
	register(command{name: "log", args: "NAME|#room [--limit N]", summary: "print a conversation's history", run: runLog,
		group: "Messages",
		long: `Prints the last messages of a conversation, oldest first, with their
delivery state. Works with no node running.`,
		examples: []string{"parley log bob", "parley log '#team' --limit 0  # everything", "parley log bob --json"}})
	register(command{name: "watch", args: "[--json] [--since TIME] [--muted]", summary: "stream events: messages, requests, receipts, presence", run: runWatch,
		group: "Messages",
		long: `Prints events as they happen: messages, delivery receipts, contacts coming
and going. With --json, one JSON object per line (NDJSON). --since replays
the messages stored after TIME first (RFC 3339, or a duration such as 10m
meaning that long ago), so a script can resume where it stopped. When the
node stops, watch says so and exits 1. Muted contacts' messages are left out
of the text output unless --muted is given (--json always includes them,
marked "muted"). A first message from an unknown peer shows as a request.`,
		examples: []string{
			"parley watch",
			"parley watch --json | jq -c 'select(.type == \"message\")'",
			"parley watch --json --since 2026-01-02T15:04:05Z",
		}})
	register(command{name: "search", args: "TEXT", summary: "full-text search over the history", run: runSearch,
		group: "Messages",
		long: `Searches every conversation for messages holding all the words of TEXT;
each word also matches as a prefix ("lin" finds "linux"). Newest first.
Works with no node running.`,
		examples: []string{"parley search deploy", "parley search 'release notes' --limit 10"}})
	register(command{name: "reset", args: "NAME", summary: "drop the E2E session with a contact and start a new one", run: runReset,
		group: "Contacts",
		long: `Forgets the end-to-end session with a contact; the next message starts a new
one from the contact's prekeys. Use it when messages stop decrypting.`,
		examples: []string{"parley reset bob"}})
}

func runInvite(ctx context.Context, e *env, args []string) error {
	var name *string
	var noQR *bool
	c, f, _, err := clientCmd(e, "invite", args, 0, "[--name NAME] [--no-qr]", func(f *flags) {
		name = f.String("name", "", "the `NAME` your contacts see in the link (kept for later invites)")
		noQR = f.Bool("no-qr", false, "do not print the QR code")
	})
	if err != nil {
		return helpOK(err)
	}
	var inv apitype.Invite
	err = readOnly(ctx, c, func() (err error) {
		inv, err = c.Invite(ctx, *name)
		return err
	}, func(o *offline) (err error) {
		if *name != "" {
			return errors.New("no node is running: --name needs one to store the name (start it with `parley up`)")
		}
		fmt.Fprintln(e.stderr, "parley: no node running; the link holds the addresses of its last start and no mailboxes (start the node for a link with them)")
		inv, err = o.Invite(ctx, o.addrs())
		return err
	})
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, inv)
	}
	fmt.Fprintln(e.stdout, inv.Link)
	if !*noQR {
		qrterminal.GenerateHalfBlock(inv.Link, qrterminal.L, e.stdout)
	}
	return nil
}

func runAdd(ctx context.Context, e *env, args []string) error {
	var name *string
	c, f, pos, err := clientCmd(e, "add", args, 1, "LINK|PEERID [--name NAME]", func(f *flags) {
		name = f.String("name", "", "`NAME` of the contact (default: the name in the link)")
	})
	if err != nil {
		return helpOK(err)
	}
	ct, err := c.AddContact(ctx, pos[0], *name)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, ct)
	}
	n := safetext.Line(ct.Name)
	fmt.Fprintf(e.stdout, "added %s (%s); compare safety numbers with `parley verify %s`\n", n, ct.PeerID, n)
	printAddSession(e, ct)
	return nil
}

func runContacts(ctx context.Context, e *env, args []string) error {
	c, f, pos, err := clientCmd(e, "contacts", args, -1, "[remove NAME | rename OLD NEW]")
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return runContactsSub(ctx, e, c, f, pos)
	}
	var cs []apitype.Contact
	err = readOnly(ctx, c, func() (err error) {
		cs, err = c.Contacts(ctx)
		return err
	}, func(o *offline) (err error) {
		cs, err = o.Contacts(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if f.json {
		if cs == nil {
			cs = []apitype.Contact{}
		}
		return printJSON(e.stdout, cs)
	}
	if len(cs) == 0 {
		fmt.Fprintln(e.stdout, "no contacts yet: share `parley invite`, then `parley add LINK`")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPEER ID\tSEEN\tVERIFIED\tSESSION\tUNREAD")
	for _, ct := range cs {
		seen := "never"
		switch {
		case ct.Online:
			seen = "online"
		case !ct.LastSeen.IsZero():
			seen = ct.LastSeen.Local().Format("2006-01-02 15:04")
		}
		verified := "no"
		if ct.Verified {
			verified = "yes"
		}
		if ct.Muted {
			seen += " (muted)"
		}
		session := "none yet"
		switch {
		case ct.Session && ct.PostQuantum:
			session = "PQXDH"
		case ct.Session:
			session = "X3DH"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", safetext.Line(ct.Name), ct.PeerID, seen, verified, session, ct.Unread)
	}
	return tw.Flush()
}

func runVerify(ctx context.Context, e *env, args []string) error {
	var confirm *bool
	var noQR *bool
	c, f, pos, err := clientCmd(e, "verify", args, 1, "NAME [--confirm]", func(f *flags) {
		confirm = f.Bool("confirm", false, "mark the contact verified (after comparing the number in person or on a trusted channel)")
		noQR = f.Bool("no-qr", false, "do not print the QR code")
	})
	if err != nil {
		return helpOK(err)
	}
	var sn apitype.SafetyNumber
	if *confirm {
		sn, err = c.Verify(ctx, pos[0])
	} else {
		err = readOnly(ctx, c, func() (err error) {
			sn, err = c.SafetyNumber(ctx, pos[0])
			return err
		}, func(o *offline) (err error) {
			sn, err = o.SafetyNumber(ctx, pos[0])
			return err
		})
	}
	if err != nil {
		return unknownContact(ctx, c, pos[0], err)
	}
	if f.json {
		return printJSON(e.stdout, sn)
	}
	// The name is the user's petname, but it may have come from a link:
	// it goes through the sanitiser so no code in it can redraw the digits.
	name := safetext.Line(sn.Contact)
	fmt.Fprintf(e.stdout, "safety number with %s (%s):\n\n", name, sn.PeerID)
	groups := strings.Fields(sn.Number)
	for i := 0; i < len(groups); i += 4 {
		fmt.Fprintf(e.stdout, "    %s\n", strings.Join(groups[i:min(i+4, len(groups))], " "))
	}
	fmt.Fprintln(e.stdout)
	if !*noQR {
		qrterminal.GenerateHalfBlock(strings.ReplaceAll(sn.Number, " ", ""), qrterminal.L, e.stdout)
	}
	printSessionKind(e, sn)
	switch {
	case sn.Verified:
		fmt.Fprintf(e.stdout, "%s is verified.\n", name)
	default:
		fmt.Fprintf(e.stdout, "Compare it with %s's screen; if it matches, run `parley verify %s --confirm`.\n", name, name)
	}
	return nil
}

func runSend(ctx context.Context, e *env, args []string) error {
	c, f, pos, err := clientCmd(e, "send", args, -1, "")
	if err != nil {
		return helpOK(err)
	}
	if len(pos) < 1 {
		return usagef("usage: parley send NAME|#room [TEXT] (without TEXT, each line of stdin is a message)")
	}
	to := pos[0]
	if len(pos) > 1 {
		text := strings.Join(pos[1:], " ")
		if strings.TrimSpace(text) == "" {
			return usagef("empty message: give TEXT, or leave it out to send each line of stdin")
		}
		m, err := c.Send(ctx, to, text)
		if err != nil {
			return unknownContact(ctx, c, to, err)
		}
		if f.json {
			return printJSON(e.stdout, m)
		}
		fmt.Fprintf(e.stdout, "%s %s\n", m.ID, m.State)
		return nil
	}
	return sendLines(ctx, e, c, f.json, to)
}

// sendLines sends each line of stdin as soon as it is read, and prints an
// acknowledgement for each (its line number, id and state) once the node
// has stored it. Each message carries an id chosen here, so the node never
// stores one twice. If a line cannot be sent, sendLines stops reading and
// the error says which lines were stored and which were not.
func sendLines(ctx context.Context, e *env, c *client.Client, asJSON bool, to string) error {
	type line struct {
		text string
		err  error // the read error after the last line; text is empty
	}
	// A goroutine reads stdin so that an interrupt is seen while waiting
	// for the next line; it ends with stdin (or with the process).
	lines := make(chan line)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(e.stdin)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- line{text: sc.Text()}:
			case <-stop:
				return
			}
		}
		if err := sc.Err(); err != nil {
			select {
			case lines <- line{err: err}:
			case <-stop:
			}
		}
	}()
	enc := json.NewEncoder(e.stdout)
	lineNo, sent, lastSent := 0, 0, 0
	for {
		var l line
		var ok bool
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted after line %d; %s", lineNo, storedSoFar(sent, lastSent))
		case l, ok = <-lines:
		}
		if !ok {
			break
		}
		if l.err != nil {
			return fmt.Errorf("read stdin after line %d: %w; %s", lineNo, l.err, storedSoFar(sent, lastSent))
		}
		lineNo++
		if strings.TrimSpace(l.text) == "" {
			continue
		}
		id := newMessageID()
		m, err := c.SendWithID(ctx, to, l.text, id)
		if err != nil {
			if sent == 0 && !errors.Is(err, client.ErrNodeGone) && !errors.Is(err, context.Canceled) {
				return unknownContact(ctx, c, to, err)
			}
			return sendStopped(lineNo, sent, lastSent, id, err)
		}
		sent++
		lastSent = lineNo
		if asJSON {
			if err := enc.Encode(struct {
				Line int `json:"line"`
				apitype.Message
			}{lineNo, m}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(e.stdout, "line %d %s %s\n", lineNo, m.ID, m.State)
	}
	if sent == 0 {
		return usagef("nothing to send: give TEXT or pipe lines on stdin")
	}
	return nil
}

func storedSoFar(sent, lastSent int) string {
	if sent == 0 {
		return "no line was stored"
	}
	return fmt.Sprintf("%d line(s) were stored, the last one line %d (each acknowledged above)", sent, lastSent)
}

// sendStopped explains a failed line of a stream: what was stored, what
// was not, and what is uncertain.
func sendStopped(lineNo, sent, lastSent int, id string, err error) error {
	stored := storedSoFar(sent, lastSent)
	switch {
	case errors.Is(err, client.ErrNodeGone):
		return fmt.Errorf("line %d: %w; %s; line %d may or may not have been stored (id %s: `parley log` shows it if it was); later lines were not read", lineNo, err, stored, lineNo, id)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("interrupted at line %d; %s; line %d may or may not have been stored (id %s)", lineNo, stored, lineNo, id)
	}
	return fmt.Errorf("line %d not sent: %w; %s; later lines were not read", lineNo, err, stored)
}

// newMessageID returns a fresh message id (32 hex digits).
func newMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func runLog(ctx context.Context, e *env, args []string) error {
	var limit *int
	c, f, pos, err := clientCmd(e, "log", args, 1, "NAME|#room [--limit N]", func(f *flags) {
		limit = f.Int("limit", 50, "print the latest `N` messages (0: all)")
	})
	if err != nil {
		return helpOK(err)
	}
	if *limit < 0 {
		return usagef("--limit must not be negative")
	}
	var ms []apitype.Message
	err = readOnly(ctx, c, func() (err error) {
		ms, err = c.Log(ctx, pos[0], *limit)
		return err
	}, func(o *offline) (err error) {
		ms, err = o.Log(ctx, pos[0], *limit)
		return err
	})
	if err != nil {
		return unknownContact(ctx, c, pos[0], err)
	}
	if f.json {
		if ms == nil {
			ms = []apitype.Message{}
		}
		return printJSON(e.stdout, ms)
	}
	for _, m := range ms {
		printMessage(e.stdout, m)
	}
	return nil
}

// printMessage prints one message as a line, after a line for a gap before
// it. The text goes through the TUI's formatter, which neutralises control
// characters a peer may have put in it.
func printMessage(w io.Writer, m apitype.Message) {
	// Names pass the one sanitiser too (zero-width characters included).
	m.FromName, m.Conv = safetext.Line(m.FromName), safetext.Line(m.Conv)
	if g := tui.GapNotice(m); g != "" {
		fmt.Fprintf(w, "-- %s --\n", g)
	}
	fmt.Fprintln(w, tui.Line(m))
}

func runWatch(ctx context.Context, e *env, args []string) error {
	var (
		sinceArg *string
		muted    *bool
	)
	c, f, _, err := clientCmd(e, "watch", args, 0, "[--json] [--since TIME] [--muted]", func(f *flags) {
		sinceArg = f.String("since", "", "first replay the messages stored after `TIME` (RFC 3339, or a duration ago such as 10m)")
		muted = f.Bool("muted", false, "also print messages of muted contacts (--json always includes them, marked muted)")
	})
	if err != nil {
		return helpOK(err)
	}
	since, err := parseSince(*sinceArg, time.Now())
	if err != nil {
		return err
	}
	enc := json.NewEncoder(e.stdout) // one object per line: NDJSON
	seen := map[string]time.Time{}   // message ids near the resume point
	for {
		err = c.EventsSince(ctx, since, func(ev apitype.Event) error {
			if ev.Type == "message" && ev.Message != nil {
				if _, dup := seen[ev.Message.ID]; dup {
					return nil
				}
				seen[ev.Message.ID] = ev.Time
				if len(seen) > 4096 {
					pruneSeen(seen, since)
				}
			}
			if ev.Time.After(since) {
				since = ev.Time
			}
			if f.json {
				return enc.Encode(ev)
			}
			printEvent(e.stdout, ev, *muted)
			return nil
		})
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, client.ErrNodeGone) {
			return err
		}
		// The stream ended. A node that still answers dropped us for
		// falling behind: resume from the last event seen (messages only
		// are replayed). Otherwise the node is gone.
		if _, idErr := c.ID(ctx); idErr != nil {
			return fmt.Errorf("the node stopped; watch ends (resume with --since %s)", since.UTC().Format(time.RFC3339Nano))
		}
		if since.IsZero() {
			since = time.Now()
		}
		pruneSeen(seen, since)
		since = since.Add(-time.Millisecond) // replay the last millisecond; seen drops repeats
	}
}

// pruneSeen forgets the message ids seen more than a second before since:
// a resumed stream replays from since on.
func pruneSeen(seen map[string]time.Time, since time.Time) {
	for id, t := range seen {
		if t.Before(since.Add(-time.Second)) {
			delete(seen, id)
		}
	}
}

// parseSince reads --since: RFC 3339 (with or without fractions), or a
// duration meaning that long before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("invalid --since %q: want a time such as 2026-01-02T15:04:05Z or a duration such as 10m", s)
}

// printEvent prints an event as one line of text. Peer-chosen strings go
// through safetext (printMessage's formatter does it for messages).
func printEvent(w io.Writer, ev apitype.Event, showMuted bool) {
	at := ev.Time.Local().Format(time.TimeOnly)
	switch ev.Type {
	case "message":
		if ev.Muted && !showMuted {
			return
		}
		if ev.Request {
			fmt.Fprintf(w, "[request %s] ", ev.Message.From)
		} else {
			fmt.Fprintf(w, "[%s] ", safetext.Line(ev.Message.Conv))
		}
		printMessage(w, *ev.Message)
	case "request":
		fmt.Fprintf(w, "%s message request from %s: read it with `parley log %s`, then `parley accept`, `decline` or `block`\n",
			at, ev.PeerID, ev.PeerID)
	case "receipt":
		fmt.Fprintf(w, "%s [%s] message %s is %s\n", at, safetext.Line(ev.Message.Conv), ev.Message.ID, safetext.Line(ev.Message.State))
	case "presence":
		state := "offline"
		if ev.Online {
			state = "online"
		}
		fmt.Fprintf(w, "%s %s is %s\n", at, safetext.Line(ev.Contact), state)
	case "room":
		fmt.Fprintf(w, "%s %s changed (members or keys; see `parley room members`)\n", at, safetext.Line(ev.Contact))
	default:
		fmt.Fprintf(w, "%s %s event (see --json)\n", at, safetext.Line(ev.Type))
	}
}

func runSearch(ctx context.Context, e *env, args []string) error {
	var limit *int
	c, f, pos, err := clientCmd(e, "search", args, -1, "TEXT", func(f *flags) {
		limit = f.Int("limit", 100, "print at most `N` results")
	})
	if err != nil {
		return helpOK(err)
	}
	if len(pos) == 0 {
		return usagef("usage: parley search TEXT")
	}
	q := strings.Join(pos, " ")
	if strings.TrimSpace(q) == "" {
		return usagef("empty search: give the words to look for")
	}
	var ms []apitype.Message
	err = readOnly(ctx, c, func() (err error) {
		ms, err = c.Search(ctx, q, *limit)
		return err
	}, func(o *offline) (err error) {
		ms, err = o.Search(ctx, q, *limit)
		return err
	})
	if err != nil {
		return err
	}
	if f.json {
		if ms == nil {
			ms = []apitype.Message{}
		}
		return printJSON(e.stdout, ms)
	}
	if len(ms) == 0 {
		fmt.Fprintf(e.stderr, "no matches for %q\n", q)
		return nil
	}
	for _, m := range ms {
		fmt.Fprintf(e.stdout, "[%s] ", safetext.Line(m.Conv))
		printMessage(e.stdout, m)
	}
	return nil
}

func runReset(ctx context.Context, e *env, args []string) error {
	c, f, pos, err := clientCmd(e, "reset", args, 1, "NAME")
	if err != nil {
		return helpOK(err)
	}
	if err := c.Reset(ctx, pos[0]); err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, map[string]string{"reset": pos[0]})
	}
	fmt.Fprintf(e.stdout, "session with %s reset; the next message starts a new one\n", safetext.Line(pos[0]))
	return nil
}
