package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-im/parley/peer"
)

func configFor(t *testing.T, file string, args ...string) (peer.Config, error) {
	t.Helper()
	home := t.TempDir()
	if file != "" {
		if err := os.WriteFile(filepath.Join(home, ConfigName), []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{stdout: new(bytes.Buffer), stderr: new(bytes.Buffer)}
	f := newNodeFlags(e, "up")
	if _, err := f.parse(append([]string{"--home", home}, args...)); err != nil {
		return peer.Config{}, err
	}
	return f.config(e, peer.RoleUser)
}

// TestConfigFile checks the precedence flags > environment > file and
// refuses unknown settings and bad values with the file and line.
func TestConfigFile(t *testing.T) {
	file := "# a comment\nlisten = /ip4/127.0.0.1/tcp/4001\nlisten=/ip4/127.0.0.1/tcp/4002/ws\nno-mdns = true\nbootstrap = none\n"
	cfg, err := configFor(t, file)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listen) != 2 || cfg.MDNS || cfg.PublicBootstrap || len(cfg.Bootstrap) != 0 {
		t.Fatalf("file not applied: %+v", cfg)
	}
	cfg, err = configFor(t, file, "--listen", "/ip4/127.0.0.1/tcp/5000")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listen) != 1 || cfg.Listen[0] != "/ip4/127.0.0.1/tcp/5000" {
		t.Fatalf("flag did not win over the file: %v", cfg.Listen)
	}
	t.Setenv("PARLEY_BOOTSTRAP", "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWLr1gYejUTeriAsSu6roR2aQ423G3Q4fFTqzqSwTsMz9n")
	cfg, err = configFor(t, file)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Bootstrap) != 1 {
		t.Fatalf("environment did not win over the file: %v", cfg.Bootstrap)
	}
	for name, bad := range map[string]string{
		"unknown key": "colour = blue\n",
		"no equals":   "listen /ip4/1.2.3.4/tcp/1\n",
		"bad bool":    "no-mdns = perhaps\n",
		"home":        "home = /tmp\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := configFor(t, bad)
			if err == nil || !strings.Contains(err.Error(), ConfigName+":1") {
				t.Fatalf("err = %v, want an error naming %s:1", err, ConfigName)
			}
		})
	}
}

// TestConfigFileValues checks the spellings of booleans, that relative
// paths resolve against the home, and that every mistake in the settings
// is a usage error (exit status 2).
func TestConfigFileValues(t *testing.T) {
	for _, tc := range []struct {
		file   string
		noMDNS bool
	}{{"no-mdns = yes\n", true}, {"no-mdns = NO\n", false}, {"no-mdns = on\n", true}, {"no-mdns = 0\n", false}} {
		cfg, err := configFor(t, tc.file)
		if err != nil {
			t.Fatalf("%q: %v", tc.file, err)
		}
		if cfg.MDNS == tc.noMDNS {
			t.Errorf("%q: MDNS = %v", tc.file, cfg.MDNS)
		}
	}

	home := t.TempDir()
	key, err := peer.NewSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "swarm.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ConfigName), []byte("net = swarm.key\nbootstrap = none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // somewhere without a swarm.key
	e := &env{stdout: new(bytes.Buffer), stderr: new(bytes.Buffer)}
	f := newNodeFlags(e, "up")
	if _, err := f.parse([]string{"--home", home}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.config(e, peer.RoleUser)
	if err != nil {
		t.Fatalf("relative net path: %v", err)
	}
	if want := filepath.Join(home, "swarm.key"); cfg.SwarmKey != want {
		t.Fatalf("SwarmKey = %q, want %q", cfg.SwarmKey, want)
	}

	for name, bad := range map[string]string{
		"bool":      "no-mdns = perhaps\n",
		"key":       "colour = blue\n",
		"dht mode":  "dht-mode = sideways\n",
		"log level": "log-level = loud\n",
		"listen":    "listen = not-an-address\n",
		"net":       "net = missing.key\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := configFor(t, bad)
			var u *usageError
			if !errors.As(err, &u) {
				t.Fatalf("err = %v (%T), want a usage error", err, err)
			}
			if name == "bool" && !strings.Contains(err.Error(), "yes or no") {
				t.Errorf("err = %v, want the accepted spellings", err)
			}
		})
	}
}
