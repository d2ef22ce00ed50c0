package brokerlog_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/auditlog/brokerlog"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/sqlite"
)

// TestRunFields: a stored decision on a clean-room run's request reaches
// the log as a key_release naming the collaboration, run, manifest and
// analysis; one that names no run keeps the collaboration stamped on the
// follower; a manifest hash that is not a SHA-256 is left out rather than
// stopping the follower; and --collab selects the run's entries only.
func TestRunFields(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.New(ctx, sqlite.Config{Path: filepath.Join(dir, "kbs.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	manifest, run := strings.Repeat("ab", 32), strings.Repeat("0f", 16)
	for _, rec := range []*store.AuditRecord{
		{Decision: "released", Reason: "policy allowed", Resource: "airline/dataset-key/flights",
			Collaboration: "airline-carrier", ManifestHash: manifest, Analysis: "by_area", RunID: run, Epsilon: "0.5"},
		{Decision: "released", Reason: "policy allowed", Resource: "owner/key/plain"},
		{Decision: "refused", Reason: "not approved", Resource: "airline/dataset-key/flights",
			Collaboration: "rival\x07", ManifestHash: "not-a-digest", Analysis: "x", RunID: "r", Epsilon: "lots"},
	} {
		if _, err := st.AppendAudit(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	key := newKey(t, "kura.test/runs")
	l := openLog(t, filepath.Join(dir, "log"), key)
	f := &brokerlog.Follower{Log: l, Source: st, Cursor: filepath.Join(dir, "cursor"), Collaboration: "stamped"}
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendAndProve(ctx, entry(0)); err != nil { // waits for a checkpoint covering the three
		t.Fatal(err)
	}
	r, err := auditlog.NewReader(filepath.Join(dir, "log"), key.Verifier(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, cp, err := r.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]*auditlog.Entry{}
	var airline int
	if err := r.Audit(ctx, cp, func(_ uint64, raw []byte) error {
		e, err := auditlog.ParseEntry(raw)
		if err != nil {
			return err
		}
		if e.Kind == auditlog.KindKeyRelease {
			got[e.BrokerSeq] = e
		}
		if (auditlog.Filter{Collaboration: "airline-carrier", Kind: auditlog.KindKeyRelease}).Match(e) {
			airline++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if e := got[1]; e == nil || e.Collaboration != "airline-carrier" || e.Run != run || e.Manifest != "sha256:"+manifest || e.Analysis != "by_area" || e.Epsilon != "0.5" {
		t.Errorf("the run's release logged as %+v", e)
	}
	if e := got[2]; e == nil || e.Collaboration != "stamped" || e.Run != "" || e.Manifest != "" || e.Analysis != "" {
		t.Errorf("a release to no run logged as %+v", e)
	}
	if e := got[3]; e == nil || e.Collaboration != "rival\uFFFD" || e.Run != "r" || e.Manifest != "" || e.Analysis != "x" || e.Epsilon != "" {
		t.Errorf("a refusal with a malformed run context logged as %+v", e)
	}
	if airline != 1 {
		t.Errorf("--collab airline-carrier selects %d key releases, want 1", airline)
	}
}
