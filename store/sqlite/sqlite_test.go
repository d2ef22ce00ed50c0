package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/storetest"
)

func TestConformance(t *testing.T) {
	root := t.TempDir()
	storetest.Run(t, func(t *testing.T, db string) store.Store {
		sum := sha256.Sum256([]byte(t.Name()))
		path := filepath.Join(root, hex.EncodeToString(sum[:8])+"-"+db+".db")
		s, err := New(context.Background(), Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "kbs.db")
	s, err := New(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %04o; want 0600", fi.Mode().Perm())
	}
	db := rawDB(t, path)
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var v int
	if err := db.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != len(migrations) {
		t.Errorf("schema_version = %d, %v", v, err)
	}
	// A database from a newer kura is refused, not touched.
	if _, err := db.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := New(ctx, Config{Path: path}); !errors.Is(err, store.ErrSchemaVersion) {
		t.Errorf("New(newer schema) = %v; want ErrSchemaVersion", err)
	}
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(dir, "a?b")} {
		if _, err := New(ctx, Config{Path: p}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("New(%q) = %v; want ErrInvalid", p, err)
		}
	}
	if _, err := New(ctx, Config{Path: filepath.Join(dir, "missing", "x.db")}); err == nil {
		t.Error("New in a missing directory succeeded")
	}
}

// TestUpgrade: a database written by schema 2, before the audit trail named
// clean-room runs, by schema 3, before the run queue, or by schema 4,
// before revocations, keeps its audit records when this build opens it,
// queues runs and stores revocations.
func TestUpgrade(t *testing.T) {
	for _, from := range []int{2, 3, 4} {
		t.Run(fmt.Sprint("schema", from), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kbs.db")
			db := rawDB(t, path)
			stmts := append([]string{`CREATE TABLE schema_version (version INTEGER NOT NULL)`, fmt.Sprintf(`INSERT INTO schema_version (version) VALUES (%d)`, from)},
				migrations[:from]...)
			for _, q := range stmts {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			for _, a := range storetest.OldAudit {
				if _, err := db.Exec(`INSERT INTO audit (seq, time, decision, reason, resource, token_digest, policy_id, requester, tee, measurement)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.Seq, a.Time.UnixMicro(), a.Decision, a.Reason, a.Resource, a.TokenDigest, a.PolicyID, a.Requester, a.TEE, a.Measurement); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()
			s, err := New(context.Background(), Config{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var v int
			if err := s.w.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != len(migrations) {
				t.Errorf("schema_version after the upgrade = %d, %v; want %d", v, err, len(migrations))
			}
			storetest.CheckUpgradedAudit(t, s)
			storetest.CheckUpgradedRuns(t, s)
			storetest.CheckUpgradedRevocations(t, s)
		})
	}
}

// TestSynchronousFull checks the write connection's durability settings.
func TestSynchronousFull(t *testing.T) {
	s, err := New(context.Background(), Config{Path: filepath.Join(t.TempDir(), "kbs.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sync, busy int
	if err := s.w.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Errorf("synchronous = %d, %v; want 2 (FULL)", sync, err)
	}
	if err := s.w.QueryRow(`PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != 10000 {
		t.Errorf("busy_timeout = %d, %v; want 10000", busy, err)
	}
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Crash safety: a child process (this test binary, re-executed) writes as
// fast as it can and prints every acknowledged write; the parent SIGKILLs it
// mid-burst, reopens the database and checks that it is intact and holds every
// acknowledged write.

const (
	crashEnvMode = "KURA_STORE_CRASH_CHILD"
	crashEnvPath = "KURA_STORE_CRASH_DB"
)

// TestCrashChild is the child side; it does nothing in a normal test run.
func TestCrashChild(t *testing.T) {
	mode := os.Getenv(crashEnvMode)
	if mode == "" {
		t.Skip("child process of TestCrashSafety")
	}
	ctx := context.Background()
	s, err := New(ctx, Config{Path: os.Getenv(crashEnvPath)})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	ack := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...) // unbuffered: one write per ack
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				switch mode {
				case "put":
					path := fmt.Sprintf("crash/key/%d", i%5)
					v, err := s.PutResource(ctx, &store.Resource{Path: path, Sealed: []byte(id), WrappedDEK: []byte("dek-" + id), KEKID: "k"})
					if err != nil {
						ack("error %v", err)
						os.Exit(3)
					}
					ack("ack %s %d %s", path, v, id)
				case "audit":
					seq, err := s.AppendAudit(ctx, &store.AuditRecord{Decision: store.DecisionReleased, Reason: id})
					if err != nil {
						ack("error %v", err)
						os.Exit(3)
					}
					ack("ack %d %s", seq, id)
				}
			}
		})
	}
	wg.Wait()
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns and kills child processes")
	}
	for _, mode := range []string{"put", "audit"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "crash.db")
			acked := map[string]string{} // key -> id
			for round := range 3 {       // kill, reopen, kill again
				for k, v := range crashRound(t, mode, path, 150+round*50) {
					acked[k] = v
				}
				checkAfterCrash(t, mode, path, acked)
			}
			t.Logf("%s: %d acknowledged writes survived 3 SIGKILLs", mode, len(acked))
		})
	}
}

// crashRound runs a child writing to path, kills it after at least min acks
// and returns every write it acknowledged.
func crashRound(t *testing.T, mode, path string, min int) map[string]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvMode+"="+mode, crashEnvPath+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{}
	sc := bufio.NewScanner(out)
	killed := false
	timeout := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timeout.Stop()
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "ack" {
			// "=== RUN" and friends may appear; errors fail.
			if len(f) > 0 && f[0] == "error" {
				t.Errorf("child: %s", sc.Text())
			}
			continue
		}
		switch mode {
		case "put": // ack path version id
			acked[f[1]+"@"+f[2]] = f[3]
		case "audit": // ack seq id
			acked[f[1]] = f[2]
		}
		if len(acked) >= min && !killed {
			// SIGKILL mid-burst: no chance to flush or close anything.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
			// Keep reading: lines written before the kill were acked.
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before %d acks (%d): %v", min, len(acked), err)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
	return acked
}

func checkAfterCrash(t *testing.T, mode, path string, acked map[string]string) {
	t.Helper()
	ctx := context.Background()
	s, err := New(ctx, Config{Path: path})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	var ok string
	if err := s.w.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
	switch mode {
	case "put":
		for key, id := range acked {
			p, vs, _ := strings.Cut(key, "@")
			v, _ := strconv.ParseInt(vs, 10, 64)
			r, err := s.GetResourceVersion(ctx, p, v)
			if err != nil {
				t.Fatalf("acknowledged %s version %d lost: %v", p, v, err)
			}
			if string(r.Sealed) != id || string(r.WrappedDEK) != "dek-"+id {
				t.Fatalf("%s version %d holds %q; acknowledged %q", p, v, r.Sealed, id)
			}
		}
		// Heads agree with the versions table.
		var bad int
		if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM resource_heads h WHERE h.version != (SELECT max(version) FROM resources r WHERE r.path = h.path)`).Scan(&bad); err != nil || bad != 0 {
			t.Fatalf("%d heads disagree with versions (%v)", bad, err)
		}
	case "audit":
		recs, err := s.ListAudit(ctx, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]string{}
		for i, r := range recs {
			if r.Seq != int64(i+1) {
				t.Fatalf("audit seq %d at position %d: gap", r.Seq, i)
			}
			have[strconv.FormatInt(r.Seq, 10)] = r.Reason
		}
		for seq, id := range acked {
			if have[seq] != id {
				t.Fatalf("acknowledged audit record %s (%s) lost or changed: %q", seq, id, have[seq])
			}
		}
	}
}

func BenchmarkAppendAudit(b *testing.B) {
	s, err := New(context.Background(), Config{Path: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.SetParallelism(32) // 32 * GOMAXPROCS concurrent callers
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.AppendAudit(context.Background(), &store.AuditRecord{Decision: store.DecisionReleased, Reason: "bench", Resource: "a/b/c"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGetResource(b *testing.B) {
	ctx := context.Background()
	s, err := New(ctx, Config{Path: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range 100 {
		if _, err := s.PutResource(ctx, &store.Resource{Path: fmt.Sprintf("a/b/%d", i), Sealed: make([]byte, 64), WrappedDEK: make([]byte, 61), KEKID: "k"}); err != nil {
			b.Fatal(err)
		}
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.GetResource(ctx, fmt.Sprintf("a/b/%d", i%100)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// TestEphemeralBound checks Config.MaxEphemeral and the purge that
// resynchronises the live count.
func TestEphemeralBound(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kbs.db")
	var first *Store
	storetest.EphemeralBound(t, storetest.BoundedEphemeral{
		Open: func() store.Store {
			s, err := New(ctx, Config{Path: path, MaxEphemeral: 3})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if first == nil {
				first = s
			}
			return s
		},
		InsertExpired: func(n int) {
			if _, err := first.w.ExecContext(ctx, `
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO ephemeral (key, value, expires) SELECT 'old/' || i, x'', 1 FROM n`, n); err != nil {
				t.Fatal(err)
			}
		},
		Purge: func() {
			if err := first.purgeEphemeral(ctx); err != nil {
				t.Fatal(err)
			}
		},
		Count: func() int {
			var n int
			if err := first.r.QueryRowContext(ctx, `SELECT count(*) FROM ephemeral`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
	})
}

// TestEphemeralBatchOrder checks that a group-committed batch runs its ops
// in order, as if one after the other.
func TestEphemeralBatchOrder(t *testing.T) {
	ctx := context.Background()
	s, err := New(ctx, Config{Path: filepath.Join(t.TempDir(), "kbs.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	exp := time.Now().Add(time.Minute)
	res, err := s.flushEphemeral(ctx, []ephemeralOp{
		{key: "k", value: []byte("1"), expires: exp},
		{key: "k", value: []byte("x"), expires: exp},
		{take: true, key: "k"},
		{take: true, key: "k"},
		{key: "k", value: []byte("2"), expires: exp},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []ephemeralResult{{nil, true}, {nil, false}, {[]byte("1"), true}, {nil, false}, {nil, true}}
	for i := range want {
		if res[i].ok != want[i].ok || !bytes.Equal(res[i].value, want[i].value) {
			t.Errorf("op %d = %+v; want %+v", i, res[i], want[i])
		}
	}
	if v, ok, err := s.Ephemeral().Get(ctx, "k"); err != nil || !ok || string(v) != "2" {
		t.Errorf("Get = %q, %v, %v; want 2", v, ok, err)
	}
}

// TestAuditBatchChunks writes batches of every shape the multi-row inserts
// take (85 = 64+16+4+1, and a lone record) and one past a sequence number
// the AUTOINCREMENT counter alone remembers: numbers follow without gaps or
// reuse, each on its own record.
func TestAuditBatchChunks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kbs.db")
	s, err := New(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	batch := func(n int, tag string) []int64 {
		recs := make([]store.AuditRecord, n)
		for i := range recs {
			recs[i] = store.AuditRecord{Time: time.Now(), Decision: store.DecisionRefused, Reason: fmt.Sprintf("%s-%d", tag, i)}
		}
		seqs, err := s.flushAudit(ctx, recs)
		if err != nil || len(seqs) != n {
			t.Fatalf("flushAudit(%d) = %d seqs, %v", n, len(seqs), err)
		}
		return seqs
	}
	check := func(seqs []int64, first int64, tag string) {
		t.Helper()
		all, err := s.ListAudit(ctx, first-1, len(seqs))
		if err != nil || len(all) != len(seqs) {
			t.Fatalf("ListAudit = %d, %v", len(all), err)
		}
		for i, seq := range seqs {
			if seq != first+int64(i) || all[i].Seq != seq || all[i].Reason != fmt.Sprintf("%s-%d", tag, i) {
				t.Fatalf("record %d: seq %d, stored %d %q", i, seq, all[i].Seq, all[i].Reason)
			}
		}
	}
	check(batch(85, "a"), 1, "a")
	check(batch(1, "b"), 86, "b")
	// The last record goes; AUTOINCREMENT still remembers 86.
	db := rawDB(t, path)
	if _, err := db.Exec(`DELETE FROM audit WHERE seq = 86`); err != nil {
		t.Fatal(err)
	}
	check(batch(3, "c"), 87, "c")
}
