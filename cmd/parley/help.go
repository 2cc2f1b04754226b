package main

// The help system. Everything here is generated from the command registry
// (run.go): the verb list of `parley help`, each verb's page (`parley help
// VERB`, `parley VERB --help`), "did you mean", the man page and the shell
// completions (completion.go). A verb's flags are read from the flag set its
// run function builds: describe runs the verb with env.describe set, and
// parse hands the flag set over instead of parsing.
//
// Why not cobra or kong: several people add verbs to the registry in
// parallel, each in their own file with one register call; a library would
// replace that mechanism (and every verb's flag parsing) at once. What the
// libraries give -- help pages, suggestions, completions, a man page -- is a
// few hundred lines over the registry, and keeps one binary with no new
// dependency.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// helpGroups orders the sections of `parley help`.
var helpGroups = []string{"Start", "Contacts", "Messages", "Rooms", "Network", "Node", "Other"}

// exitCodes is the documented contract for scripts; main keeps it.
const exitCodes = `Exit status:
  0  success
  1  the command failed (no node running, unknown contact, network error, ...)
  2  usage or configuration error: a bad flag, argument, environment
     variable or parley.conf setting; nothing was done`

const environment = `Environment:
  PARLEY_HOME       the node's home (default $XDG_DATA_HOME/parley, else ~/.local/share/parley)
  PARLEY_LISTEN     PARLEY_BOOTSTRAP  PARLEY_NET  PARLEY_ALLOW  PARLEY_METRICS  PARLEY_LOG_LEVEL
                    defaults for the node flags of the same name (see parley help up)`

// docs adds help to a verb registered in a file whose register call is
// someone else's to change (the room verbs): help falls back to it.
var docs = map[string]command{}

// document attaches help fields to the verb called name.
func document(name string, c command) { docs[name] = c }

// helpOf returns the registered command with its documentation merged in.
func helpOf(name string) (command, bool) {
	c := find(name)
	if c == nil {
		if d, ok := docs[name]; ok && subcommandsHave(name) {
			return d, true
		}
		return command{}, false
	}
	out := *c
	if d, ok := docs[name]; ok {
		out.group = firstNonEmpty(out.group, d.group)
		out.long = firstNonEmpty(out.long, d.long)
		if len(out.examples) == 0 {
			out.examples = d.examples
		}
		out.summary = firstNonEmpty(d.summary, out.summary)
	}
	return out, true
}

func subcommandsHave(name string) bool { return len(subcommands(name)) > 0 }

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// topics are the verbs of `parley help`: commands by their first word; a
// group of two-word commands ("net new") is listed as each of its members.
func topics() []command {
	var out []command
	for _, c := range commands {
		if c.hidden {
			continue
		}
		h, _ := helpOf(c.name)
		out = append(out, h)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// verbNames returns every first word a user may type, for suggestions.
func verbNames() []string {
	seen := map[string]bool{"help": true, "completion": true}
	out := []string{"help"}
	for _, c := range commands {
		first, _, _ := strings.Cut(c.name, " ")
		if !seen[first] && !c.hidden {
			seen[first] = true
			out = append(out, first)
		}
	}
	return out
}

func lastWords(cs []command) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		_, out[i], _ = strings.Cut(c.name, " ")
	}
	return out
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "parley: a peer-to-peer, end-to-end encrypted messenger")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: parley <command> [flags] [args]")
	byGroup := map[string][]command{}
	for _, c := range topics() {
		g := c.group
		if g == "" || !contains(helpGroups, g) {
			g = "Other"
		}
		byGroup[g] = append(byGroup[g], c)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, g := range helpGroups {
		if len(byGroup[g]) == 0 {
			continue
		}
		fmt.Fprintf(tw, "\n%s:\n", g)
		for _, c := range byGroup[g] {
			fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `parley help COMMAND` (or `parley COMMAND --help`) for its flags and examples;")
	fmt.Fprintln(w, "`parley completion bash|zsh|fish` prints shell completions, `parley help --man` a man page.")
	fmt.Fprintln(w, "Every command takes --home DIR; those that print take --json.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, exitCodes)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// runHelp is `parley help [VERB [SUBVERB]]` and `parley help --man`.
func runHelp(ctx context.Context, e *env, args []string) error {
	switch {
	case len(args) == 0:
		printUsage(e.stdout)
		return nil
	case args[0] == "--man":
		if len(args) > 1 {
			return usagef("usage: parley help --man")
		}
		return writeMan(ctx, e, e.stdout)
	case args[0] == "exit-codes" || args[0] == "exit-status":
		fmt.Fprintln(e.stdout, exitCodes)
		return nil
	case args[0] == "environment":
		fmt.Fprintln(e.stdout, environment)
		return nil
	}
	name := args[0]
	if len(args) > 1 {
		if _, ok := helpOf(name + " " + args[1]); ok {
			return printHelp(ctx, e, e.stdout, name+" "+args[1], nil)
		}
		if len(subcommands(name)) > 0 {
			return usagef("parley %s: unknown verb %q%s", name, args[1], suggest(args[1], lastWords(subcommands(name))))
		}
	}
	if _, ok := helpOf(name); !ok {
		return usagef("no help for %q%s (run `parley help`)", name, suggest(name, verbNames()))
	}
	return printHelp(ctx, e, e.stdout, name, args[1:])
}

// printHelp prints the help page of the verb called name to w. rest are
// the arguments after it (a sub-verb such as "create" of "room create"),
// which select the flag set to describe.
func printHelp(ctx context.Context, e *env, w io.Writer, name string, rest []string) error {
	if _, ok := helpOf(name); !ok && len(subcommands(name)) > 0 {
		printGroupHelp(w, name)
		return nil
	}
	printCommandHelp(w, name, describe(ctx, name, rest))
	return nil
}

// describe returns the flag set the verb called name builds for its
// arguments rest, or nil if it builds none. The verb does not run: parse
// hands its flag set to env.describe and returns flag.ErrHelp.
func describe(ctx context.Context, name string, rest []string) *flag.FlagSet {
	c := find(name)
	if c == nil {
		return nil
	}
	var fs *flag.FlagSet
	ctx, cancel := context.WithCancel(ctx)
	cancel() // a verb that ignores describe must not reach the network
	de := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
		describe: func(f *flag.FlagSet) { fs = f }}
	var args []string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		args = append(args, rest[0]) // the sub-verb of room, mailbox
	}
	c.run(ctx, de, append(args, "--help"))
	return fs
}

// printGroupHelp lists the verbs of a two-word group such as "net".
func printGroupHelp(w io.Writer, name string) {
	fmt.Fprintf(w, "Usage: parley %s <verb> [flags]\n\nVerbs:\n", name)
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, c := range subcommands(name) {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun `parley help %s VERB` for a verb's flags and examples.\n", name)
}

// printCommandHelp prints a verb's page: synopsis, description, flags,
// examples and exit status.
func printCommandHelp(w io.Writer, name string, fs *flag.FlagSet) {
	c, ok := helpOf(name)
	if !ok {
		// A sub-verb of a verb that parses its own sub-verbs ("room create"):
		// the parent's page, with this sub-verb's flags.
		first, _, _ := strings.Cut(name, " ")
		if c, ok = helpOf(first); !ok {
			fmt.Fprintf(w, "Usage: parley %s [flags]\n", name)
			printFlags(w, fs)
			return
		}
	}
	fmt.Fprintf(w, "parley %s - %s\n\n", c.name, c.summary)
	fmt.Fprintf(w, "Usage:\n  parley %s\n", synopsis(c, fs))
	if c.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(indentBlock(c.long, ""), "\n"))
	}
	printFlags(w, fs)
	if len(c.examples) > 0 {
		fmt.Fprintln(w, "\nExamples:")
		for _, ex := range c.examples {
			fmt.Fprintf(w, "  %s\n", ex)
		}
	}
	fmt.Fprintf(w, "\nExit status: 0 success, 1 failure, 2 usage error (see `parley help exit-codes`).\n")
}

func synopsis(c command, fs *flag.FlagSet) string {
	s := c.name
	if c.args != "" {
		s += " " + c.args
	}
	if fs != nil && !strings.Contains(c.args, "[flags]") {
		s += " [flags]"
	}
	return s
}

func indentBlock(s, prefix string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// flagRow is one flag as help shows it.
type flagRow struct{ name, arg, usage, def string }

func flagRows(fs *flag.FlagSet) []flagRow {
	var rows []flagRow
	if fs == nil {
		return nil
	}
	fs.VisitAll(func(fl *flag.Flag) {
		arg, usage := flag.UnquoteUsage(fl)
		r := flagRow{name: fl.Name, arg: arg, usage: usage}
		if !isZeroDefault(fl) {
			r.def = fl.DefValue
		}
		rows = append(rows, r)
	})
	return rows
}

func isZeroDefault(fl *flag.Flag) bool {
	switch fl.DefValue {
	case "", "false", "0", "[]":
		return true
	}
	if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return fl.DefValue == "false"
	}
	if _, ok := fl.Value.(interface{ Get() any }); ok {
		if d, err := time.ParseDuration(fl.DefValue); err == nil && d == 0 {
			return true
		}
	}
	return false
}

func printFlags(w io.Writer, fs *flag.FlagSet) {
	rows := flagRows(fs)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nFlags:")
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, r := range rows {
		left := flagName(r.name)
		if r.arg != "" {
			left += " " + r.arg
		}
		usage := r.usage
		if r.def != "" && !strings.Contains(usage, "default") {
			usage += fmt.Sprintf(" (default %s)", r.def)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", left, usage)
	}
	tw.Flush()
}

// flagName is how a flag is written: -o, --json.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// flagError turns a flag package error into a usage error with a hint: the
// closest defined flag, and where the verb's help is.
func (f *flags) flagError(err error) error {
	msg := err.Error()
	if bad, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		var names []string
		f.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
		if s := closest(strings.TrimLeft(bad, "-"), names); s != "" {
			return usagef("%s; did you mean --%s? (run `parley help %s`)", msg, s, f.name)
		}
	}
	return usagef("%s (run `parley help %s`)", msg, f.name)
}

// suggest returns `; did you mean "x"?` for the candidate closest to s, or
// "" when none is close.
func suggest(s string, candidates []string) string {
	if c := closest(s, candidates); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return ""
}

// closest returns the candidate nearest to s: the only one s is a prefix
// of, else the nearest by edit distance if that is near enough to be a
// typo.
func closest(s string, candidates []string) string {
	var prefixed []string
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if s != "" && strings.HasPrefix(c, s) {
			prefixed = append(prefixed, c)
		}
		if d := levenshtein(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if len(prefixed) == 1 && len(s) >= 2 {
		return prefixed[0]
	}
	limit := 2
	if len([]rune(s)) <= 3 {
		limit = 1
	}
	if bestD <= limit && bestD < len([]rune(best)) {
		return best
	}
	return ""
}

// levenshtein is the edit distance between a and b, by rune, counting an
// insertion, a deletion, a substitution or a swap of two neighbours as one
// edit (optimal string alignment): "sned" is one edit from "send".
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// writeMan writes parley(1) in roff, from the registry.
func writeMan(ctx context.Context, e *env, w io.Writer) error {
	esc := func(s string) string {
		s = strings.ReplaceAll(s, `\`, `\e`)
		s = strings.ReplaceAll(s, "-", `\-`)
		var b strings.Builder
		for _, r := range s {
			if r > 126 {
				fmt.Fprintf(&b, `\[u%04X]`, r)
				continue
			}
			b.WriteRune(r)
		}
		s = b.String()
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
				lines[i] = `\&` + l
			}
		}
		return strings.Join(lines, "\n")
	}
	fmt.Fprintf(w, ".TH PARLEY 1 \"\" \"parley %s\" \"User Commands\"\n", esc(buildVersion()))
	fmt.Fprintln(w, ".SH NAME\nparley \\- a peer\\-to\\-peer, end\\-to\\-end encrypted messenger")
	fmt.Fprintln(w, ".SH SYNOPSIS\n.B parley\n.I command\n[\\fIflags\\fR] [\\fIargs\\fR]")
	fmt.Fprintln(w, ".SH DESCRIPTION\nEvery user runs a node (\\fBparley up\\fR); the other commands drive it through its local API.\nCommands that only read work with no node running.")
	fmt.Fprintln(w, ".SH COMMANDS")
	for _, c := range topics() {
		fs := describe(ctx, c.name, nil)
		fmt.Fprintf(w, ".SS \"parley %s\"\n", esc(synopsis(c, fs)))
		fmt.Fprintln(w, esc(c.summary)+".")
		if c.long != "" {
			for _, para := range strings.Split(strings.Trim(c.long, "\n"), "\n\n") {
				if strings.HasPrefix(para, "  ") || strings.Contains(para, "\n  ") {
					fmt.Fprintf(w, ".PP\n.nf\n%s\n.fi\n", esc(para))
				} else {
					fmt.Fprintf(w, ".PP\n%s\n", esc(para))
				}
			}
		}
		for _, r := range flagRows(fs) {
			fmt.Fprintf(w, ".TP\n.B %s", esc(flagName(r.name)))
			if r.arg != "" {
				fmt.Fprintf(w, " \" %s\"", esc(r.arg))
			}
			fmt.Fprintf(w, "\n%s\n", esc(r.usage))
		}
		if len(c.examples) > 0 {
			fmt.Fprintf(w, ".PP\nExamples:\n.nf\n")
			for _, ex := range c.examples {
				fmt.Fprintf(w, "  %s\n", esc(ex))
			}
			fmt.Fprintln(w, ".fi")
		}
	}
	fmt.Fprintf(w, ".SH \"EXIT STATUS\"\n.nf\n%s\n.fi\n", esc(strings.TrimPrefix(exitCodes, "Exit status:\n")))
	fmt.Fprintf(w, ".SH ENVIRONMENT\n.nf\n%s\n.fi\n", esc(strings.TrimPrefix(environment, "Environment:\n")))
	fmt.Fprintln(w, ".SH FILES\n.TP\n.I $PARLEY_HOME/parley.conf\noptional config: one \\fIflag = value\\fR per line, the flags of \\fBparley up\\fR; relative paths resolve against the home.")
	return nil
}
