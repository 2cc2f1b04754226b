package tui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/parley-im/parley/peer/apitype"
)

func testConvs() []apitype.Conversation {
	return []apitype.Conversation{
		{Name: "bob", PeerID: "12D3KooWbob", Online: true, Unread: 2, Last: t0},
		{Name: "alice", PeerID: "12D3KooWalice", Verified: true, Last: t0.Add(-time.Hour)},
		{Name: "#devs", Room: true, Unread: 1, Last: t0.Add(-2 * time.Hour)},
	}
}

// setup starts a model on f, sized 100x20, as the program would.
func setup(t *testing.T, f *fakeBackend, conv string) model {
	t.Helper()
	m := newModel(t.Context(), f, conv)
	m = step(t, m, tea.WindowSizeMsg{Width: 100, Height: 20})
	return run(t, m, m.Init(), 0)
}

// step applies msgs in turn, running the commands each returns (the fake
// answers at once) and applying their messages.
func step(t *testing.T, m model, msgs ...tea.Msg) model {
	t.Helper()
	for _, msg := range msgs {
		m = apply(t, m, msg, 0)
	}
	return m
}

func apply(t *testing.T, m model, msg tea.Msg, depth int) model {
	t.Helper()
	if depth > 10 {
		t.Fatal("commands do not settle")
	}
	next, cmd := m.Update(msg)
	return run(t, next.(model), cmd, depth)
}

func run(t *testing.T, m model, cmd tea.Cmd, depth int) model {
	t.Helper()
	if cmd == nil {
		return m
	}
	switch msg := cmd().(type) {
	case nil, tea.QuitMsg:
	case tea.BatchMsg:
		for _, c := range msg {
			m = run(t, m, c, depth+1)
		}
	default:
		m = apply(t, m, msg, depth+1)
	}
	return m
}

func typed(s string) tea.Msg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }

func key(k tea.KeyType) tea.Msg { return tea.KeyMsg{Type: k} }

func screen(m model) string { return ansi.Strip(m.View()) }

// listLine returns the line of the conversation pane that shows name.
func listLine(t *testing.T, m model, name string) string {
	t.Helper()
	for _, l := range strings.Split(ansi.Strip(m.list()), "\n") {
		if strings.Contains(l, " "+name) {
			return strings.TrimRight(l, " ")
		}
	}
	t.Fatalf("%s not in the list:\n%s", name, ansi.Strip(m.list()))
	return ""
}

// calls drains a channel of recorded calls.
func calls[T any](ch chan T) []T {
	var out []T
	for {
		select {
		case v := <-ch:
			out = append(out, v)
		default:
			return out
		}
	}
}

func mustContain(t *testing.T, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("missing %q in:\n%s", w, s)
		}
	}
}

func TestOpensMostRecentConversation(t *testing.T) {
	convs := testConvs()
	convs[0], convs[1] = convs[1], convs[0] // the order must not matter
	f := newFake(convs...)
	f.addLog("bob", incoming("b1", "bob", "hi from bob"))
	m := setup(t, f, "")
	if m.cur != "bob" {
		t.Fatalf("opened %q, want bob", m.cur)
	}
	if got := calls(f.read); len(got) != 1 || got[0] != "bob" {
		t.Errorf("MarkRead calls = %q, want [bob]", got)
	}
	mustContain(t, screen(m), "bob: hi from bob")
	if l := listLine(t, m, "bob"); strings.Contains(l, "(2)") {
		t.Errorf("opened conversation still shows unread: %q", l)
	}
	if l := listLine(t, m, "#devs"); !strings.Contains(l, "(1)") {
		t.Errorf("unread count missing: %q", l)
	}
}

func TestOpensNamedConversation(t *testing.T) {
	f := newFake(testConvs()...)
	m := setup(t, f, "#devs")
	if m.cur != "#devs" {
		t.Fatalf("opened %q", m.cur)
	}
	// A name the list does not know yet is still opened.
	m = setup(t, newFake(testConvs()...), "carol")
	if m.cur != "carol" || m.find("carol") < 0 {
		t.Fatalf("opened %q, list %v", m.cur, m.convs)
	}
}

func TestSwitchConversation(t *testing.T) {
	f := newFake(testConvs()...)
	m := setup(t, f, "bob")
	calls(f.read)
	for _, tc := range []struct {
		key  tea.KeyType
		want string
	}{
		{tea.KeyTab, "alice"},
		{tea.KeyTab, "#devs"},
		{tea.KeyTab, "bob"}, // wraps
		{tea.KeyShiftTab, "#devs"},
		{tea.KeyCtrlP, "alice"},
		{tea.KeyCtrlN, "#devs"},
	} {
		m = step(t, m, key(tc.key))
		if m.cur != tc.want {
			t.Fatalf("after %v: open %q, want %q", tc.key, m.cur, tc.want)
		}
		if got := calls(f.read); len(got) != 1 || got[0] != tc.want {
			t.Errorf("after %v: MarkRead calls %q", tc.key, got)
		}
		if !strings.Contains(ansi.Strip(m.header()), tc.want) {
			t.Errorf("header %q does not name %s", ansi.Strip(m.header()), tc.want)
		}
	}
}

func TestSendAndTicks(t *testing.T) {
	f := newFake(testConvs()...)
	m := setup(t, f, "bob")
	m = step(t, m, typed("hello"), typed(" there"), key(tea.KeyEnter))
	if got := calls(f.sent); len(got) != 1 || got[0] != (sendCall{"bob", "hello there"}) {
		t.Fatalf("Send calls = %v", got)
	}
	if m.input.Value() != "" {
		t.Errorf("input not cleared: %q", m.input.Value())
	}
	mustContain(t, screen(m), "me: hello there ○")

	sent := m.msgs[len(m.msgs)-1]
	for _, tc := range []struct{ state, want string }{
		{apitype.StateSent, "hello there ✓"},
		{apitype.StateDelivered, "hello there ✓✓"},
		{apitype.StateSent, "hello there ✓✓"}, // a late receipt does not move it back
	} {
		m = step(t, m, eventMsg(receiptEvent(sent, tc.state)))
		mustContain(t, screen(m), tc.want)
	}
	if n := strings.Count(screen(m), "hello there"); n != 1 {
		t.Errorf("message shown %d times", n)
	}

	// Blank input sends nothing.
	m = step(t, m, typed("   "), key(tea.KeyEnter))
	if got := calls(f.sent); len(got) != 0 {
		t.Errorf("blank input sent %v", got)
	}
}

func TestUnreadCounts(t *testing.T) {
	f := newFake(testConvs()...)
	m := setup(t, f, "bob")
	calls(f.read)
	m = step(t, m,
		eventMsg(messageEvent(incoming("a1", "alice", "one"))),
		eventMsg(messageEvent(incoming("a2", "12D3KooWalice", "two"))), // by peer ID
	)
	if l := listLine(t, m, "alice"); !strings.Contains(l, "(2)") {
		t.Errorf("alice: %q, want (2)", l)
	}
	if strings.Contains(screen(m), "one") {
		t.Error("another conversation's message shown in the open one")
	}

	// A message in the open conversation is shown and marked read.
	m = step(t, m, eventMsg(messageEvent(incoming("b1", "bob", "live"))))
	mustContain(t, screen(m), "bob: live")
	if l := listLine(t, m, "bob"); strings.Contains(l, "(") {
		t.Errorf("bob: %q, want no unread count", l)
	}
	if got := calls(f.read); len(got) != 1 || got[0] != "bob" {
		t.Errorf("MarkRead calls = %q, want [bob]", got)
	}

	m = step(t, m, key(tea.KeyTab))
	if l := listLine(t, m, "alice"); strings.Contains(l, "(") {
		t.Errorf("alice after opening: %q", l)
	}

	// A message in an unknown conversation reloads the list; the open
	// conversation shows no unread count even if the node still counts one.
	f.mu.Lock()
	f.convs = append(f.convs, apitype.Conversation{Name: "carol", Unread: 1})
	f.convs[1].Unread = 5 // alice
	f.mu.Unlock()
	m = step(t, m, eventMsg(messageEvent(incoming("c1", "carol", "hey"))))
	if l := listLine(t, m, "carol"); !strings.Contains(l, "(1)") {
		t.Errorf("carol: %q", l)
	}
	if l := listLine(t, m, "alice"); strings.Contains(l, "(") {
		t.Errorf("open alice after reload: %q", l)
	}
}

func TestUnverifiedMark(t *testing.T) {
	m := setup(t, newFake(testConvs()...), "bob")
	if l := listLine(t, m, "bob"); !strings.HasSuffix(l, "!") {
		t.Errorf("unverified bob: %q, want a ! mark", l)
	}
	if l := listLine(t, m, "alice"); strings.Contains(l, "!") {
		t.Errorf("verified alice: %q", l)
	}
	if l := listLine(t, m, "#devs"); strings.Contains(l, "!") {
		t.Errorf("room: %q", l)
	}
	mustContain(t, ansi.Strip(m.header()), "unverified — run `parley verify bob`")
	m = step(t, m, key(tea.KeyTab))
	if h := ansi.Strip(m.header()); strings.Contains(h, "unverified") {
		t.Errorf("verified alice: header %q", h)
	}
}

func TestGapNotice(t *testing.T) {
	for _, tc := range []struct {
		gap  int
		want string
	}{
		{0, ""},
		{1, "1 message from bob is missing"},
		{2, "2 messages from bob are missing"},
	} {
		m := incoming("x", "bob", "text")
		m.Gap = tc.gap
		if got := gapNotice(m); got != tc.want {
			t.Errorf("gap %d: %q, want %q", tc.gap, got, tc.want)
		}
	}
	f := newFake(testConvs()...)
	m := incoming("b2", "bob", "after the gap")
	m.Gap = 2
	f.addLog("bob", incoming("b1", "bob", "before"), m)
	s := screen(setup(t, f, "bob"))
	mustContain(t, s, "2 messages from bob are missing")
	if strings.Index(s, "missing") > strings.Index(s, "after the gap") {
		t.Errorf("gap notice not before its message:\n%s", s)
	}
}

func TestPresence(t *testing.T) {
	m := setup(t, newFake(testConvs()...), "bob")
	mustContain(t, ansi.Strip(m.header()), "● online")
	off := t0.Add(5 * time.Minute)
	m = step(t, m, eventMsg(apitype.Event{Type: "presence", Time: off, PeerID: "12D3KooWbob"}))
	mustContain(t, ansi.Strip(m.header()), "last seen "+off.Local().Format(shortLayout(off, time.Now())))
	if l := listLine(t, m, "bob"); !strings.HasPrefix(l, "▸○") {
		t.Errorf("offline bob: %q", l)
	}
	m = step(t, m, eventMsg(apitype.Event{Type: "presence", Time: off, Contact: "bob", Online: true}))
	if l := listLine(t, m, "bob"); !strings.HasPrefix(l, "▸●") {
		t.Errorf("online bob: %q", l)
	}
}

func TestResize(t *testing.T) {
	f := newFake(testConvs()...)
	long := incoming("b1", "bob", strings.Repeat("a long message ", 20))
	f.addLog("bob", long)
	m := setup(t, f, "bob")
	for _, size := range []tea.WindowSizeMsg{{Width: 60, Height: 15}, {Width: 120, Height: 40}, {Width: 30, Height: 6}} {
		t.Run(fmt.Sprintf("%dx%d", size.Width, size.Height), func(t *testing.T) {
			m := step(t, m, size)
			lines := strings.Split(m.View(), "\n")
			if len(lines) != size.Height {
				t.Errorf("%d lines, want %d:\n%s", len(lines), size.Height, m.View())
			}
			for _, l := range lines {
				if w := ansi.StringWidth(l); w > size.Width {
					t.Errorf("line %q is %d wide, window %d", ansi.Strip(l), w, size.Width)
				}
			}
		})
	}
}

func TestScroll(t *testing.T) {
	f := newFake(testConvs()...)
	for i := range 50 {
		f.addLog("bob", incoming(fmt.Sprint(i), "bob", fmt.Sprintf("message %d", i)))
	}
	m := setup(t, f, "bob")
	mustContain(t, screen(m), "message 49")
	m = step(t, m, key(tea.KeyPgUp), key(tea.KeyPgUp))
	if strings.Contains(screen(m), "message 49") {
		t.Error("PgUp did not scroll")
	}
	// New messages do not pull a reader who scrolled up.
	m = step(t, m, eventMsg(messageEvent(incoming("new", "bob", "newest"))))
	if strings.Contains(screen(m), "newest") {
		t.Error("scrolled to the bottom on a new message")
	}
	m = step(t, m, key(tea.KeyPgDown), key(tea.KeyPgDown), key(tea.KeyPgDown))
	mustContain(t, screen(m), "newest")
}

func TestQuitKeys(t *testing.T) {
	m := setup(t, newFake(testConvs()...), "bob")
	for _, k := range []tea.KeyType{tea.KeyCtrlC, tea.KeyEsc} {
		_, cmd := m.Update(key(k))
		if cmd == nil {
			t.Fatalf("%v: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%v does not quit", k)
		}
	}
}

func TestBackendErrorsShown(t *testing.T) {
	f := newFake(testConvs()...)
	f.fail(errors.New("node unreachable"))
	m := setup(t, f, "")
	mustContain(t, screen(m), "conversations: node unreachable", "No conversations yet")
	step(t, m, key(tea.KeyTab), key(tea.KeyEnter), typed("x"), key(tea.KeyEnter))

	f = newFake(testConvs()...)
	m = setup(t, f, "bob")
	f.fail(errors.New("boom"))
	m = step(t, m, typed("keep me"), key(tea.KeyEnter))
	mustContain(t, screen(m), "send: boom")
	if m.input.Value() != "keep me" {
		t.Errorf("failed text not restored: %q", m.input.Value())
	}
	m = step(t, m, key(tea.KeyTab))
	if st := ansi.Strip(m.View()); !strings.Contains(st, "alice read: boom") && !strings.Contains(st, "history of alice: boom") {
		t.Errorf("failed open of alice not shown:\n%s", st)
	}

	// Malformed events are ignored.
	m = step(t, m,
		eventMsg(apitype.Event{Type: "message"}),
		eventMsg(apitype.Event{Type: "receipt"}),
		eventMsg(apitype.Event{Type: "presence"}),
		eventMsg(apitype.Event{Type: "something new"}),
	)
	m.View()
}

func TestCleanText(t *testing.T) {
	m := incoming("x", "bob\x1b[2J", "\x1b[31mred\x1b[0m\nfake line\u202e")
	f := newFake(apitype.Conversation{Name: "bob"})
	f.addLog("bob", m)
	if s := setup(t, f, "bob").View(); strings.Contains(s, "\x1b[2J") || strings.Contains(s, "\nfake") || strings.Contains(s, "\u202e") {
		t.Errorf("control characters reach the screen: %q", s)
	}
	got := format(m, lineLayout)
	if want := t0.Local().Format(lineLayout) + " bob\uFFFD[2J: \uFFFD[31mred\uFFFD[0m fake line\uFFFD"; got != want {
		t.Errorf("format = %q\nwant       %q", got, want)
	}
}
