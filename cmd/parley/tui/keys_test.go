package tui

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
)

func quits(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	_, ok := cmd().(tea.QuitMsg)
	return ok
}

func altEnter() tea.Msg { return tea.KeyMsg{Type: tea.KeyEnter, Alt: true} }

// TestDraftSurvivesEsc: Esc never quits with a draft typed, and Ctrl+C
// asks a second time before a draft is lost.
func TestDraftSurvivesEsc(t *testing.T) {
	m := setup(t, newFake(testConvs()...), "bob")
	m = step(t, m, typed("half a thought"))
	next, cmd := m.Update(key(tea.KeyEsc))
	m = next.(model)
	if quits(cmd) {
		t.Fatal("Esc quit with a draft typed")
	}
	if m.input.Value() != "half a thought" {
		t.Fatalf("Esc changed the draft to %q", m.input.Value())
	}
	mustContain(t, screen(m), "draft kept")

	next, cmd = m.Update(key(tea.KeyCtrlC))
	m = next.(model)
	if quits(cmd) {
		t.Fatal("the first Ctrl+C quit with a draft typed")
	}
	mustContain(t, screen(m), "press Ctrl+C again")
	m = step(t, m, typed("!")) // any other key: stay
	if m.confirmQuit || m.input.Value() != "half a thought!" {
		t.Fatalf("after another key: confirm %v, draft %q", m.confirmQuit, m.input.Value())
	}
	next, _ = m.Update(key(tea.KeyCtrlC))
	if _, cmd = next.(model).Update(key(tea.KeyCtrlC)); !quits(cmd) {
		t.Fatal("Ctrl+C twice did not quit")
	}

	// With nothing typed, Esc and Ctrl+C quit at once.
	m = setup(t, newFake(testConvs()...), "bob")
	for _, k := range []tea.KeyType{tea.KeyEsc, tea.KeyCtrlC, tea.KeyCtrlQ} {
		if _, cmd := m.Update(key(k)); !quits(cmd) {
			t.Errorf("%v did not quit with no draft", k)
		}
	}
}

// TestDraftPerConversation: switching conversations keeps each draft with
// its conversation, and never sends it to another.
func TestDraftPerConversation(t *testing.T) {
	f := newFake(testConvs()...)
	m := setup(t, f, "bob")
	m = step(t, m, typed("for bob"), key(tea.KeyTab))
	if m.cur != "alice" || m.input.Value() != "" {
		t.Fatalf("in %s the input holds %q", m.cur, m.input.Value())
	}
	m = step(t, m, typed("for alice"), key(tea.KeyShiftTab))
	if m.cur != "bob" || m.input.Value() != "for bob" {
		t.Fatalf("back in %s the input holds %q", m.cur, m.input.Value())
	}
	// A draft left in another conversation still counts for quitting.
	m = step(t, m, key(tea.KeyEnter))
	if got := calls(f.sent); len(got) != 1 || got[0] != (sendCall{"bob", "for bob"}) {
		t.Fatalf("sent %v", got)
	}
	if _, cmd := m.Update(key(tea.KeyEsc)); quits(cmd) {
		t.Fatal("Esc quit with alice's draft unsent")
	}
	m = step(t, m, key(tea.KeyTab))
	if m.input.Value() != "for alice" {
		t.Fatalf("alice's draft is %q", m.input.Value())
	}
}

// TestMultiLineInput: Alt+Enter (or Ctrl+J) starts a new line, the input
// grows, Enter sends the whole message, and the history shows its lines.
func TestMultiLineInput(t *testing.T) {
	f := newFake(testConvs()...)
	m := setup(t, f, "bob")
	h := m.hist.Height
	m = step(t, m, typed("first line"), altEnter(), typed("second line"), key(tea.KeyCtrlJ), typed("third"))
	if got := m.input.Value(); got != "first line\nsecond line\nthird" {
		t.Fatalf("input = %q", got)
	}
	if m.inputShown != 3 || m.hist.Height != h-2 {
		t.Errorf("input height %d, history %d (was %d)", m.inputShown, m.hist.Height, h)
	}
	mustContain(t, regexp.MustCompile(` +\n`).ReplaceAllString(screen(m), "\n"), "\n> first line\n> second line\n> third\n")
	m = step(t, m, key(tea.KeyEnter))
	if got := calls(f.sent); len(got) != 1 || got[0].text != "first line\nsecond line\nthird" {
		t.Fatalf("sent %q", got)
	}
	if m.inputShown != 1 || m.hist.Height != h {
		t.Errorf("after sending: input height %d, history %d", m.inputShown, m.hist.Height)
	}
	s := screen(m)
	mustContain(t, s, "me: first line", "\n", "second line")
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "second line") && strings.Contains(l, "me:") {
			t.Errorf("the second line is not on its own line: %q", l)
		}
	}
}

// TestPagingFullHistory: the UI loads the latest page, and PgUp at the top
// loads the pages before it until the first message.
func TestPagingFullHistory(t *testing.T) {
	f := newFake(testConvs()...)
	const total = 2*historyPage + 37
	for i := range total {
		f.addLog("bob", incoming(fmt.Sprint(i), "bob", fmt.Sprintf("message %d", i)))
	}
	m := setup(t, f, "bob")
	if len(m.msgs) != historyPage {
		t.Fatalf("loaded %d messages, want the last %d", len(m.msgs), historyPage)
	}
	mustContain(t, screen(m), fmt.Sprintf("message %d", total-1))
	for i := 0; i < 3*total && !strings.Contains(screen(m), "message 0 "); i++ {
		before := m.hist.YOffset
		m = step(t, m, key(tea.KeyPgUp))
		if m.hist.YOffset > before && !m.loadingOld && len(m.msgs) < total && i > 0 && m.hist.YOffset-before > m.hist.Height*historyPage {
			t.Fatal("paging jumped")
		}
	}
	if len(m.msgs) != total {
		t.Fatalf("after paging up: %d messages, want %d", len(m.msgs), total)
	}
	mustContain(t, screen(m), "message 0 ")
	if m.more {
		t.Error("more history announced at the first message")
	}
	// Loading a page keeps the reader's place: the page shown after a load
	// is the one just before what was on screen.
	m = setup(t, f, "bob")
	m.hist.GotoTop()
	top := m.msgs[0].Text
	m = step(t, m, key(tea.KeyPgUp))
	if !strings.Contains(screen(m), fmt.Sprintf("message %d ", total-historyPage-1)) {
		t.Errorf("after loading older messages the screen does not show the one before %q:\n%s", top, screen(m))
	}
	// Ctrl+Home goes to the top (loading), Ctrl+End back to the newest.
	m = step(t, m, key(tea.KeyCtrlEnd))
	mustContain(t, screen(m), fmt.Sprintf("message %d", total-1))
}

// TestHelpAndKeyBar: the key bar is always shown; ? (with an empty input)
// or F1 shows every key, any key closes it; ? inside a draft is text.
func TestHelpAndKeyBar(t *testing.T) {
	m := setup(t, newFake(testConvs()...), "bob")
	mustContain(t, screen(m), "Enter send", "Alt+Enter new line", "? help", "Ctrl+Q quit")
	m = step(t, m, typed("?"))
	mustContain(t, screen(m), "Keys", "Ctrl+J", "PgUp at the top loads older messages")
	if m.input.Value() != "" {
		t.Fatalf("? went into the input: %q", m.input.Value())
	}
	// In a narrow pane, descriptions wrap under themselves, not under
	// the keys.
	for _, l := range strings.Split(helpText(40), "\n") {
		if l != "" && l != "Keys" && !strings.HasPrefix(l, "Marks") && !strings.HasPrefix(l, "  ") {
			t.Errorf("help line %q is not indented", l)
		}
	}
	m = step(t, m, key(tea.KeyEsc))
	if m.help || strings.Contains(screen(m), "Ctrl+Home") {
		t.Fatal("Esc did not close the help")
	}
	m = step(t, m, typed("why"), typed("?"))
	if m.help || m.input.Value() != "why?" {
		t.Fatalf("? in a draft: help %v, input %q", m.help, m.input.Value())
	}
	m = step(t, m, key(tea.KeyF1))
	if !m.help {
		t.Fatal("F1 did not open the help")
	}
	// The bar fits a narrow window.
	m = step(t, m, key(tea.KeyEsc), tea.WindowSizeMsg{Width: 40, Height: 12})
	for _, l := range strings.Split(screen(m), "\n") {
		if w := len([]rune(l)); w > 40 {
			t.Errorf("line %q is %d wide", l, w)
		}
	}
}

// TestNodeStopped: when the event stream breaks, the UI says the node
// stopped, shows nobody online and keeps the draft; when the node answers
// again it reloads.
func TestNodeStopped(t *testing.T) {
	f := newFake(testConvs()...)
	m := setup(t, f, "bob")
	m = step(t, m, typed("unsent"))
	m = step(t, m, nodeDownMsg{errors.New("event stream ended")})
	s := screen(m)
	mustContain(t, s, "node stopped", "reconnecting")
	if l := listLine(t, m, "bob"); strings.Contains(l, "●") {
		t.Errorf("bob still online: %q", l)
	}
	if m.input.Value() != "unsent" {
		t.Fatalf("draft %q", m.input.Value())
	}
	f.addLog("bob", incoming("late", "bob", "arrived while down"))
	m = step(t, m, nodeUpMsg{testConvs()})
	s = screen(m)
	if strings.Contains(s, "node stopped") {
		t.Errorf("still shown as stopped:\n%s", s)
	}
	mustContain(t, s, "arrived while down", "● online")
	if m.input.Value() != "unsent" {
		t.Fatalf("draft after reconnect %q", m.input.Value())
	}
}
