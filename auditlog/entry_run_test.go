package auditlog_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kura-cc/kura/auditlog"
)

// TestKeyReleaseRun: a key_release entry names the run the key went to
// (collaboration, run, manifest digest, analysis); entries written before
// those fields existed still parse and keep their bytes; the fields are
// checked and allowed only where the spec allows them.
func TestKeyReleaseRun(t *testing.T) {
	manifest := "sha256:" + strings.Repeat("ab", 32)
	old := `{"v":1,"kind":"key_release","time":"2026-05-01T10:00:00Z","decision":"released","reason":"policy allowed","resource":"owner-a/key/dataset-1","tee":"snp","measurement":"aabb","broker_seq":1}`
	e, err := auditlog.ParseEntry([]byte(old))
	if err != nil {
		t.Fatalf("an entry from before the run fields: %v", err)
	}
	if b, err := e.Marshal(); err != nil || string(b) != old {
		t.Errorf("re-encoded as %s, %v", b, err)
	}
	withRun := `{"v":1,"kind":"key_release","time":"2026-05-01T10:00:00Z","collaboration":"c1","run":"0f0f","manifest":"` + manifest +
		`","analysis":"by_area","decision":"released","resource":"owner-a/dataset-key/flights","broker_seq":2}`
	e, err = auditlog.ParseEntry([]byte(withRun))
	if err != nil {
		t.Fatal(err)
	}
	if e.Collaboration != "c1" || e.Run != "0f0f" || e.Manifest != manifest || e.Analysis != "by_area" {
		t.Errorf("parsed %+v", e)
	}
	if !(auditlog.Filter{Collaboration: "c1"}).Match(e) || (auditlog.Filter{Collaboration: "c2"}).Match(e) {
		t.Error("--collab does not select the release by its collaboration")
	}
	for name, bad := range map[string]string{
		"manifest not a digest":   strings.Replace(withRun, manifest, strings.Repeat("ab", 32), 1),
		"analysis with a control": strings.Replace(withRun, `"by_area"`, `"by\u0007area"`, 1),
		"fields out of order":     strings.Replace(strings.Replace(withRun, `"run":"0f0f",`, ``, 1), `"analysis":"by_area",`, `"analysis":"by_area","run":"0f0f",`, 1),
		"manifest on a result":    `{"v":1,"kind":"result","time":"2026-05-01T10:00:00Z","run":"r1","manifest":"` + manifest + `","subject":"` + manifest + `"}`,
		"analysis on an approval": `{"v":1,"kind":"approval","time":"2026-05-01T10:00:00Z","collaboration":"c1","party":"` + strings.Repeat("ab", 32) + `","subject":"` + manifest + `","analysis":"a"}`,
	} {
		if _, err := auditlog.ParseEntry([]byte(bad)); !errors.Is(err, auditlog.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestKeyReleaseEpsilon: a key_release to a run of a private analysis
// carries the ε it spends, after analysis; it must be a positive decimal,
// and only key_release carries it.
func TestKeyReleaseEpsilon(t *testing.T) {
	withEps := `{"v":1,"kind":"key_release","time":"2026-05-01T10:00:00Z","collaboration":"c1","run":"0f0f","analysis":"by_area","epsilon":"0.25","decision":"released","resource":"owner-a/dataset-key/flights","broker_seq":3}`
	e, err := auditlog.ParseEntry([]byte(withEps))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := e.Marshal(); err != nil || e.Epsilon != "0.25" || string(b) != withEps {
		t.Errorf("parsed %+v, re-encoded %s, %v", e, b, err)
	}
	for name, bad := range map[string]string{
		"not a decimal":       strings.Replace(withEps, `"0.25"`, `"a quarter"`, 1),
		"zero":                strings.Replace(withEps, `"0.25"`, `"0"`, 1),
		"out of order":        strings.Replace(strings.Replace(withEps, `"epsilon":"0.25",`, ``, 1), `"broker_seq":3`, `"broker_seq":3,"epsilon":"0.25"`, 1),
		"epsilon on a result": `{"v":1,"kind":"result","time":"2026-05-01T10:00:00Z","run":"r1","epsilon":"1","subject":"sha256:` + strings.Repeat("ab", 32) + `"}`,
	} {
		if _, err := auditlog.ParseEntry([]byte(bad)); !errors.Is(err, auditlog.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
