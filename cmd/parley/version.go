package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

func init() {
	register(command{
		name:    "version",
		summary: "print the version",
		run:     runVersion,
		group:   "Other",
		long: `Prints the version of this binary: the module version for a release built
with ` + "`go install ...@vX.Y.Z`" + `, else the commit it was built from (with
"-dirty" for uncommitted changes), else "dev". The same string is the
node's libp2p agent version (parley/VERSION), which peers see.`,
		examples: []string{"parley version", "parley --version", "parley version --json"},
	})
}

// version overrides the build information when set at link time with
// -ldflags "-X main.version=...".
var version string

// buildVersion returns the version: -X main.version, else the module
// version, else the VCS revision, else "dev".
func buildVersion() string {
	if version != "" {
		return version
	}
	return versionFrom(debug.ReadBuildInfo())
}

func versionFrom(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return "devel-" + rev
}

func runVersion(_ context.Context, e *env, args []string) error {
	f := newFlags(e, "version", true)
	pos, err := f.parse(args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return usagef("version takes no arguments")
	}
	v := buildVersion()
	if f.json {
		return printJSON(e.stdout, map[string]string{"version": v, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH})
	}
	fmt.Fprintf(e.stdout, "parley %s (%s, %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
