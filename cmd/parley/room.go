package main

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mdp/qrterminal/v3"

	"github.com/parley-im/parley/internal/safetext"
	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/client"
)

func init() {
	register(command{name: "rooms", args: "[--invites]", summary: "list the rooms you are in, or the invitations waiting for you", run: runRooms})
	register(command{name: "room", args: "create|join|invite|links|revoke|accept|decline|promote|kick|leave|members ...", summary: "manage rooms (see `parley room --help`)", run: runRoom})
}

const roomUsage = `usage:
  parley room create NAME [--public]     make a private room (or join a public one)
  parley room join '#NAME'|LINK          join a public room, or a private one by parley://room/ link
  parley room invite NAME CONTACT        invite a contact to a private room; they accept or decline (admins)
  parley room invite NAME --link [--uses N] [--expires D]
                                         print a join link admitting N joins for D (admins)
  parley room links NAME                 list a room's join links: uses, expiry, revoked (admins)
  parley room revoke NAME LINK|TOKEN     make a join link admit nobody more (admins)
  parley room accept ID                  accept an invitation listed by ` + "`parley rooms --invites`" + `
  parley room decline ID                 decline an invitation
  parley room promote NAME MEMBER        make a member an admin (admins)
  parley room kick NAME MEMBER           remove a member and rotate every key (admins)
  parley room leave NAME                 leave a room
  parley room members NAME               list a room's members`

// roomVerbs says how many positional arguments each room verb takes.
var roomVerbs = map[string]int{
	"create": 1, "join": 1, "invite": 2, "links": 1, "revoke": 2, "accept": 1,
	"decline": 1, "promote": 2, "kick": 2, "leave": 1, "members": 1,
}

func runRooms(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "rooms", true)
	invites := f.Bool("invites", false, "list the invitations to rooms that wait for your consent")
	pos, err := f.parse(args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) != 0 {
		return usagef("usage: parley rooms [--invites]")
	}
	home, err := f.homeDir()
	if err != nil {
		return err
	}
	c := clientFor(home)
	if *invites {
		var list []apitype.RoomInvite
		if err := c.Do(ctx, "GET", "/v1/rooms/invites", nil, nil, &list); err != nil {
			return err
		}
		if f.json {
			return printJSON(e.stdout, list)
		}
		if len(list) == 0 {
			fmt.Fprintln(e.stdout, "no invitations")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROOM\tFROM\tEXPIRES")
		for _, inv := range list {
			from := orDash(safetext.Line(inv.FromName))
			if inv.FromName == "" {
				from = safetext.Line(inv.From)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", safetext.Line(inv.ID), safetext.Line(inv.Room), from, when(inv.Expires))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(e.stderr, "accept with `parley room accept ID`, decline with `parley room decline ID`")
		return nil
	}
	rooms, err := c.Rooms(ctx)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, rooms)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOM\tKIND\tROLE\tMEMBERS\tPEERS\tEPOCH\tSTATE")
	var details []string
	for _, r := range rooms {
		kind, members := "private", fmt.Sprint(len(r.Members))
		if r.Public {
			kind, members = "public", "-"
		}
		name := safetext.Line(r.Name)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", name, kind, orDash(r.Role), members, r.Peers, r.Epoch, cmp.Or(r.State, "joined"))
		if r.Detail != "" && r.State != "" && r.State != "joined" {
			details = append(details, fmt.Sprintf("%s: %s", name, safetext.Line(r.Detail)))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, d := range details {
		fmt.Fprintln(e.stdout, d)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// when prints a time for a table: local, to the minute.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

// subVerb returns the verb of a "parley NAME VERB ..." command. done is
// true when there is no verb to run: the usage has been printed to stderr
// and err is what the command returns.
func subVerb(e *env, name, usage string, args []string) (verb string, done bool, err error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(e.stderr, usage)
		if len(args) == 0 {
			return "", true, usagef("parley %s: missing verb", name)
		}
		return "", true, nil
	}
	return args[0], false, nil
}

// parseExpiry reads --expires: a Go duration ("90m", "12h") or a number
// of days ("7d").
func parseExpiry(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, usagef("--expires %q: want a positive duration such as 7d, 12h or 90m", s)
	}
	if d > 365*24*time.Hour {
		return 0, usagef("--expires %q: at most a year (365d)", s)
	}
	return d, nil
}

func runRoom(ctx context.Context, e *env, args []string) error {
	verb, done, err := subVerb(e, "room", roomUsage, args)
	if done {
		return err
	}
	f := newFlags(e, "room "+verb, true)
	var (
		public, link, noQR = new(bool), new(bool), new(bool)
		uses               = new(int)
		expires            = new(string)
	)
	switch verb {
	case "create":
		public = f.Bool("public", false, "a public room (clear text, joined by name)")
	case "invite":
		link = f.Bool("link", false, "print a parley://room/ join link instead of inviting a contact")
		uses = f.Int("uses", 0, "with --link: how many joins the link admits (default 1)")
		expires = f.String("expires", "", "with --link: how long the link is valid, as `D`: 7d, 12h, 90m (default 7d)")
		noQR = f.Bool("no-qr", false, "with --link: do not print the QR code")
	}
	pos, err := f.parse(args[1:])
	if err != nil {
		return helpOK(err)
	}
	want, ok := roomVerbs[verb]
	if !ok {
		var verbs []string
		for v := range roomVerbs {
			verbs = append(verbs, v)
		}
		sort.Strings(verbs)
		return usagef("parley room: unknown verb %q%s\n%s", verb, suggest(verb, verbs), roomUsage)
	}
	if verb == "invite" && *link {
		want = 1
	}
	if !*link && (*uses != 0 || *expires != "" || *noQR) {
		return usagef("parley room %s: --uses, --expires and --no-qr go with --link", verb)
	}
	if len(pos) != want {
		return usagef("parley room %s: want %d argument(s), got %d\n%s", verb, want, len(pos), roomUsage)
	}
	if *uses < 0 || *uses > 1000 { // chat/room.MaxLinkUses
		return usagef("--uses %d: want a number of joins from 1 to 1000", *uses)
	}
	exp, err := parseExpiry(*expires)
	if err != nil {
		return err
	}
	home, err := f.homeDir()
	if err != nil {
		return err
	}
	c := clientFor(home)
	r := roomCmd{e: e, c: c, json: f.json}
	req := apitype.RoomRequest{Name: pos[0], Public: *public}
	switch verb {
	case "create":
		return r.room(ctx, "create", req, func(room apitype.Room) {
			fmt.Fprintf(e.stdout, "joined %s (%s)\n", safetext.Line(room.Name), kindOf(room))
		})
	case "join":
		return r.join(ctx, "join", req)
	case "invite":
		if *link {
			req.Link, req.Uses, req.Expires = true, *uses, exp
			var l apitype.RoomLink
			if err := c.Do(ctx, "POST", "/v1/rooms/invite", nil, req, &l); err != nil {
				return err
			}
			if r.json {
				return printJSON(e.stdout, l)
			}
			fmt.Fprintln(e.stdout, l.Link)
			if !*noQR {
				qrterminal.GenerateHalfBlock(l.Link, qrterminal.L, e.stdout)
			}
			fmt.Fprintf(e.stderr, "admits %s until %s; revoke it with `parley room revoke %s %s`\n",
				plural(l.Uses, "join"), when(l.Expires), strings.TrimPrefix(req.Name, "#"), safetext.Line(l.Token))
			return nil
		}
		req.Member = pos[1]
		return r.room(ctx, "invite", req, func(room apitype.Room) {
			fmt.Fprintf(e.stdout, "invited %s to %s; they are added when they accept\n", safetext.Line(req.Member), safetext.Line(room.Name))
		})
	case "links":
		var list []apitype.RoomLink
		if err := c.Do(ctx, "GET", "/v1/rooms/links", url.Values{"name": {req.Name}}, nil, &list); err != nil {
			return err
		}
		if r.json {
			return printJSON(e.stdout, list)
		}
		if len(list) == 0 {
			fmt.Fprintf(e.stdout, "no join links (make one with `parley room invite %s --link`)\n", strings.TrimPrefix(req.Name, "#"))
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOKEN\tUSED\tEXPIRES\tSTATE")
		now := time.Now()
		for _, l := range list {
			state := "active"
			switch {
			case l.Revoked:
				state = "revoked"
			case !l.Expires.IsZero() && l.Expires.Before(now):
				state = "expired"
			case l.Uses > 0 && l.Used >= l.Uses:
				state = "used up"
			}
			fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\n", safetext.Line(l.Token), l.Used, l.Uses, when(l.Expires), state)
		}
		return tw.Flush()
	case "revoke":
		req.Token = pos[1]
		if err := c.Do(ctx, "POST", "/v1/rooms/revoke", nil, req, nil); err != nil {
			return err
		}
		if r.json {
			return printJSON(e.stdout, map[string]string{"revoked": req.Token})
		}
		fmt.Fprintln(e.stdout, "revoked: the link admits nobody more")
		return nil
	case "accept":
		return r.join(ctx, "accept", apitype.RoomRequest{Invite: pos[0]})
	case "decline":
		if err := c.Do(ctx, "POST", "/v1/rooms/decline", nil, apitype.RoomRequest{Invite: pos[0]}, nil); err != nil {
			return err
		}
		if r.json {
			return printJSON(e.stdout, map[string]string{"declined": pos[0]})
		}
		fmt.Fprintln(e.stdout, "declined")
		return nil
	case "promote":
		req.Member = pos[1]
		return r.room(ctx, "promote", req, func(room apitype.Room) {
			fmt.Fprintf(e.stdout, "%s is now an admin of %s (epoch %d)\n", safetext.Line(req.Member), safetext.Line(room.Name), room.Epoch)
		})
	case "kick":
		req.Member = pos[1]
		return r.room(ctx, "kick", req, func(room apitype.Room) {
			fmt.Fprintf(e.stdout, "removed %s from %s; every key rotated (epoch %d)\n", safetext.Line(req.Member), safetext.Line(room.Name), room.Epoch)
		})
	case "leave":
		return r.room(ctx, "leave", req, func(room apitype.Room) {
			fmt.Fprintf(e.stdout, "left %s\n", safetext.Line(room.Name))
		})
	case "members":
		room, err := c.Room(ctx, req.Name)
		if err != nil {
			return err
		}
		if r.json {
			return printJSON(e.stdout, room)
		}
		return printMembers(e, room)
	}
	return nil
}

// roomCmd runs one room verb against the node's API.
type roomCmd struct {
	e    *env
	c    *client.Client
	json bool
}

// room posts a verb whose answer is the room, and prints it with show.
func (r roomCmd) room(ctx context.Context, verb string, req apitype.RoomRequest, show func(apitype.Room)) error {
	room, err := r.c.RoomVerb(ctx, verb, req)
	if err != nil {
		return err
	}
	if r.json {
		return printJSON(r.e.stdout, room)
	}
	show(room)
	return nil
}

// join posts join or accept, whose answer is a JoinResult: joined, or
// waiting for an admin to admit us (not a failure: the join is under way).
func (r roomCmd) join(ctx context.Context, verb string, req apitype.RoomRequest) error {
	var res apitype.JoinResult
	if err := r.c.Do(ctx, "POST", "/v1/rooms/"+verb, nil, req, &res); err != nil {
		return err
	}
	if r.json {
		return printJSON(r.e.stdout, res)
	}
	name := safetext.Line(res.Room.Name)
	switch res.Status {
	case "waiting":
		detail := strings.TrimPrefix(safetext.Line(res.Detail), "waiting for the admin ")
		if detail == "" {
			detail = "the join request is sent; the room appears in `parley rooms` once an admin admits you"
		}
		fmt.Fprintf(r.e.stdout, "waiting for the admin (%s)\n", detail)
	default:
		fmt.Fprintf(r.e.stdout, "joined %s (%s)\n", name, kindOf(res.Room))
	}
	return nil
}

func printMembers(e *env, room apitype.Room) error {
	if room.Public {
		fmt.Fprintf(e.stdout, "%s is public: %d peers connected, no roster\n", safetext.Line(room.Name), room.Peers)
		return nil
	}
	if room.State != "" && room.State != "joined" {
		fmt.Fprintf(e.stdout, "%s: %s", safetext.Line(room.Name), room.State)
		if room.Detail != "" {
			fmt.Fprintf(e.stdout, " (%s)", safetext.Line(room.Detail))
		}
		fmt.Fprintln(e.stdout)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tPEER ID")
	for _, m := range room.Members {
		name := orDash(safetext.Line(m.Name))
		if m.Self {
			name = "(you)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, m.Role, safetext.Line(m.PeerID))
	}
	return tw.Flush()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func kindOf(r apitype.Room) string {
	if r.Public {
		return "public: anyone who knows the name can read it"
	}
	return "private, end-to-end encrypted"
}
