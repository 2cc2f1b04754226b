package main

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/client"
)

// setvar NAME sets $NAME to the first line of the last command's stdout.
func cmdSetVar(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: setvar NAME")
	}
	line, _, _ := strings.Cut(ts.ReadFile("stdout"), "\n")
	if line = strings.TrimSpace(line); line == "" {
		ts.Fatalf("setvar %s: the last command printed nothing", args[0])
	}
	ts.Setenv(args[0], line)
}

// waitroom HOME ROOM STATE waits until the node in HOME lists ROOM in
// STATE (joined, waiting, removed, left, retired), and sets $ROOM to the
// name it is listed under: a room we were removed from or left may carry
// a suffix ("#team~a6e105") that frees its name.
func cmdWaitRoom(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: waitroom HOME ROOM STATE")
	}
	c := client.New(ts.MkAbs(args[0]))
	poll(ts, args[1]+" "+args[2]+" in "+args[0], func(ctx context.Context) error {
		rooms, err := c.Rooms(ctx)
		if err != nil {
			return err
		}
		for _, r := range rooms {
			if base, _, _ := strings.Cut(r.Name, "~"); base == args[1] {
				ts.Setenv("ROOM", r.Name)
				if state := cmp.Or(r.State, "joined"); state != args[2] {
					return fmt.Errorf("%s is %q", r.Name, r.State)
				}
				return nil
			}
		}
		return fmt.Errorf("no room %s", args[1])
	})
}

// waitinvite HOME NAME waits until the node in HOME has an invitation
// pending and sets $NAME to the id of the first one.
func cmdWaitInvite(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitinvite HOME NAME")
	}
	c := client.New(ts.MkAbs(args[0]))
	poll(ts, "an invitation in "+args[0], func(ctx context.Context) error {
		var list []apitype.RoomInvite
		if err := c.Do(ctx, "GET", "/v1/rooms/invites", nil, nil, &list); err != nil {
			return err
		}
		if len(list) == 0 {
			return fmt.Errorf("no invitation")
		}
		ts.Setenv(args[1], list[0].ID)
		return nil
	})
}
