package tui

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/parley-im/parley/peer/apitype"
)

// lineHistory is how many messages RunLines prints first.
const lineHistory = 20

// drainTimeout bounds how long RunLines waits at the end of its input for
// the messages it sent to leave the pending state.
var drainTimeout = 10 * time.Second

// RunLines is the chat without a terminal. It prints the last messages of
// conv (the most recent conversation if conv is ""), then sends each line
// of in to conv and prints the messages and receipts of conv as lines such
// as "2026-11-25 21:03 me: hi ✓✓". At the end of in it waits until every
// message it sent is at least sent, or for 10 s, and returns. It returns
// nil when ctx ends.
//
// A goroutine reads in; if ctx ends while in blocks, that goroutine ends
// only when in returns.
func RunLines(ctx context.Context, b Backend, conv string, in io.Reader, out io.Writer) error {
	err := runLines(ctx, b, conv, in, out)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func runLines(ctx context.Context, b Backend, conv string, in io.Reader, out io.Writer) error {
	if conv == "" {
		convs, err := b.Conversations(ctx)
		if err != nil {
			return fmt.Errorf("conversations: %w", err)
		}
		c, ok := mostRecent(convs)
		if !ok {
			return errors.New("no conversations yet: name a contact or #room")
		}
		conv = c.Name
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	// Subscribe before anything is sent so that no receipt is missed.
	events := make(chan apitype.Event)
	evErr := make(chan error, 1)
	wg.Go(func() {
		evErr <- b.Events(ctx, func(ev apitype.Event) error {
			select {
			case events <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})

	hist, err := b.Log(ctx, conv, lineHistory)
	if err != nil {
		return fmt.Errorf("history of %s: %w", conv, err)
	}
	state := make(map[string]string) // message ID → best state seen in this session
	mine := make(map[string]bool)    // IDs of the messages sent in this session
	// better records m's state and reports whether it moved forward.
	better := func(m apitype.Message) bool {
		old, ok := state[m.ID]
		if ok && rank(m.State) <= rank(old) {
			return false
		}
		state[m.ID] = m.State
		return true
	}
	pending := func() int {
		n := 0
		for id := range mine {
			if rank(state[id]) < rank(apitype.StateSent) {
				n++
			}
		}
		return n
	}
	for _, m := range hist {
		better(m)
		printLine(out, m, true)
	}

	lines := make(chan string)
	var readErr error
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		readErr = sc.Err()
	}()

	var drain <-chan time.Time // set at the end of in
	for {
		if drain != nil && pending() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-drain:
			fmt.Fprintf(out, "parley: %d message(s) still pending after %s; the node will keep trying while it runs\n", pending(), drainTimeout)
			return nil
		case err := <-evErr:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil {
				err = errors.New("stream ended")
			}
			return fmt.Errorf("events: %w", err)
		case text, ok := <-lines:
			if !ok {
				if readErr != nil {
					return fmt.Errorf("read input: %w", readErr)
				}
				lines, drain = nil, time.After(drainTimeout)
				continue
			}
			if text = strings.TrimSpace(text); text == "" {
				continue
			}
			m, err := b.Send(ctx, conv, text)
			if err != nil {
				return fmt.Errorf("send to %s: %w", conv, err)
			}
			mine[m.ID] = true
			if !better(m) {
				m.State = state[m.ID] // a receipt overtook the answer
			}
			printLine(out, m, false)
		case ev := <-events:
			m := ev.Message
			if m == nil || m.Conv != conv && !mine[m.ID] {
				continue
			}
			switch ev.Type {
			case "message":
				if !mine[m.ID] && better(*m) {
					printLine(out, *m, true)
				}
			case "receipt":
				if better(*m) {
					printLine(out, *m, false)
				}
			}
		}
	}
}

// printLine prints m, after its gap notice if withGap.
func printLine(w io.Writer, m apitype.Message, withGap bool) {
	if g := gapNotice(m); withGap && g != "" {
		fmt.Fprintf(w, "-- %s\n", g)
	}
	fmt.Fprintln(w, format(m, lineLayout))
}
