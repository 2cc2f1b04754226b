package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/parley-im/parley/internal/safetext"
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

// layout sizes the panes after a resize or a change of the input's
// height: a header line, the list and the history side by side, a status
// line, the input (1 to maxInputLines lines) and the key bar.
func (m *model) layout() {
	m.listWidth = min(28, max(12, m.width/4))
	m.input.SetWidth(max(1, m.width-1))
	m.inputShown = m.inputHeight()
	m.hist.Width = max(1, m.width-m.listWidth-1)
	m.hist.Height = max(1, m.height-3-m.inputShown)
	m.refresh(false)
}

// inputHeight is the number of rows the input's text takes, soft-wrapped
// lines included, from 1 to maxInputLines.
func (m model) inputHeight() int {
	w := max(1, m.input.Width())
	rows := 0
	for _, l := range strings.Split(m.input.Value(), "\n") {
		rows += max(1, (lipgloss.Width(l)+w)/w)
		if rows >= maxInputLines {
			return maxInputLines
		}
	}
	return max(1, rows)
}

// inputView is the input's rows in use.
func (m model) inputView() string {
	lines := strings.Split(m.input.View(), "\n")
	return strings.Join(lines[:min(len(lines), max(1, m.inputShown))], "\n")
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

// moreShown reports whether the history starts with the line that says
// older messages can be loaded.
func (m model) moreShown() bool { return m.more && len(m.msgs) > 0 }

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
	if m.moreShown() {
		b.WriteString(styleDim.Width(w).Render("⋯ PgUp at the top loads older messages"))
		b.WriteByte('\n')
	}
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
		// A message of several lines keeps them, indented under its first.
		lines := strings.Split(safetext.Text(msg.Text), "\n")
		head := fmt.Sprintf("%s %s ", styleDim.Render(msg.SentAt.Local().Format(shortLayout(msg.SentAt, now))), who.Render(sender(msg)+":"))
		text := head + lines[0]
		if len(lines) > 1 {
			indent := strings.Repeat(" ", min(lipgloss.Width(head), w/2))
			text += "\n" + indent + strings.Join(lines[1:], "\n"+indent)
		}
		if t := tick(msg); t != "" {
			text += " " + styleDim.Render(t)
		}
		b.WriteString(lipgloss.NewStyle().Width(w).Render(text))
	}
	return b.String()
}

func (m model) View() string {
	if m.width == 0 {
		return "starting…\n"
	}
	right := m.hist.View()
	if m.help {
		right = lipgloss.NewStyle().Width(m.hist.Width).Height(m.hist.Height).MaxHeight(m.hist.Height).Render(helpText(m.hist.Width))
	}
	body := lipgloss.JoinHorizontal(lipgloss.Top,
		m.list(),
		styleDim.Render(strings.TrimSuffix(strings.Repeat("│\n", m.hist.Height), "\n")),
		right)
	status := styleError.Render(m.status)
	if m.down {
		why := m.status
		if why == "" {
			why = m.downErr
		}
		status = styleWarn.Render("⚠ node stopped, reconnecting…") + " " + styleError.Render(why)
	}
	return strings.Join([]string{
		m.fit(m.header()),
		body,
		m.fit(status),
		m.inputView(),
		m.fit(m.keyBar()),
	}, "\n")
}

// keys are the key bar's entries, most useful first: the bar shows as
// many as fit.
var keys = [][2]string{
	{"Enter", "send"}, {"Alt+Enter", "new line"}, {"Tab", "next chat"}, {"PgUp/PgDn", "scroll"},
	{"?", "help"}, {"Ctrl+Q", "quit"},
}

func (m model) keyBar() string {
	var parts []string
	width := 0
	for _, k := range keys {
		p := styleTitle.Render(k[0]) + " " + styleDim.Render(k[1])
		if width+lipgloss.Width(p)+3 > m.width && len(parts) > 0 {
			break
		}
		parts = append(parts, p)
		width += lipgloss.Width(p) + 3
	}
	return strings.Join(parts, styleDim.Render(" · "))
}

// helpKeys is the full list of keys (? or F1).
var helpKeys = [][2]string{
	{"Enter", "send the message"},
	{"Alt+Enter, Ctrl+J", "start a new line in the message"},
	{"Tab, Ctrl+N", "next conversation (drafts stay with theirs)"},
	{"Shift+Tab, Ctrl+P", "previous conversation"},
	{"PgUp, PgDn", "scroll; PgUp at the top loads older messages"},
	{"Ctrl+Home, Ctrl+End", "oldest loaded, newest"},
	{"?, F1", "this help (any key closes it)"},
	{"Esc", "quit when no draft is typed"},
	{"Ctrl+Q, Ctrl+C", "quit (twice if a draft would be lost)"},
}

const helpMarks = "Marks: ○ pending  ✓ sent  ✓✓ delivered   ● online   ! not verified"

// helpText lays the keys out for a pane w columns wide: descriptions
// wrap under themselves, never under the keys.
func helpText(w int) string {
	const keyCol = 24 // "  " + the widest key + 2
	var b strings.Builder
	b.WriteString("Keys\n\n")
	descW := max(w-keyCol, 12)
	for _, k := range helpKeys {
		lines := strings.Split(lipgloss.NewStyle().Width(descW).Render(k[1]), "\n")
		fmt.Fprintf(&b, "  %-*s%s\n", keyCol-2, k[0], strings.TrimRight(lines[0], " "))
		for _, l := range lines[1:] {
			b.WriteString(strings.Repeat(" ", keyCol) + strings.TrimRight(l, " ") + "\n")
		}
	}
	b.WriteString("\n" + helpMarks)
	return b.String()
}

// fit cuts s to the window's width.
func (m model) fit(s string) string { return ansi.Truncate(s, m.width, "…") }

func (m model) header() string {
	i := m.find(m.cur)
	if m.down {
		s := styleTitle.Render("parley") + "  " + styleError.Render("● node stopped — reconnecting")
		if i >= 0 {
			s = styleTitle.Render(clean(m.convs[i].Name)) + "  " + styleError.Render("● node stopped — reconnecting")
		}
		return s
	}
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
