package tui

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/peer/apitype"
)

// startLines runs RunLines on f with stdin and stdout on pipes.
func startLines(t *testing.T, ctx context.Context, f *fakeBackend, conv string) (io.WriteCloser, *syncBuffer, chan error) {
	t.Helper()
	inR, inW := io.Pipe()
	t.Cleanup(func() { inW.Close() })
	out := new(syncBuffer)
	done := make(chan error, 1)
	go func() { done <- RunLines(ctx, f, conv, inR, out) }()
	return inW, out, done
}

func TestRunLines(t *testing.T) {
	f := newFake(testConvs()...)
	sent := apitype.Message{ID: "old", Conv: "bob", Outgoing: true, Text: "hello back", SentAt: t0, State: apitype.StateDelivered}
	gap := incoming("b2", "bob", "after a gap")
	gap.Gap = 2
	f.addLog("bob", incoming("b1", "bob", "hi"), sent, gap)
	in, out, done := startLines(t, t.Context(), f, "bob")
	waitOutput(t, out, "after a gap")

	io.WriteString(in, "first\n\n")
	if got := waitCall(t, f.sent); got != (sendCall{"bob", "first"}) {
		t.Errorf("Send = %v", got)
	}
	out1 := apitype.Message{ID: "out1", Conv: "bob", Outgoing: true, Text: "first", SentAt: t0}
	f.events <- receiptEvent(out1, apitype.StateSent)
	f.events <- receiptEvent(out1, apitype.StateSent) // repeated: printed once
	f.events <- messageEvent(incoming("a1", "alice", "not for this conversation"))
	f.events <- messageEvent(incoming("b3", "bob", "how are you"))
	waitOutput(t, out, "how are you")
	in.Close()
	if err := waitDone(t, done); err != nil {
		t.Fatalf("RunLines: %v", err)
	}

	ts := t0.Local().Format(lineLayout)
	want := strings.Join([]string{
		ts + " bob: hi",
		ts + " me: hello back ✓✓",
		"-- 2 messages from bob are missing",
		ts + " bob: after a gap",
		ts + " me: first ○",
		ts + " me: first ✓",
		ts + " bob: how are you",
		"",
	}, "\n")
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}

func TestRunLinesWaitsForSent(t *testing.T) {
	f := newFake(testConvs()...)
	in, out, done := startLines(t, t.Context(), f, "")
	io.WriteString(in, "last words\n")
	waitCall(t, f.sent)
	in.Close()
	select {
	case err := <-done:
		t.Fatalf("returned before the message was sent: %v", err)
	case f.events <- receiptEvent(apitype.Message{ID: "out1", Conv: "bob", Outgoing: true, Text: "last words", SentAt: t0}, apitype.StateDelivered):
	}
	if err := waitDone(t, done); err != nil {
		t.Fatalf("RunLines: %v", err)
	}
	waitOutput(t, out, "me: last words ✓✓")
}

func TestRunLinesGivesUp(t *testing.T) {
	defer func(d time.Duration) { drainTimeout = d }(drainTimeout)
	drainTimeout = 50 * time.Millisecond
	f := newFake(testConvs()...)
	in, out, done := startLines(t, t.Context(), f, "bob")
	io.WriteString(in, "into the void\n")
	waitCall(t, f.sent)
	in.Close()
	if err := waitDone(t, done); err != nil {
		t.Fatalf("RunLines: %v", err)
	}
	waitOutput(t, out, "1 message(s) still pending")
}

func TestRunLinesContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	f := newFake(testConvs()...)
	f.addLog("bob", incoming("b1", "bob", "hi"))
	_, out, done := startLines(t, ctx, f, "bob")
	waitOutput(t, out, "bob: hi")
	cancel()
	if err := waitDone(t, done); err != nil {
		t.Fatalf("RunLines after cancel: %v", err)
	}
}

func TestRunLinesErrors(t *testing.T) {
	t.Run("no conversations", func(t *testing.T) {
		_, _, done := startLines(t, t.Context(), newFake(), "")
		if err := waitDone(t, done); err == nil || !strings.Contains(err.Error(), "no conversations") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("node down", func(t *testing.T) {
		f := newFake(testConvs()...)
		f.fail(errors.New("connection refused"))
		_, _, done := startLines(t, t.Context(), f, "bob")
		if err := waitDone(t, done); err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("send fails", func(t *testing.T) {
		f := newFake(testConvs()...)
		f.addLog("bob", incoming("b1", "bob", "hi"))
		in, out, done := startLines(t, t.Context(), f, "bob")
		waitOutput(t, out, "bob: hi")
		f.fail(errors.New("boom"))
		io.WriteString(in, "doomed\n")
		if err := waitDone(t, done); err == nil || !strings.Contains(err.Error(), "send to bob: boom") {
			t.Fatalf("err = %v", err)
		}
	})
}
