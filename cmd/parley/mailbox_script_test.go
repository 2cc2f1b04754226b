package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/parley-im/parley/peer/client"
)

// waitstored HOME N waits until the mailbox of the node in HOME holds at
// least N items.
func cmdWaitStored(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitstored HOME N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	c := client.New(ts.MkAbs(args[0]))
	poll(ts, args[1]+" or more items in the mailbox of "+args[0], func(ctx context.Context) error {
		st, err := c.Mailbox(ctx)
		if err == nil && st.Stored < n {
			err = fmt.Errorf("%d items", st.Stored)
		}
		return err
	})
}

// waitmailbox HOME PEER waits until the node in HOME uses mailbox PEER.
func cmdWaitMailbox(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitmailbox HOME PEER")
	}
	c := client.New(ts.MkAbs(args[0]))
	poll(ts, args[0]+" using mailbox "+args[1], func(ctx context.Context) error {
		st, err := c.Mailbox(ctx)
		if err == nil && !slices.Contains(st.Use, args[1]) {
			err = fmt.Errorf("using %v", st.Use)
		}
		return err
	})
}

// waitdeposited HOME CONTACT N waits until the node in HOME has at least N
// frames waiting for CONTACT and every one of them deposited in a mailbox
// of CONTACT's.
func cmdWaitDeposited(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: waitdeposited HOME CONTACT N")
	}
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	c := client.New(ts.MkAbs(args[0]))
	poll(ts, args[2]+" frames for "+args[1]+" deposited", func(ctx context.Context) error {
		st, err := c.Mailbox(ctx)
		if err != nil {
			return err
		}
		for _, cm := range st.Contacts {
			if cm.Contact == args[1] {
				if cm.Waiting < n || cm.Deposited < cm.Waiting {
					return fmt.Errorf("%d waiting, %d deposited", cm.Waiting, cm.Deposited)
				}
				return nil
			}
		}
		return fmt.Errorf("%s announced no mailboxes", args[1])
	})
}

// nodelisten HOME NAME sets $NAME_LISTEN to the first address of the node
// in HOME without its /p2p/ part, so that a restart can listen there again.
func cmdNodeListen(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: nodelisten HOME NAME")
	}
	id, err := client.New(ts.MkAbs(args[0])).ID(context.Background())
	ts.Check(err)
	if len(id.Addrs) == 0 {
		ts.Fatalf("node in %s has no addresses", args[0])
	}
	addr, _, ok := strings.Cut(id.Addrs[0], "/p2p/")
	if !ok {
		ts.Fatalf("address %s has no /p2p/ part", id.Addrs[0])
	}
	ts.Setenv(args[1]+"_LISTEN", addr)
}
