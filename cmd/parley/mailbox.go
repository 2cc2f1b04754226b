package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/parley-im/parley/peer/apitype"
)

func init() {
	register(command{name: "mailbox", args: "enable|use|status|drain ...", summary: "offline delivery: serve or choose mailboxes (see `parley mailbox --help`)", run: runMailbox})
}

const mailboxUsage = `usage:
  parley mailbox enable [--quota N]      serve a mailbox for your contacts (N items per sender–recipient tag per day)
  parley mailbox enable --off            stop serving
  parley mailbox use PEER...             drain these mailboxes (peer IDs, at most 8) and tell your contacts
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
	quota := f.Int("quota", 0, "enable: items each contact may deposit per 14 days (default 1000)")
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
		st, err = c.MailboxUse(ctx, apitype.MailboxUseRequest{Peers: pos, Auto: *auto})
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
		fmt.Fprintf(e.stdout, "received %d messages from mailboxes\n", res.Received)
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
	if st.Auto {
		use += " (default)"
	}
	fmt.Fprintf(e.stdout, "using:     %s\n", use)
	if !st.LastDrain.IsZero() {
		fmt.Fprintf(e.stdout, "drained:   %s\n", st.LastDrain.Local().Format("2006-01-02 15:04:05"))
	}
}
