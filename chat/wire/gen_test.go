package wire

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestGeneratedCodeUpToDate regenerates wirepb into a temporary directory
// and compares it with the committed files. It needs protoc and
// protoc-gen-go on PATH and is skipped without them (as on CI).
func TestGeneratedCodeUpToDate(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc not installed")
	}
	if _, err := exec.LookPath("protoc-gen-go"); err != nil {
		t.Skip("protoc-gen-go not installed")
	}
	protos, err := filepath.Glob("proto/parley/wire/v1/*.proto")
	if err != nil || len(protos) == 0 {
		t.Fatalf("no .proto files: %v", err)
	}
	out := t.TempDir()
	args := append([]string{"-I", "proto", "--go_out=" + out, "--go_opt=module=github.com/parley-im/parley/chat/wire"}, protos...)
	if b, err := exec.Command("protoc", args...).CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	// The protoc version in the header may differ between machines.
	header := regexp.MustCompile(`(?m)^// \tprotoc .*$`)
	generated, _ := filepath.Glob(filepath.Join(out, "wirepb", "*.pb.go"))
	committed, _ := filepath.Glob(filepath.Join("wirepb", "*.pb.go"))
	if len(generated) != len(committed) {
		t.Fatalf("protoc made %d files, %d are committed: run go generate", len(generated), len(committed))
	}
	for _, g := range generated {
		want, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("wirepb", filepath.Base(g)))
		if err != nil {
			t.Fatalf("%v: run go generate in chat/wire", err)
		}
		if !bytes.Equal(header.ReplaceAll(got, nil), header.ReplaceAll(want, nil)) {
			t.Errorf("wirepb/%s is stale: run go generate in chat/wire", filepath.Base(g))
		}
	}
}
