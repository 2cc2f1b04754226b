package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

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
		return fmt.Errorf("config file: %w", err)
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
			return fmt.Errorf("%s:%d: want `flag = value`, got %q", path, n, line)
		}
		if key == "home" || key == "config" || f.Lookup(key) == nil {
			return fmt.Errorf("%s:%d: unknown setting %q (the settings are the flags of `parley up`)", path, n, key)
		}
		if set[key] || os.Getenv(flagEnv[key]) != "" {
			continue
		}
		if err := f.Set(key, value); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", path, n, key, err)
		}
	}
	return sc.Err()
}
