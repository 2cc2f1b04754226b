package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/parley-im/parley/peer/apitype"
)

var (
	styleTitle    = lipgloss.NewStyle().Bold(true)
	styleDim      = lipgloss.NewStyle().Faint(true)
	styleOnline   = lipgloss.NewStyle().Foreground(lipgloss.Color("2"))
	styleWarn     = lipgloss.NewStyle().Foreground(lipgloss.Color("3")).Bold(true)
	styleError    = lipgloss.NewStyle().Foreground(lipgloss.Color("1"))
	styleUnread   = lipgloss.NewStyle().Foreground(lipgloss.Color("6")).Bold(true)
	styleSelected = lipgloss.NewStyle().Reverse(true)
	styleMe       = lipgloss.NewStyle().Foreground(lipgloss.Color("6"))
	styleThem     = lipgloss.NewStyle().Foreground(lipgloss.Color("5"))
	styleGap      = lipgloss.NewStyle().Foreground(lipgloss.Color("3")).Italic(true)
)

// layout sizes the panes after a resize: a header line, the list and the
// history side by side, a status line and the input line.
func (m *model) layout() {
	m.listWidth = min(28, max(12, m.width/4))
	m.hist.Width = max(1, m.width-m.listWidth-1)
	m.hist.Height = max(1, m.height-3)
	m.input.Width = max(1, m.width-lipgloss.Width(m.input.Prompt)-1)
	m.refresh(false)
}

// refresh renders the history into the viewport, keeping the bottom in
// view if it was (or if bottom is set).
func (m *model) refresh(bottom bool) {
	bottom = bottom || m.hist.AtBottom()
	m.hist.SetContent(m.history())
	if bottom {
		m.hist.GotoBottom()
	}
}

func (m model) history() string {
	w := max(1, m.hist.Width)
	switch {
	case len(m.convs) == 0 && m.cur == "":
		return styleDim.Width(w).Render("No conversations yet. Add a contact with `parley add LINK`, then run `parley chat NAME`.")
	case len(m.msgs) == 0:
		return styleDim.Width(w).Render("No messages yet.")
	}
	now := time.Now()
	var b strings.Builder
	for i, msg := range m.msgs {
		if i > 0 {
			b.WriteByte('\n')
		}
		if g := gapNotice(msg); g != "" {
			b.WriteString(styleGap.Width(w).Render("⋯ " + g))
			b.WriteByte('\n')
		}
		who := styleThem
		if msg.Outgoing {
			who = styleMe
		}
		line := fmt.Sprintf("%s %s %s", styleDim.Render(msg.SentAt.Local().Format(shortLayout(msg.SentAt, now))),
			who.Render(sender(msg)+":"), clean(msg.Text))
		if t := tick(msg); t != "" {
			line += " " + styleDim.Render(t)
		}
		b.WriteString(lipgloss.NewStyle().Width(w).Render(line))
	}
	return b.String()
}

func (m model) View() string {
	if m.width == 0 {
		return "starting…\n"
	}
	body := lipgloss.JoinHorizontal(lipgloss.Top,
		m.list(),
		styleDim.Render(strings.TrimSuffix(strings.Repeat("│\n", m.hist.Height), "\n")),
		m.hist.View())
	return strings.Join([]string{
		m.fit(m.header()),
		body,
		m.fit(styleError.Render(m.status)),
		m.input.View(),
	}, "\n")
}

// fit cuts s to the window's width.
func (m model) fit(s string) string { return ansi.Truncate(s, m.width, "…") }

func (m model) header() string {
	i := m.find(m.cur)
	if i < 0 {
		return styleTitle.Render("parley")
	}
	c := m.convs[i]
	s := styleTitle.Render(clean(c.Name))
	switch {
	case c.Room:
		s += styleDim.Render("  room")
	case c.Online:
		s += "  " + styleOnline.Render("● online")
	case !m.lastSeen[c.Name].IsZero():
		t := m.lastSeen[c.Name]
		s += styleDim.Render("  last seen " + t.Local().Format(shortLayout(t, time.Now())))
	default:
		s += styleDim.Render("  offline")
	}
	if !c.Room && !c.Verified {
		s += "  " + styleWarn.Render(fmt.Sprintf("! unverified — run `parley verify %s`", clean(c.Name)))
	}
	return s
}

// list renders the conversation pane: selection, online dot, name, unread
// count and the unverified mark.
func (m model) list() string {
	lines := make([]string, 0, len(m.convs))
	for _, c := range m.convs {
		lines = append(lines, m.entry(c))
	}
	return lipgloss.NewStyle().Width(m.listWidth).Height(m.hist.Height).MaxHeight(m.hist.Height).
		Render(strings.Join(lines, "\n"))
}

func (m model) entry(c apitype.Conversation) string {
	dot := " "
	switch {
	case c.Room:
	case c.Online:
		dot = styleOnline.Render("●")
	default:
		dot = styleDim.Render("○")
	}
	sel, name := " ", clean(c.Name)
	if c.Name == m.cur {
		sel, name = "▸", styleSelected.Render(name)
	}
	var tail string
	if c.Unread > 0 {
		tail += " " + styleUnread.Render(fmt.Sprintf("(%d)", c.Unread))
	}
	if !c.Room && !c.Verified {
		tail += " " + styleWarn.Render("!")
	}
	// Keep the tail visible: cut the name, not the count or the mark.
	room := m.listWidth - 3 - lipgloss.Width(tail)
	return sel + dot + " " + ansi.Truncate(name, max(1, room), "…") + tail
}
