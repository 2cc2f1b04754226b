package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/parley-im/parley/internal/safetext"
	"github.com/parley-im/parley/peer/apitype"
)

func init() {
	register(command{name: "mailbox", args: "enable|use|status|drain ...", summary: "offline delivery: serve or choose mailboxes", run: runMailbox,
		group: "Node",
		long: `Mailboxes keep sealed messages for you while you are offline: a contact (or
a bootstrap node of your private network) stores them, and your node drains
them when it comes back. They see neither the content nor the sender.

` + mailboxUsage,
		examples: []string{"parley mailbox enable", "parley mailbox use carol dave", "parley mailbox status"}})
}

const mailboxUsage = `usage:
  parley mailbox enable [--quota N]      serve a mailbox for your contacts (N items per sender–recipient tag per day)
  parley mailbox enable --off            stop serving
  parley mailbox use PEER...             drain these mailboxes (contact names or peer IDs, at most 8) and tell your contacts
  parley mailbox use --none              use no mailbox
  parley mailbox use --auto              use the default: your private network's bootstrap nodes that serve mailboxes
  parley mailbox status                  show what you serve and which mailboxes you use
  parley mailbox drain                   fetch waiting messages from your mailboxes now`

func runMailbox(ctx context.Context, e *env, args []string) error {
	verb, done, err := subVerb(e, "mailbox", mailboxUsage, args)
	if done {
		return err
	}
	f := newFlags(e, "mailbox "+verb, true)
	quota := f.Int("quota", 0, "enable: `N` items each contact may deposit per 14 days (default 1000)")
	off := f.Bool("off", false, "enable: stop serving")
	none := f.Bool("none", false, "use: use no mailbox")
	auto := f.Bool("auto", false, "use: return to the default mailboxes")
	pos, err := f.parse(args[1:])
	if err != nil {
		return helpOK(err)
	}
	home, err := f.homeDir()
	if err != nil {
		return err
	}
	c := clientFor(home)
	var st apitype.MailboxStatus
	switch verb {
	case "enable":
		if len(pos) != 0 {
			return usagef("%s", mailboxUsage)
		}
		if *quota < 0 {
			return usagef("--quota must be positive, got %d", *quota)
		}
		st, err = c.MailboxEnable(ctx, apitype.MailboxEnableRequest{Off: *off, Quota: *quota})
	case "use":
		if (len(pos) == 0) == !(*none || *auto) || (*none && *auto) {
			return usagef("%s", mailboxUsage)
		}
		peers := make([]string, len(pos))
		for i, p := range pos {
			if peers[i], err = resolvePeer(ctx, c, p); err != nil {
				return err
			}
		}
		st, err = c.MailboxUse(ctx, apitype.MailboxUseRequest{Peers: peers, Auto: *auto})
	case "status":
		if len(pos) != 0 {
			return usagef("%s", mailboxUsage)
		}
		st, err = c.Mailbox(ctx)
	case "drain":
		res, err := c.MailboxDrain(ctx)
		if err != nil {
			return err
		}
		if f.json {
			return printJSON(e.stdout, res)
		}
		if res.Note != "" {
			fmt.Fprintln(e.stdout, res.Note)
			return nil
		}
		fmt.Fprintf(e.stdout, "received %d messages from %d mailboxes\n", res.Received, len(res.Mailboxes))
		printDrains(e, res.Mailboxes)
		if res.Error != "" {
			return fmt.Errorf("some mailboxes failed: %s", res.Error)
		}
		return nil
	default:
		return usagef("parley mailbox: unknown verb %q\n%s", verb, mailboxUsage)
	}
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, st)
	}
	printMailbox(e, st)
	return nil
}

func printMailbox(e *env, st apitype.MailboxStatus) {
	switch st.Serving {
	case "off":
		fmt.Fprintln(e.stdout, "serving:   off")
	default:
		fmt.Fprintf(e.stdout, "serving:   %s (quota %d items / %d MiB per recipient tag per day, kept %d days)\n",
			st.Serving, st.QuotaItems, st.QuotaBytes>>20, st.TTLDays)
		fmt.Fprintf(e.stdout, "stored:    %d items, %d bytes\n", st.Stored, st.StoredBytes)
	}
	use := "none"
	if len(st.Use) > 0 {
		use = strings.Join(st.Use, "\n           ")
	}
	switch {
	case st.Auto && len(st.Use) == 0 && len(st.Defaults) > 0:
		use = fmt.Sprintf("none yet (default: %d bootstrap nodes, none reached that serves mailboxes)", len(st.Defaults))
	case st.Auto && len(st.Use) == 0:
		use = "none (no default on this network; choose with `parley mailbox use PEER`)"
	case st.Auto:
		use += " (default)"
	}
	fmt.Fprintf(e.stdout, "using:     %s\n", use)
	if !st.LastDrain.IsZero() {
		fmt.Fprintf(e.stdout, "drained:   %s, %d messages\n", st.LastDrain.Local().Format("2006-01-02 15:04:05"), st.LastFetched)
	} else if len(st.Use) > 0 {
		fmt.Fprintln(e.stdout, "drained:   not yet")
	}
	printDrains(e, st.Drains)
	for i, c := range st.Contacts {
		label := ""
		if i == 0 {
			label = "contacts:"
		}
		mbs := "none"
		if len(c.Mailboxes) > 0 {
			mbs = strings.Join(c.Mailboxes, ", ")
		}
		waiting := ""
		if c.Waiting > 0 {
			waiting = fmt.Sprintf(" (%d waiting, %d deposited)", c.Waiting, c.Deposited)
		}
		fmt.Fprintf(e.stdout, "%-10s %s uses %s%s\n", label, safetext.Line(c.Contact), mbs, waiting)
	}
}

// printDrains prints the outcome of the last drain of each mailbox.
func printDrains(e *env, ds []apitype.MailboxDrain) {
	for _, d := range ds {
		if d.Error != "" {
			fmt.Fprintf(e.stdout, "  %s: failed at %s: %s\n", d.Mailbox, d.At.Local().Format("15:04:05"), safetext.Line(d.Error))
			continue
		}
		fmt.Fprintf(e.stdout, "  %s: %d messages at %s\n", d.Mailbox, d.Fetched, d.At.Local().Format("15:04:05"))
	}
}
