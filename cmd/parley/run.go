package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// usageError is a mistake in the command line; main exits 2 for it.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// env carries what every command gets.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// describe, when set, receives the command's flag set instead of the
	// command running: parse hands it over and returns flag.ErrHelp. The
	// help system uses it to list any command's flags (help.go).
	describe func(fs *flag.FlagSet)
}

// command is one entry of the registry. Every file registers its verbs in
// an init with register(command{...}); help, "did you mean", completions
// and the man page are all generated from the registry (help.go).
type command struct {
	name    string // "send", or two words for a sub-verb: "net new"
	args    string // synopsis after the name: "NAME|#room [TEXT]"
	summary string // one line, lower case, no final period
	run     func(ctx context.Context, e *env, args []string) error

	// group heads the section of `parley help` the verb is listed under
	// (one of helpGroups; empty means "Other").
	group string
	// long is the description `parley help VERB` prints: plain text,
	// paragraphs separated by blank lines.
	long string
	// examples are command lines, each optionally followed by "  # what it
	// does"; at least one per verb.
	examples []string
	// hidden keeps a verb out of help, suggestions and completions (the
	// completion scripts' own helper).
	hidden bool
}

var commands []command

func register(c command) { commands = append(commands, c) }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		printUsage(stdout)
		return nil
	}
	switch args[0] {
	case "-h", "-help", "--help":
		printUsage(stdout)
		return nil
	case "help":
		return runHelp(ctx, e, args[1:])
	case "--version", "-version":
		return runVersion(ctx, e, args[1:])
	}
	name := args[0]
	if strings.HasPrefix(name, "-") {
		return usagef("flags come after the command: parley COMMAND %s (run `parley help`)", name)
	}
	// Two-word commands: "net new", ...
	if len(args) > 1 {
		if c := find(name + " " + args[1]); c != nil {
			if len(args) > 2 && isHelpArg(args[2]) {
				return printHelp(ctx, e, e.stdout, c.name, nil)
			}
			return c.run(ctx, e, args[2:])
		}
	}
	if c := find(name); c != nil {
		if len(args) > 1 && isHelpArg(args[1]) {
			return printHelp(ctx, e, e.stdout, name, args[2:])
		}
		return c.run(ctx, e, args[1:])
	}
	if subs := subcommands(name); len(subs) > 0 {
		switch {
		case len(args) > 1 && isHelpArg(args[1]):
			return printHelp(ctx, e, e.stdout, name, nil)
		case len(args) == 1:
			printHelp(ctx, e, e.stderr, name, nil)
			return usagef("parley %s: missing verb", name)
		}
		return usagef("parley %s: unknown verb %q%s", name, args[1], suggest(args[1], lastWords(subs)))
	}
	return usagef("unknown command %q%s (run `parley help`)", name, suggest(name, verbNames()))
}

func isHelpArg(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// find returns the registered command called name, or nil.
func find(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// subcommands returns the two-word commands whose first word is name.
func subcommands(name string) []command {
	var out []command
	for _, c := range commands {
		if first, _, ok := strings.Cut(c.name, " "); ok && first == name {
			out = append(out, c)
		}
	}
	return out
}

// flags is a FlagSet with the flags every command shares.
type flags struct {
	*flag.FlagSet
	e        *env
	name     string // the command's name, for its help
	home     string
	json     bool
	logLevel string
}

func newFlags(e *env, c string, withJSON bool) *flags {
	f := &flags{FlagSet: flag.NewFlagSet("parley "+c, flag.ContinueOnError), e: e, name: c}
	f.SetOutput(io.Discard) // parse reports errors; -h prints the help (help.go)
	f.Usage = func() {}
	f.StringVar(&f.home, "home", "", "node home `DIR` (default $PARLEY_HOME, else $XDG_DATA_HOME/parley)")
	if withJSON {
		f.BoolVar(&f.json, "json", false, "print JSON")
	}
	f.StringVar(&f.logLevel, "log-level", envOr("PARLEY_LOG_LEVEL", "info"), "`LEVEL` of the logs on stderr: debug, info, warn or error")
	return f
}

// parse parses args, allowing flags after positional arguments too.
func (f *flags) parse(args []string) ([]string, error) {
	if f.e.describe != nil {
		f.e.describe(f.FlagSet)
		return nil, flag.ErrHelp
	}
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printCommandHelp(f.e.stdout, f.name, f.FlagSet)
				return nil, flag.ErrHelp
			}
			return nil, f.flagError(err)
		}
		args = f.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, nil
}

func (f *flags) homeDir() (string, error) {
	if f.home != "" {
		return f.home, nil
	}
	return defaultHome()
}

func (f *flags) logger(e *env) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, usagef("invalid --log-level %q (want debug, info, warn or error)", f.logLevel)
	}
	return newLogger(e.stderr, lvl), nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// listFlag is a repeatable flag that also splits on commas.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func envList(key string) listFlag {
	var l listFlag
	if v := os.Getenv(key); v != "" {
		l.Set(v)
	}
	return l
}
