// Package safetext is the one sanitiser every peer-controlled string passes
// before it reaches a terminal: contact names suggested by links, message
// bodies, room names, anything a remote party chose.
//
// A peer must not be able to move the cursor, recolour or clear the screen,
// reorder what the user reads (bidi overrides), hide characters (zero-width
// and other format characters) or fake a line of its own. So, in every
// function here:
//
//   - C0 and C1 control characters (including ESC, and so every ANSI escape
//     sequence) become U+FFFD;
//   - Unicode format characters (general category Cf: bidi embeddings,
//     overrides and isolates, zero-width space and joiners, the BOM, soft
//     hyphen, ...) become U+FFFD;
//   - invalid UTF-8 becomes U+FFFD;
//   - line and paragraph separators (U+2028, U+2029) are treated as newlines.
//
// Line returns one line (newlines and tabs become spaces); Text keeps
// newlines for multi-line message bodies. Both are pure and allocate only
// when the input needs changing.
package safetext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Replacement is what a neutralised character becomes.
const Replacement = '\uFFFD'

// Line makes s safe to print as part of one terminal line.
func Line(s string) string { return clean(s, false) }

// Text makes s safe to print, keeping its line breaks (as '\n').
func Text(s string) string { return clean(s, true) }

// Safe reports whether s would print unchanged by Line.
func Safe(s string) bool { return !needs(s, false) }

func needs(s string, keepNewlines bool) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return true
		}
		if mapRune(r, keepNewlines) != r {
			return true
		}
		i += size
	}
	return false
}

func clean(s string, keepNewlines bool) string {
	if !needs(s, keepNewlines) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError && size <= 1 {
			b.WriteRune(Replacement)
			continue
		}
		b.WriteRune(mapRune(r, keepNewlines))
	}
	return b.String()
}

func mapRune(r rune, keepNewlines bool) rune {
	switch {
	case r == '\n' || r == '\u2028' || r == '\u2029':
		if keepNewlines {
			return '\n'
		}
		return ' '
	case r == '\t':
		return ' '
	case r == '\r':
		return Replacement
	case unicode.IsControl(r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Bidi_Control, r):
		return Replacement
	}
	return r
}
