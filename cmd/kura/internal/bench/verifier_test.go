package bench

import (
	"bytes"
	"testing"
	"time"
)

// TestVerifierServerProcess is not a test: TestVerifier runs this test
// binary with KURA_BENCH_VERIFIER_SERVER=1 as the server process of kura
// bench verifier.
func TestVerifierServerProcess(t *testing.T) {
	serveChild(t, "KURA_BENCH_VERIFIER_SERVER", "the server process of TestVerifier", ParseVerifierServerArgs, VerifierServer)
}

// TestVerifier runs a tiny kura bench verifier: the server process starts,
// the verifications over HTTPS and in process succeed with checked tokens,
// and the report is complete.
func TestVerifier(t *testing.T) {
	server := childCommand(t, "TestVerifierServerProcess", "starts a server process")
	profile := t.TempDir() + "/verifier.pprof"
	var out bytes.Buffer
	err := Verifier(t.Context(), VerifierConfig{
		Command: server,
		Env:     []string{"KURA_BENCH_VERIFIER_SERVER=1"},
		Clients: 4, Pairs: 1, Duration: 200 * time.Millisecond, Warmup: 20 * time.Millisecond,
		ServerProfile: profile, JSON: true,
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, out.Bytes(), 4)
	checkProfile(t, profile)
	if err := Verifier(t.Context(), VerifierConfig{Command: server, Clients: 1, Duration: time.Second}, &out); err == nil {
		t.Error("no pairs: accepted")
	}
}

func TestParseVerifierServerArgs(t *testing.T) {
	want := VerifierServerConfig{Dir: "/d", Store: "/d/s.db", TLS: true, CPUProfile: "/p", Version: "kura x"}
	got, err := ParseVerifierServerArgs(verifierServerArgs(want))
	if err != nil || got != want {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	for _, args := range [][]string{{}, {"--tls"}, {"--data", "/d", "extra"}, {"--nope"}} {
		if _, err := ParseVerifierServerArgs(args); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
}
