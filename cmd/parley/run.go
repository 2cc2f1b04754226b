package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

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
}

type command struct {
	name    string
	args    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands []command

func register(c command) { commands = append(commands, c) }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stdout)
		return nil
	}
	name := args[0]
	// Two-word commands: "net new", "room create", "mailbox use", ...
	if len(args) > 1 {
		if c := find(name + " " + args[1]); c != nil {
			return c.run(ctx, e, args[2:])
		}
	}
	if c := find(name); c != nil {
		return c.run(ctx, e, args[1:])
	}
	return usagef("unknown command %q (run `parley help`)", name)
}

func find(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "parley: a peer-to-peer, end-to-end encrypted messenger")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: parley <command> [flags] [args]")
	fmt.Fprintln(w)
	sorted := append([]command(nil), commands...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-28s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command takes --home DIR (default $PARLEY_HOME, else $XDG_DATA_HOME/parley)")
	fmt.Fprintln(w, "and, where it prints, --json. Run `parley <command> -h` for its flags.")
}

// flags is a FlagSet with the flags every command shares.
type flags struct {
	*flag.FlagSet
	home     string
	json     bool
	logLevel string
}

func newFlags(e *env, c string, withJSON bool) *flags {
	f := &flags{FlagSet: flag.NewFlagSet("parley "+c, flag.ContinueOnError)}
	f.SetOutput(e.stderr)
	f.StringVar(&f.home, "home", "", "node home directory (default $PARLEY_HOME, else $XDG_DATA_HOME/parley)")
	if withJSON {
		f.BoolVar(&f.json, "json", false, "print JSON")
	}
	f.StringVar(&f.logLevel, "log-level", envOr("PARLEY_LOG_LEVEL", "info"), "log level: debug, info, warn or error")
	return f
}

// parse parses args, allowing flags after positional arguments too.
func (f *flags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, flag.ErrHelp
			}
			return nil, &usageError{err.Error()}
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
