package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// suggestFlag is "; did you mean X?" for the flag of fs closest to name.
func suggestFlag(fs *flag.FlagSet, name string) string {
	var names []string
	fs.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
	return suggest(name, names)
}

// ConfigName is the optional config file in a node's home.
const ConfigName = "parley.conf"

// flagEnv names the environment variable of each node flag; a set variable
// wins over the config file.
var flagEnv = map[string]string{
	"listen":    "PARLEY_LISTEN",
	"bootstrap": "PARLEY_BOOTSTRAP",
	"net":       "PARLEY_NET",
	"allow":     "PARLEY_ALLOW",
	"log-level": "PARLEY_LOG_LEVEL",
	"metrics":   "PARLEY_METRICS",
}

// applyConfigFile reads HOME/parley.conf (or --config FILE), one
// `flag = value` per line (# comments; a repeatable flag may appear on
// several lines), and applies every value whose flag was given neither on
// the command line nor in the environment. Precedence: flags, then
// environment, then the file, then built-in defaults.
func (f *nodeFlags) applyConfigFile(home string) error {
	path, explicit := f.configPath, true
	if path == "" {
		path, explicit = filepath.Join(home, ConfigName), false
	}
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil
	}
	if err != nil {
		return usagef("config file: %v", err)
	}
	defer file.Close()
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	sc := bufio.NewScanner(file)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return usagef("%s:%d: want `flag = value`, got %q", path, n, line)
		}
		if key == "home" || key == "config" || f.Lookup(key) == nil {
			return usagef("%s:%d: unknown setting %q%s (the settings are the flags of `parley up`)", path, n, key, suggestFlag(f.FlagSet, key))
		}
		if set[key] || os.Getenv(flagEnv[key]) != "" {
			continue
		}
		if isBoolFlag(f.Lookup(key)) {
			b, ok := parseBool(value)
			if !ok {
				return usagef("%s:%d: %s: %q is not a boolean (use yes or no, true or false, on or off, 1 or 0)", path, n, key, value)
			}
			value = strconv.FormatBool(b)
		}
		if pathSettings[key] && value != "" && !filepath.IsAbs(value) {
			value = filepath.Join(home, value)
		}
		if err := f.Set(key, value); err != nil {
			return usagef("%s:%d: %s: %v", path, n, key, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// pathSettings are the settings that name files: a relative path in the
// config file is relative to the home, not to wherever parley started.
var pathSettings = map[string]bool{"net": true, "allow": true}

func isBoolFlag(fl *flag.Flag) bool {
	b, ok := fl.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// parseBool accepts the spellings people write in config files.
func parseBool(s string) (value, ok bool) {
	switch strings.ToLower(s) {
	case "yes", "y", "true", "t", "on", "1":
		return true, true
	case "no", "n", "false", "f", "off", "0":
		return false, true
	}
	return false, false
}
