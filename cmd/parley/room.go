package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/mdp/qrterminal/v3"

	"github.com/parley-im/parley/peer/apitype"
)

func init() {
	register(command{name: "rooms", summary: "list the rooms you are in", run: runRooms})
	register(command{name: "room", args: "create|join|invite|leave|kick|members ...", summary: "manage rooms (see `parley room --help`)", run: runRoom})
}

const roomUsage = `usage:
  parley room create NAME [--public]     make a private room (or join a public one)
  parley room join '#NAME'|LINK          join a public room, or a private one by parley://room/ link
  parley room invite NAME CONTACT        add a contact to a private room (admins)
  parley room invite NAME --link         print a parley://room/ link and its QR code (admins)
  parley room kick NAME MEMBER           remove a member and rotate every key (admins)
  parley room leave NAME                 leave a room
  parley room members NAME               list a room's members`

func runRooms(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "rooms", true)
	pos, err := f.parse(args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) != 0 {
		return usagef("usage: parley rooms")
	}
	home, err := f.homeDir()
	if err != nil {
		return err
	}
	rooms, err := clientFor(home).Rooms(ctx)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, rooms)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOM\tKIND\tROLE\tMEMBERS\tPEERS\tEPOCH")
	for _, r := range rooms {
		kind, members := "private", fmt.Sprint(len(r.Members))
		if r.Public {
			kind, members = "public", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", r.Name, kind, orDash(r.Role), members, r.Peers, r.Epoch)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
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

func runRoom(ctx context.Context, e *env, args []string) error {
	verb, done, err := subVerb(e, "room", roomUsage, args)
	if done {
		return err
	}
	f := newFlags(e, "room "+verb, true)
	public := f.Bool("public", false, "create: a public room (clear text, joined by name)")
	link := f.Bool("link", false, "invite: print a parley://room/ link instead of inviting a contact")
	noQR := f.Bool("no-qr", false, "invite --link: do not print the QR code")
	pos, err := f.parse(args[1:])
	if err != nil {
		return helpOK(err)
	}
	home, err := f.homeDir()
	if err != nil {
		return err
	}
	c := clientFor(home)
	req := apitype.RoomRequest{Public: *public, Link: *link}
	want := 1
	switch verb {
	case "create", "join", "leave", "members":
	case "invite":
		if !*link {
			want = 2
		}
	case "kick":
		want = 2
	default:
		return usagef("parley room: unknown verb %q\n%s", verb, roomUsage)
	}
	if len(pos) != want {
		return usagef("%s", roomUsage)
	}
	req.Name = pos[0]
	if want == 2 {
		req.Member = pos[1]
	}
	var room apitype.Room
	if verb == "members" {
		room, err = c.Room(ctx, req.Name)
	} else {
		room, err = c.RoomVerb(ctx, verb, req)
	}
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(e.stdout, room)
	}
	switch verb {
	case "create", "join":
		if strings.HasPrefix(req.Name, "parley://") {
			fmt.Fprintf(e.stdout, "asked to join %s; it appears in `parley rooms` once the inviter adds you\n", room.Name)
			return nil
		}
		fmt.Fprintf(e.stdout, "joined %s (%s)\n", room.Name, kindOf(room))
	case "invite":
		if *link {
			fmt.Fprintln(e.stdout, room.Link)
			if !*noQR {
				qrterminal.GenerateHalfBlock(room.Link, qrterminal.L, e.stdout)
			}
			fmt.Fprintln(e.stderr, "anyone holding this link can ask to join until the room's next membership change")
			return nil
		}
		fmt.Fprintf(e.stdout, "invited %s to %s (epoch %d)\n", req.Member, room.Name, room.Epoch)
	case "kick":
		fmt.Fprintf(e.stdout, "removed %s from %s; every key rotated (epoch %d)\n", req.Member, room.Name, room.Epoch)
	case "leave":
		fmt.Fprintf(e.stdout, "left %s\n", room.Name)
	case "members":
		if room.Public {
			fmt.Fprintf(e.stdout, "%s is public: %d peers connected, no roster\n", room.Name, room.Peers)
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tPEER ID")
		for _, m := range room.Members {
			name := orDash(m.Name)
			if m.Self {
				name = "(you)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", name, m.Role, m.PeerID)
		}
		return tw.Flush()
	}
	return nil
}

func kindOf(r apitype.Room) string {
	if r.Public {
		return "public: anyone who knows the name can read it"
	}
	return "private, end-to-end encrypted"
}
