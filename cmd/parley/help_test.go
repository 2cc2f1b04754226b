package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/peer/apitype"
)

// runCLI runs the command line in process and returns its output and the
// exit status main would give it.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	var u *usageError
	switch {
	case err == nil:
	case errors.As(err, &u):
		code = 2
	default:
		code = 1
	}
	if err != nil {
		errOut.WriteString("parley: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), code
}

// TestHelpEveryVerb checks that every registered verb -- including those
// added later in other files -- has a group, a description and an
// example, and that `parley help VERB` and `parley VERB --help` print the
// same page with its synopsis, flags and examples, exiting 0.
func TestHelpEveryVerb(t *testing.T) {
	for _, c := range topics() {
		t.Run(c.name, func(t *testing.T) {
			if c.hidden {
				t.Fatal("a hidden verb in the help")
			}
			if !contains(helpGroups, c.group) {
				t.Errorf("group %q is not one of %v", c.group, helpGroups)
			}
			if c.summary == "" || c.long == "" || len(c.examples) == 0 {
				t.Fatalf("missing help: summary %q, long %d bytes, %d examples", c.summary, len(c.long), len(c.examples))
			}
			for _, ex := range c.examples {
				if !strings.Contains(ex, "parley ") {
					t.Errorf("example %q does not run parley", ex)
				}
			}
			out, errOut, code := runCLI(t, append([]string{"help"}, strings.Fields(c.name)...)...)
			if code != 0 {
				t.Fatalf("parley help %s: exit %d: %s", c.name, code, errOut)
			}
			for _, want := range []string{"parley " + c.name + " - ", "\nUsage:\n  parley " + c.name, "\nExamples:\n  ", "Exit status:"} {
				if !strings.Contains(out, want) {
					t.Errorf("parley help %s lacks %q:\n%s", c.name, want, out)
				}
			}
			if fs := describe(context.Background(), c.name, nil); fs != nil && (!strings.Contains(out, "\nFlags:\n") || !strings.Contains(out, "  --home DIR ")) {
				t.Errorf("parley help %s lists no flags:\n%s", c.name, out)
			}
			out2, _, code := runCLI(t, append(strings.Fields(c.name), "--help")...)
			if code != 0 || out2 != out {
				t.Errorf("parley %s --help (exit %d) differs from parley help %s:\n%s", c.name, code, c.name, out2)
			}
		})
	}
}

// TestHelpListsEveryVerbByGroup checks `parley help`: groups in order,
// every verb once, columns aligned.
func TestHelpListsEveryVerbByGroup(t *testing.T) {
	out, _, code := runCLI(t, "help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	last := -1
	for _, g := range helpGroups {
		if i := strings.Index(out, "\n"+g+":\n"); i >= 0 {
			if i < last {
				t.Errorf("group %s out of order", g)
			}
			last = i
		}
	}
	for _, c := range topics() {
		if n := strings.Count(out, "\n  "+c.name+" "); n != 1 {
			t.Errorf("verb %q listed %d times", c.name, n)
		}
	}
	// Aligned: within a group, every summary starts in the same column.
	for _, block := range strings.Split(out, "\n\n") {
		col := -1
		for _, l := range strings.Split(block, "\n") {
			if !strings.HasPrefix(l, "  ") || strings.HasPrefix(l, "   ") {
				continue
			}
			name := strings.Fields(l)[0]
			if c := find(name); c == nil {
				if len(subcommands(name)) == 0 {
					continue
				}
			}
			i := strings.Index(l, "   ") // the gap after the name
			j := i + len(l[i:]) - len(strings.TrimLeft(l[i:], " "))
			if col >= 0 && j != col {
				t.Errorf("misaligned line %q (column %d, want %d)", l, j, col)
			}
			col = j
		}
	}
}

func TestSuggestions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"sned", "send"}, {"contact", "contacts"}, {"veirfy", "verify"}, {"wath", "watch"},
		{"stauts", "status"}, {"xyzzy", ""}, {"ro", ""}, {"boot", "bootstrap"},
	} {
		if got := closest(tc.in, verbNames()); got != tc.want {
			t.Errorf("closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"send", "sned", 1}, {"héllo", "hello", 1}} {
		if got := levenshtein(tc.a, tc.b); got != tc.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		ok   bool
		want string
	}{
		{"release", debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, true, "v1.2.3"},
		{"vcs", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "false"}}}, true, "devel-0123456789ab"},
		{"dirty", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}, true, "devel-0123456789ab-dirty"},
		{"nothing", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "dev"},
		{"no info", debug.BuildInfo{}, false, "dev"},
	} {
		if got := versionFrom(&tc.bi, tc.ok); got != tc.want {
			t.Errorf("%s: versionFrom = %q, want %q", tc.name, got, tc.want)
		}
	}
	out, _, code := runCLI(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "parley "+buildVersion()+" (go") {
		t.Errorf("parley --version = %q (exit %d)", out, code)
	}
}

// TestCompletionScripts checks that each script names every verb and the
// flags of a verb, and that the shells installed here accept it.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			out, errOut, code := runCLI(t, "completion", shell)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, c := range topics() {
				first, _, _ := strings.Cut(c.name, " ")
				if !strings.Contains(out, first) {
					t.Errorf("no %q in the %s script", first, shell)
				}
			}
			for _, want := range []string{"watch", "since", "no-qr", "create", "__complete", "conversations"} {
				if !strings.Contains(out, want) {
					t.Errorf("no %q in the %s script", want, shell)
				}
			}
			path, err := exec.LookPath(shell)
			if err != nil {
				t.Logf("%s not installed: syntax not checked", shell)
				return
			}
			cmd := exec.Command(path, "-n")
			if shell == "fish" {
				cmd = exec.Command(path, "--no-execute")
			}
			cmd.Stdin = strings.NewReader(out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, b)
			}
		})
	}
	if _, _, code := runCLI(t, "completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
}

func TestManPage(t *testing.T) {
	out, _, code := runCLI(t, "help", "--man")
	if code != 0 || !strings.HasPrefix(out, ".TH PARLEY 1 ") {
		t.Fatalf("exit %d, starts %.40q", code, out)
	}
	for _, c := range topics() {
		if !strings.Contains(out, `.SS "parley `+strings.ReplaceAll(c.name, "-", `\-`)) {
			t.Errorf("no section for %s", c.name)
		}
	}
	for _, want := range []string{".SH \"EXIT STATUS\"", ".B \\-\\-json", ".SH ENVIRONMENT"} {
		if !strings.Contains(out, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	if path, err := exec.LookPath("groff"); err == nil {
		cmd := exec.Command(path, "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = strings.NewReader(out)
		if b, err := cmd.CombinedOutput(); err != nil || len(b) > 0 {
			t.Errorf("groff: %v\n%s", err, b)
		}
	}
}

// TestPrintEvent checks watch's text lines: every event type has words,
// peer-chosen strings are sanitised, and none is a bare "room event".
func TestPrintEvent(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.Local)
	msg := &apitype.Message{ID: "ab", Conv: "bob\x1b[2J", Text: "hi\u202e", State: "delivered", SentAt: at}
	for _, tc := range []struct {
		ev   apitype.Event
		want string
	}{
		{apitype.Event{Type: "message", Time: at, Message: msg}, "[bob\uFFFD[2J] 2026-01-02 15:04 bob\uFFFD[2J: hi\uFFFD\n"},
		{apitype.Event{Type: "receipt", Time: at, Message: msg}, "15:04:05 [bob\uFFFD[2J] message ab is delivered\n"},
		{apitype.Event{Type: "presence", Time: at, Contact: "bob", Online: true}, "15:04:05 bob is online\n"},
		{apitype.Event{Type: "room", Time: at, Contact: "#team"}, "15:04:05 #team changed (members or keys; see `parley room members`)\n"},
		{apitype.Event{Type: "novel", Time: at}, "15:04:05 novel event (see --json)\n"},
		{apitype.Event{Type: "message", Time: at, Message: msg, Muted: true}, ""},
		{apitype.Event{Type: "request", Time: at, PeerID: "12D3KooWX"}, "15:04:05 message request from 12D3KooWX: read it with `parley log 12D3KooWX`, then `parley accept`, `decline` or `block`\n"},
	} {
		var b strings.Builder
		printEvent(&b, tc.ev, false)
		if b.String() != tc.want {
			t.Errorf("%s: %q, want %q", tc.ev.Type, b.String(), tc.want)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                            {},
		"10m":                         now.Add(-10 * time.Minute),
		"2026-01-02T14:00:00Z":        now.Add(-time.Hour),
		"2026-01-02T14:00:00.5+00:00": now.Add(-time.Hour + 500*time.Millisecond),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-5m", "2026-01-02"} {
		var u *usageError
		if _, err := parseSince(bad, now); !errors.As(err, &u) {
			t.Errorf("parseSince(%q): %v, want a usage error", bad, err)
		}
	}
}
