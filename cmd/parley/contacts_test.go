package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/peer/apitype"
)

// evilName is what a legacy database or a hostile API answer might hold:
// cursor up, erase line, fake digits, a bidi override, a zero-width space
// and a carriage return.
const evilName = "mallory\x1b[1A\x1b[2K11111 22222\u202e\u200b\r"

// fakeNode serves canned local API answers on home/api.sock.
func fakeNode(t *testing.T) string {
	t.Helper()
	home, err := os.MkdirTemp("", "pl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	ln, err := net.Listen("unix", filepath.Join(home, "api.sock"))
	if err != nil {
		t.Fatal(err)
	}
	const id = "12D3KooWLr1gYejUTeriAsSu6roR2aQ423G3Q4fFTqzqSwTsMz9n"
	contact := apitype.Contact{Name: evilName, PeerID: id}
	mux := http.NewServeMux()
	js := func(v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(v) }
	}
	mux.Handle("GET /v1/verify", js(apitype.SafetyNumber{Contact: evilName, PeerID: id, Number: strings.TrimSpace(strings.Repeat("12345 ", 12))}))
	mux.Handle("GET /v1/contacts", js([]apitype.Contact{contact}))
	mux.Handle("POST /v1/contacts", js(contact))
	mux.HandleFunc("POST /v1/contacts/{action}", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(apitype.ContactActionResult{PeerID: id, Action: r.PathValue("action"), Contact: &contact})
	})
	mux.Handle("GET /v1/requests", js([]apitype.Request{{PeerID: id, Handle: "peer-SMz9n1", Messages: 1, Last: evilName, LastAt: time.Unix(0, 0)}}))
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		enc := json.NewEncoder(w)
		msg := &apitype.Message{ID: "00", Conv: evilName, From: id, FromName: evilName, Text: "hi", State: apitype.StateReceived}
		enc.Encode(apitype.Event{Type: "message", Message: msg})
		enc.Encode(apitype.Event{Type: "receipt", Message: msg})
		enc.Encode(apitype.Event{Type: "presence", Contact: evilName, PeerID: id, Online: true})
		enc.Encode(apitype.Event{Type: "request", PeerID: id, Request: true})
		enc.Encode(apitype.Event{Type: "message", Message: msg, Request: true})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return home
}

// TestPeerNamesAreSanitised: verify, contacts, add, accept, rename,
// requests and watch print a peer-chosen name that carries terminal codes
// through the sanitiser: nothing can redraw the safety number. Positive
// control: the printable part of the name and the number are printed.
func TestPeerNamesAreSanitised(t *testing.T) {
	home := fakeNode(t)
	for _, args := range [][]string{
		{"verify", "x", "--no-qr"},
		{"contacts"},
		{"add", "12D3KooWLr1gYejUTeriAsSu6roR2aQ423G3Q4fFTqzqSwTsMz9n"},
		{"accept", "peer-SMz9n1"},
		{"contacts", "rename", "a", "b"},
		{"block", "x"},
		{"requests"},
		{"watch"},
	} {
		t.Run(args[0], func(t *testing.T) {
			var out, errb bytes.Buffer
			full := append([]string{args[0], "--home", home}, args[1:]...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, full, strings.NewReader(""), &out, &errb)
			if args[0] == "watch" && err != nil && strings.Contains(err.Error(), "node stopped") {
				err = nil // the fake node's event stream ends after its events
			}
			if err != nil {
				t.Fatalf("%v: %v (%s)", args, err, errb.String())
			}
			got := out.String()
			if strings.ContainsAny(got, "\x1b\u202e\u200b\r") {
				t.Fatalf("%v printed control characters raw: %q", args, got)
			}
			if !strings.Contains(got, "mallory") {
				t.Fatalf("%v did not print the name: %q", args, got)
			}
			if args[0] == "verify" && !strings.Contains(got, "12345 12345 12345 12345") {
				t.Fatalf("safety number missing: %q", got)
			}
		})
	}
}
