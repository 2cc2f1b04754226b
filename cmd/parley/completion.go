package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/parley-im/parley/internal/safetext"
)

func init() {
	register(command{name: "__complete", args: "contacts|conversations", hidden: true, run: runComplete,
		summary: "print completion candidates (for the completion scripts)"})
	register(command{name: "completion", args: "bash|zsh|fish", summary: "print a shell completion script", run: runCompletion,
		group: "Other",
		long:  completionHelp,
		examples: []string{
			"source <(parley completion bash)",
			"parley completion zsh > \"${fpath[1]}/_parley\"",
			"parley completion fish > ~/.config/fish/completions/parley.fish",
		}})
}

const completionHelp = `Prints a completion script for bash, zsh or fish, generated from the
commands this binary knows: verbs, sub-verbs and each verb's flags, with
their one-line descriptions.

  bash:  source <(parley completion bash)     (add it to ~/.bashrc)
  zsh:   parley completion zsh > "${fpath[1]}/_parley"
  fish:  parley completion fish > ~/.config/fish/completions/parley.fish`

// compVerb is what a completion script knows about one verb.
type compVerb struct {
	name    string // "send" or "net new"
	summary string
	flags   []flagRow
	subs    []compVerb // sub-verbs parsed by the verb itself (room create, ...)
	// names is what its first argument names: "contacts", "conversations"
	// (contacts and #rooms) or "" (nothing to complete from the node).
	names string
}

// namesOf reads a verb's synopsis: a first argument NAME is a contact,
// NAME|#room a conversation.
func namesOf(args string) string {
	first, _, _ := strings.Cut(strings.TrimLeft(args, "["), " ")
	switch {
	case !strings.Contains(first, "NAME"):
		return ""
	case strings.Contains(first, "#room"):
		return "conversations"
	}
	return "contacts"
}

// runComplete prints, one per line, the contact names (and, for
// "conversations", the joined rooms with their '#') of the home: what the
// completion scripts offer for a verb's first argument. It prints nothing
// rather than an error: a completion must never disturb the prompt.
func runComplete(ctx context.Context, e *env, args []string) error {
	c, _, pos, err := clientCmd(e, "__complete", args, 1, "contacts|conversations")
	if err != nil {
		return helpOK(err)
	}
	var names []string
	readOnly(ctx, c, func() error {
		cs, err := c.Contacts(ctx)
		for _, ct := range cs {
			names = append(names, ct.Name)
		}
		if pos[0] == "conversations" && err == nil {
			rooms, _ := c.Rooms(ctx)
			for _, r := range rooms {
				names = append(names, "#"+strings.TrimPrefix(r.Name, "#"))
			}
		}
		return err
	}, func(o *offline) error {
		cs, err := o.Contacts(ctx)
		for _, ct := range cs {
			names = append(names, ct.Name)
		}
		return err
	})
	for _, n := range names {
		if safetext.Safe(n) && !strings.ContainsAny(n, " \t\n'\"\\$`") {
			fmt.Fprintln(e.stdout, n)
		}
	}
	return nil
}

// subVerbRE finds the sub-verbs a verb documents in its long help as
// "parley VERB SUB ..." lines (room, mailbox).
var subVerbRE = regexp.MustCompile(`(?m)^\s*parley ([a-z]+) ([a-z][a-z-]*)\b`)

// completionModel collects every verb with its flags, from the registry.
func completionModel(ctx context.Context) []compVerb {
	var out []compVerb
	for _, c := range topics() {
		v := compVerb{name: c.name, summary: c.summary, flags: flagRows(describe(ctx, c.name, nil)), names: namesOf(c.args)}
		seen := map[string]bool{}
		for _, m := range subVerbRE.FindAllStringSubmatch(c.long, -1) {
			if m[1] != c.name || seen[m[2]] {
				continue
			}
			seen[m[2]] = true
			v.subs = append(v.subs, compVerb{name: c.name + " " + m[2],
				flags: flagRows(describe(ctx, c.name, []string{m[2]}))})
		}
		out = append(out, v)
	}
	out = append(out, compVerb{name: "help", summary: "show help for a command"})
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func runCompletion(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "completion", false)
	pos, err := f.parse(args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) != 1 {
		return usagef("usage: parley completion bash|zsh|fish")
	}
	m := completionModel(ctx)
	switch pos[0] {
	case "bash":
		writeBash(e.stdout, m)
	case "zsh":
		writeZsh(e.stdout, m)
	case "fish":
		writeFish(e.stdout, m)
	default:
		return usagef("no completions for shell %q%s (bash, zsh or fish)", pos[0], suggest(pos[0], []string{"bash", "zsh", "fish"}))
	}
	return nil
}

// firstWords returns the words a user types first, and for each the
// second words (two-word commands and documented sub-verbs).
func firstWords(m []compVerb) (firsts []string, seconds map[string][]compVerb, summaries map[string]string) {
	seconds = map[string][]compVerb{}
	summaries = map[string]string{}
	for _, v := range m {
		first, _, two := strings.Cut(v.name, " ")
		if _, ok := summaries[first]; !ok {
			firsts = append(firsts, first)
			summaries[first] = v.summary
		}
		if two {
			seconds[first] = append(seconds[first], v)
			summaries[first] = first + " verbs"
		}
		seconds[first] = append(seconds[first], v.subs...)
	}
	return firsts, seconds, summaries
}

func flagWords(rows []flagRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = flagName(r.name)
	}
	return out
}

// takesPath reports whether a flag's value is a file or directory.
func takesPath(r flagRow) bool {
	switch r.arg {
	case "DIR", "FILE", "PATH":
		return true
	}
	switch r.name {
	case "home", "net", "allow", "config", "o":
		return true
	}
	return false
}

func sq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func writeBash(w io.Writer, m []compVerb) {
	firsts, seconds, _ := firstWords(m)
	var paths []string
	fmt.Fprintln(w, "# bash completion for parley; generated by `parley completion bash`.")
	fmt.Fprintln(w, "_parley() {")
	fmt.Fprintln(w, `	local cur prev verb sub flags`)
	fmt.Fprintln(w, `	cur="${COMP_WORDS[COMP_CWORD]}"; prev="${COMP_WORDS[COMP_CWORD-1]}"`)
	fmt.Fprintln(w, `	verb="${COMP_WORDS[1]}"; sub="${COMP_WORDS[2]}"`)
	fmt.Fprintf(w, "\tif [ \"$COMP_CWORD\" -eq 1 ]; then\n\t\tCOMPREPLY=($(compgen -W %s -- \"$cur\")); return\n\tfi\n", sq(strings.Join(firsts, " ")))
	fmt.Fprintf(w, "\tif [ \"$verb\" = help ] && [ \"$COMP_CWORD\" -eq 2 ]; then\n\t\tCOMPREPLY=($(compgen -W %s -- \"$cur\")); return\n\tfi\n", sq(strings.Join(firsts, " ")))
	fmt.Fprintln(w, "\tif [ \"$COMP_CWORD\" -eq 2 ]; then\n\t\tcase \"$verb\" in")
	for _, f := range firsts {
		if subs := seconds[f]; len(subs) > 0 {
			var names []string
			for _, s := range subs {
				_, n, _ := strings.Cut(s.name, " ")
				names = append(names, n)
			}
			fmt.Fprintf(w, "\t\t%s) COMPREPLY=($(compgen -W %s -- \"$cur\")); return;;\n", f, sq(strings.Join(names, " ")))
		}
	}
	fmt.Fprintln(w, "\t\tesac\n\tfi")
	fmt.Fprintln(w, "\tcase \"$verb $sub\" in")
	for _, f := range firsts {
		for _, s := range seconds[f] {
			fmt.Fprintf(w, "\t%s) flags=%s;;\n", sq(s.name), sq(strings.Join(flagWords(s.flags), " ")))
		}
	}
	fmt.Fprintln(w, "\t*) case \"$verb\" in")
	for _, v := range m {
		if !strings.Contains(v.name, " ") {
			fmt.Fprintf(w, "\t\t%s) flags=%s;;\n", v.name, sq(strings.Join(flagWords(v.flags), " ")))
		}
		for _, r := range append(append([]flagRow(nil), v.flags...), subFlags(v)...) {
			if takesPath(r) && !contains(paths, flagName(r.name)) {
				paths = append(paths, flagName(r.name))
			}
		}
	}
	fmt.Fprintln(w, "\t\tesac;;\n\tesac")
	sort.Strings(paths)
	fmt.Fprintf(w, "\tcase \"$prev\" in\n\t%s) COMPREPLY=($(compgen -f -- \"$cur\")); return;;\n\tesac\n", strings.Join(paths, "|"))
	fmt.Fprintln(w, "\tif [[ \"$cur\" == -* ]]; then\n\t\tCOMPREPLY=($(compgen -W \"$flags\" -- \"$cur\")); return\n\tfi")
	// The first argument of a verb that takes a contact or a room: ask the
	// node (or the home, read-only) for the names, in the home of --home.
	fmt.Fprintln(w, "\tlocal names= home=() i n=0")
	fmt.Fprintln(w, "\tcase \"$verb\" in")
	for _, v := range m {
		if v.names != "" && !strings.Contains(v.name, " ") {
			fmt.Fprintf(w, "\t%s) names=%s;;\n", v.name, v.names)
		}
	}
	fmt.Fprintln(w, "\tesac")
	fmt.Fprintln(w, "\t[ -n \"$names\" ] || return")
	fmt.Fprintln(w, "\tfor ((i = 2; i < COMP_CWORD; i++)); do")
	fmt.Fprintln(w, "\t\tcase \"${COMP_WORDS[i]}\" in")
	fmt.Fprintln(w, "\t\t--home|-home) home=(--home \"${COMP_WORDS[i+1]}\"); ((i++));;")
	fmt.Fprintln(w, "\t\t--home=*|-home=*) home=(--home \"${COMP_WORDS[i]#*=}\");;")
	fmt.Fprintln(w, "\t\t-*) ;;")
	fmt.Fprintln(w, "\t\t*) ((n++));;")
	fmt.Fprintln(w, "\t\tesac")
	fmt.Fprintln(w, "\tdone")
	fmt.Fprintln(w, "\tif [ \"$n\" -eq 0 ]; then")
	fmt.Fprintln(w, "\t\tCOMPREPLY=($(compgen -W \"$(parley __complete \"$names\" \"${home[@]}\" 2>/dev/null)\" -- \"$cur\"))")
	fmt.Fprintln(w, "\tfi\n}")
	fmt.Fprintln(w, "complete -o default -F _parley parley")
}

func subFlags(v compVerb) []flagRow {
	var out []flagRow
	for _, s := range v.subs {
		out = append(out, s.flags...)
	}
	return out
}

func zsq(s string) string {
	s = strings.ReplaceAll(s, ":", `\:`)
	return sq(s)
}

func writeZsh(w io.Writer, m []compVerb) {
	firsts, seconds, summaries := firstWords(m)
	fmt.Fprintln(w, "#compdef parley")
	fmt.Fprintln(w, "# zsh completion for parley; generated by `parley completion zsh`.")
	fmt.Fprintln(w, "_parley() {")
	fmt.Fprintln(w, "\tlocal -a verbs subs flags")
	fmt.Fprintln(w, "\tverbs=(")
	for _, f := range firsts {
		fmt.Fprintf(w, "\t\t%s\n", sq(f+":"+strings.ReplaceAll(summaries[f], ":", `\:`)))
	}
	fmt.Fprintln(w, "\t)")
	fmt.Fprintln(w, "\tif (( CURRENT == 2 )); then\n\t\t_describe -t commands 'parley command' verbs; return\n\tfi")
	fmt.Fprintln(w, "\tif [[ $words[2] == help ]] && (( CURRENT == 3 )); then\n\t\t_describe -t commands 'parley command' verbs; return\n\tfi")
	fmt.Fprintln(w, "\tif (( CURRENT == 3 )); then\n\t\tcase $words[2] in")
	for _, f := range firsts {
		if subs := seconds[f]; len(subs) > 0 {
			var items []string
			for _, s := range subs {
				_, n, _ := strings.Cut(s.name, " ")
				items = append(items, zsq(n+":"+s.summary))
			}
			fmt.Fprintf(w, "\t\t%s) subs=(%s); _describe -t verbs 'verb' subs; return;;\n", f, strings.Join(items, " "))
		}
	}
	fmt.Fprintln(w, "\t\tesac\n\tfi")
	fmt.Fprintln(w, "\tcase \"$words[2] $words[3]\" in")
	emit := func(pattern string, rows []flagRow) {
		var items []string
		for _, r := range rows {
			items = append(items, zsq(flagName(r.name)+":"+r.usage))
		}
		fmt.Fprintf(w, "\t%s) flags=(%s);;\n", pattern, strings.Join(items, " "))
	}
	for _, f := range firsts {
		for _, s := range seconds[f] {
			emit(sq(s.name), s.flags)
		}
	}
	fmt.Fprintln(w, "\t*) case $words[2] in")
	for _, v := range m {
		if !strings.Contains(v.name, " ") {
			fmt.Fprint(w, "\t")
			emit(v.name, v.flags)
		}
	}
	fmt.Fprintln(w, "\t\tesac;;\n\tesac")
	fmt.Fprintln(w, "\tif [[ $PREFIX == -* ]]; then\n\t\t_describe -t flags 'flag' flags; return\n\tfi")
	fmt.Fprintln(w, "\tlocal names=")
	fmt.Fprintln(w, "\tcase $words[2] in")
	for _, v := range m {
		if v.names != "" && !strings.Contains(v.name, " ") {
			fmt.Fprintf(w, "\t%s) names=%s;;\n", v.name, v.names)
		}
	}
	fmt.Fprintln(w, "\tesac")
	fmt.Fprintln(w, "\tif [[ -n $names ]] && (( CURRENT == 3 )); then")
	fmt.Fprintln(w, "\t\tlocal -a home cands; local i")
	fmt.Fprintln(w, "\t\ti=${words[(i)--home]}; (( i < CURRENT )) && home=(--home ${words[i+1]})")
	fmt.Fprintln(w, "\t\tcands=(${(f)\"$(parley __complete $names $home 2>/dev/null)\"})")
	fmt.Fprintln(w, "\t\tcompadd -a cands; return")
	fmt.Fprintln(w, "\tfi")
	fmt.Fprintln(w, "\t_files\n}")
	fmt.Fprintln(w, "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n\t_parley \"$@\"\nelse\n\tcompdef _parley parley\nfi")
}

func writeFish(w io.Writer, m []compVerb) {
	firsts, seconds, summaries := firstWords(m)
	fmt.Fprintln(w, "# fish completion for parley; generated by `parley completion fish`.")
	fmt.Fprintln(w, "complete -c parley -f")
	for _, f := range firsts {
		fmt.Fprintf(w, "complete -c parley -n __fish_use_subcommand -a %s -d %s\n", f, fsq(summaries[f]))
	}
	fmt.Fprintf(w, "complete -c parley -n '__fish_seen_subcommand_from help' -a %s\n", fsq(strings.Join(firsts, " ")))
	flagLine := func(cond string, r flagRow) {
		opt := "-l " + r.name
		if len(r.name) == 1 {
			opt = "-s " + r.name
		}
		extra := ""
		if r.arg != "" {
			extra = " -r"
			if takesPath(r) {
				extra += " -F"
			}
		}
		fmt.Fprintf(w, "complete -c parley -n %s %s%s -d %s\n", fsq(cond), opt, extra, fsq(r.usage))
	}
	for _, f := range firsts {
		subs := seconds[f]
		if len(subs) > 0 {
			var names []string
			for _, s := range subs {
				_, n, _ := strings.Cut(s.name, " ")
				names = append(names, n)
			}
			for _, s := range subs {
				_, n, _ := strings.Cut(s.name, " ")
				fmt.Fprintf(w, "complete -c parley -n %s -a %s -d %s\n",
					fsq("__fish_seen_subcommand_from "+f+"; and not __fish_seen_subcommand_from "+strings.Join(names, " ")), n, fsq(s.summary))
				for _, r := range s.flags {
					flagLine("__fish_seen_subcommand_from "+f+"; and __fish_seen_subcommand_from "+n, r)
				}
			}
		}
	}
	for _, v := range m {
		if strings.Contains(v.name, " ") || len(v.subs) > 0 {
			continue
		}
		for _, r := range v.flags {
			flagLine("__fish_seen_subcommand_from "+v.name, r)
		}
		if v.names != "" {
			fmt.Fprintf(w, "complete -c parley -n %s -a %s\n",
				fsq("__fish_seen_subcommand_from "+v.name+"; and test (count (commandline -opc)) -eq 2"),
				fsq("(parley __complete "+v.names+" 2>/dev/null)")) // the home of $PARLEY_HOME
		}
	}
}

func fsq(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}
