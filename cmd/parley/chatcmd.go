package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/term"

	"github.com/parley-im/parley/cmd/parley/tui"
	"github.com/parley-im/parley/peer"
	"github.com/parley-im/parley/peer/client"
)

func init() {
	register(command{name: "chat", args: "[NAME|#room]", summary: "interactive chat (line mode when not on a terminal); starts a node if none runs", run: runChat,
		group: "Start",
		long: `Opens the chat window: conversations on the left, the history of the open
one, and an input line. Keys are shown at the bottom; ? lists them all.
Alt+Enter (or Ctrl+J) starts a new line, Enter sends, PgUp/PgDn page
through the whole history, Esc leaves the input without losing the
draft, Ctrl+C twice (or Ctrl+Q) quits.

When no node runs in the home, chat starts one for its own lifetime (its
log goes to HOME/chat-node.log); it takes the flags of parley up. When
stdin is not a terminal it reads lines and prints messages instead.`,
		examples: []string{"parley chat", "parley chat bob", "parley chat '#team'"}})
}

func runChat(ctx context.Context, e *env, args []string) error {
	f := newNodeFlags(e, "chat")
	pos, err := f.parse(args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 1 {
		return usagef("usage: parley chat [NAME|#room]")
	}
	var conv string
	if len(pos) == 1 {
		conv = pos[0]
	}
	home, err := f.homeDir()
	if err != nil {
		return err
	}
	interactive := isTerminal(e.stdin) && isTerminal(e.stdout)

	c := client.New(home)
	_, err = c.Conversations(ctx)
	switch {
	case errors.Is(err, client.ErrNoNode):
		stop, err := startEmbedded(ctx, e, f, home, interactive)
		if err != nil {
			return err
		}
		defer func() {
			if serr := stop(); serr != nil {
				fmt.Fprintf(e.stderr, "parley: embedded node: %v\n", serr)
			}
		}()
	case err != nil:
		return err
	}

	if conv != "" {
		if err := checkConversation(ctx, c, conv); err != nil {
			return err
		}
	}
	if !interactive {
		return tui.RunLines(ctx, c, conv, e.stdin, e.stdout)
	}
	return tui.Run(ctx, c, conv,
		tea.WithInput(e.stdin), tea.WithOutput(e.stdout),
		tea.WithAltScreen(), tea.WithoutSignalHandler())
}

// startEmbedded runs a node in this process for the length of the chat. It
// serves the same socket as `parley up`, so the chat talks to it through
// the usual client. On a terminal its logs go to a file in the home, not
// over the UI. stop ends the node and waits for it.
func startEmbedded(ctx context.Context, e *env, f *nodeFlags, home string, interactive bool) (stop func() error, err error) {
	logEnv := *e
	var logFile *os.File
	if interactive {
		if err := os.MkdirAll(home, 0o700); err != nil {
			return nil, err
		}
		path := filepath.Join(home, "chat-node.log")
		if logFile, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return nil, fmt.Errorf("open node log: %w", err)
		}
		logEnv.stderr = logFile
		fmt.Fprintf(e.stderr, "parley: no node running in %s; starting one for this chat (log: %s)\n", home, path)
	} else {
		fmt.Fprintf(e.stderr, "parley: no node running in %s; starting one for this chat\n", home)
	}
	closeLog := func() {
		if logFile != nil {
			logFile.Close()
		}
	}

	cfg, err := f.config(&logEnv, peer.RoleUser)
	if err != nil {
		closeLog()
		return nil, err
	}
	n, err := newNode(ctx, cfg)
	if err != nil {
		closeLog()
		return nil, fmt.Errorf("start embedded node: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() {
		if err := n.Run(ctx); !errors.Is(err, context.Canceled) {
			runErr = err
		}
	})
	return func() error {
		cancel()
		wg.Wait()
		err := errors.Join(runErr, n.Close())
		closeLog()
		return err
	}, nil
}

// isTerminal reports whether v is a file open on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// checkConversation refuses a conversation that is neither a contact nor a
// joined room, before the UI opens an empty one.
func checkConversation(ctx context.Context, c *client.Client, conv string) error {
	convs, err := c.Conversations(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, cv := range convs {
		if strings.EqualFold(cv.Name, conv) || cv.PeerID != "" && cv.PeerID == conv {
			return nil
		}
		names = append(names, cv.Name)
	}
	if strings.HasPrefix(conv, "#") {
		return fmt.Errorf("you are not in a room %s%s (see `parley rooms`; join with `parley room join`)", conv, suggest(conv, names))
	}
	for _, cv := range convs {
		if cv.Room && strings.EqualFold(strings.TrimPrefix(cv.Name, "#"), conv) {
			return fmt.Errorf("no contact %q, but you are in the room %s: rooms take a '#' (parley chat '%s')", conv, cv.Name, cv.Name)
		}
	}
	return fmt.Errorf("no conversation with %q%s (see `parley contacts`; add one with `parley add LINK --name %s`)", conv, suggest(conv, names), conv)
}
