package bench

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestKBSServerProcess is not a test: TestKBS runs this test binary with
// KURA_BENCH_KBS_SERVER=1 as the server processes of kura bench kbs.
func TestKBSServerProcess(t *testing.T) {
	serveChild(t, "KURA_BENCH_KBS_SERVER", "a server process of TestKBS", ParseKBSServerArgs, KBSServer)
}

// TestKBS runs a tiny kura bench kbs: both server processes start, the
// releases are real (the bench decrypts a sample) and the report is
// complete.
func TestKBS(t *testing.T) {
	server := childCommand(t, "TestKBSServerProcess", "starts two server processes")
	profile := t.TempDir() + "/kbs.pprof"
	var out bytes.Buffer
	err := KBS(t.Context(), KBSConfig{
		Command: server,
		Env:     []string{"KURA_BENCH_KBS_SERVER=1"},
		Pairs:   1, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond, Conns: 4,
		Rate: 200, PacedRuns: 1, PacedDuration: 300 * time.Millisecond,
		ServerProfile: profile, JSON: true,
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		KBSReport
		Figures []Figure `json:"figures"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.Bytes())
	}
	if len(r.Figures) != 3 || r.Verified == 0 || r.PacedRuns != 1 {
		t.Fatalf("report: %s", out.Bytes())
	}
	checkPairs(t, r.Figures)
	checkProfile(t, profile)
	if err := KBS(t.Context(), KBSConfig{Command: server, Pairs: 0}, &out); err == nil {
		t.Error("no pairs: accepted")
	}
}

func TestParseKBSServerArgs(t *testing.T) {
	want := KBSServerConfig{Dir: "/d", AdminKeys: "/d/admins", CPUProfile: "/p", Version: "kura x"}
	got, err := ParseKBSServerArgs(kbsServerArgs(want))
	if err != nil || got != want {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	for _, args := range [][]string{{}, {"--bare"}, {"--data", "/d", "extra"}, {"--nope"}} {
		if _, err := ParseKBSServerArgs(args); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
}
