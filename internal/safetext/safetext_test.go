package safetext

import "testing"

func TestLine(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "bob", "bob"},
		{"unicode letters", "zoë 李", "zoë 李"},
		{"emoji", "🙂", "🙂"},
		{"CSI cursor up", "bob\x1b[1A\x1b[2K12345", "bob\uFFFD[1A\uFFFD[2K12345"},
		{"OSC title", "\x1b]0;pwned\x07", "\uFFFD]0;pwned\uFFFD"},
		{"C1 CSI", "a\u009b31mb", "a\uFFFD31mb"},
		{"carriage return", "safe\rfake", "safe\uFFFDfake"},
		{"backspace", "12\b\b99", "12\uFFFD\uFFFD99"},
		{"newline", "a\nb", "a b"},
		{"tab", "a\tb", "a b"},
		{"line separator", "a\u2028b", "a b"},
		{"RLO", "abc\u202Edcba", "abc\uFFFDdcba"},
		{"RLI isolate", "x\u2067y\u2069", "x\uFFFDy\uFFFD"},
		{"LRM", "a\u200Eb", "a\uFFFDb"},
		{"zero width space", "bo\u200Bb", "bo\uFFFDb"},
		{"zero width joiner", "a\u200Db", "a\uFFFDb"},
		{"BOM", "\uFEFFbob", "\uFFFDbob"},
		{"soft hyphen", "bo\u00ADb", "bo\uFFFDb"},
		{"invalid utf8", "a\xffb", "a\uFFFDb"},
		{"NUL", "a\x00b", "a\uFFFDb"},
		{"DEL", "a\x7fb", "a\uFFFDb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Line(tc.in); got != tc.want {
				t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if Safe(tc.in) != (tc.in == tc.want) {
				t.Errorf("Safe(%q) = %v", tc.in, Safe(tc.in))
			}
		})
	}
}

func TestText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"line one\nline two", "line one\nline two"},
		{"a\u2029b", "a\nb"},
		{"a\r\nb", "a\uFFFD\nb"},
		{"\x1b[31mred\x1b[0m\n", "\uFFFD[31mred\uFFFD[0m\n"},
		{"a\u202Eb", "a\uFFFDb"},
	} {
		if got := Text(tc.in); got != tc.want {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNoAllocWhenSafe(t *testing.T) {
	s := "hello, world"
	if n := testing.AllocsPerRun(100, func() { _ = Line(s) }); n != 0 {
		t.Errorf("Line on safe text allocates %v times", n)
	}
}

func FuzzLine(f *testing.F) {
	f.Add("bob\x1b[1A")
	f.Add("a\u202Eb\u200B")
	f.Fuzz(func(t *testing.T, s string) {
		out := Line(s)
		if !Safe(out) {
			t.Fatalf("Line(%q) = %q is not safe", s, out)
		}
		for _, r := range out {
			if r == '\n' || r < 0x20 || r == 0x7f {
				t.Fatalf("Line(%q) left %U", s, r)
			}
		}
		if Text(out) != out {
			t.Fatalf("Text changed a Line result")
		}
	})
}
