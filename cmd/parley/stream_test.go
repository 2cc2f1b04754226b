package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/client"
)

// bobID is a valid peer ID that no node runs: messages to it stay queued.
const bobID = "12D3KooWBtTzK9jkJEtZq8RmtrnFpwRyjXLDCN75rJYanwyMnGzs"

// startNode runs `parley up` in home as a separate process (the test
// binary acting as parley), so that the test can kill it, and waits until
// its API answers.
func startNode(t *testing.T, home string) *exec.Cmd {
	t.Helper()
	path, err := exec.LookPath("parley") // installed on PATH by testscript.Main
	if err != nil {
		t.Skipf("no parley on PATH: %v", err)
	}
	cmd := exec.Command(path, "up", "--home", home, "--listen", "/ip4/127.0.0.1/tcp/0",
		"--no-mdns", "--no-port-map", "--bootstrap", "none", "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	c := client.New(home)
	deadline := time.Now().Add(nodeDeadline)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.ID(ctx)
		cancel()
		if err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("node did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockedBuffer is an output that tests read while a command writes it.
type lockedBuffer struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{changed: make(chan struct{}, 1)} }

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until the output holds want, woken by each write.
func (l *lockedBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(nodeDeadline)
	for !strings.Contains(l.String(), want) {
		select {
		case <-l.changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %q in:\n%s", want, l.String())
		}
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("parley %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// TestSendStreamNodeKilled pipes lines into `parley send` one at a time,
// each acknowledged before the next is written, kills the node (SIGKILL)
// mid-pipe, and checks that send says which lines were stored, and that
// the history holds exactly those, once each.
func TestSendStreamNodeKilled(t *testing.T) {
	home := t.TempDir()
	node := startNode(t, home)
	mustRun(t, "add", "--home", home, bobID, "--name", "bob")

	pr, pw := io.Pipe()
	defer pw.Close()
	out := newLockedBuffer()
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"send", "--home", home, "bob"}, pr, out, io.Discard)
	}()
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(pw, "message %d\n", i)
		if i == 2 {
			fmt.Fprintln(pw, "   ") // blank lines are skipped, but counted
		}
		out.waitFor(t, fmt.Sprintf("line %d ", map[int]int{1: 1, 2: 2, 3: 4}[i]))
	}
	if err := node.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	node.Wait()
	fmt.Fprintln(pw, "message 4")

	var err error
	select {
	case err = <-done:
	case <-time.After(nodeDeadline):
		t.Fatal("send did not stop after the node died")
	}
	if err == nil {
		t.Fatal("send succeeded with the node dead")
	}
	for _, want := range []string{"line 5", "3 line(s) were stored, the last one line 4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	acked := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(acked) != 3 || !strings.HasPrefix(acked[0], "line 1 ") || !strings.HasPrefix(acked[2], "line 4 ") {
		t.Fatalf("acknowledgements:\n%s", out)
	}

	// The history, read with no node running: each stored line once, and
	// nothing that was not acknowledged.
	var ms []apitype.Message
	if err := json.Unmarshal([]byte(mustRun(t, "log", "--home", home, "bob", "--json", "--limit", "0")), &ms); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for i, m := range ms {
		texts = append(texts, m.Text)
		if id := strings.Fields(acked[i])[2]; m.ID != id {
			t.Errorf("message %d has id %s, acknowledged as %s", i, m.ID, id)
		}
	}
	if got := strings.Join(texts, "|"); got != "message 1|message 2|message 3" {
		t.Fatalf("history = %q, want the three acknowledged lines once each", got)
	}
}

// TestSendStreamJSON checks that send --json on stdin prints one object
// per line with the line number.
func TestSendStreamJSON(t *testing.T) {
	home := t.TempDir()
	startNode(t, home)
	mustRun(t, "add", "--home", home, bobID, "--name", "bob")
	var out, errOut strings.Builder
	err := run(context.Background(), []string{"send", "--home", home, "bob", "--json"}, strings.NewReader("a\n\nb\n"), &out, &errOut)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	var lines []int
	for sc.Scan() {
		var v struct {
			Line int    `json:"line"`
			ID   string `json:"id"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil || v.ID == "" {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, v.Line)
	}
	if fmt.Sprint(lines) != "[1 3]" {
		t.Fatalf("lines %v, want [1 3]", lines)
	}
}

// TestWatchJSON checks watch --json: NDJSON, --since replays what was
// stored before it started, live events follow with nothing twice, and
// when the node dies watch ends with an error naming it (exit status 1).
func TestWatchJSON(t *testing.T) {
	home := t.TempDir()
	node := startNode(t, home)
	mustRun(t, "add", "--home", home, bobID, "--name", "bob")
	mustRun(t, "send", "--home", home, "bob", "before watch")

	out := newLockedBuffer()
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"watch", "--home", home, "--json", "--since", "1h"}, nil, out, io.Discard)
	}()
	out.waitFor(t, `"before watch"`)
	mustRun(t, "send", "--home", home, "bob", "while watching")
	out.waitFor(t, `"while watching"`)
	node.Process.Kill()
	node.Wait()
	var err error
	select {
	case err = <-done:
	case <-time.After(nodeDeadline):
		t.Fatal("watch did not end when the node died")
	}
	var u *usageError
	if err == nil || errors.As(err, &u) || !strings.Contains(err.Error(), "node stopped") {
		t.Fatalf("watch ended with %v, want a failure naming the stopped node", err)
	}

	var texts []string
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var ev apitype.Event
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("line %q is not one event: %v", sc.Text(), err)
		}
		if ev.Type == "message" {
			texts = append(texts, ev.Message.Text)
		}
	}
	if got := strings.Join(texts, "|"); got != "before watch|while watching" {
		t.Fatalf("messages %q, want each once in order", got)
	}
}

// TestSendStreamNodeDiesMidRequest: the node takes a line and goes away
// before answering. send cannot know whether that line was stored, and
// says so, with its id; the lines before it were acknowledged.
func TestSendStreamNodeDiesMidRequest(t *testing.T) {
	home, err := os.MkdirTemp("", "parley-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	ln, err := net.Listen("unix", filepath.Join(home, "api.sock"))
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req apitype.SendRequest
		json.NewDecoder(r.Body).Decode(&req)
		if n.Add(1) == 3 { // the node dies while handling the third line
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		json.NewEncoder(w).Encode(apitype.Message{ID: req.ID, Conv: req.To, Text: req.Text, State: apitype.StatePending})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	var out strings.Builder
	err = run(context.Background(), []string{"send", "--home", home, "bob"}, strings.NewReader("one\ntwo\nthree\nfour\n"), &out, io.Discard)
	if err == nil {
		t.Fatal("send succeeded")
	}
	for _, want := range []string{"line 3:", "the node went away", "2 line(s) were stored, the last one line 2", "line 3 may or may not have been stored (id ", "later lines were not read"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if got := strings.Count(out.String(), "\n"); got != 2 || !strings.HasPrefix(out.String(), "line 1 ") {
		t.Errorf("acknowledgements:\n%s", out.String())
	}
	if n.Load() != 3 {
		t.Errorf("%d requests, want 3 (nothing after the uncertain line)", n.Load())
	}
}
