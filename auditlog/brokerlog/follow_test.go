package brokerlog_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/auditlog/brokerlog"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/sqlite"
)

// TestFollower: decisions stored by the broker reach the log in the
// background; a follower restarted on the same cursor resumes where it
// stopped and logs nothing twice; the full audit still passes.
func TestFollower(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.New(ctx, sqlite.Config{Path: filepath.Join(dir, "kbs.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key := newKey(t, "kura.test/follow")
	l := openLog(t, filepath.Join(dir, "log"), key)
	store1 := func(n int) {
		for range n {
			if _, err := st.AppendAudit(ctx, &store.AuditRecord{Decision: "released", Reason: "policy allowed", Resource: "a/b/c"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	f := &brokerlog.Follower{Log: l, Source: st, Cursor: filepath.Join(dir, "cursor")}
	store1(1500) // more than one batch
	if err := f.Record(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.Logged(); n != 1500 {
		t.Fatalf("cursor at %d, want 1500", n)
	}
	// A new follower (a restarted server) on the same cursor.
	store1(10)
	f2 := &brokerlog.Follower{Log: l, Source: st, Cursor: filepath.Join(dir, "cursor")}
	if err := f2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := f2.Logged(); n != 1510 {
		t.Fatalf("cursor at %d, want 1510", n)
	}
	// Every broker_seq appears exactly once in the log, which verifies.
	p, err := l.AppendAndProve(ctx, entry(0))
	if err != nil {
		t.Fatal(err)
	}
	r, err := auditlog.NewReader(filepath.Join(dir, "log"), key.Verifier(), nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	_, cp, err := r.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Audit(ctx, cp, func(_ uint64, raw []byte) error {
		e, err := auditlog.ParseEntry(raw)
		if err != nil {
			return err
		}
		if e.Kind == auditlog.KindKeyRelease {
			seen[e.BrokerSeq]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1510 {
		t.Errorf("%d distinct broker_seq logged, want 1510", len(seen))
	}
	for seq, n := range seen {
		if n != 1 {
			t.Errorf("broker_seq %d logged %d times", seq, n)
		}
	}
	if p.Index < 1510 {
		t.Errorf("last index %d", p.Index)
	}
	// A corrupt cursor is an error, not a silent restart from zero.
	f3 := &brokerlog.Follower{Log: l, Source: st, Cursor: filepath.Join(dir, "bad-cursor")}
	if err := writeFile(filepath.Join(dir, "bad-cursor"), "x\n"); err != nil {
		t.Fatal(err)
	}
	if err := f3.Sync(ctx); err == nil {
		t.Error("corrupt cursor accepted")
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func TestSink(t *testing.T) {
	ctx := context.Background()
	k := newKey(t, "kura.test/log")
	l := openLog(t, t.TempDir(), k)
	s := &brokerlog.Sink{Log: l}
	long := string(bytes.Repeat([]byte("é"), 3000)) + "\x00\n"
	for _, rec := range []*store.AuditRecord{
		{Seq: 1, Time: time.Now(), Decision: "released", Reason: "policy allowed", Resource: "a/key/1", TokenDigest: "ab", PolicyID: "default@1", Requester: "127.0.0.1", TEE: "sim", Measurement: "00"},
		{Seq: 2, Decision: "refused", Reason: long, Requester: "10.0.0.1"},
	} {
		if err := s.Record(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	p, err := l.Prove(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	e, err := auditlog.ParseEntry(p.Entry)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != auditlog.KindKeyRelease || e.Decision != "refused" || e.BrokerSeq != 2 || len(e.Reason) > auditlog.MaxFieldSize {
		t.Fatalf("entry %+v", e)
	}
	if err := s.Record(ctx, &store.AuditRecord{Decision: "maybe"}); !errors.Is(err, auditlog.ErrMalformed) {
		t.Fatalf("unknown decision: %v", err)
	}
	// An owner-API refusal is no key release: not logged.
	if err := s.Record(ctx, &store.AuditRecord{Seq: 3, Decision: store.DecisionAdminRefused, Resource: "a/key/1"}); err != nil {
		t.Fatal(err)
	}
	if p, err := l.AppendAndProve(ctx, entry(0)); err != nil || p.Index != 2 {
		t.Errorf("the next entry went to %+v (%v), want index 2: the refusal was logged", p, err)
	}
}

// TestFollowerSkipsOwnerRefusals: the owner API's refusals, kept in the
// broker's audit trail, never reach the log as key_release entries; the
// cursor moves past them and the release decisions around them are logged.
func TestFollowerSkipsOwnerRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.New(ctx, sqlite.Config{Path: filepath.Join(dir, "kbs.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := openLog(t, filepath.Join(dir, "log"), newKey(t, "kura.test/skip"))
	for _, d := range []string{store.DecisionReleased, store.DecisionAdminRefused, store.DecisionRefused, store.DecisionAdminRefused} {
		if _, err := st.AppendAudit(ctx, &store.AuditRecord{Decision: d, Reason: "r", Resource: "airline/key/1", Requester: "admin:carrier"}); err != nil {
			t.Fatal(err)
		}
	}
	f := &brokerlog.Follower{Log: l, Source: st, Cursor: filepath.Join(dir, "cursor")}
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.Logged(); n != 4 {
		t.Errorf("cursor at %d, want 4 (past the refusals)", n)
	}
	// The next entry's index says how many were logged.
	next, err := l.AppendAndProve(ctx, entry(0))
	if err != nil {
		t.Fatal(err)
	}
	var logged []int64
	for i := range next.Index {
		p, err := l.Prove(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		e, err := auditlog.ParseEntry(p.Entry)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind != auditlog.KindKeyRelease {
			t.Errorf("entry %d is a %s", i, e.Kind)
		}
		logged = append(logged, e.BrokerSeq)
	}
	slices.Sort(logged) // one batch's appends run concurrently
	if fmt.Sprint(logged) != "[1 3]" {
		t.Errorf("broker_seq logged %v, want [1 3]", logged)
	}
}

func newKey(t testing.TB, origin string) *auditlog.SignerKey {
	t.Helper()
	k, _, err := auditlog.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openLog(t testing.TB, dir string, k *auditlog.SignerKey) *auditlog.Log {
	t.Helper()
	l, err := auditlog.Open(context.Background(), auditlog.Config{Dir: dir, Key: k, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func entry(i int) *auditlog.Entry {
	sum := sha256.Sum256([]byte(fmt.Sprint(i)))
	return &auditlog.Entry{
		Kind: auditlog.KindResult, Time: time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC),
		Collaboration: "airline-carrier", Run: fmt.Sprintf("run-%d", i), Subject: auditlog.Digest(sum),
	}
}
