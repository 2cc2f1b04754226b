package discovery

import (
	"bytes"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/pnet"
)

func TestNetworkPrefix(t *testing.T) {
	a := NetworkPrefix(pnet.PSK(bytes.Repeat([]byte{1}, 32)))
	b := NetworkPrefix(pnet.PSK(bytes.Repeat([]byte{2}, 32)))
	if a == b {
		t.Fatal("two keys gave one prefix")
	}
	if a != NetworkPrefix(pnet.PSK(bytes.Repeat([]byte{1}, 32))) {
		t.Fatal("prefix is not deterministic")
	}
	if !strings.HasPrefix(string(a), "/parley/") || len(a) != len("/parley/")+16 {
		t.Fatalf("prefix %q, want /parley/ and 16 hex digits", a)
	}
	if a == AminoPrefix {
		t.Fatalf("prefix %q collides with Amino", a)
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeAuto, "auto": ModeAuto, "server": ModeServer, "client": ModeClient} {
		got, err := ParseMode(in)
		if err != nil || got != want || (in != "" && got.String() != in) {
			t.Errorf("ParseMode(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseMode("sever"); err == nil || !strings.Contains(err.Error(), "auto, server or client") {
		t.Errorf("ParseMode(sever) = %v", err)
	}
}
