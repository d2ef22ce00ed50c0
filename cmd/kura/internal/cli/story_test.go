package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kura-cc/kura/analysis"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/worker"
)

// newStory sets up the clean-room story over real HTTP: two owners' key
// brokers, sealed and registered data, an unapproved collaboration.
func newStory(t *testing.T, rows int) *demo.CleanRoom {
	t.Helper()
	c, err := demo.NewCleanRoom(context.Background(), demo.CleanRoomConfig{Dir: t.TempDir(), Rows: rows, Version: Version, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func runWorker(t *testing.T, c *demo.CleanRoom, analysisID string, a *sim.Attester) (*worker.Output, error) {
	t.Helper()
	if a == nil {
		return c.Run(context.Background(), analysisID)
	}
	file, err := c.Collab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return worker.Run(context.Background(), worker.Config{Collaboration: file, Analysis: analysisID, Attester: a, Logger: slog.New(slog.DiscardHandler)})
}

// trust is what the airline, a receiver that approved the manifest,
// trusts: the manifest's verifier list, dev mode.
func trust(c *demo.CleanRoom) result.Trust { return c.Trust(demo.Airline) }

// jwksOf fetches a server's JWKS.
func jwksOf(t *testing.T, s *demo.LocalServer) jwk.Set {
	t.Helper()
	set, err := token.FetchJWKS(context.Background(), nil, s.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestCleanRoomStory: both owners approve, the worker runs both analyses,
// each receiver verifies and opens the result, and it equals the same
// analysis in plain SQL on the plaintext after suppression; the receipt
// verifies.
func TestCleanRoomStory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two key brokers and runs DuckDB")
	}
	c := newStory(t, 4000)
	if err := c.Approve(demo.Airline, demo.Carrier); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, an := range demo.Analyses() {
		t.Run(an.ID, func(t *testing.T) {
			out, err := runWorker(t, c, an.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			vb, err := result.VerifyBundle(ctx, out.Result, trust(c))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := result.VerifyReceipt(ctx, out.Receipt, vb, trust(c)); err != nil {
				t.Fatal(err)
			}
			var got *analysis.Result
			for _, name := range []string{demo.Airline, demo.Carrier} {
				plain, err := vb.Open(c.Parties[name])
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if got, err = decodeResult(plain); err != nil {
					t.Fatal(err)
				}
			}
			want, suppressed := plainSQL(t, c, an.ID)
			if fmt.Sprint(rowsOf(got)) != fmt.Sprint(want) {
				t.Errorf("kura's output differs from plain SQL after suppression:\n got %v\nwant %v", rowsOf(got), want)
			}
			if got.SuppressedRows != suppressed || suppressed == 0 {
				t.Errorf("suppressed %d rows, plain SQL says %d (want > 0 so the threshold is exercised)", got.SuppressedRows, suppressed)
			}
		})
	}
}

// plainSQL computes the story's analyses on the plaintext Parquet files in
// plain DuckDB, applying the threshold by hand: the strictest owner's
// minimum (the carrier's 20) to both datasets.
// Rows are returned as sorted strings.
func plainSQL(t *testing.T, c *demo.CleanRoom, id string) ([]string, int) {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f, v := "'"+c.Plaintext["flights"]+"'", "'"+c.Plaintext["visits"]+"'"
	var q string
	switch id {
	case "stay_by_prefecture":
		q = `SELECT flights.home_prefecture, count(DISTINCT visits.subscriber_id) AS travellers, avg(visits.stay_days) AS avg_stay_days,
			count(DISTINCT flights.member_id) AS kf, count(DISTINCT visits.subscriber_id) AS kv
			FROM ` + f + ` flights JOIN ` + v + ` visits ON flights.phone = visits.phone GROUP BY 1`
	case "visitors_by_area_age":
		q = `SELECT f.destination_area AS area, f.age_band, count(DISTINCT v.subscriber_id) AS visitors,
			count(DISTINCT f.member_id) AS kf, count(DISTINCT v.subscriber_id) AS kv
			FROM ` + f + ` f JOIN ` + v + ` v ON f.phone = v.phone AND f.destination_area = v.area AND v.arrival_date = f.flight_date
			GROUP BY 1, 2`
	}
	rows, err := db.Query("SELECT * EXCLUDE (kf, kv) FROM (" + q + ") WHERE kf >= 20 AND kv >= 20 ORDER BY ALL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, formatRow(vals))
	}
	var total int
	if err := db.QueryRow("SELECT count(*) FROM (" + q + ")").Scan(&total); err != nil {
		t.Fatal(err)
	}
	return out, total - len(out)
}

func formatRow(vals []any) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case float64:
			parts[i] = fmt.Sprintf("%.6f", x)
		case json.Number:
			parts[i] = x.String()
			if strings.ContainsAny(parts[i], ".e") {
				f, _ := x.Float64()
				parts[i] = fmt.Sprintf("%.6f", f)
			}
		default:
			parts[i] = fmt.Sprint(x)
		}
	}
	return strings.Join(parts, "|")
}

func rowsOf(r *analysis.Result) []string {
	var out []string
	for _, row := range r.Rows {
		vals := make([]any, len(row))
		for i, v := range row {
			vals[i] = v
			if n, ok := v.(json.Number); ok && r.Columns[i].Type == "DOUBLE" {
				vals[i], _ = n.Float64()
			}
		}
		out = append(out, formatRow(vals))
	}
	return out
}

// TestCleanRoomRefusals: the run fails cleanly, naming what failed, when an
// owner has not approved, the analysis changed after approval, the worker's
// measurement is not in the manifest, or a sealed file was swapped; a
// tampered bundle or receipt does not verify.
func TestCleanRoomRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two key brokers and runs DuckDB")
	}
	c := newStory(t, 2000)
	const an = "stay_by_prefecture"

	// Only the airline approved: the carrier's broker refuses, and the run
	// says so.
	if err := c.Approve(demo.Airline); err != nil {
		t.Fatal(err)
	}
	out, err := runWorker(t, c, an, nil)
	if !errors.Is(err, worker.ErrRefused) || !strings.Contains(err.Error(), `"carrier"`) {
		t.Fatalf("unapproved owner: %v", err)
	}
	if out == nil || out.Receipt == nil || out.Result != nil {
		t.Fatalf("a failed run must still sign a receipt and no result: %+v", out)
	}
	if r, err := result.VerifyReceipt(context.Background(), out.Receipt, nil, trust(c)); err != nil || !strings.HasPrefix(r.Receipt.Outcome, "failed") {
		t.Errorf("failed run's receipt: %v", err)
	}

	// Both approve; then the analysis changes: the new version is not
	// approved by either owner.
	if err := c.Approve(demo.Carrier); err != nil {
		t.Fatal(err)
	}
	next := *c.Collab.Current()
	next.Previous = next.Hash()
	next.Analyses = demo.Analyses()
	next.Analyses[0].Aggregate.GroupBy = []string{"flights.age_band"}
	if err := c.Collab.AddVersion(&next); err != nil {
		t.Fatal(err)
	}
	if _, err := runWorker(t, c, an, nil); !errors.Is(err, worker.ErrRefused) || !strings.Contains(err.Error(), "approv") {
		t.Errorf("changed analysis: %v", err)
	}
	if err := c.Approve(demo.Airline, demo.Carrier); err != nil {
		t.Fatal(err)
	}

	// A worker with another measurement is refused.
	other, err := sim.NewAttester(sim.AttesterConfig{Measurement: make([]byte, sim.MeasurementSize)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runWorker(t, c, an, other); !errors.Is(err, worker.ErrRefused) || !strings.Contains(err.Error(), "measurement") {
		t.Errorf("unapproved worker: %v", err)
	}

	// The approved run works; keep its outputs to tamper with.
	good, err := runWorker(t, c, an, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A swapped sealed file is refused before any key is asked for.
	flights := c.Collab.Current().Dataset("flights").Location
	orig, err := os.ReadFile(flights)
	if err != nil {
		t.Fatal(err)
	}
	visits, _ := os.ReadFile(c.Collab.Current().Dataset("visits").Location)
	if err := os.WriteFile(flights, visits, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runWorker(t, c, an, nil); !errors.Is(err, worker.ErrInputMismatch) {
		t.Errorf("swapped file: %v", err)
	}
	os.WriteFile(flights, orig, 0o644)

	// Tampered bundle and receipt.
	tamper := func(f *result.File) *result.File {
		data, _ := f.Marshal()
		var g result.File
		json.Unmarshal(data, &g)
		g.Envelope.Payload = []byte(strings.Replace(string(g.Envelope.Payload), `"suppressed_rows":`, `"suppressed_rows":1`, 1))
		return &g
	}
	ctx := context.Background()
	if _, err := result.VerifyBundle(ctx, tamper(good.Result), trust(c)); !errors.Is(err, result.ErrBadSignature) && !errors.Is(err, result.ErrMalformed) {
		t.Errorf("tampered bundle: %v", err)
	}
	rc := tamper(good.Receipt)
	rc.Envelope.Payload = []byte(strings.Replace(string(good.Receipt.Envelope.Payload), `"completed"`, `"complete!"`, 1))
	if _, err := result.VerifyReceipt(ctx, rc, nil, trust(c)); !errors.Is(err, result.ErrBadSignature) {
		t.Errorf("tampered receipt: %v", err)
	}
	// A receiver that names another verifier refuses the result; one that
	// names the manifest's accepts it.
	otherKeys := jwksOf(t, c.Verifiers[demo.OtherVerifier])
	var ke *token.KeyError
	if _, err := result.VerifyBundle(ctx, good.Result, result.Trust{Verifiers: otherKeys, DevMode: true}); !errors.Is(err, result.ErrUntrusted) || !errors.As(err, &ke) {
		t.Errorf("untrusted verifier: %v", err)
	}
	if _, err := result.VerifyBundle(ctx, good.Result, result.Trust{Verifiers: jwksOf(t, c.Verifiers[demo.ListedVerifier]), DevMode: true}); err != nil {
		t.Errorf("the listed verifier, named: %v", err)
	}
	// A run attested by a verifier the brokers trust but the manifest does
	// not list gets its keys, and its result is refused, naming the
	// verifier; a receiver who names that verifier itself accepts it.
	rogue, err := c.RunAttestedBy(ctx, an, c.Verifiers[demo.OtherVerifier].URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = result.VerifyBundle(ctx, rogue.Result, trust(c))
	if !errors.Is(err, result.ErrUntrusted) || !errors.As(err, &ke) || !strings.Contains(err.Error(), "(verifier-b)") || !strings.Contains(err.Error(), "the manifest's verifiers: verifier-a (keys ") {
		t.Errorf("a result attested by a verifier not on the list: %v", err)
	}
	if _, err := result.VerifyReceipt(ctx, rogue.Receipt, nil, trust(c)); !errors.As(err, &ke) {
		t.Errorf("its receipt: %v", err)
	}
	if _, err := result.VerifyBundle(ctx, rogue.Result, result.Trust{Verifiers: otherKeys, DevMode: true}); err != nil {
		t.Errorf("the unlisted verifier, named by the receiver: %v", err)
	}
	// Outside dev mode, the sim TEE's result is refused.
	tr := trust(c)
	tr.DevMode = false
	if _, err := result.VerifyBundle(ctx, good.Result, tr); !errors.Is(err, result.ErrUntrusted) || !strings.Contains(err.Error(), "INSECURE") {
		t.Errorf("sim outside dev mode: %v", err)
	}
}

// TestCleanRoomBrokerVerifier: a manifest may list a key broker's built-in
// verifier by its JWKS URL, with no attestation url: the worker then
// attests to each broker, and the result carries the first broker's token,
// which receivers accept as that listed verifier's.
func TestCleanRoomBrokerVerifier(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two key brokers and runs DuckDB")
	}
	c := newStory(t, 1000)
	next := *c.Collab.Current()
	next.Previous = next.Hash()
	next.Verifiers = []collab.Verifier{{Name: "airline-kbs", JWKSURL: c.Servers[demo.Airline].JWKSURL()}}
	if err := c.Collab.AddVersion(&next); err != nil {
		t.Fatal(err)
	}
	if err := c.Approve(demo.Airline, demo.Carrier); err != nil {
		t.Fatal(err)
	}
	out, err := c.Run(context.Background(), "stay_by_prefecture")
	if err != nil {
		t.Fatal(err)
	}
	vb, err := result.VerifyBundle(context.Background(), out.Result, trust(c))
	if err != nil {
		t.Fatal(err)
	}
	if vb.Verifier != "airline-kbs" {
		t.Errorf("token attributed to %q, want airline-kbs", vb.Verifier)
	}
}

// TestCleanRoomCLI drives the story's last steps through the commands a
// worker operator and a receiver type: kura worker run, kura result open,
// kura receipt verify, with their exit codes for tampered and unauthorised
// use.
func TestCleanRoomCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two key brokers and runs DuckDB")
	}
	c := newStory(t, 2000)
	if err := c.Approve(demo.Airline, demo.Carrier); err != nil {
		t.Fatal(err)
	}
	dir := c.Dir
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file, _ := c.Collab.Marshal()
	collabPath := write("story.collab.json", file)
	jwksFile := map[string]string{}
	for name, s := range c.Verifiers {
		data, err := json.Marshal(jwksOf(t, s))
		if err != nil {
			t.Fatal(err)
		}
		jwksFile[name] = write(name+".jwks.json", data)
	}
	for _, name := range []string{demo.Airline, demo.Carrier} {
		if err := c.Parties[name].Save(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	mallory, _ := party.Generate("mallory", party.KEMX25519)
	mallory.Save(filepath.Join(dir, "mallory"))

	run := func(args ...string) (int, string) {
		var out, errOut strings.Builder
		code := Run(context.Background(), args, Env{Stdout: &out, Stderr: &errOut})
		return code, out.String() + errOut.String()
	}
	resultPath := filepath.Join(dir, "result.json")
	if code, out := run("worker", "run", collabPath, "--analysis", "stay_by_prefecture", "--tee", "sim", "-o", resultPath); code != ExitPolicy {
		t.Fatalf("worker without --dev: exit %d\n%s", code, out)
	}
	logURL := c.Servers[demo.Airline].URL
	// Only a party of the collaboration may push it.
	airlineID := filepath.Join(dir, demo.Airline)
	if code, out := run("collab", "push", collabPath, "--url", logURL); code != ExitUsage || !strings.Contains(out, "--identity") {
		t.Fatalf("collab push without --identity: exit %d\n%s", code, out)
	}
	outsider, err := party.Generate("outsider", party.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	if err := outsider.Save(filepath.Join(dir, "outsider")); err != nil {
		t.Fatal(err)
	}
	if code, out := run("collab", "push", collabPath, "--url", logURL, "--identity", filepath.Join(dir, "outsider")); code == 0 || !strings.Contains(out, "not an authorized key") {
		t.Fatalf("collab push by a non-party: exit %d\n%s", code, out)
	}
	// The coordinator logs the manifest version and both approvals, once.
	if code, out := run("collab", "push", collabPath, "--url", logURL, "--identity", airlineID); code != 0 || !strings.Contains(out, "3 new log entries") {
		t.Fatalf("collab push: exit %d\n%s", code, out)
	}
	if code, out := run("collab", "push", collabPath, "--url", logURL, "--identity", filepath.Join(dir, demo.Carrier)); code != 0 || !strings.Contains(out, "0 new log entries") {
		t.Fatalf("collab push again: exit %d\n%s", code, out)
	}
	var dropped map[string]json.RawMessage
	json.Unmarshal(file, &dropped)
	dropped["approvals"] = json.RawMessage("[]")
	droppedFile, _ := json.Marshal(dropped)
	if code, out := run("collab", "push", write("dropped.collab.json", droppedFile), "--url", logURL, "--identity", airlineID); code != ExitBadEvidence || !strings.Contains(out, "drops 2 stored approval") {
		t.Errorf("push dropping approvals: exit %d\n%s", code, out)
	}
	logKey := []string{"--log-key", filepath.Join(dir, demo.Airline+"-kbs", "log-key.pub")}
	if code, out := run("worker", "run", collabPath, "--analysis", "stay_by_prefecture", "--tee", "sim", "--dev", "-o", resultPath, "--log", logURL); code != 0 || !strings.Contains(out, "suppressed by the output policy") || !strings.Contains(out, "run start logged at index") {
		t.Fatalf("worker run: exit %d\n%s", code, out)
	}
	// --json: one document on stdout, the run's own numbers.
	var jsonOut, jsonErr strings.Builder
	jsonResult := filepath.Join(dir, "result-json.json")
	if code := Run(context.Background(), []string{"worker", "run", collabPath, "--analysis", "stay_by_prefecture", "--tee", "sim", "--dev", "-o", jsonResult, "--log", logURL, "--json"}, Env{Stdout: &jsonOut, Stderr: &jsonErr}); code != 0 {
		t.Fatalf("worker run --json: exit %d\n%s", code, jsonErr.String())
	}
	var report workerRunReport
	dec := json.NewDecoder(strings.NewReader(jsonOut.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&report); err != nil || len(report.RunID) != 32 || report.Rows == 0 || report.Result != jsonResult || report.RunStartIndex == nil || !strings.HasSuffix(report.Receipt, ".receipt.json") {
		t.Errorf("worker run --json: %+v, %v\n%s", report, err, jsonOut.String())
	}
	// The log role keeps what it logged: the result bundle and the receipt,
	// proofs embedded, by the SHA-256 of their payloads.
	for _, kept := range []struct{ path, route string }{{resultPath, "results"}, {filepath.Join(dir, "result.receipt.json"), "receipts"}} {
		local, err := os.ReadFile(kept.path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := result.ParseFile(local)
		if err != nil {
			t.Fatal(err)
		}
		code, body := httpGet(t, logURL+"/v1/cleanroom/"+kept.route+"/"+result.DigestHex(f.Envelope.Payload))
		if code != http.StatusOK || !bytes.Equal(bytes.TrimSpace([]byte(body)), bytes.TrimSpace(local)) {
			t.Errorf("GET the kept %s: %d, and it differs from the worker's file:\n%s", kept.route, code, body)
		}
	}
	if code, _ := httpGet(t, logURL+"/v1/cleanroom/results/"+strings.Repeat("0", 64)); code != http.StatusNotFound {
		t.Errorf("GET an unknown result: %d, want 404", code)
	}
	if code, _ := httpGet(t, logURL+"/v1/cleanroom/results/..%2fkbs.db"); code != http.StatusBadRequest {
		t.Errorf("GET a result by a path that is no digest: %d, want 400", code)
	}
	if resp, err := http.Get(logURL + "/metrics"); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `kura_runs_total{outcome="completed"} 2`) {
			t.Errorf("/metrics does not count the two completed runs")
		}
	}
	receiptPath := filepath.Join(dir, "result.receipt.json")
	// The carrier trusts the manifest's verifier list, which it approved.
	open := append([]string{"result", "open", resultPath, "--identity", filepath.Join(dir, demo.Carrier), "--dev"}, logKey...)
	if code, out := run(open...); code != 0 || !strings.Contains(out, "home_prefecture") || !strings.Contains(out, "suppressed by the output policy") ||
		!strings.Contains(out, "in transparency log") || !strings.Contains(out, `signed by verifier "verifier-a" of the manifest's list`) {
		t.Fatalf("result open: exit %d\n%s", code, out)
	}
	checkResultFormats(t, dir, run, open)
	verify := append([]string{"receipt", "verify", receiptPath, "--result", resultPath, "--dev", "--identity", filepath.Join(dir, demo.Airline)}, logKey...)
	if code, out := run(verify...); code != 0 || !strings.Contains(out, "completed") || !strings.Contains(out, "wiped  flights") {
		t.Fatalf("receipt verify: exit %d\n%s", code, out)
	}
	// --trust-jwks overrides the list: the listed verifier named by hand
	// is accepted, another verifier is refused with its key named.
	if code, out := run(append(append([]string{}, open...), "--trust-jwks", jwksFile[demo.ListedVerifier])...); code != 0 || !strings.Contains(out, "a verifier you named") {
		t.Errorf("--trust-jwks of the listed verifier: exit %d\n%s", code, out)
	}
	if code, out := run(append(append([]string{}, verify...), "--trust-jwks", jwksFile[demo.OtherVerifier])...); code != ExitBadEvidence || !strings.Contains(out, "not a trusted key") {
		t.Errorf("--trust-jwks of another verifier: exit %d\n%s", code, out)
	}

	// Not a receiver; not a party; no trust; no dev mode; a flipped byte.
	if code, out := run("result", "open", resultPath, "--identity", filepath.Join(dir, "mallory"), "--dev", "--trust-jwks", jwksFile[demo.ListedVerifier]); code != ExitWrongKey {
		t.Errorf("non-receiver: exit %d\n%s", code, out)
	}
	if code, out := run("result", "open", resultPath, "--identity", filepath.Join(dir, "mallory"), "--dev"); code != ExitBadEvidence || !strings.Contains(out, "not one you approved") {
		t.Errorf("the verifier list for a party that did not approve it: exit %d\n%s", code, out)
	}
	if code, out := run("receipt", "verify", receiptPath, "--dev"); code != ExitUsage || !strings.Contains(out, "--identity") {
		t.Errorf("no trusted verifier: exit %d\n%s", code, out)
	}
	noDev := append([]string{"result", "open", resultPath, "--identity", filepath.Join(dir, demo.Carrier)}, logKey...)
	if code, out := run(noDev...); code != ExitBadEvidence || !strings.Contains(out, "INSECURE") {
		t.Errorf("sim result outside dev mode: exit %d\n%s", code, out)
	}
	// The log proof is checked: another log's key, or a proof for another
	// entry, is refused.
	otherKey := append(append([]string(nil), open[:len(open)-1]...), filepath.Join(dir, demo.Carrier+"-kbs", "log-key.pub"))
	if code, out := run(otherKey...); code != ExitBadEvidence || !strings.Contains(out, "log proof") {
		t.Errorf("proof against another log's key: exit %d\n%s", code, out)
	}
	data, _ := os.ReadFile(resultPath)
	receipt, _ := os.ReadFile(receiptPath)
	var rf, bf map[string]json.RawMessage
	json.Unmarshal(receipt, &rf)
	json.Unmarshal(data, &bf)
	bf["log_proof"] = rf["log_proof"]
	swapped, _ := json.Marshal(bf)
	write("swapped.json", swapped)
	swappedOpen := append([]string{"result", "open", filepath.Join(dir, "swapped.json")}, open[3:]...)
	if code, out := run(swappedOpen...); code != ExitBadEvidence || !strings.Contains(out, "log proof is for a receipt entry") {
		t.Errorf("receipt's proof on the result: exit %d\n%s", code, out)
	}
	tampered := strings.Replace(string(data), `"payload": "ey`, `"payload": "ez`, 1)
	if tampered == string(data) {
		t.Fatal("could not tamper with the bundle")
	}
	write("result.json", []byte(tampered))
	if code, out := run(open...); code != ExitBadEvidence {
		t.Errorf("tampered bundle: exit %d\n%s", code, out)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
