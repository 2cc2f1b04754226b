package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/parley-im/parley/internal/safetext"
	"github.com/parley-im/parley/peer/apitype"
)

// Layouts of message times: full in line mode, short in the UI.
const (
	lineLayout  = "2006-01-02 15:04"
	todayLayout = "15:04"
	dayLayout   = "Jan 02 15:04"
)

// tick is the delivery mark of an outgoing message: pending, sent (the
// peer's node has it) or delivered (the peer's E2E receipt came back).
func tick(m apitype.Message) string {
	if !m.Outgoing {
		return ""
	}
	switch m.State {
	case apitype.StatePending:
		return "○"
	case apitype.StateSent:
		return "✓"
	case apitype.StateDelivered:
		return "✓✓"
	case apitype.StateRefused:
		return "✗ refused"
	}
	return ""
}

// rank orders message states so that a late answer never moves a message
// back (a receipt can overtake the answer to Send).
func rank(state string) int {
	switch state {
	case apitype.StateSent, apitype.StateRefused:
		return 1
	case apitype.StateDelivered, apitype.StateReceived:
		return 2
	}
	return 0
}

// sender is the name shown before a message's text.
func sender(m apitype.Message) string {
	switch {
	case m.Outgoing:
		return "me"
	case m.FromName != "":
		return clean(m.FromName)
	case m.Conv != "" && !isRoom(m.Conv):
		return clean(m.Conv)
	}
	return shortID(m.From)
}

// gapNotice says how many messages are missing before m, or "".
func gapNotice(m apitype.Message) string {
	switch {
	case m.Gap <= 0:
		return ""
	case m.Gap == 1:
		return fmt.Sprintf("1 message from %s is missing", sender(m))
	}
	return fmt.Sprintf("%d messages from %s are missing", m.Gap, sender(m))
}

// format renders m on one line: time, sender, text and ticks.
func format(m apitype.Message, layout string) string {
	s := fmt.Sprintf("%s %s: %s", m.SentAt.Local().Format(layout), sender(m), clean(m.Text))
	if t := tick(m); t != "" {
		s += " " + t
	}
	return s
}

// shortLayout picks the time layout of the UI: the time alone for today.
func shortLayout(t, now time.Time) string {
	y1, m1, d1 := t.Local().Date()
	y2, m2, d2 := now.Local().Date()
	if y1 == y2 && m1 == m2 && d1 == d2 {
		return todayLayout
	}
	return dayLayout
}

func isRoom(conv string) bool { return strings.HasPrefix(conv, "#") }

func shortID(id string) string {
	id = clean(id)
	if len(id) > 12 {
		return "…" + id[len(id)-8:]
	}
	return id
}

// clean makes a string from the network safe to print on one line: see
// internal/safetext, the one sanitiser for peer-chosen text.
func clean(s string) string { return safetext.Line(s) }

// Line renders m as one line of plain text, as `parley log` and line mode
// print it: time, sender, text (control characters from peers neutralised)
// and delivery ticks.
func Line(m apitype.Message) string { return format(m, lineLayout) }

// GapNotice says how many messages are missing before m, or "".
func GapNotice(m apitype.Message) string { return gapNotice(m) }
