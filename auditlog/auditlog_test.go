package auditlog_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/internal/keyfile"
)

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

func subject(s string) string { return auditlog.Digest(sha256.Sum256([]byte(s))) }

func entry(i int) *auditlog.Entry {
	return &auditlog.Entry{
		Kind: auditlog.KindResult, Time: time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC),
		Collaboration: "airline-carrier", Run: fmt.Sprintf("run-%d", i), Subject: subject(fmt.Sprint(i)),
	}
}

// appendN appends n entries from 8 concurrent writers and returns the
// entries by index.
func appendN(t testing.TB, l *auditlog.Log, n int) map[uint64]*auditlog.Entry {
	t.Helper()
	var (
		mu  sync.Mutex
		got = map[uint64]*auditlog.Entry{}
		wg  sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				e := entry(i)
				idx, err := l.Append(context.Background(), e)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[idx] = e
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return got
}

// settle waits until a checkpoint covers every appended entry.
func settle(t testing.TB, l *auditlog.Log, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.Prove(ctx, uint64(n-1)); err != nil {
		t.Fatal(err)
	}
}

func TestAppendProveVerify(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := newKey(t, "kura.test/log")
	l := openLog(t, dir, k)
	const n = 300 // more than one entry bundle
	got := appendN(t, l, n)
	if len(got) != n {
		t.Fatalf("%d distinct indexes for %d appends", len(got), n)
	}
	for i := range uint64(n) {
		if got[i] == nil {
			t.Fatalf("index %d not assigned", i)
		}
	}
	p, err := l.AppendAndProve(ctx, entry(n))
	if err != nil {
		t.Fatal(err)
	}
	if p.Index != n {
		t.Fatalf("index %d, want %d", p.Index, n)
	}
	// The proof round-trips through JSON and verifies offline.
	b, err := p.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := auditlog.ParseProof(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.VerifyProof(p2, k.Verifier()); err != nil {
		t.Fatalf("offline verification: %v", err)
	}
	e, err := auditlog.ParseEntry(p2.Entry)
	if err != nil || e.Run != fmt.Sprintf("run-%d", n) {
		t.Fatalf("proof entry %+v, %v", e, err)
	}
	for _, i := range []uint64{0, 255, 256, 299} {
		p, err := l.Prove(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := auditlog.VerifyProof(p, k.Verifier()); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		want, _ := got[i].Marshal()
		if !bytes.Equal(p.Entry, want) {
			t.Fatalf("entry %d: proof carries %s, appended %s", i, p.Entry, want)
		}
	}

	// Served over HTTP, verified by a third party: first use, then again.
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	state := filepath.Join(t.TempDir(), "state")
	for _, loc := range []string{srv.URL, dir} {
		r, err := auditlog.NewReader(loc, k.Verifier(), nil)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := r.Verify(ctx, auditlog.VerifyOptions{StatePath: state, Full: true, Indexes: []uint64{0, 300}, Proofs: []*auditlog.Proof{p2}})
		if err != nil {
			t.Fatalf("verify %s: %v", loc, err)
		}
		if rep.Size < n+1 || !rep.FullAudit || len(rep.Included) != 2 || rep.ProofsVerified != 1 {
			t.Fatalf("report %+v", rep)
		}
		if loc == srv.URL && !rep.FirstUse {
			t.Fatal("first verification not reported as trust on first use")
		}
		if loc == dir && rep.FirstUse {
			t.Fatal("second verification reported as first use")
		}
	}
	// The .state directory is not served.
	r, err := auditlog.NewReader(srv.URL, k.Verifier(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = r
	resp, err := srv.Client().Get(srv.URL + "/.state/treeState")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf(".state served: %d", resp.StatusCode)
	}
	resp, err = srv.Client().Get(srv.URL + "/proof/0")
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	sp, err := auditlog.ParseProof(body.Bytes())
	if err != nil {
		t.Fatalf("served proof: %v (%s)", err, body)
	}
	if _, err := auditlog.VerifyProof(sp, k.Verifier()); err != nil {
		t.Fatal(err)
	}
}

// builtLog returns a log directory with n entries, closed, and its key.
func builtLog(t *testing.T, n int) (string, *auditlog.SignerKey) {
	t.Helper()
	dir := t.TempDir()
	k := newKey(t, "kura.test/log")
	l, err := auditlog.Open(context.Background(), auditlog.Config{Dir: dir, Key: k, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, n)
	settle(t, l, n)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dir, k
}

// copyLog copies the log in dir to a fresh directory, for a test to damage.
func copyLog(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "log")
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func verify(t *testing.T, dir string, v note.Verifier, opts auditlog.VerifyOptions) error {
	t.Helper()
	r, err := auditlog.NewReader(dir, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Verify(context.Background(), opts)
	return err
}

func TestTamperingDetected(t *testing.T) {
	const n = 300
	built, k := builtLog(t, n)
	bundle0 := layout.EntriesPath(0, 0)
	bundle1 := layout.EntriesPath(1, n%256)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		opts   auditlog.VerifyOptions
		want   error
	}{
		{"nothing", func(*testing.T, string) {}, auditlog.VerifyOptions{Full: true}, nil},
		{"byte flipped in an entry", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, bundle0), 40) }, auditlog.VerifyOptions{Full: true}, auditlog.ErrTampered},
		{"byte flipped, inclusion", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, bundle0), 40) }, auditlog.VerifyOptions{Indexes: []uint64{0}}, auditlog.ErrNotIncluded},
		{"last entry removed", func(t *testing.T, dir string) { dropLast(t, filepath.Join(dir, bundle1)) }, auditlog.VerifyOptions{Full: true}, auditlog.ErrTampered},
		{"bundle deleted", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, bundle0)) }, auditlog.VerifyOptions{Full: true}, auditlog.ErrTampered},
		{"entry replaced by a valid one", func(t *testing.T, dir string) { replaceFirst(t, filepath.Join(dir, bundle0)) }, auditlog.VerifyOptions{Full: true}, auditlog.ErrTampered},
		{"checkpoint signature flipped", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "checkpoint"))
			flip(t, filepath.Join(dir, "checkpoint"), int64(len(b)-5))
		}, auditlog.VerifyOptions{}, auditlog.ErrBadSignature},
		{"checkpoint size changed", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "checkpoint")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, forgeSize(t, b, -1), 0o644); err != nil {
				t.Fatal(err)
			}
		}, auditlog.VerifyOptions{}, auditlog.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyLog(t, built)
			tc.damage(t, dir)
			err := verify(t, dir, k.Verifier(), tc.opts)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil && !auditlog.IsVerificationFailure(err) {
				t.Fatalf("%v is not a verification failure", err)
			}
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		dir, _ := builtLog(t, 3)
		other := newKey(t, "kura.test/log")
		if err := verify(t, dir, other.Verifier(), auditlog.VerifyOptions{}); !errors.Is(err, auditlog.ErrBadSignature) {
			t.Fatalf("got %v", err)
		}
	})
}

// forgeSize changes the tree size a signed checkpoint note states by delta
// and keeps its signature lines, as someone without the log's key would
// forge it. The size line is parsed, so this works at any size.
func forgeSize(t testing.TB, checkpoint []byte, delta int64) []byte {
	t.Helper()
	i := bytes.Index(checkpoint, []byte("\n\n"))
	if i < 0 {
		t.Fatalf("checkpoint is not a signed note:\n%s", checkpoint)
	}
	text, sigs := checkpoint[:i+1], checkpoint[i+2:]
	var cp flog.Checkpoint
	rest, err := cp.Unmarshal(text)
	if err != nil {
		t.Fatalf("checkpoint: %v\n%s", err, checkpoint)
	}
	signed := func(c flog.Checkpoint) []byte { return slices.Concat(c.Marshal(), rest, []byte("\n"), sigs) }
	if !bytes.Equal(signed(cp), checkpoint) {
		t.Fatalf("checkpoint does not round-trip, so a forgery would change more than its size:\n%s", checkpoint)
	}
	cp.Size = uint64(int64(cp.Size) + delta)
	return signed(cp)
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// bundleEntries splits a tlog-tiles entry bundle.
func bundleEntries(b []byte) [][]byte {
	var es [][]byte
	for len(b) >= 2 {
		n := int(b[0])<<8 | int(b[1])
		es = append(es, b[2:2+n])
		b = b[2+n:]
	}
	return es
}

func writeBundle(t *testing.T, path string, es [][]byte) {
	t.Helper()
	var out []byte
	for _, e := range es {
		out = append(out, byte(len(e)>>8), byte(len(e)))
		out = append(out, e...)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func dropLast(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	es := bundleEntries(b)
	writeBundle(t, path, es[:len(es)-1])
}

func replaceFirst(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	es := bundleEntries(b)
	forged, _ := entry(999).Marshal()
	es[0] = forged
	writeBundle(t, path, es)
}

func TestForkAndRollbackDetected(t *testing.T) {
	ctx := context.Background()
	k := newKey(t, "kura.test/log")
	a, b := t.TempDir(), t.TempDir()
	la, lb := openLog(t, a, k), openLog(t, b, k)
	for i := range 5 {
		if _, err := la.Append(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
		e := entry(i)
		if i >= 3 {
			e = entry(100 + i) // b diverges at index 3
		}
		if _, err := lb.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	settle(t, la, 5)
	settle(t, lb, 5)
	state := filepath.Join(t.TempDir(), "state")
	if err := verify(t, a, k.Verifier(), auditlog.VerifyOptions{StatePath: state}); err != nil {
		t.Fatal(err)
	}
	// Same size, different root.
	if err := verify(t, b, k.Verifier(), auditlog.VerifyOptions{StatePath: state}); !errors.Is(err, auditlog.ErrInconsistent) {
		t.Fatalf("fork at equal size: got %v", err)
	}
	// b grows: no consistency proof from a's checkpoint exists.
	if _, err := lb.Append(ctx, entry(6)); err != nil {
		t.Fatal(err)
	}
	settle(t, lb, 6)
	if err := verify(t, b, k.Verifier(), auditlog.VerifyOptions{StatePath: state}); !errors.Is(err, auditlog.ErrInconsistent) {
		t.Fatalf("fork, larger: got %v", err)
	}
	// The state is not advanced by a failed verification.
	if err := verify(t, a, k.Verifier(), auditlog.VerifyOptions{StatePath: state}); err != nil {
		t.Fatalf("state was overwritten by a refused checkpoint: %v", err)
	}
	// Rollback: remember b at 6, then see a at 5.
	state2 := filepath.Join(t.TempDir(), "state")
	if err := verify(t, b, k.Verifier(), auditlog.VerifyOptions{StatePath: state2}); err != nil {
		t.Fatal(err)
	}
	if err := verify(t, a, k.Verifier(), auditlog.VerifyOptions{StatePath: state2}); !errors.Is(err, auditlog.ErrInconsistent) {
		t.Fatalf("rollback: got %v", err)
	}
	// A proof from the fork is refused against a.
	pb, err := lb.Prove(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.VerifyProof(pb, k.Verifier()); err != nil {
		t.Fatal(err) // valid on its own
	}
	if err := verify(t, a, k.Verifier(), auditlog.VerifyOptions{Proofs: []*auditlog.Proof{pb}}); !errors.Is(err, auditlog.ErrInconsistent) {
		t.Fatalf("proof from a fork: got %v", err)
	}
}

func TestProofTampering(t *testing.T) {
	ctx := context.Background()
	k := newKey(t, "kura.test/log")
	l := openLog(t, t.TempDir(), k)
	appendN(t, l, 10)
	p, err := l.Prove(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := entry(77).Marshal()
	// Prove waits only until a checkpoint covers index 3: the size it
	// signed is anything from 4 to 10.
	forged := forgeSize(t, p.Checkpoint, +1)
	for _, tc := range []struct {
		name string
		edit func(p *auditlog.Proof)
		want error
	}{
		{"other entry", func(p *auditlog.Proof) { p.Entry = other }, auditlog.ErrNotIncluded},
		{"other index", func(p *auditlog.Proof) { p.Index = 4 }, auditlog.ErrNotIncluded},
		{"index past the tree", func(p *auditlog.Proof) { p.Index = 10 }, auditlog.ErrNotIncluded},
		{"hash flipped", func(p *auditlog.Proof) { p.Inclusion[0][0] ^= 1 }, auditlog.ErrNotIncluded},
		{"hash dropped", func(p *auditlog.Proof) { p.Inclusion = p.Inclusion[1:] }, auditlog.ErrNotIncluded},
		{"checkpoint forged", func(p *auditlog.Proof) { p.Checkpoint = forged }, auditlog.ErrBadSignature},
		{"entry not canonical", func(p *auditlog.Proof) { p.Entry = append(append([]byte{}, p.Entry...), ' ') }, auditlog.ErrNotIncluded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &auditlog.Proof{Index: p.Index, Entry: p.Entry, Checkpoint: p.Checkpoint}
			for _, h := range p.Inclusion {
				q.Inclusion = append(q.Inclusion, append([]byte{}, h...))
			}
			tc.edit(q)
			if _, err := auditlog.VerifyProof(q, k.Verifier()); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestWitness(t *testing.T) {
	ctx := context.Background()
	logKey := newKey(t, "kura.test/log")
	wk := newKey(t, "witness.test/w1")
	w, err := auditlog.NewWitness(auditlog.WitnessConfig{Key: wk, Logs: []note.Verifier{logKey.Verifier()}, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	wsrv := httptest.NewServer(w.Handler())
	defer wsrv.Close()

	dir := t.TempDir()
	l, err := auditlog.Open(ctx, auditlog.Config{Dir: dir, Key: logKey, CheckpointInterval: 100 * time.Millisecond,
		Witnesses: []auditlog.WitnessEndpoint{{URL: wsrv.URL, VerifierKey: w.VerifierKey()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	appendN(t, l, 20)
	settle(t, l, 20)
	wv, err := auditlog.ParseWitnessKey(w.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	// The plain Ed25519 verifier key works too.
	wv2, err := auditlog.ParseWitnessKey(wk.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	stranger := newKey(t, "witness.test/w2")
	sv, _ := auditlog.ParseWitnessKey(stranger.VerifierKey())

	if err := verify(t, dir, logKey.Verifier(), auditlog.VerifyOptions{Witnesses: []note.Verifier{wv}, WitnessThreshold: 1}); err != nil {
		t.Fatalf("witnessed checkpoint refused: %v", err)
	}
	if err := verify(t, dir, logKey.Verifier(), auditlog.VerifyOptions{Witnesses: []note.Verifier{wv2, sv}, WitnessThreshold: 1}); err != nil {
		t.Fatalf("witnessed checkpoint refused with the 0x01 key: %v", err)
	}
	if err := verify(t, dir, logKey.Verifier(), auditlog.VerifyOptions{Witnesses: []note.Verifier{wv, sv}, WitnessThreshold: 2}); !errors.Is(err, auditlog.ErrWitness) {
		t.Fatalf("2-of-2 with one cosignature: got %v", err)
	}
	if err := verify(t, dir, logKey.Verifier(), auditlog.VerifyOptions{Witnesses: []note.Verifier{wv, wv}, WitnessThreshold: 2}); !errors.Is(err, auditlog.ErrWitness) {
		t.Fatalf("one witness counted twice: got %v", err)
	}

	// The witness refuses a fork: another log with the same key, signed
	// at a size it already cosigned with a different root, or larger
	// without a valid proof.
	fork := openLog(t, t.TempDir(), logKey)
	for i := range 25 {
		if _, err := fork.Append(ctx, entry(1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	settle(t, fork, 25)
	_, cp, err := fork.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, _ := fork.Checkpoint(ctx)
	_, mine, _ := l.Checkpoint(ctx)
	if _, err := w.AddCheckpoint(ctx, mine.Size, nil, raw); err == nil {
		t.Fatalf("witness cosigned a fork of size %d over its size %d", cp.Size, mine.Size)
	}
}

func TestKeyFiles(t *testing.T) {
	k := newKey(t, "kura.test/log")
	p := filepath.Join(t.TempDir(), "log.key")
	if err := k.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	if err := k.WriteFile(p); err == nil {
		t.Fatal("key overwritten")
	}
	k2, err := auditlog.LoadSignerKey(p)
	if err != nil || k2.VerifierKey() != k.VerifierKey() {
		t.Fatalf("reloaded key differs: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o666, 0o640} {
		os.Chmod(p, mode)
		if _, err := auditlog.LoadSignerKey(p); !errors.Is(err, keyfile.ErrInsecure) || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Fatalf("key of mode %04o: %v, want ErrInsecure naming chmod 600", mode, err)
		}
	}
	if s := fmt.Sprint(k); s != "REDACTED" {
		t.Fatalf("key prints as %q", s)
	}
	if _, _, err := auditlog.GenerateKey("bad origin"); err == nil {
		t.Fatal("origin with a space accepted")
	}
}
