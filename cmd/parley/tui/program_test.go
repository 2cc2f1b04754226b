package tui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/parley-im/parley/peer/apitype"
)

// syncBuffer is an output the program writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitOutput waits until the text written to out (escape sequences
// removed) contains want.
func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ansi.Strip(out.String()), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q; got:\n%s", want, ansi.Strip(out.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitCall[T any](t *testing.T, ch chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("no call")
	}
	panic("unreachable")
}

func waitDone(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("did not return")
	}
	return nil
}

// startProgram runs the real program on f with its input and output on
// pipes, as a terminal of 100x24 would.
func startProgram(t *testing.T, ctx context.Context, f *fakeBackend, conv string) (io.Writer, *syncBuffer, chan error) {
	t.Helper()
	inR, inW := io.Pipe()
	t.Cleanup(func() { inW.Close() })
	out := new(syncBuffer)
	p := newProgram(ctx, f, conv, tea.WithInput(inR), tea.WithOutput(out), tea.WithoutSignals())
	done := make(chan error, 1)
	go func() { done <- p.run() }()
	p.Send(tea.WindowSizeMsg{Width: 100, Height: 24})
	return inW, out, done
}

func TestProgram(t *testing.T) {
	f := newFake(testConvs()...)
	f.addLog("bob", incoming("b1", "bob", "earlier message"))
	in, out, done := startProgram(t, t.Context(), f, "bob")
	waitOutput(t, out, "bob: earlier message")
	if got := waitCall(t, f.read); got != "bob" {
		t.Errorf("MarkRead(%q), want bob", got)
	}

	io.WriteString(in, "hello over the pipe\r")
	if got := waitCall(t, f.sent); got != (sendCall{"bob", "hello over the pipe"}) {
		t.Errorf("Send = %v", got)
	}
	waitOutput(t, out, "me: hello over the pipe ○")

	f.events <- receiptEvent(apitype.Message{ID: "out1", Conv: "bob", Outgoing: true, Text: "hello over the pipe", SentAt: t0}, apitype.StateDelivered)
	waitOutput(t, out, "hello over the pipe ✓✓")

	f.events <- messageEvent(incoming("b2", "bob", "pushed by the node"))
	waitOutput(t, out, "bob: pushed by the node")

	f.events <- messageEvent(incoming("a1", "alice", "psst"))
	waitOutput(t, out, "alice (1)")

	io.WriteString(in, "\x03") // Ctrl-C
	if err := waitDone(t, done); err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestProgramContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	_, out, done := startProgram(t, ctx, newFake(testConvs()...), "")
	waitOutput(t, out, "No messages yet")
	cancel()
	if err := waitDone(t, done); err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
}

func TestProgramBackendDown(t *testing.T) {
	f := newFake(testConvs()...)
	f.fail(errors.New("connection refused"))
	in, out, done := startProgram(t, t.Context(), f, "bob")
	waitOutput(t, out, "connection refused")
	io.WriteString(in, "still typing\r")
	waitOutput(t, out, "send: connection refused")
	io.WriteString(in, "\x03") // the draft is back: a second Ctrl+C is needed
	waitOutput(t, out, "press Ctrl+C again")
	io.WriteString(in, "\x03")
	if err := waitDone(t, done); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestProgramNodeStopsAndReturns: the event stream breaks, the UI says the
// node stopped, and once the node answers again it shows what arrived
// meanwhile.
func TestProgramNodeStopsAndReturns(t *testing.T) {
	f := newFake(testConvs()...)
	in, out, done := startProgram(t, t.Context(), f, "bob")
	waitOutput(t, out, "Enter send")
	f.fail(errors.New("connection refused"))
	f.drop <- struct{}{}
	waitOutput(t, out, "node stopped")
	f.addLog("bob", incoming("late", "bob", "sent while you were away"))
	f.fail(nil)
	waitOutput(t, out, "sent while you were away")
	io.WriteString(in, "\x11") // Ctrl+Q
	if err := waitDone(t, done); err != nil {
		t.Fatalf("run: %v", err)
	}
}
