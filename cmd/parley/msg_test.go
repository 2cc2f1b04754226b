package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/peer/apitype"
)

// TestPrintMessageNeutralisesControls: a peer's text with terminal escape
// sequences, a carriage return and a bidi override must not reach the
// terminal raw through `parley log`, `watch` or `search`.
func TestPrintMessageNeutralisesControls(t *testing.T) {
	var out bytes.Buffer
	printMessage(&out, apitype.Message{
		From: "12D3KooWLr1gYejUTeriAsSu6roR2aQ423G3Q4fFTqzqSwTsMz9n", FromName: "bob", Conv: "bob",
		Text: "hi\x1b[2J\rfake line\u202e", SentAt: time.Unix(0, 0), State: apitype.StateReceived, Gap: 2,
	})
	got := out.String()
	if strings.ContainsAny(got, "\x1b\r\u202e") {
		t.Fatalf("control characters printed raw: %q", got)
	}
	if !strings.Contains(got, "2 messages from bob are missing") || !strings.Contains(got, "bob: hi") {
		t.Fatalf("output = %q", got)
	}
}
