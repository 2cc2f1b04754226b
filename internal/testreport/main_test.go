package main

import (
	"strings"
	"testing"
)

// A stream as `go test -json` writes it: one package passes, one has all
// its tests skipped, one fails.
const stream = `{"Action":"start","Package":"ex/a"}
{"Action":"run","Package":"ex/a","Test":"TestOK"}
{"Action":"output","Package":"ex/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"pass","Package":"ex/a","Test":"TestOK","Elapsed":0}
{"Action":"output","Package":"ex/a","Output":"ok  \tex/a\t0.01s\n"}
{"Action":"pass","Package":"ex/a","Elapsed":0.01}
{"Action":"start","Package":"ex/nat"}
{"Action":"run","Package":"ex/nat","Test":"TestNAT"}
{"Action":"output","Package":"ex/nat","Test":"TestNAT","Output":"=== RUN   TestNAT\n"}
{"Action":"output","Package":"ex/nat","Test":"TestNAT","Output":"--- SKIP: TestNAT (0.00s)\n"}
{"Action":"output","Package":"ex/nat","Test":"TestNAT","Output":"    nattest.go:111: nattest: needs nft(8) or iptables(8)\n"}
{"Action":"skip","Package":"ex/nat","Test":"TestNAT","Elapsed":0}
{"Action":"run","Package":"ex/nat","Test":"TestHolePunch"}
{"Action":"output","Package":"ex/nat","Test":"TestHolePunch","Output":"    nattest.go:111: nattest: needs nft(8) or iptables(8)\n"}
{"Action":"output","Package":"ex/nat","Test":"TestHolePunch","Output":"--- SKIP: TestHolePunch (0.00s)\n"}
{"Action":"skip","Package":"ex/nat","Test":"TestHolePunch","Elapsed":0}
{"Action":"output","Package":"ex/nat","Output":"ok  \tex/nat\t0.02s\n"}
{"Action":"pass","Package":"ex/nat","Elapsed":0.02}
{"Action":"run","Package":"ex/b","Test":"TestBad"}
{"Action":"output","Package":"ex/b","Test":"TestBad","Output":"    b_test.go:9: want 1, got 2\n"}
{"Action":"fail","Package":"ex/b","Test":"TestBad","Elapsed":0}
{"Action":"output","Package":"ex/b","Output":"FAIL\tex/b\t0.01s\n"}
{"Action":"fail","Package":"ex/b","Elapsed":0.01}
`

func TestReport(t *testing.T) {
	var out strings.Builder
	failed, err := report(strings.NewReader(stream), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("a failing package not reported as failed")
	}
	got := out.String()
	for _, want := range []string{
		"ok  \tex/a\t0.01s\n",
		"ok  \tex/nat\t0.02s  [ALL 2 TESTS SKIPPED]\n",
		"want 1, got 2",
		"FAIL\tex/b",
		"tests: 1 passed, 1 failed, 2 skipped\n",
		"SKIPPED (these were NOT tested here):\n  ex/nat: 2 tests (TestNAT, TestHolePunch): nattest: needs nft(8) or iptables(8)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "=== RUN   TestOK") {
		t.Errorf("output of a passing test printed:\n%s", got)
	}
}

func TestReportAllPass(t *testing.T) {
	var out strings.Builder
	failed, err := report(strings.NewReader(strings.SplitAfter(stream, `"ex/a","Elapsed":0.01}`+"\n")[0]), &out)
	if err != nil || failed {
		t.Fatalf("failed %v, err %v", failed, err)
	}
	if strings.Contains(out.String(), "SKIPPED") {
		t.Errorf("skips reported with none:\n%s", out.String())
	}
}

func TestReportGarbage(t *testing.T) {
	if _, err := report(strings.NewReader("not json\n"), new(strings.Builder)); err == nil {
		t.Error("garbage accepted")
	}
}
