package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/parley-im/parley/internal/safetext"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/client"
)

// Contacts are chosen: `add` (a link or peer ID) or `accept` (a message
// request) makes one. Everything else an unknown peer sends is a request,
// readable with `parley log PEER` and nothing more, until accepted.

func init() {
	register(command{name: "requests", summary: "list message requests: unknown peers whose first message authenticated", run: runRequests,
		group: "Contacts",
		long: `Lists message requests: peers who are not your contacts and whose first
message authenticated. A request can be read (` + "`parley log PEER`" + `) but gets
none of a contact's privileges (mailbox service, your mailbox list, room
invites, presence) until you accept it. Each shows a short HANDLE
(peer-XXXXXX) that accept, decline and block take as well as the peer ID.`,
		examples: []string{"parley requests", "parley requests --json"}})
	register(command{name: "accept", args: "PEER|HANDLE [--name NAME]", summary: "make a message request a contact (default name: its handle)", run: runAccept,
		group: "Contacts",
		long: `Makes a message request a contact, named NAME (default: its handle). The
name is yours alone: the peer never chooses it.`,
		examples: []string{"parley accept peer-3f9a2c --name carol", "parley accept 12D3KooWQ... --name carol"}})
	register(command{name: "decline", args: "PEER|HANDLE", summary: "delete a message request and its messages (the peer may write again)", run: contactActionCmd("decline", "PEER|HANDLE"),
		group:    "Contacts",
		long:     `Deletes a message request and its messages. The peer may write again; block it to refuse it for good.`,
		examples: []string{"parley decline peer-3f9a2c"}})
	register(command{name: "block", args: "NAME|PEER|HANDLE", summary: "refuse everything from a contact, request or peer ID", run: contactActionCmd("block", "NAME|PEER|HANDLE"),
		group: "Contacts",
		long: `Refuses everything from a peer: its streams are reset before any crypto,
its connections closed, its mailbox deposits rejected, and what was queued
for it dropped. History is kept. Works on a contact, a request or any peer ID.`,
		examples: []string{"parley block mallory", "parley block 12D3KooWQ..."}})
	register(command{name: "unblock", args: "PEER", summary: "lift a block (see `parley blocked`)", run: contactActionCmd("unblock", "PEER"),
		group:    "Contacts",
		long:     `Lifts a block. The peer is not a contact again until you add or accept it.`,
		examples: []string{"parley unblock 12D3KooWQ..."}})
	register(command{name: "blocked", summary: "list blocked peers", run: runBlocked,
		group:    "Contacts",
		long:     `Lists the peers you blocked, with when.`,
		examples: []string{"parley blocked", "parley blocked --json"}})
	register(command{name: "mute", args: "NAME", summary: "keep a contact's messages out of `watch` (they are still stored and delivered)", run: contactActionCmd("mute", "NAME"),
		group: "Contacts",
		long: `Keeps a contact's messages out of ` + "`parley watch`" + `'s text output (they
are still stored, delivered and acknowledged; --json marks them muted).`,
		examples: []string{"parley mute noisy-bot"}})
	register(command{name: "unmute", args: "NAME", summary: "show a muted contact's messages in `watch` again", run: contactActionCmd("unmute", "NAME"),
		group:    "Contacts",
		long:     `Shows a muted contact's messages in watch again.`,
		examples: []string{"parley unmute noisy-bot"}})
}

func runRequests(ctx context.Context, e *env, args []string) error {
	c, f, _, err := clientCmd(e, "requests", args, 0, "")
	if err != nil {
		return helpOK(err)
	}
	rs, err := c.Requests(ctx)
	if err != nil {
		return err
	}
	if f.json {
		if rs == nil {
			rs = []apitype.Request{}
		}
		return printJSON(e.stdout, rs)
	}
	if len(rs) == 0 {
		fmt.Fprintln(e.stdout, "no message requests")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLE\tPEER ID\tLAST\tMESSAGES\tLATEST (unverified sender)")
	for _, r := range rs {
		last := []rune(safetext.Line(r.Last))
		if len(last) > 40 {
			last = append(last[:39], '…')
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Handle, r.PeerID, r.LastAt.Local().Format(time.DateTime), r.Messages, string(last))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "read one with `parley log PEER`; then `parley accept PEER --name NAME`, `parley decline PEER` or `parley block PEER`")
	return nil
}

func runAccept(ctx context.Context, e *env, args []string) error {
	var name *string
	c, f, pos, err := clientCmd(e, "accept", args, 1, "PEER|HANDLE [--name NAME]", func(f *flags) {
		name = f.String("name", "", "your name for the new contact (default: its handle, peer-XXXXXX)")
	})
	if err != nil {
		return helpOK(err)
	}
	res, err := c.ContactAction(ctx, "accept", pos[0], *name)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, res)
	}
	n := safetext.Line(res.Contact.Name)
	fmt.Fprintf(e.stdout, "accepted %s as %s; compare safety numbers with `parley verify %s`\n", res.PeerID, n, n)
	return nil
}

func runBlocked(ctx context.Context, e *env, args []string) error {
	c, f, _, err := clientCmd(e, "blocked", args, 0, "")
	if err != nil {
		return helpOK(err)
	}
	bs, err := c.Blocked(ctx)
	if err != nil {
		return err
	}
	if f.json {
		if bs == nil {
			bs = []apitype.Blocked{}
		}
		return printJSON(e.stdout, bs)
	}
	if len(bs) == 0 {
		fmt.Fprintln(e.stdout, "no blocked peers")
		return nil
	}
	for _, b := range bs {
		fmt.Fprintf(e.stdout, "%s  blocked %s\n", b.PeerID, b.At.Local().Format(time.DateTime))
	}
	return nil
}

// contactActionCmd is a verb that applies action to one peer.
func contactActionCmd(action, usage string) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		c, f, pos, err := clientCmd(e, action, args, 1, usage)
		if err != nil {
			return helpOK(err)
		}
		res, err := c.ContactAction(ctx, action, pos[0], "")
		if err != nil {
			return err
		}
		if f.json {
			return printJSON(e.stdout, res)
		}
		printAction(e, res)
		return nil
	}
}

func printAction(e *env, res apitype.ContactActionResult) {
	who := res.PeerID
	if res.Contact != nil {
		who = safetext.Line(res.Contact.Name) + " (" + res.PeerID + ")"
	}
	switch res.Action {
	case "decline":
		fmt.Fprintf(e.stdout, "declined the request from %s; its messages are deleted\n", who)
	case "block":
		fmt.Fprintf(e.stdout, "blocked %s; `parley unblock %s` lifts it\n", who, res.PeerID)
	case "unblock":
		fmt.Fprintf(e.stdout, "unblocked %s\n", who)
	case "remove":
		fmt.Fprintf(e.stdout, "removed %s; its history stays readable with `parley log %s`\n", who, res.PeerID)
	case "rename":
		fmt.Fprintf(e.stdout, "renamed: %s\n", who)
	case "mute":
		fmt.Fprintf(e.stdout, "muted %s\n", who)
	case "unmute":
		fmt.Fprintf(e.stdout, "unmuted %s\n", who)
	}
}

// runContactsSub runs `parley contacts remove NAME` and `parley contacts
// rename OLD NEW` (pos is everything after `contacts`).
func runContactsSub(ctx context.Context, e *env, c *client.Client, f *flags, pos []string) error {
	sub, name := pos[0], ""
	switch {
	case sub == "remove" && len(pos) == 2:
	case sub == "rename" && len(pos) == 3:
		name = pos[2]
	case sub == "remove":
		return usagef("usage: parley contacts remove NAME")
	case sub == "rename":
		return usagef("usage: parley contacts rename OLD NEW")
	default:
		return usagef("usage: parley contacts [remove NAME | rename OLD NEW]")
	}
	res, err := c.ContactAction(ctx, sub, pos[1], name)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, res)
	}
	printAction(e, res)
	return nil
}
