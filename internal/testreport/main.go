// Command testreport reads `go test -json` on stdin, prints what `go test`
// prints (a line per package, the output of failing tests), and ends with a
// summary that names every skipped test and why: a package whose tests all
// skipped -- the NAT tests without root or nftables -- must not pass for
// tested. It exits 1 if any test or package failed.
//
// .ci/test runs it: go test -json "$@" | go run ./internal/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

func main() {
	failed, err := report(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time    time.Time
	Action  string // start, run, pause, cont, pass, bench, fail, output, skip
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type testKey struct{ pkg, test string }

// skip is a skipped test and the reason it gave.
type skip struct {
	testKey
	reason string
}

type counts struct{ pass, fail, skip int }

// report copies the package results of the stream in to out, then the
// summary; it reports whether anything failed.
func report(in io.Reader, out io.Writer) (failed bool, err error) {
	output := map[testKey][]string{} // each running test's output
	var skips []skip
	byPkg := map[string]*counts{}
	var pkgs []string
	dec := json.NewDecoder(bufio.NewReader(in))
	for {
		var e event
		if err := dec.Decode(&e); err == io.EOF {
			break
		} else if err != nil {
			return true, fmt.Errorf("read go test -json: %w", err)
		}
		c := byPkg[e.Package]
		if c == nil && e.Package != "" {
			c = &counts{}
			byPkg[e.Package] = c
			pkgs = append(pkgs, e.Package)
		}
		k := testKey{e.Package, e.Test}
		switch e.Action {
		case "output":
			if e.Test == "" {
				// Package lines: "ok  pkg 0.1s", "FAIL", "?  pkg [no test files]",
				// build errors. Annotate a package whose tests all skipped.
				line := e.Output
				if line == "PASS\n" || line == "testing: warning: no tests to run\n" {
					continue // go test without -v does not print these
				}
				if strings.HasPrefix(line, "ok  ") && c != nil && c.pass == 0 && c.fail == 0 && c.skip > 0 {
					line = strings.TrimRight(line, "\n") + fmt.Sprintf("  [ALL %d TESTS SKIPPED]\n", c.skip)
				}
				io.WriteString(out, line)
				if strings.HasPrefix(line, "FAIL") {
					failed = true
				}
				continue
			}
			output[k] = append(output[k], e.Output)
		case "pass":
			if e.Test != "" {
				c.pass++
				delete(output, k)
			}
		case "skip":
			if e.Test != "" {
				c.skip++
				skips = append(skips, skip{k, skipReason(output[k])})
				delete(output, k)
			}
		case "fail":
			failed = true
			if e.Test != "" {
				c.fail++
				io.WriteString(out, strings.Join(output[k], ""))
				delete(output, k)
			}
		}
	}
	summarize(out, pkgs, byPkg, skips)
	return failed, nil
}

// skipReason finds the message a skipped test gave t.Skip: its last
// "file.go:NN: message" line (go test prints it before or after the
// "--- SKIP" line), without the file and line.
func skipReason(lines []string) string {
	reason := "no reason given"
	for _, l := range lines {
		r := strings.TrimSpace(l)
		if loc, msg, ok := strings.Cut(r, ": "); ok && strings.Contains(loc, ".go:") && !strings.ContainsAny(loc, " \t") {
			reason = msg
		}
	}
	return reason
}

func summarize(out io.Writer, pkgs []string, byPkg map[string]*counts, skips []skip) {
	var total counts
	for _, p := range pkgs {
		c := byPkg[p]
		total.pass += c.pass
		total.fail += c.fail
		total.skip += c.skip
	}
	fmt.Fprintf(out, "\ntests: %d passed, %d failed, %d skipped\n", total.pass, total.fail, total.skip)
	if len(skips) == 0 {
		return
	}
	// Group the skipped tests by package and reason: one line each.
	type group struct {
		pkg, reason string
		tests       []string
	}
	groups := map[[2]string]*group{}
	var order [][2]string
	for _, s := range skips {
		g := [2]string{s.pkg, s.reason}
		if groups[g] == nil {
			groups[g] = &group{pkg: s.pkg, reason: s.reason}
			order = append(order, g)
		}
		groups[g].tests = append(groups[g].tests, s.test)
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i][0] < order[j][0] })
	fmt.Fprintln(out, "SKIPPED (these were NOT tested here):")
	for _, g := range order {
		gr := groups[g]
		names := gr.tests
		if len(names) > 4 {
			names = append(names[:4:4], fmt.Sprintf("and %d more", len(gr.tests)-4))
		}
		noun := "tests"
		if len(gr.tests) == 1 {
			noun = "test"
		}
		fmt.Fprintf(out, "  %s: %d %s (%s): %s\n", gr.pkg, len(gr.tests), noun, strings.Join(names, ", "), gr.reason)
	}
}
