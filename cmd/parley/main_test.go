package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/parley-im/parley/cmd/parley/tui"
	"github.com/parley-im/parley/peer/client"
)

// TestMain lets the test binary act as the parley command inside scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"parley": main})
}

// TestScripts runs the CLI end to end against real `parley up` processes
// on loopback: testdata/*.txtar.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: false,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitnode":  cmdWaitNode,
			"waitpeers": cmdWaitPeers,
			"nodevars":  cmdNodeVars,
			"exitcode":  cmdExitCode,
			"validjson": cmdValidJSON,
			"waitlog":   cmdWaitLog,
			// mailboxes: mailbox_script_test.go
			"waitstored":    cmdWaitStored,
			"waitmailbox":   cmdWaitMailbox,
			"waitdeposited": cmdWaitDeposited,
			"nodelisten":    cmdNodeListen,
			// rooms: room_script_test.go
			"setvar":     cmdSetVar,
			"waitroom":   cmdWaitRoom,
			"waitinvite": cmdWaitInvite,
		},
	})
}

// nodeDeadline bounds how long a script waits for a node: a race-enabled
// binary on a busy machine starts slowly.
const nodeDeadline = 60 * time.Second

// poll calls f every 50ms until it returns nil or the deadline passes.
func poll(ts *testscript.TestScript, what string, f func(ctx context.Context) error) {
	deadline := time.Now().Add(nodeDeadline)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("timed out after %v waiting for %s: %v", nodeDeadline, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitnode HOME waits until a node answers on HOME's API socket.
func cmdWaitNode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitnode HOME")
	}
	c := client.New(ts.MkAbs(args[0]))
	poll(ts, "a node in "+args[0], func(ctx context.Context) error {
		_, err := c.ID(ctx)
		return err
	})
}

// waitpeers HOME N waits until the node in HOME has at least N peers.
func cmdWaitPeers(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitpeers HOME N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	c := client.New(ts.MkAbs(args[0]))
	poll(ts, args[1]+" peers in "+args[0], func(ctx context.Context) error {
		peers, err := c.Peers(ctx)
		if err == nil && len(peers) < n {
			err = errors.New(strconv.Itoa(len(peers)) + " peers")
		}
		return err
	})
}

// nodevars HOME NAME sets $NAME_ID to the node's peer ID and $NAME_ADDR to
// its first address (with /p2p/).
func cmdNodeVars(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: nodevars HOME NAME")
	}
	id, err := client.New(ts.MkAbs(args[0])).ID(context.Background())
	ts.Check(err)
	if len(id.Addrs) == 0 {
		ts.Fatalf("node in %s has no addresses", args[0])
	}
	ts.Setenv(args[1]+"_ID", id.PeerID)
	ts.Setenv(args[1]+"_ADDR", id.Addrs[0])
}

// exitcode N PROG ARGS... runs PROG and checks that it exits with status N;
// its stdout and stderr are then checked like exec's.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// waitlog HOME CONV REGEXP waits until a message line of conversation CONV
// in HOME matches REGEXP (as `parley log` prints it).
func cmdWaitLog(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: waitlog HOME CONV REGEXP")
	}
	re, err := regexp.Compile(args[2])
	ts.Check(err)
	c := client.New(ts.MkAbs(args[0]))
	poll(ts, args[2]+" in the log of "+args[1], func(ctx context.Context) error {
		ms, err := c.Log(ctx, args[1], 0)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if re.MatchString(tui.Line(m)) {
				return nil
			}
		}
		return errors.New("no line matches")
	})
}

// validjson checks that the last command's stdout is one JSON value.
func cmdValidJSON(ts *testscript.TestScript, neg bool, args []string) {
	dec := json.NewDecoder(bytes.NewReader([]byte(ts.ReadFile("stdout"))))
	var v any
	err := dec.Decode(&v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if (err == nil) == neg {
		ts.Fatalf("stdout is valid JSON: %v, want %v (%v)", err == nil, !neg, err)
	}
}

// TestNetNewIsLibp2pPSK checks that `parley net new` prints a key that
// go-libp2p's own decoder reads.
func TestNetNewIsLibp2pPSK(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"net", "new"}, nil, &out, &errOut); err != nil {
		t.Fatalf("parley net new: %v (%s)", err, errOut.String())
	}
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatalf("pnet.DecodeV1PSK: %v\n%s", err, out.String())
	}
	if len(psk) != 32 {
		t.Fatalf("key is %d bytes, want 32", len(psk))
	}
}
