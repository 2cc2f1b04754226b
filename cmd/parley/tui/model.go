package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	keybind "github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textarea"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/parley-im/parley/peer/apitype"
)

// historyPage is how many messages of a conversation the UI loads at a
// time: the latest page when it opens, one more each time the reader
// pages up past the oldest loaded.
const historyPage = 500

// maxInputLines is how tall the input grows before it scrolls.
const maxInputLines = 5

// Messages from commands and the event pump.
type (
	convsMsg []apitype.Conversation
	logMsg   struct {
		conv string
		msgs []apitype.Message
	}
	// olderMsg is the page before the oldest message shown.
	olderMsg struct {
		conv string
		msgs []apitype.Message
	}
	// nodeDownMsg says the event stream broke: the node stopped (or
	// restarts). nodeUpMsg says it answers again, with fresh state.
	nodeDownMsg struct{ err error }
	nodeUpMsg   struct{ convs []apitype.Conversation }
	sentMsg     struct {
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

	drafts      map[string]string // unsent input of the conversations not open
	more        bool              // older messages than msgs[0] may exist
	loadingOld  bool              // a page of older messages is on its way
	down        bool              // the node stopped; reconnecting
	downErr     string            // why the event stream broke
	help        bool              // the key help covers the history
	confirmQuit bool              // quit asked with drafts unsent: ask again

	input         textarea.Model
	hist          viewport.Model
	width, height int
	listWidth     int
	inputShown    int // rows of the input on screen
}

func newModel(ctx context.Context, b Backend, conv string) model {
	in := textarea.New()
	in.Prompt = "> "
	in.ShowLineNumbers = false
	in.CharLimit = 0
	in.MaxHeight = 200
	// The text area keeps its full height, so that it never scrolls a
	// short message out of view; the view shows only the rows in use.
	in.SetHeight(maxInputLines)
	in.Cursor.SetMode(cursor.CursorStatic)
	in.FocusedStyle.CursorLine = in.FocusedStyle.Text
	in.FocusedStyle.Base = in.FocusedStyle.Text
	in.BlurredStyle = in.FocusedStyle
	// Enter sends; these keys start a new line of the same message.
	in.KeyMap.InsertNewline = keybind.NewBinding(keybind.WithKeys("alt+enter", "ctrl+j"))
	in.Focus()
	return model{
		ctx:      ctx,
		b:        b,
		cur:      conv,
		lastSeen: make(map[string]time.Time),
		drafts:   make(map[string]string),
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
		return m.key(msg)
	case convsMsg:
		return m.setConvs(msg)
	case logMsg:
		if msg.conv != m.cur {
			return m, nil // the user moved on
		}
		since := m.msgs // arrived by event while the log was loading
		m.msgs = msg.msgs
		m.more = len(msg.msgs) >= historyPage
		for _, x := range since {
			m.upsert(x)
		}
		m.refresh(true)
		return m, nil
	case olderMsg:
		m.loadingOld = false
		if msg.conv != m.cur {
			return m, nil
		}
		m.prepend(msg.msgs, len(msg.msgs) >= historyPage)
		return m, nil
	case nodeDownMsg:
		m.down = true
		m.downErr = msg.err.Error()
		for i := range m.convs {
			if m.convs[i].Online {
				m.convs[i].Online = false
				m.lastSeen[m.convs[i].Name] = time.Now()
			}
		}
		m.status = ""
		return m, nil
	case nodeUpMsg:
		m.down = false
		m.status = ""
		next, cmd := m.setConvs(msg.convs)
		nm := next.(model)
		if nm.cur == "" {
			return nm, cmd
		}
		return nm, tea.Batch(cmd, nm.loadLog(nm.cur))
	case sentMsg:
		m.status = ""
		if msg.to == m.cur {
			m.upsert(msg.msg)
			m.refresh(true)
		}
		return m, nil
	case sendFailedMsg:
		m.status = "send: " + msg.err.Error()
		if strings.TrimSpace(m.input.Value()) == "" {
			m.input.SetValue(msg.text)
			m.layout()
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

// key handles a key press. The draft is never thrown away: Esc only
// closes the help or leaves an empty input; quitting with unsent drafts
// asks for a second Ctrl+C (or Ctrl+Q).
func (m model) key(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	k := msg.String()
	if m.help {
		m.help = false // any key closes the help
		if k == "ctrl+c" || k == "ctrl+q" {
			return m.quit(k)
		}
		return m, nil
	}
	if k != "ctrl+c" && k != "ctrl+q" {
		m.confirmQuit = false
	}
	switch k {
	case "ctrl+c", "ctrl+q":
		return m.quit(k)
	case "esc":
		if m.hasDrafts() {
			m.status = "draft kept: Enter sends it, Ctrl+Q quits"
			return m, nil
		}
		return m, tea.Quit
	case "?", "f1":
		if k == "f1" || m.input.Value() == "" {
			m.help = true
			return m, nil
		}
	case "tab", "ctrl+n":
		return m.move(1)
	case "shift+tab", "ctrl+p":
		return m.move(-1)
	case "pgup":
		return m.pageUp()
	case "pgdown":
		m.hist.PageDown()
		return m, nil
	case "ctrl+home":
		m.hist.GotoTop()
		return m.pageUp()
	case "ctrl+end":
		m.hist.GotoBottom()
		return m, nil
	case "enter":
		return m.send()
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	if m.inputHeight() != m.inputShown {
		m.layout()
	}
	return m, cmd
}

// quit quits at once when no draft would be lost, else after the same key
// a second time.
func (m model) quit(k string) (tea.Model, tea.Cmd) {
	if !m.hasDrafts() || m.confirmQuit {
		return m, tea.Quit
	}
	m.confirmQuit = true
	m.status = "unsent draft: press " + keyName(k) + " again to quit and lose it, any other key to stay"
	return m, nil
}

func keyName(k string) string {
	return map[string]string{"ctrl+c": "Ctrl+C", "ctrl+q": "Ctrl+Q"}[k]
}

// hasDrafts reports whether any text typed but not sent would be lost.
func (m model) hasDrafts() bool {
	if strings.TrimSpace(m.input.Value()) != "" {
		return true
	}
	for _, d := range m.drafts {
		if strings.TrimSpace(d) != "" {
			return true
		}
	}
	return false
}

// pageUp scrolls up a page; at the top, it loads the page of history
// before the oldest message shown.
func (m model) pageUp() (tea.Model, tea.Cmd) {
	if !m.hist.AtTop() {
		m.hist.PageUp()
		return m, nil
	}
	if !m.more || m.loadingOld || len(m.msgs) == 0 || m.cur == "" {
		return m, nil
	}
	m.loadingOld = true
	ctx, b, conv, before := m.ctx, m.b, m.cur, m.msgs[0].ID
	return m, func() tea.Msg {
		msgs, err := b.LogBefore(ctx, conv, before, historyPage)
		if err != nil {
			return errMsg{fmt.Errorf("older history of %s: %w", conv, err)}
		}
		return olderMsg{conv, msgs}
	}
}

// prepend adds older messages before the history and shows the page just
// above what the reader was looking at.
func (m *model) prepend(older []apitype.Message, more bool) {
	total, top := m.hist.TotalLineCount(), m.hist.YOffset
	if top == 0 && m.moreShown() {
		top = 1 // the "loads older messages" line goes; count from the first message
	}
	below := total - top // lines from the reader's top line to the end
	m.msgs = append(append([]apitype.Message(nil), older...), m.msgs...)
	m.more = more
	m.hist.SetContent(m.history())
	m.hist.SetYOffset(max(0, m.hist.TotalLineCount()-below-m.hist.Height))
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

// open shows conversation name, loads its history and marks it read. The
// draft of the conversation left is kept, and the one of name restored.
func (m model) open(name string) (tea.Model, tea.Cmd) {
	if i := m.find(name); i >= 0 {
		name = m.convs[i].Name
		m.convs[i].Unread = 0
	}
	if m.cur != "" && m.cur != name {
		if d := m.input.Value(); strings.TrimSpace(d) != "" {
			m.drafts[m.cur] = d
		} else {
			delete(m.drafts, m.cur)
		}
		m.input.Reset()
		if d, ok := m.drafts[name]; ok {
			m.input.SetValue(d)
			delete(m.drafts, name)
		}
	}
	m.cur = name
	m.msgs = []apitype.Message{}
	m.more, m.loadingOld = false, false
	m.input.Placeholder = "message " + clean(name) + "  (? for keys)"
	m.layout()
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
	m.layout()
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
		msgs, err := b.Log(ctx, conv, historyPage)
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
