package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/libp2p/go-libp2p/gologshim"
)

// newLogger returns the process logger and routes go-libp2p's own logs into
// it. libp2p subsystems are held at warn unless the level is debug: their
// info output is noise to a user.
func newLogger(w io.Writer, lvl slog.Level) *slog.Logger {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})
	libLvl := max(lvl, slog.LevelWarn)
	if lvl <= slog.LevelDebug {
		libLvl = lvl
	}
	gologshim.SetDefaultHandler(minLevel{h, libLvl})
	return slog.New(h)
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}
func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(a), m.min}
}
func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{m.Handler.WithGroup(g), m.min} }
