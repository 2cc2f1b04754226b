package tui

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/client"
)

var _ Backend = (*client.Client)(nil)

// t0 is the time of the fake's messages.
var t0 = time.Date(2026, 11, 25, 21, 3, 0, 0, time.UTC)

type sendCall struct{ to, text string }

// fakeBackend is an in-memory node. Tests push events into events and
// read the calls the UI made from sent and read.
type fakeBackend struct {
	events chan apitype.Event
	sent   chan sendCall // every Send
	read   chan string   // every MarkRead
	drop   chan struct{} // a send ends the current event stream

	mu    sync.Mutex
	convs []apitype.Conversation
	logs  map[string][]apitype.Message
	err   error // when set, every call fails with it
	next  int
}

func newFake(convs ...apitype.Conversation) *fakeBackend {
	return &fakeBackend{
		events: make(chan apitype.Event),
		sent:   make(chan sendCall, 64),
		read:   make(chan string, 64),
		drop:   make(chan struct{}),
		convs:  convs,
		logs:   make(map[string][]apitype.Message),
	}
}

func (f *fakeBackend) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeBackend) addLog(conv string, msgs ...apitype.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs[conv] = append(f.logs[conv], msgs...)
}

func (f *fakeBackend) Conversations(context.Context) ([]apitype.Conversation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return append([]apitype.Conversation(nil), f.convs...), nil
}

func (f *fakeBackend) Log(_ context.Context, conv string, limit int) ([]apitype.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	l := f.logs[conv]
	if limit > 0 && len(l) > limit {
		l = l[len(l)-limit:]
	}
	return append([]apitype.Message(nil), l...), nil
}

func (f *fakeBackend) Send(_ context.Context, to, text string) (apitype.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return apitype.Message{}, f.err
	}
	f.next++
	m := apitype.Message{
		ID: fmt.Sprintf("out%d", f.next), Conv: to, From: "12D3KooWme", Outgoing: true,
		Text: text, SentAt: t0, State: apitype.StatePending,
	}
	f.logs[to] = append(f.logs[to], m)
	f.sent <- sendCall{to, text}
	return m, nil
}

func (f *fakeBackend) MarkRead(_ context.Context, conv string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.read <- conv
	return nil
}

func (f *fakeBackend) Events(ctx context.Context, fn func(apitype.Event) error) error {
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.drop:
			return errors.New("event stream ended")
		case ev := <-f.events:
			if err := fn(ev); err != nil {
				return err
			}
		}
	}
}

// incoming is a message from a contact.
func incoming(id, conv, text string) apitype.Message {
	return apitype.Message{ID: id, Conv: conv, From: "12D3KooW" + conv, FromName: conv, Text: text, SentAt: t0, State: apitype.StateReceived}
}

func messageEvent(m apitype.Message) apitype.Event {
	return apitype.Event{Type: "message", Time: t0, Message: &m}
}

func receiptEvent(m apitype.Message, state string) apitype.Event {
	m.State = state
	return apitype.Event{Type: "receipt", Time: t0, Message: &m}
}

func (f *fakeBackend) LogBefore(_ context.Context, conv, before string, limit int) ([]apitype.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	l := f.logs[conv]
	for i, m := range l {
		if m.ID == before {
			l = l[:i]
			break
		}
	}
	if limit > 0 && len(l) > limit {
		l = l[len(l)-limit:]
	}
	return append([]apitype.Message(nil), l...), nil
}
