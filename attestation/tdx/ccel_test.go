package tdx

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/internal/tcglog"
)

// CCEL event types used by the tests.
const (
	evSeparator   = 0x4
	evEventTag    = 0x6
	evEFIAction   = 0x80000007
	evNoActionTyp = 0x3
)

// ccelEvent returns an event on MR index mr whose SHA-384 digest is the
// hash of data, as TDVF logs EV_SEPARATOR and EV_EFI_ACTION events (for
// other types the digest only needs to be what was extended).
func ccelEvent(mr int, typ uint32, data []byte) tcglog.Event {
	d := sha512.Sum384(data)
	return tcglog.Event{PCR: mr, Type: typ, Data: data, Digests: []tcglog.Digest{{Alg: algSHA384, Value: d[:]}}}
}

// testCCEL builds a SHA-384 CCEL log of events.
func testCCEL(events ...tcglog.Event) []byte {
	l := &tcglog.Log{Header: tcglog.SpecIDHeader(algSHA384), Algs: []tcglog.AlgSize{{Alg: algSHA384, Size: 48}}, Events: events}
	return l.Marshal()
}

// sampleCCEL is a log whose replay the test below computes by hand:
// RTMR0 from "firmware" then "kernel", RTMR1 from an EV_SEPARATOR,
// nothing on RTMR2, RTMR3 from "app"; an EV_NO_ACTION event and an event
// for MRTD are not extended.
func sampleCCEL() []byte {
	return testCCEL(
		ccelEvent(1, 0x80000008, []byte("firmware")),
		ccelEvent(0, evEventTag, []byte("mrtd")),
		ccelEvent(1, evEventTag, []byte("kernel")),
		ccelEvent(2, evSeparator, []byte{0, 0, 0, 0}),
		ccelEvent(3, evNoActionTyp, []byte("not extended")),
		ccelEvent(4, evEFIAction, []byte("app")),
	)
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplayRTMRs checks the replay against values computed independently
// (Python's hashlib: sha384(sha384(48 zero bytes ‖ sha384("firmware")) ‖
// sha384("kernel")) and so on).
func TestReplayRTMRs(t *testing.T) {
	l, err := parseCCEL(sampleCCEL())
	if err != nil {
		t.Fatal(err)
	}
	r, err := replayRTMRs(l)
	if err != nil {
		t.Fatal(err)
	}
	want := [4]string{
		"b65d77efbfc3b2d77f07da2c1a8d301de31130715b4a8c99620821d91d7b6fc08f03b7118846cfcc85081c31d027e4d7",
		"518923b0f955d08da077c96aaba522b9decede61c599cea6c41889cfbea4ae4d50529d96fe4d1afdafb65e7f95bf23c4",
		strings.Repeat("00", 48),
		"b76036a6963404c7fe1249127a5c2fc684090bd30f0386d9b643e2e11e203f2fb62d50ea1af96ad3bc6ba974c3b1c79a",
	}
	for i := range want {
		if got := hex.EncodeToString(r.rtmrs[i][:]); got != want[i] {
			t.Errorf("RTMR%d = %s, want %s", i, got, want[i])
		}
	}
	if r.counts != [4]int{2, 1, 0, 1} || r.unverified != 1 || len(r.events) != 4 {
		t.Errorf("counts %v, unverified %d, %d events; want [2 1 0 1], 1, 4", r.counts, r.unverified, len(r.events))
	}
	sep := r.events[2].(map[string]any)
	if sep["rtmr"] != 1 || sep["pcr"] != 2 || sep["type"] != "EV_SEPARATOR" || sep["data_verified"] != true {
		t.Errorf("separator claim = %v", sep)
	}

	quoted := make([][]byte, 4)
	for i := range want {
		quoted[i] = unhex(t, want[i])
	}
	if err := r.checkRTMRs(quoted); err != nil {
		t.Errorf("checkRTMRs(replayed values) = %v", err)
	}
	for i := range quoted {
		bad := make([][]byte, 4)
		copy(bad, quoted)
		bad[i] = bytes.Repeat([]byte{0xab}, 48)
		err := r.checkRTMRs(bad)
		if !errors.Is(err, attestation.ErrBinding) || !strings.Contains(err.Error(), "RTMR"+string(rune('0'+i))+" is abab") {
			t.Errorf("RTMR%d altered: checkRTMRs = %v, want %v naming it", i, err, attestation.ErrBinding)
		}
	}

	// An empty log (its Spec ID event only) replays to zeros.
	l, err = parseCCEL(testCCEL())
	if err != nil {
		t.Fatal(err)
	}
	if r, err = replayRTMRs(l); err != nil || r.rtmrs != [4][48]byte{} {
		t.Errorf("empty log replays to %x, %v; want zeros", r.rtmrs, err)
	}
}

func TestParseCCEL(t *testing.T) {
	log := sampleCCEL()
	for _, pad := range []byte{0xff, 0x00} {
		padded := append(bytes.Clone(log), bytes.Repeat([]byte{pad}, 4096)...)
		l, err := parseCCEL(padded)
		if err != nil {
			t.Fatalf("log area padded with %#x: %v", pad, err)
		}
		if len(l.Events) != 6 || !bytes.Equal(l.Marshal(), padded) {
			t.Errorf("padded with %#x: %d events, round trip %v", pad, len(l.Events), bytes.Equal(l.Marshal(), padded))
		}
	}
	sha256Only := (&tcglog.Log{Header: tcglog.SpecIDHeader(0x000B)}).Marshal()
	tests := []struct {
		name, want string
		data       []byte
	}{
		{"mixed padding", "event log", append(bytes.Clone(log), 0xff, 0x00, 0xff, 0xff)},
		{"MR index 5", "MR index 5", testCCEL(ccelEvent(5, evEventTag, []byte("x")))},
		{"no SHA-384", "SHA-384", sha256Only},
		{"truncated", "truncated", log[:len(log)-1]},
		{"not a log", "Spec ID", bytes.Repeat([]byte{0xff}, 64)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCCEL(tc.data)
			if !errors.Is(err, attestation.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseCCEL = %v, want %v mentioning %q", err, attestation.ErrMalformed, tc.want)
			}
		})
	}

	// A separator whose digest is not the hash of its data is refused by
	// name before anything is compared.
	bad := ccelEvent(2, evSeparator, []byte{0, 0, 0, 0})
	bad.Data = []byte{0, 0, 0, 1}
	l, err := parseCCEL(testCCEL(ccelEvent(1, evEventTag, []byte("k")), bad))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replayRTMRs(l); !errors.Is(err, attestation.ErrBinding) || !strings.Contains(err.Error(), "event 2 (EV_SEPARATOR on MR index 2)") {
		t.Errorf("replayRTMRs = %v, want %v naming event 2", err, attestation.ErrBinding)
	}
}

// TestVerifyEventLog runs the replay through the verifier on the real
// captures. Their RTMR0–2 are not zero and no CCEL log was captured with
// them, so no log can be built that they accept: every log here must be
// refused, naming RTMR0 (the first compared). The replay's acceptance is
// covered by TestReplayRTMRs against hand-computed values.
func TestVerifyEventLog(t *testing.T) {
	const throughSignature = "quote parse=passed pck chain=passed qe report=passed quote signature=passed"
	for _, dir := range []string{"spr_e4", "v5"} {
		vec := loadVector(t, dir)
		v := newTestVerifier(t, Config{AllowMissingCollateral: true, Now: at(vec.at)})
		tests := []struct {
			name    string
			log     []byte
			wantErr error
			wantRun string
			wantMsg string
		}{
			{"empty log", testCCEL(), attestation.ErrBinding, throughSignature + " event log parse=passed event log replay=failed", "RTMR0 is "},
			{"sample log", sampleCCEL(), attestation.ErrBinding, throughSignature + " event log parse=passed event log replay=failed", "replaying the 2 events the log records for it gives b65d77ef"},
			{"malformed", []byte("not a log"), attestation.ErrMalformed, throughSignature + " event log parse=failed", "Spec ID"},
		}
		for _, tc := range tests {
			t.Run(dir+"/"+tc.name, func(t *testing.T) {
				b := bundle(vec.quote, nil)
				b.EventLog = tc.log
				if err := b.Check(); err != nil {
					t.Fatal(err)
				}
				res, err := v.Verify(context.Background(), b)
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("Verify = %v, want %v mentioning %q", err, tc.wantErr, tc.wantMsg)
				}
				if got := checkStatuses(res); got != tc.wantRun {
					t.Errorf("checks:\n got %s\nwant %s", got, tc.wantRun)
				}
			})
		}
		t.Run(dir+"/no log", func(t *testing.T) {
			res, err := v.Verify(context.Background(), bundle(vec.quote, nil))
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := res.Claims["tdx"].(map[string]any)["events"]; ok {
				t.Error("events claimed without an event log")
			}
		})
	}
}
