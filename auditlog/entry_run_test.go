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
