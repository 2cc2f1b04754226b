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
	// LogBefore returns up to limit messages of conv before the message
	// with id before, oldest first: the previous page.
	LogBefore(ctx context.Context, conv, before string, limit int) ([]apitype.Message, error)
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

// pumpEvents forwards the node's events to the UI until it exits. When
// the stream breaks, the UI shows the node as stopped; pumpEvents then
// asks the node for its conversations every eventRetry until it answers,
// hands them to the UI (which reloads what it shows) and subscribes again.
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
			err = errors.New("event stream ended")
		}
		p.Send(nodeDownMsg{err})
		for {
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(eventRetry):
			}
			convs, err := p.b.Conversations(p.ctx)
			if err == nil {
				p.Send(nodeUpMsg{convs})
				break
			}
		}
	}
}
