package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/cmd/kura/internal/demo"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/store"
)

// jsonCase is one command run with --json: it must exit with code and
// print on stdout exactly one JSON document that decodes, refusing
// unknown fields, into the type its help documents (into), which check
// then examines. Cases run in order: a later one may use an earlier one's
// files and decoded output.
type jsonCase struct {
	name  string
	args  []string
	code  int
	into  any
	check func(t *testing.T)
}

func runJSONCases(t *testing.T, env Env, cases []jsonCase) {
	t.Helper()
	for _, c := range cases {
		var stdout, stderr strings.Builder
		env.Stdout, env.Stderr = &stdout, &stderr
		code := Run(context.Background(), append(append([]string{}, c.args...), "--json"), env)
		if code != c.code {
			t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", c.name, code, c.code, stdout.String(), stderr.String())
		}
		dec := json.NewDecoder(strings.NewReader(stdout.String()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(c.into); err != nil {
			t.Fatalf("%s: stdout does not decode into %T: %v\n%s", c.name, c.into, err, stdout.String())
		}
		if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: stdout holds more than one JSON document (%v)\n%s", c.name, err, stdout.String())
		}
		if c.check != nil {
			t.Run(c.name, c.check)
		}
	}
}

// TestJSONOutput runs the offline commands with --json on inputs the CLI
// itself made: parties, sealed data, time-locked files, a local log.
func TestJSONOutput(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	write := func(name, text string) string {
		if err := os.WriteFile(p(name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p(name)
	}
	csv := write("visits.csv", "id,n\n1,2\n3,4\n")
	note := write("will.txt", "Everything to the cat.\n")
	entry := write("release.json", `{"kind":"key_release","time":"2026-05-01T10:00:00Z","decision":"released","resource":"owner-a/key/dataset-1","reason":"policy allowed","tee":"snp","measurement":"aabb","broker_seq":1}`)
	noInput := write("input.json", `{}`)
	allowAll := write("allow.rego", "package kura.release\n\nallow := true\n\ndeny contains \"never\" if { false }\n")
	if err := os.MkdirAll(p("kbs"), 0o700); err != nil {
		t.Fatal(err)
	}

	var (
		ver      versionInfo
		alice    createdParty
		card     shownCard
		sealed   sealedDataset
		opened   openedDataset
		tl       sealedTimelock
		inspect  inspectedTimelock
		tlOK     timelockVerification
		tlBad    timelockVerification
		logKey   logKeyFiles
		otherKey logKeyFiles
		appended appendedEntry
		shown    shownEntry
		verified auditVerification
		refused  auditVerification
		admin    adminKeyFile
		denied   keybroker.Decision
		allowed  keybroker.Decision
		rotated  kekRotation
	)
	cases := []jsonCase{
		{"version", []string{"version"}, ExitOK, &ver, func(t *testing.T) {
			if ver.Version != Version || ver.Go == "" || ver.DuckDB == "" {
				t.Errorf("%+v", ver)
			}
		}},
		{"party init", []string{"party", "init", "alice", "-o", p("alice")}, ExitOK, &alice, func(t *testing.T) {
			if alice.Name != "alice" || len(alice.Fingerprint) != 64 || alice.KEM != "x25519" ||
				alice.Card != p("alice/card.json") || alice.Identity != filepath.Join(p("alice"), party.IdentityFile) {
				t.Errorf("%+v", alice)
			}
			for _, f := range []string{alice.Card, alice.Identity} {
				if _, err := os.Stat(f); err != nil {
					t.Error(err)
				}
			}
		}},
		{"party show", []string{"party", "show", p("alice/card.json")}, ExitOK, &card, func(t *testing.T) {
			if card.Name != "alice" || card.Fingerprint != alice.Fingerprint || card.SigningKey != "ed25519" ||
				card.ReceivingKey != "x25519" || card.KEMID != 0x20 || card.CreatedAt.IsZero() {
				t.Errorf("%+v", card)
			}
		}},
		{"data seal", []string{"data", "seal", csv, "-o", p("visits.kura")}, ExitOK, &sealed, func(t *testing.T) {
			digest, size, err := dataset.FileSHA256(p("visits.kura"))
			if err != nil {
				t.Fatal(err)
			}
			if sealed.DatasetID != "visits" || sealed.Rows != 2 || sealed.Output != p("visits.kura") || sealed.Input != csv ||
				sealed.KeyFile != p("visits.kura.key") || !sealed.KeyCreated || sealed.SealedSHA256 != digest ||
				sealed.SealedSize != size || sealed.PlaintextSize <= 0 || sealed.Format != "parquet" || len(sealed.KeyID) == 0 {
				t.Errorf("%+v (file: sha256 %s, %d bytes)", sealed, digest, size)
			}
			var schema struct{ Columns []struct{ Name string } }
			if err := json.Unmarshal(sealed.Schema, &schema); err != nil || len(schema.Columns) != 2 || schema.Columns[0].Name != "id" {
				t.Errorf("schema %s: %v", sealed.Schema, err)
			}
		}},
		{"data open", []string{"data", "open", p("visits.kura"), "--key-file", p("visits.kura.key"), "-o", p("visits.parquet")}, ExitOK, &opened, func(t *testing.T) {
			if opened.DatasetID != "visits" || opened.Output != p("visits.parquet") || opened.KeyID != sealed.KeyID || opened.PlaintextSize != sealed.PlaintextSize {
				t.Errorf("%+v", opened)
			}
		}},
		// Quicknet's chain information is pinned: sealing needs no network.
		{"timelock seal", []string{"timelock", "seal", note, "-o", p("will.kura"), "--until", "48h", "--to", p("alice/card.json")}, ExitOK, &tl, func(t *testing.T) {
			digest, _, _ := dataset.FileSHA256(p("will.kura"))
			if tl.Output != p("will.kura") || tl.Registration != p("will.kura.registration.json") || tl.Proof != "" ||
				tl.SealedSHA256 != digest || tl.Round == 0 || tl.ReleaseTime.IsZero() || tl.Format != "kura-timelock-v1" ||
				len(tl.Recipients) != 1 || tl.Recipients[0] != alice.Fingerprint {
				t.Errorf("%+v", tl)
			}
		}},
		{"timelock inspect", []string{"timelock", "inspect", p("will.kura")}, ExitOK, &inspect, func(t *testing.T) {
			if inspect.File != p("will.kura") || inspect.Round != tl.Round || inspect.ChainHash != tl.ChainHash ||
				inspect.ReleaseTime == nil || !inspect.ReleaseTime.Equal(tl.ReleaseTime) || len(inspect.Recipients) != 1 || inspect.HeaderSize == 0 {
				t.Errorf("%+v", inspect)
			}
		}},
		{"timelock verify", []string{"timelock", "verify", p("will.kura")}, ExitOK, &tlOK, func(t *testing.T) {
			if !tlOK.OK || !tlOK.FileVerified || tlOK.Error != "" || tlOK.SealedSHA256 != tl.SealedSHA256 || tlOK.Round != tl.Round || tlOK.Logged != nil {
				t.Errorf("%+v", tlOK)
			}
		}},
		{"audit keygen", []string{"audit", "keygen", "--origin", "kura.test/log", "-o", p("log.key")}, ExitOK, &logKey, func(t *testing.T) {
			if logKey.PrivateKeyFile != p("log.key") || logKey.VerifierKeyFile != p("log.key.pub") || !strings.HasPrefix(logKey.VerifierKey, "kura.test/log+") {
				t.Errorf("%+v", logKey)
			}
		}},
		{"audit keygen, another", []string{"audit", "keygen", "--origin", "kura.test/log", "-o", p("other.key")}, ExitOK, &otherKey, nil},
		{"audit append", []string{"audit", "append", "--log", p("log"), "--signer", p("log.key"), entry}, ExitOK, &appended, func(t *testing.T) {
			if appended != (appendedEntry{Log: p("log"), Index: 0}) {
				t.Errorf("%+v", appended)
			}
		}},
		{"audit show", []string{"audit", "show", "--log", p("log"), "--key", p("log.key.pub"), "--proof-out", p("entry0.proof"), "0"}, ExitOK, &shown, func(t *testing.T) {
			var e struct{ Kind, Resource string }
			if err := json.Unmarshal(shown.Entry, &e); err != nil || e.Kind != "key_release" || e.Resource != "owner-a/key/dataset-1" {
				t.Errorf("entry %s: %v", shown.Entry, err)
			}
			if shown.Index != 0 || shown.LogSize != 1 || shown.ProofFile != p("entry0.proof") {
				t.Errorf("%+v", shown)
			}
		}},
		{"audit verify", []string{"audit", "verify", "--log", p("log"), "--key", p("log.key.pub"), "--state", p("state"), "--full", "--index", "0", "--proof", p("entry0.proof")}, ExitOK, &verified, func(t *testing.T) {
			v := verified
			if !v.OK || v.Error != "" || v.Size != 1 || len(v.Root) != 64 || !v.SignatureVerified || v.Consistency != "first_use" || v.State != p("state") ||
				len(v.Included) != 1 || v.ProofsVerified != 1 || !v.FullAudit || v.Witnesses.Checked || v.Origin != "kura.test/log" {
				t.Errorf("%+v", v)
			}
		}},
		{"audit verify, wrong key", []string{"audit", "verify", "--log", p("log"), "--key", p("other.key.pub"), "--no-state"}, ExitAuditFailed, &refused, func(t *testing.T) {
			if refused.OK || !strings.Contains(refused.Error, "signature") || refused.FullAudit {
				t.Errorf("%+v", refused)
			}
		}},
		{"kbs admin-key", []string{"kbs", "admin-key", "-o", p("owner.pem"), "--name", "owner"}, ExitOK, &admin, func(t *testing.T) {
			if admin.PrivateKeyFile != p("owner.pem") || !strings.HasPrefix(admin.AuthorizedKeyLine, "ed25519 ") || !strings.Contains(admin.AuthorizedKeyLine, " owner") {
				t.Errorf("%+v", admin)
			}
		}},
		{"kbs rotate-kek", []string{"kbs", "rotate-kek", "--data", p("kbs"), "--new-kek-file", p("kbs/kek2")}, ExitOK, &rotated, func(t *testing.T) {
			if rotated.Rewrapped != 0 || rotated.FromKEK == "" || rotated.ToKEK == "" || rotated.FromKEK == rotated.ToKEK {
				t.Errorf("%+v", rotated)
			}
		}},
		// A denial prints the decision, and still exits 5.
		{"policy eval, denied", []string{"policy", "eval", "--input", noInput}, ExitPolicy, &denied, func(t *testing.T) {
			if denied.Allow || len(denied.Deny) == 0 || !strings.Contains(denied.Deny[0], "no attestation token") || denied.PolicyID == "" {
				t.Errorf("%+v", denied)
			}
		}},
		{"policy eval, allowed", []string{"policy", "eval", "--input", noInput, "--policy", allowAll}, ExitOK, &allowed, func(t *testing.T) {
			if !allowed.Allow || allowed.Deny == nil || len(allowed.Deny) != 0 {
				t.Errorf("%+v", allowed)
			}
		}},
	}
	// A modified time-locked file fails verification: the report, with the
	// reason, and exit 6.
	tamper := jsonCase{"timelock verify, modified", []string{"timelock", "verify", p("will.kura")}, ExitDataAuth, &tlBad, func(t *testing.T) {
		if tlBad.OK || tlBad.FileVerified || !strings.Contains(tlBad.Error, "modified") || tlBad.SealedSHA256 != tl.SealedSHA256 {
			t.Errorf("%+v", tlBad)
		}
	}}
	env := Env{Getenv: func(k string) string { return map[string]string{"HOME": dir}[k] }}
	runJSONCases(t, env, cases)
	data, err := os.ReadFile(p("will.kura"))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	if err := os.WriteFile(p("will.kura"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	runJSONCases(t, env, []jsonCase{tamper})
}

// TestJSONOutputServer runs the owner's key broker commands with --json
// against a kura server over TLS.
func TestJSONOutputServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	s := startTLSServer(t)
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	if err := os.WriteFile(p("value"), []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("visits.csv"), []byte("id,n\n1,2\n3,4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("policy.rego"), []byte(keybroker.DefaultReleasePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	// The party named like the admin key owns its repository.
	var owner createdParty
	var sealed sealedDataset
	runJSONCases(t, Env{}, []jsonCase{
		{"party init", []string{"party", "init", "owner", "-o", p("owner")}, ExitOK, &owner, nil},
		{"data seal", []string{"data", "seal", p("visits.csv"), "-o", p("visits.kura")}, ExitOK, &sealed, nil},
	})
	admin := func(args ...string) []string {
		return append(args, "--url", s.url, "--ca", s.ca, "--admin-key", s.adminKey)
	}
	var (
		put, rm    secretVersion
		list       []keybroker.Meta
		setPolicy  storedPolicy
		showPolicy keybroker.PolicyResponse
		registered registeredDataset
		tl         sealedTimelock
		tlOK       timelockVerification
	)
	runJSONCases(t, Env{}, []jsonCase{
		{"secret put", admin("secret", "put", "owner/key/a", "--value-file", p("value"), "--metadata", "purpose=test"), ExitOK, &put, func(t *testing.T) {
			if put != (secretVersion{Path: "owner/key/a", Version: 1}) {
				t.Errorf("%+v", put)
			}
		}},
		{"secret ls", admin("secret", "ls", "owner/"), ExitOK, &list, func(t *testing.T) {
			if len(list) != 1 || list[0].Path != "owner/key/a" || list[0].Version != 1 || list[0].Metadata["purpose"] != "test" || list[0].CreatedBy != "admin:owner" {
				t.Errorf("%+v", list)
			}
		}},
		{"secret ls, none", admin("secret", "ls", "owner/nothing/"), ExitOK, &list, func(t *testing.T) {
			if list == nil || len(list) != 0 {
				t.Errorf("%#v, want []", list)
			}
		}},
		{"secret policy set", admin("secret", "policy", "repo/owner", p("policy.rego")), ExitOK, &setPolicy, func(t *testing.T) {
			if setPolicy.Scope != "repo/owner" || setPolicy.Version != 1 || setPolicy.LogIndex == nil {
				t.Errorf("%+v", setPolicy)
			}
		}},
		{"secret policy show", admin("secret", "policy", "repo/owner"), ExitOK, &showPolicy, func(t *testing.T) {
			if showPolicy.Scope != "repo/owner" || showPolicy.Version != 1 || showPolicy.Rego != keybroker.DefaultReleasePolicy || showPolicy.CreatedBy != "admin:owner" {
				t.Errorf("scope %s, version %d, by %s; the Rego stored: %v", showPolicy.Scope, showPolicy.Version, showPolicy.CreatedBy, showPolicy.Rego == keybroker.DefaultReleasePolicy)
			}
		}},
		{"secret rm", admin("secret", "rm", "owner/key/a"), ExitOK, &rm, func(t *testing.T) {
			if rm != (secretVersion{Path: "owner/key/a", Version: 2}) {
				t.Errorf("%+v", rm)
			}
		}},
		{"data register", admin("data", "register", p("visits.kura"), "--key-file", p("visits.kura.key"), "--identity", p("owner")), ExitOK, &registered, func(t *testing.T) {
			r := registered
			if r.DatasetID != "visits" || r.Owner != "owner" || r.Descriptor != p("visits.kura.descriptor.json") || r.SealedSHA256 != sealed.SealedSHA256 ||
				r.SealedSize != sealed.SealedSize || r.KeyID != sealed.KeyID || r.KeyBroker.URL != s.url || r.KeyBroker.Resource != "owner/dataset-key/visits" || r.KeyBroker.Version != 1 {
				t.Errorf("%+v", r)
			}
			if _, err := os.Stat(r.Descriptor); err != nil {
				t.Error(err)
			}
		}},
		{"timelock seal --log", []string{"timelock", "seal", p("value"), "-o", p("value.tle"), "--until", "48h", "--log", s.url, "--ca", s.ca}, ExitOK, &tl, func(t *testing.T) {
			if tl.Proof != p("value.tle.registration.proof.json") || tl.Format != "tlock" || len(tl.Recipients) != 0 {
				t.Errorf("%+v", tl)
			}
		}},
		{"timelock verify --log-key", []string{"timelock", "verify", p("value.tle"), "--log-key", s.logKey}, ExitOK, &tlOK, func(t *testing.T) {
			l := tlOK.Logged
			if !tlOK.OK || !tlOK.FileVerified || l == nil || l.Proof != p("value.tle.registration.proof.json") || !l.BeforeRelease || l.LoggedAt.IsZero() || l.Origin == "" {
				t.Errorf("%+v, logged %+v", tlOK, l)
			}
		}},
	})
}

// TestJSONOutputCleanRoom runs receipt verify and result fetch with --json
// on the outputs of a clean-room run; result fetch asks a stand-in
// coordinator that serves the run and the files the log kept.
func TestJSONOutputCleanRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two key brokers and runs DuckDB")
	}
	c := newStory(t, 20)
	if err := c.Approve(demo.Airline, demo.Carrier); err != nil {
		t.Fatal(err)
	}
	o, err := c.Run(context.Background(), "stay_by_prefecture")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	if err := writeEnvelopeFile(p("result.json"), o.Result); err != nil {
		t.Fatal(err)
	}
	if err := writeEnvelopeFile(p("result.receipt.json"), o.Receipt); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"listed": demo.ListedVerifier, "other": demo.OtherVerifier} {
		data, err := json.Marshal(jwksOf(t, c.Verifiers[v]))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p(name+".jwks.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run, err := result.CheckSigned(o.Result)
	if err != nil {
		t.Fatal(err)
	}
	resultDigest, receiptDigest := result.DigestHex(o.Result.Envelope.Payload), result.DigestHex(o.Receipt.Envelope.Payload)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != run.RunID {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(coordinator.RunStatus{ID: run.RunID, Collaboration: run.Collaboration, Analysis: run.Analysis,
			State: store.RunCompleted, Attempts: 1, Result: resultDigest, Receipt: receiptDigest})
	})
	mux.HandleFunc("GET /v1/cleanroom/{kind}/{digest}", func(w http.ResponseWriter, r *http.Request) {
		files := map[string]*result.File{"results/" + resultDigest: o.Result, "receipts/" + receiptDigest: o.Receipt}
		f := files[r.PathValue("kind")+"/"+r.PathValue("digest")]
		if f == nil {
			http.NotFound(w, r)
			return
		}
		data, _ := f.Marshal()
		w.Write(data)
	})
	coord := httptest.NewServer(mux)
	defer coord.Close()

	var ok, bad receiptVerification
	var fetched fetchedResult
	runJSONCases(t, Env{}, []jsonCase{
		{"receipt verify", []string{"receipt", "verify", p("result.receipt.json"), "--result", p("result.json"), "--dev", "--trust-jwks", p("listed.jwks.json")}, ExitOK, &ok, func(t *testing.T) {
			if !ok.OK || ok.Error != "" || ok.Receipt != p("result.receipt.json") || ok.Result != p("result.json") || ok.RunID != run.RunID ||
				ok.Collaboration != run.Collaboration || ok.Analysis != "stay_by_prefecture" || ok.Outcome != "completed" || ok.DestroyedAt == nil ||
				ok.ResultDigest != resultDigest || ok.TEE != "sim" || !ok.Insecure || len(ok.Checks) == 0 || len(ok.Destroyed) != 2 || !ok.Destroyed[0].KeyReleased {
				t.Errorf("%+v", ok)
			}
		}},
		// A verifier the receiver does not trust: the report with the
		// reason, and exit 3.
		{"receipt verify, untrusted verifier", []string{"receipt", "verify", p("result.receipt.json"), "--dev", "--trust-jwks", p("other.jwks.json")}, ExitBadEvidence, &bad, func(t *testing.T) {
			if bad.OK || !strings.Contains(bad.Error, "not a trusted key") || bad.RunID != "" || bad.Checks == nil {
				t.Errorf("%+v", bad)
			}
		}},
		{"result fetch", []string{"result", "fetch", run.RunID, "--url", coord.URL, "-o", p("fetched.json")}, ExitOK, &fetched, func(t *testing.T) {
			want := fetchedResult{RunID: run.RunID, Collaboration: run.Collaboration, Analysis: run.Analysis,
				Result:  fetchedFile{Path: p("fetched.json"), PayloadSHA256: resultDigest},
				Receipt: fetchedFile{Path: p("fetched.receipt.json"), PayloadSHA256: receiptDigest}}
			if fetched != want {
				t.Errorf("%+v\nwant %+v", fetched, want)
			}
			for _, f := range []fetchedFile{fetched.Result, fetched.Receipt} {
				got, err := readEnvelopeFile("fetched", f.Path)
				if err != nil || result.DigestHex(got.Envelope.Payload) != f.PayloadSHA256 {
					t.Errorf("%s: %v", f.Path, err)
				}
			}
		}},
	})
}
