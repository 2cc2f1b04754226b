package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/parley-im/parley/peer/apitype"
)

// historyLimit is how many messages of a conversation the UI loads.
const historyLimit = 500

// Messages from commands and the event pump.
type (
	convsMsg []apitype.Conversation
	logMsg   struct {
		conv string
		msgs []apitype.Message
	}
	sentMsg struct {
		to  string
		msg apitype.Message
	}
	sendFailedMsg struct {
		text string
		err  error
	}
	eventMsg apitype.Event
	errMsg   struct{ err error }
)

// model is the whole UI state. Backend calls run in commands, which only
// capture values, never the model.
type model struct {
	ctx context.Context
	b   Backend

	convs    []apitype.Conversation
	cur      string               // name of the open conversation, "" before the list arrives
	msgs     []apitype.Message    // its history, oldest first
	lastSeen map[string]time.Time // by conversation name, from presence events
	status   string               // the last error, until the next success

	input         textinput.Model
	hist          viewport.Model
	width, height int
	listWidth     int
}

func newModel(ctx context.Context, b Backend, conv string) model {
	in := textinput.New()
	in.Prompt = "> "
	in.Cursor.SetMode(cursor.CursorStatic)
	in.Focus()
	return model{
		ctx:      ctx,
		b:        b,
		cur:      conv,
		lastSeen: make(map[string]time.Time),
		input:    in,
		hist:     viewport.New(0, 0),
	}
}

func (m model) Init() tea.Cmd { return m.loadConvs() }

func (m model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, nil
	case tea.KeyMsg:
		switch msg.String() {
		case "ctrl+c", "esc":
			return m, tea.Quit
		case "tab", "ctrl+n":
			return m.move(1)
		case "shift+tab", "ctrl+p":
			return m.move(-1)
		case "pgup":
			m.hist.PageUp()
			return m, nil
		case "pgdown":
			m.hist.PageDown()
			return m, nil
		case "enter":
			return m.send()
		}
		var cmd tea.Cmd
		m.input, cmd = m.input.Update(msg)
		return m, cmd
	case convsMsg:
		return m.setConvs(msg)
	case logMsg:
		if msg.conv != m.cur {
			return m, nil // the user moved on
		}
		since := m.msgs // arrived by event while the log was loading
		m.msgs = msg.msgs
		for _, x := range since {
			m.upsert(x)
		}
		m.refresh(true)
		return m, nil
	case sentMsg:
		m.status = ""
		if msg.to == m.cur {
			m.upsert(msg.msg)
			m.refresh(true)
		}
		return m, nil
	case sendFailedMsg:
		m.status = "send: " + msg.err.Error()
		if m.input.Value() == "" {
			m.input.SetValue(msg.text)
		}
		return m, nil
	case eventMsg:
		return m.event(apitype.Event(msg))
	case errMsg:
		m.status = msg.err.Error()
		return m, nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

// setConvs takes a fresh conversation list and opens a conversation if
// none is open yet.
func (m model) setConvs(convs []apitype.Conversation) (tea.Model, tea.Cmd) {
	m.convs = convs
	if i := m.find(m.cur); i >= 0 {
		m.convs[i].Unread = 0 // shown, so read; the node may not know yet
	}
	if m.cur == "" {
		c, ok := mostRecent(convs)
		if !ok {
			m.refresh(true)
			return m, nil
		}
		return m.open(c.Name)
	}
	if m.find(m.cur) < 0 {
		// Named on the command line but not in the list (yet).
		m.convs = append([]apitype.Conversation{{Name: m.cur, Room: isRoom(m.cur)}}, m.convs...)
	}
	if m.msgs == nil {
		return m.open(m.cur)
	}
	return m, nil
}

// open shows conversation name, loads its history and marks it read.
func (m model) open(name string) (tea.Model, tea.Cmd) {
	if i := m.find(name); i >= 0 {
		name = m.convs[i].Name
		m.convs[i].Unread = 0
	}
	m.cur = name
	m.msgs = []apitype.Message{}
	m.input.Placeholder = "message " + clean(name)
	m.refresh(true)
	return m, tea.Batch(m.loadLog(name), m.markRead(name))
}

// move opens the conversation d places away in the list, wrapping around.
func (m model) move(d int) (tea.Model, tea.Cmd) {
	n := len(m.convs)
	if n == 0 {
		return m, nil
	}
	i := max(m.find(m.cur), 0)
	return m.open(m.convs[((i+d)%n+n)%n].Name)
}

func (m model) send() (tea.Model, tea.Cmd) {
	text := strings.TrimSpace(m.input.Value())
	if text == "" || m.cur == "" {
		return m, nil
	}
	m.input.Reset()
	ctx, b, to := m.ctx, m.b, m.cur
	return m, func() tea.Msg {
		msg, err := b.Send(ctx, to, text)
		if err != nil {
			return sendFailedMsg{text, err}
		}
		return sentMsg{to, msg}
	}
}

func (m model) event(ev apitype.Event) (tea.Model, tea.Cmd) {
	switch ev.Type {
	case "message", "receipt":
		if ev.Message == nil {
			return m, nil
		}
		msg := *ev.Message
		i := m.find(msg.Conv)
		if i < 0 {
			if ev.Type == "message" {
				return m, m.loadConvs() // a new conversation
			}
			return m, nil
		}
		c := &m.convs[i]
		if c.Name != m.cur {
			if ev.Type == "message" && !msg.Outgoing {
				c.Unread++
			}
			return m, nil
		}
		m.upsert(msg)
		m.refresh(false)
		if ev.Type == "message" && !msg.Outgoing {
			return m, m.markRead(c.Name)
		}
	case "presence":
		for i := range m.convs {
			c := &m.convs[i]
			if c.Room || !(ev.Contact != "" && ev.Contact == c.Name || ev.PeerID != "" && ev.PeerID == c.PeerID) {
				continue
			}
			c.Online = ev.Online
			if !ev.Online {
				m.lastSeen[c.Name] = ev.Time
			}
		}
	}
	return m, nil
}

// upsert adds msg to the history, or updates the message with its ID
// unless that would move its state back.
func (m *model) upsert(msg apitype.Message) {
	for i, x := range m.msgs {
		if x.ID == msg.ID {
			if rank(msg.State) >= rank(x.State) {
				m.msgs[i] = msg
			}
			return
		}
	}
	m.msgs = append(m.msgs, msg)
}

// find returns the index of the conversation named (or with the peer ID)
// conv, or -1.
func (m model) find(conv string) int {
	for i, c := range m.convs {
		if c.Name == conv || c.PeerID != "" && c.PeerID == conv {
			return i
		}
	}
	return -1
}

func (m model) loadConvs() tea.Cmd {
	ctx, b := m.ctx, m.b
	return func() tea.Msg {
		convs, err := b.Conversations(ctx)
		if err != nil {
			return errMsg{fmt.Errorf("conversations: %w", err)}
		}
		return convsMsg(convs)
	}
}

func (m model) loadLog(conv string) tea.Cmd {
	ctx, b := m.ctx, m.b
	return func() tea.Msg {
		msgs, err := b.Log(ctx, conv, historyLimit)
		if err != nil {
			return errMsg{fmt.Errorf("history of %s: %w", conv, err)}
		}
		return logMsg{conv, msgs}
	}
}

func (m model) markRead(conv string) tea.Cmd {
	ctx, b := m.ctx, m.b
	return func() tea.Msg {
		if err := b.MarkRead(ctx, conv); err != nil {
			return errMsg{fmt.Errorf("mark %s read: %w", conv, err)}
		}
		return nil
	}
}

// mostRecent picks the conversation with the latest message.
func mostRecent(convs []apitype.Conversation) (apitype.Conversation, bool) {
	if len(convs) == 0 {
		return apitype.Conversation{}, false
	}
	best := convs[0]
	for _, c := range convs[1:] {
		if c.Last.After(best.Last) {
			best = c
		}
	}
	return best, true
}
