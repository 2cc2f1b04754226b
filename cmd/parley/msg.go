package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mdp/qrterminal/v3"

	"github.com/parley-im/parley/cmd/parley/tui"
	"github.com/parley-im/parley/peer/apitype"
)

func init() {
	register(command{name: "invite", args: "[--name NAME] [--no-qr]", summary: "print your parley:// contact link and its QR code", run: runInvite})
	register(command{name: "add", args: "LINK|PEERID [--name NAME]", summary: "add a contact", run: runAdd})
	register(command{name: "contacts", summary: "list contacts: name, peer ID, online/last seen, verified", run: runContacts})
	register(command{name: "verify", args: "NAME [--confirm]", summary: "show the safety number shared with a contact; --confirm marks it verified", run: runVerify})
	register(command{name: "send", args: "NAME|#room [TEXT]", summary: "send a message (TEXT, or each line of stdin)", run: runSend})
	register(command{name: "log", args: "NAME|#room [--limit N]", summary: "print a conversation's history", run: runLog})
	register(command{name: "watch", summary: "stream events: messages, receipts, presence", run: runWatch})
	register(command{name: "search", args: "TEXT", summary: "full-text search over the history", run: runSearch})
	register(command{name: "reset", args: "NAME", summary: "drop the E2E session with a contact and start a new one", run: runReset})
}

func runInvite(ctx context.Context, e *env, args []string) error {
	var name *string
	var noQR *bool
	c, f, _, err := clientCmd(e, "invite", args, 0, "[--name NAME] [--no-qr]", func(f *flags) {
		name = f.String("name", "", "the name your contacts see in the link")
		noQR = f.Bool("no-qr", false, "do not print the QR code")
	})
	if err != nil {
		return helpOK(err)
	}
	inv, err := c.Invite(ctx, *name)
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
		name = f.String("name", "", "name for the contact (default: the name in the link)")
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
	fmt.Fprintf(e.stdout, "added %s (%s); compare safety numbers with `parley verify %s`\n", ct.Name, ct.PeerID, ct.Name)
	return nil
}

func runContacts(ctx context.Context, e *env, args []string) error {
	c, f, _, err := clientCmd(e, "contacts", args, 0, "")
	if err != nil {
		return helpOK(err)
	}
	cs, err := c.Contacts(ctx)
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
	fmt.Fprintln(tw, "NAME\tPEER ID\tSEEN\tVERIFIED\tUNREAD")
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", ct.Name, ct.PeerID, seen, verified, ct.Unread)
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
		sn, err = c.SafetyNumber(ctx, pos[0])
	}
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, sn)
	}
	fmt.Fprintf(e.stdout, "safety number with %s (%s):\n\n", sn.Contact, sn.PeerID)
	groups := strings.Fields(sn.Number)
	for i := 0; i < len(groups); i += 4 {
		fmt.Fprintf(e.stdout, "    %s\n", strings.Join(groups[i:min(i+4, len(groups))], " "))
	}
	fmt.Fprintln(e.stdout)
	if !*noQR {
		qrterminal.GenerateHalfBlock(strings.ReplaceAll(sn.Number, " ", ""), qrterminal.L, e.stdout)
	}
	switch {
	case sn.Verified:
		fmt.Fprintf(e.stdout, "%s is verified.\n", sn.Contact)
	default:
		fmt.Fprintf(e.stdout, "Compare it with %s's screen; if it matches, run `parley verify %s --confirm`.\n", sn.Contact, sn.Contact)
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
	var texts []string
	if len(pos) > 1 {
		texts = []string{strings.Join(pos[1:], " ")}
	} else {
		sc := bufio.NewScanner(e.stdin)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if line := sc.Text(); strings.TrimSpace(line) != "" {
				texts = append(texts, line)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		if len(texts) == 0 {
			return usagef("nothing to send: give TEXT or pipe lines on stdin")
		}
	}
	for _, t := range texts {
		m, err := c.Send(ctx, to, t)
		if err != nil {
			return err
		}
		if f.json {
			if err := printJSON(e.stdout, m); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(e.stdout, "%s %s\n", m.ID, m.State)
	}
	return nil
}

func runLog(ctx context.Context, e *env, args []string) error {
	var limit *int
	c, f, pos, err := clientCmd(e, "log", args, 1, "NAME|#room [--limit N]", func(f *flags) {
		limit = f.Int("limit", 50, "how many of the latest messages to print (0: all)")
	})
	if err != nil {
		return helpOK(err)
	}
	if *limit < 0 {
		return usagef("--limit must not be negative")
	}
	ms, err := c.Log(ctx, pos[0], *limit)
	if err != nil {
		return err
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
	if g := tui.GapNotice(m); g != "" {
		fmt.Fprintf(w, "-- %s --\n", g)
	}
	fmt.Fprintln(w, tui.Line(m))
}

func runWatch(ctx context.Context, e *env, args []string) error {
	c, f, _, err := clientCmd(e, "watch", args, 0, "")
	if err != nil {
		return helpOK(err)
	}
	err = c.Events(ctx, func(ev apitype.Event) error {
		if f.json {
			return printJSON(e.stdout, ev)
		}
		switch ev.Type {
		case "message":
			fmt.Fprintf(e.stdout, "[%s] ", ev.Message.Conv)
			printMessage(e.stdout, *ev.Message)
		case "receipt":
			fmt.Fprintf(e.stdout, "[%s] message %s is %s\n", ev.Message.Conv, ev.Message.ID, ev.Message.State)
		case "presence":
			state := "offline"
			if ev.Online {
				state = "online"
			}
			fmt.Fprintf(e.stdout, "%s %s is %s\n", ev.Time.Local().Format(time.TimeOnly), ev.Contact, state)
		default:
			fmt.Fprintf(e.stdout, "%s event\n", ev.Type)
		}
		return nil
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func runSearch(ctx context.Context, e *env, args []string) error {
	var limit *int
	c, f, pos, err := clientCmd(e, "search", args, -1, "TEXT", func(f *flags) {
		limit = f.Int("limit", 100, "how many results at most")
	})
	if err != nil {
		return helpOK(err)
	}
	if len(pos) == 0 {
		return usagef("usage: parley search TEXT")
	}
	ms, err := c.Search(ctx, strings.Join(pos, " "), *limit)
	if err != nil {
		return err
	}
	if f.json {
		if ms == nil {
			ms = []apitype.Message{}
		}
		return printJSON(e.stdout, ms)
	}
	for _, m := range ms {
		fmt.Fprintf(e.stdout, "[%s] ", m.Conv)
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
	fmt.Fprintf(e.stdout, "session with %s reset; the next message starts a new one\n", pos[0])
	return nil
}
