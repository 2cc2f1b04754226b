// Package tui is the terminal interface of `parley chat`: a conversation
// list with unread counts and presence, the history of the open
// conversation with delivery ticks, and an input line, all kept live by the
// node's event stream. RunLines is its plain-text counterpart for pipes.
//
// The interface reaches the node only through Backend, which the local API
// client satisfies, so it is tested against an in-memory fake.
package tui

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parley-im/parley/peer/apitype"
)

// Backend is what the chat needs from a node.
type Backend interface {
	// Conversations lists conversations, most recent first.
	Conversations(ctx context.Context) ([]apitype.Conversation, error)
	// Log returns the last limit messages of conv, oldest first.
	Log(ctx context.Context, conv string, limit int) ([]apitype.Message, error)
	// Send queues text for a contact or #room and returns the stored message.
	Send(ctx context.Context, to, text string) (apitype.Message, error)
	// MarkRead marks every message of conv read.
	MarkRead(ctx context.Context, conv string) error
	// Events calls fn for each event until ctx ends, the stream fails or
	// fn returns an error.
	Events(ctx context.Context, fn func(apitype.Event) error) error
}

// eventRetry is how long the UI waits before it subscribes again to an
// event stream that failed.
const eventRetry = 2 * time.Second

// Run shows the chat UI until the user quits or ctx ends, opening conv
// (a contact name or #room), or the most recent conversation if conv is "".
// opts set the terminal (tea.WithInput, tea.WithOutput, tea.WithAltScreen).
// It returns nil when ctx ends.
func Run(ctx context.Context, b Backend, conv string, opts ...tea.ProgramOption) error {
	return newProgram(ctx, b, conv, opts...).run()
}

// program is the UI plus the goroutine that feeds it events.
type program struct {
	*tea.Program
	parent context.Context
	ctx    context.Context // ends when the UI exits; bounds every backend call
	cancel context.CancelFunc
	b      Backend
}

func newProgram(ctx context.Context, b Backend, conv string, opts ...tea.ProgramOption) *program {
	p := &program{parent: ctx, b: b}
	p.ctx, p.cancel = context.WithCancel(ctx)
	opts = append([]tea.ProgramOption{tea.WithContext(p.ctx)}, opts...)
	p.Program = tea.NewProgram(newModel(p.ctx, b, conv), opts...)
	return p
}

func (p *program) run() error {
	defer p.cancel()
	var wg sync.WaitGroup
	wg.Go(p.pumpEvents)
	_, err := p.Run()
	p.cancel()
	wg.Wait()
	if errors.Is(err, tea.ErrProgramKilled) && p.parent.Err() != nil {
		return nil
	}
	return err
}

// pumpEvents forwards the node's events to the UI until it exits,
// subscribing again after a failure.
func (p *program) pumpEvents() {
	for {
		err := p.b.Events(p.ctx, func(ev apitype.Event) error {
			p.Send(eventMsg(ev))
			return nil
		})
		if p.ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("stream ended")
		}
		p.Send(errMsg{fmt.Errorf("events: %w (retrying)", err)})
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(eventRetry):
		}
	}
}
