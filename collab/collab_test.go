package collab

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.yaml.in/yaml/v3"

	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/party"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// example copies testdata/example to a temporary directory with fresh
// party cards and returns the manifest path and the parties' identities.
func example(t testing.TB) (string, map[string]*party.Identity) {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/example")); err != nil {
		t.Fatal(err)
	}
	ids := map[string]*party.Identity{}
	for _, n := range []string{"airline", "carrier", "analyst"} {
		id, err := party.Generate(n, party.KEMX25519)
		if err != nil {
			t.Fatal(err)
		}
		b, err := id.Card().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "cards", n+".json")
		os.Chmod(p, 0o644)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ids[n] = id
	}
	return filepath.Join(dir, "manifest.yaml"), ids
}

func load(t testing.TB) (*Manifest, map[string]*party.Identity) {
	t.Helper()
	path, ids := example(t)
	m, err := LoadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	return m, ids
}

// clone deep-copies a manifest through JSON.
func clone(t testing.TB, m *Manifest) *Manifest {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var c Manifest
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestExampleRoundTrip(t *testing.T) {
	m, _ := load(t)
	if got := m.Analysis("visitors_by_age").Reads; strings.Join(got, ",") != "passengers,subscribers" {
		t.Fatalf("derived reads %q", got)
	}
	c, err := New(m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseCollaboration(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Verify(); err != nil {
		t.Fatal(err)
	}
	if c2.Current().Hash() != m.Hash() || len(m.Hash()) != 64 {
		t.Fatalf("hash changed in the round trip")
	}
	b2, _ := c2.Marshal()
	if !bytes.Equal(b, b2) {
		t.Fatal("marshal → parse → marshal is not byte-identical")
	}
	// The stored manifest parses as a manifest too (JSON is YAML).
	mj, _ := json.Marshal(m)
	m2, err := ParseManifest(mj)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Hash() != m.Hash() {
		t.Fatal("JSON manifest hashes differently")
	}
}

// reverseKeys reverses the order of every YAML mapping's keys.
func reverseKeys(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		var pairs [][2]*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			pairs = append(pairs, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
		}
		n.Content = n.Content[:0]
		for i := len(pairs) - 1; i >= 0; i-- {
			n.Content = append(n.Content, pairs[i][0], pairs[i][1])
		}
	}
	for _, c := range n.Content {
		reverseKeys(c)
	}
}

func TestHashStable(t *testing.T) {
	m, _ := load(t)
	mj, _ := json.MarshalIndent(m, "   ", "\t")
	var doc yaml.Node
	if err := yaml.Unmarshal(mj, &doc); err != nil {
		t.Fatal(err)
	}
	reverseKeys(&doc)
	var flowless func(*yaml.Node)
	flowless = func(n *yaml.Node) {
		n.Style = 0
		for _, c := range n.Content {
			flowless(c)
		}
	}
	flowless(&doc)
	y, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParseManifest(y)
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	if m2.Hash() != m.Hash() {
		t.Fatal("hash changed under key reordering and re-indentation")
	}

	changes := map[string]func(m *Manifest){
		"description":   func(m *Manifest) { m.Description += "." },
		"sql space":     func(m *Manifest) { m.Analysis("visitors_sql").SQL += " " },
		"policy":        func(m *Manifest) { m.Dataset("towers").OutputPolicy.MinDistinctIdentities++ },
		"filter value":  func(m *Manifest) { m.Analysis("visitors_by_age").Aggregate.Where[0].Value = "NRT" },
		"measurement":   func(m *Manifest) { m.Worker.ReferenceValues.Measurements[0].Value = strings.Repeat("00", 48) },
		"card time":     func(m *Manifest) { m.Parties[0].Card.CreatedAt = m.Parties[0].Card.CreatedAt.Add(time.Second) },
		"receiver drop": func(m *Manifest) { m.Receivers = m.Receivers[:2] },
	}
	for name, f := range changes {
		c := clone(t, m)
		f(c)
		if c.Hash() == m.Hash() {
			t.Errorf("%s: hash did not change", name)
		}
	}
}

func TestAnalysisHash(t *testing.T) {
	m, _ := load(t)
	h1, err := m.AnalysisHash("visitors_sql")
	if err != nil {
		t.Fatal(err)
	}
	c := clone(t, m)
	c.Analysis("visitors_sql").SQL = strings.Replace(c.Analysis("visitors_sql").SQL, "FROM", "FROM ", 1)
	h2, _ := c.AnalysisHash("visitors_sql")
	if h1 == h2 {
		t.Fatal("custom SQL is not hashed verbatim")
	}
	if _, err := m.AnalysisHash("nope"); !errors.Is(err, ErrInvalidManifest) {
		t.Fatal(err)
	}
}

func TestEffectivePolicy(t *testing.T) {
	m, _ := load(t)
	p, err := m.EffectivePolicy("visitors_by_age")
	if err != nil {
		t.Fatal(err)
	}
	if p.MinDistinctIdentities != 10 || p.MinSetBy.Owner != "airline" {
		t.Errorf("min %d by %v", p.MinDistinctIdentities, p.MinSetBy)
	}
	if funcList(p.AllowedAggregates) != "count, count_distinct_identities, sum, avg" {
		t.Errorf("aggregates %v", p.AllowedAggregates)
	}
	if p.excludedBy("max") != `airline (dataset "passengers")` {
		t.Errorf("max excluded by %q", p.excludedBy("max"))
	}
	want := "passengers.age_band passengers.destination passengers.fare subscribers.visited_naha subscribers.plan"
	if strings.Join(p.AllowedColumns, " ") != want {
		t.Errorf("columns %v", p.AllowedColumns)
	}
	// The carrier raising its minimum above the airline's takes over.
	m.Dataset("subscribers").OutputPolicy.MinDistinctIdentities = 50
	p, _ = m.EffectivePolicy("visitors_by_age")
	if p.MinDistinctIdentities != 50 || p.MinSetBy.Dataset != "subscribers" {
		t.Errorf("min %d by %v", p.MinDistinctIdentities, p.MinSetBy)
	}
	if _, err := m.EffectivePolicy("nope"); !errors.Is(err, ErrInvalidManifest) {
		t.Fatal(err)
	}
}

func TestValidateErrors(t *testing.T) {
	base, _ := load(t)
	tests := []struct {
		name string
		f    func(m *Manifest)
		want string
	}{
		{"format", func(m *Manifest) { m.Format = 3 }, "kura_manifest: format 3, want 2"},
		{"no verifiers", func(m *Manifest) { m.Verifiers = nil }, "verifiers: none: list the attestation verifiers"},
		{"negative max_runs", func(m *Manifest) { m.Analyses[0].MaxRuns = -1 }, "analyses[0].max_runs: -1"},
		{"expires not UTC", func(m *Manifest) { m.Expires = "2027-06-30T09:00:00+09:00" }, "expires: \"2027-06-30T09:00:00+09:00\": want an RFC 3339 time in UTC"},
		{"expires not a time", func(m *Manifest) { m.Expires = "next june" }, "expires: \"next june\""},
		{"verifiers in format 1", func(m *Manifest) { m.Format = 1 }, "verifiers: a verifier list needs kura_manifest: 2"},
		{"too many verifiers", func(m *Manifest) {
			for i := range MaxVerifiers {
				m.Verifiers = append(m.Verifiers, Verifier{Name: fmt.Sprintf("v%d", i), JWKSURL: fmt.Sprintf("https://v%d.example/jwks", i)})
			}
		}, "verifiers: 18 verifiers, at most 16"},
		{"verifier name", func(m *Manifest) { m.Verifiers[0].Name = "Neutral Verifier" }, `verifiers[0].name: "Neutral Verifier"`},
		{"verifier dup name", func(m *Manifest) { m.Verifiers[1].Name = m.Verifiers[0].Name }, `verifiers[1].name: "neutral-verifier" appears twice`},
		{"verifier no keys", func(m *Manifest) { m.Verifiers[0].JWKSURL = "" }, "verifiers[0]: give exactly one of jwks_url, key (PEM) or jwk"},
		{"verifier two keys", func(m *Manifest) { m.Verifiers[1].JWKSURL = "https://x.example/jwks" }, "verifiers[1]: give exactly one of jwks_url, key (PEM) or jwk"},
		{"verifier url", func(m *Manifest) { m.Verifiers[0].URL = "verifier.example" }, `verifiers[0].url: "verifier.example": want an http or https URL`},
		{"verifier jwks url", func(m *Manifest) { m.Verifiers[0].JWKSURL = "file:///etc/jwks" }, `verifiers[0].jwks_url: "file:///etc/jwks"`},
		{"verifier same url", func(m *Manifest) {
			m.Verifiers[1] = Verifier{Name: "again", JWKSURL: m.Verifiers[0].JWKSURL}
		}, `verifiers[1]: same keys as verifier "neutral-verifier"`},
		{"verifier bad pem", func(m *Manifest) { m.Verifiers[1].Key = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" }, "verifiers[1].key:"},
		{"verifier not pem", func(m *Manifest) { m.Verifiers[1].Key = "ecdsa-p256 AAAA" }, "verifiers[1].key: want one PEM PUBLIC KEY block"},
		{"verifier rsa", func(m *Manifest) { m.Verifiers[1].Key = rsaPEM(t) }, "verifiers[1].key: a *rsa.PublicKey, want an ECDSA P-256 or P-384 key"},
		{"verifier private jwk", func(m *Manifest) { m.Verifiers[1] = Verifier{Name: "pinned", JWK: privateJWK(t)} }, "verifiers[1].jwk: not an EC public key"},
		{"verifier bad jwk", func(m *Manifest) { m.Verifiers[1] = Verifier{Name: "pinned", JWK: []byte(`{"kty":"EC"}`)} }, "verifiers[1].jwk:"},
		{"id", func(m *Manifest) { m.ID = "Bad Id" }, `id: "Bad Id"`},
		{"previous", func(m *Manifest) { m.Previous = "abc" }, "previous:"},
		{"no parties", func(m *Manifest) { m.Parties = nil }, "parties: no parties"},
		{"dup party", func(m *Manifest) { m.Parties[1].Name = "airline" }, `parties[1].name: "airline" appears twice`},
		{"card name", func(m *Manifest) { m.Parties[2].Name = "analyst2"; m.Receivers[2] = "analyst2" }, `parties[2].card: the card is for "analyst", the party is "analyst2"`},
		{"tampered card", func(m *Manifest) { m.Parties[0].Card.Name = "mallory" }, "parties[0].card: party: card fingerprint"},
		{"no card", func(m *Manifest) { m.Parties[0].Card = nil }, "parties[0].card: missing"},
		{"same key", func(m *Manifest) { c := *m.Parties[0].Card; c.Name = "carrier"; m.Parties[1].Card = nil; _ = c }, "parties[1].card: missing"},
		{"role", func(m *Manifest) { m.Parties[2].Roles = append(m.Parties[2].Roles, "boss") }, `parties[2].roles[2]: unknown role "boss"`},
		{"no roles", func(m *Manifest) { m.Parties[2].Roles = nil }, "parties[2].roles: no roles"},
		{"dataset id", func(m *Manifest) { m.Datasets[0].ID = "Pass-engers" }, `datasets[0].id: "Pass-engers"`},
		{"dup dataset", func(m *Manifest) { m.Datasets[2].ID = "subscribers" }, `datasets[2].id: "subscribers" appears twice`},
		{"owner missing", func(m *Manifest) { m.Datasets[0].Owner = "nobody" }, `datasets[0].owner: no party "nobody"`},
		{"owner not provider", func(m *Manifest) { m.Datasets[0].Owner = "analyst"; m.Datasets[0].Descriptor.Owner = "analyst" }, `datasets[0].owner: party "analyst" does not have the data_provider role`},
		{"descriptor owner", func(m *Manifest) { m.Datasets[1].Descriptor.Owner = "airline" }, `datasets[1].descriptor.owner: "airline", but the dataset's owner is "carrier"`},
		{"digest", func(m *Manifest) { m.Datasets[1].Descriptor.SealedSHA256 = "ABC" }, "datasets[1].descriptor.sealed_sha256: want 64 lowercase hex"},
		{"same digest", func(m *Manifest) { m.Datasets[1].Descriptor.SealedSHA256 = m.Datasets[0].Descriptor.SealedSHA256 }, `datasets[1].descriptor.sealed_sha256: same sealed file as dataset "passengers"`},
		{"kbs url", func(m *Manifest) { m.Datasets[1].Descriptor.KeyBroker.URL = "kbs" }, `datasets[1].descriptor.key_broker.url: "kbs"`},
		{"kbs resource", func(m *Manifest) { m.Datasets[1].Descriptor.KeyBroker.Resource = "a/b" }, `datasets[1].descriptor.key_broker.resource: "a/b"`},
		{"same resource", func(m *Manifest) { m.Datasets[2].Descriptor.KeyBroker = m.Datasets[1].Descriptor.KeyBroker }, `datasets[2].descriptor.key_broker: same key-broker resource as dataset "subscribers"`},
		{"no schema", func(m *Manifest) { m.Datasets[2].Descriptor.Schema = nil }, "datasets[2].descriptor.schema: missing"},
		{"bad schema", func(m *Manifest) { m.Datasets[2].Descriptor.Schema.Columns[1].Type = "blob" }, `datasets[2].descriptor.schema: invalid schema: column "region": type "blob"`},
		{"min 0", func(m *Manifest) { m.Datasets[1].OutputPolicy.MinDistinctIdentities = 0 }, "datasets[1].output_policy.min_distinct_identities: 0, want at least 1"},
		{"agg unknown", func(m *Manifest) { m.Datasets[0].OutputPolicy.AllowedAggregates[0] = "median" }, `datasets[0].output_policy.allowed_aggregates[0]: unknown function "median"`},
		{"allowed col", func(m *Manifest) { m.Datasets[0].OutputPolicy.AllowedColumns[0] = "shoe" }, `datasets[0].output_policy.allowed_columns[0]: dataset "passengers" has no column "shoe"`},
		{"allowed identity", func(m *Manifest) { m.Datasets[0].OutputPolicy.AllowedColumns[0] = "phone" }, `datasets[0].output_policy.allowed_columns[0]: "phone" is an identity column`},
		{"dup analysis", func(m *Manifest) { m.Analyses[1].ID = "visitors_by_age" }, `analyses[1].id: "visitors_by_age" appears twice`},
		{"kind", func(m *Manifest) { m.Analyses[1].Kind = "python" }, `analyses[1].kind: "python"`},
		{"no aggregate", func(m *Manifest) { m.Analyses[0].Aggregate = nil }, "analyses[0].aggregate: missing"},
		{"from", func(m *Manifest) { m.Analyses[0].Aggregate.From = "nope" }, `analyses[0].aggregate.from: no dataset "nope"`},
		{"join dataset", func(m *Manifest) { m.Analyses[0].Aggregate.Joins[0].Dataset = "nope" }, `analyses[0].aggregate.joins[0].dataset: no dataset "nope"`},
		{"join not join col", func(m *Manifest) { m.Analyses[0].Aggregate.Joins[0].Right = "subscribers.plan" }, `analyses[0].aggregate.joins[0].right: "subscribers.plan" is not declared join: true`},
		{"join column missing", func(m *Manifest) { m.Analyses[0].Aggregate.Joins[0].Left = "passengers.nope" }, `analyses[0].aggregate.joins[0].left: "passengers.nope": dataset "passengers" has no column "nope"`},
		{"group identity", func(m *Manifest) { m.Analyses[0].Aggregate.GroupBy[0] = "passengers.phone" }, `analyses[0].aggregate.group_by[0]: "passengers.phone" is an identity column`},
		{"group not allowed", func(m *Manifest) { m.Analyses[0].Aggregate.GroupBy[0] = "passengers.nationality" }, `analyses[0].aggregate.group_by[0]: "passengers.nationality" is not in the allowed_columns of airline (dataset "passengers")`},
		{"group not in query", func(m *Manifest) { m.Analyses[0].Aggregate.GroupBy[0] = "towers.region" }, `analyses[0].aggregate.group_by[0]: "towers.region": dataset "towers" is not in the query`},
		{"group no dot", func(m *Manifest) { m.Analyses[0].Aggregate.GroupBy[0] = "age_band" }, `analyses[0].aggregate.group_by[0]: "age_band": want dataset.column`},
		{"measure fn disallowed", func(m *Manifest) { m.Analyses[0].Aggregate.Measures[1].Func = AggMax }, `analyses[0].aggregate.measures[1].fn: "max" is not allowed by airline (dataset "passengers")`},
		{"measure fn unknown", func(m *Manifest) { m.Analyses[0].Aggregate.Measures[1].Func = "median" }, `analyses[0].aggregate.measures[1].fn: unknown function "median"`},
		{"measure type", func(m *Manifest) { m.Analyses[0].Aggregate.Measures[1].Column = "passengers.destination" }, `analyses[0].aggregate.measures[1].column: avg of "passengers.destination": the column is string`},
		{"measure join col", func(m *Manifest) { m.Analyses[0].Aggregate.Measures[1].Column = "subscribers.phone" }, `analyses[0].aggregate.measures[1].column: "subscribers.phone" is an identity column`},
		{"distinct dataset", func(m *Manifest) { m.Analyses[0].Aggregate.Measures[0].Dataset = "towers" }, `analyses[0].aggregate.measures[0].dataset: "towers" is not a dataset of the query`},
		{"as dup", func(m *Manifest) { m.Analyses[0].Aggregate.Measures[1].As = "travellers" }, `analyses[0].aggregate.measures[1].as: "travellers" is used twice`},
		{"as ident", func(m *Manifest) { m.Analyses[0].Aggregate.Measures[1].As = "avg fare" }, `analyses[0].aggregate.measures[1].as: "avg fare"`},
		{"as group", func(m *Manifest) { m.Analyses[0].Aggregate.Measures[1].As = "age_band" }, `analyses[0].aggregate.measures[1].as: "age_band" is also a group-by column`},
		{"filter op", func(m *Manifest) { m.Analyses[0].Aggregate.Where[0].Op = "like" }, `analyses[0].aggregate.where[0].op: "like"`},
		{"filter value", func(m *Manifest) { m.Analyses[0].Aggregate.Where[0].Value = []any{"OKA"} }, "analyses[0].aggregate.where[0].value: want a string, number or boolean"},
		{"filter in", func(m *Manifest) { m.Analyses[0].Aggregate.Where[0].Op = "in" }, "analyses[0].aggregate.where[0].value: in takes a list"},
		{"filter type", func(m *Manifest) { m.Analyses[0].Aggregate.Where[1].Value = "yes" }, `analyses[0].aggregate.where[1].value: column "visited_naha" is a bool`},
		{"filter identity", func(m *Manifest) { m.Analyses[0].Aggregate.Where[0].Column = "passengers.phone" }, `analyses[0].aggregate.where[0].column: "passengers.phone" is an identity column`},
		{"reads differ", func(m *Manifest) { m.Analyses[0].Reads = []string{"passengers"} }, `analyses[0].reads: ["passengers"], but the aggregate reads ["passengers" "subscribers"]`},
		{"sql empty", func(m *Manifest) { m.Analyses[1].SQL = " " }, "analyses[1].sql: missing"},
		{"sql reads", func(m *Manifest) { m.Analyses[1].Reads = []string{"passengers", "nope"} }, `analyses[1].reads[1]: no dataset "nope"`},
		{"sql no reads", func(m *Manifest) { m.Analyses[1].Reads = nil }, "analyses[1].reads: missing"},
		{"receiver unknown", func(m *Manifest) { m.Analyses[1].Receivers = []string{"eve"} }, `analyses[1].receivers[0]: no party "eve"`},
		{"receiver role", func(m *Manifest) { m.Parties[2].Roles = []Role{RoleAnalyst} }, `receivers[2]: party "analyst" does not have the result_receiver role`},
		{"no receivers", func(m *Manifest) { m.Receivers = nil }, "analyses[0].receivers: no receivers"},
		{"no measurements", func(m *Manifest) { m.Worker.ReferenceValues.Measurements = nil }, "worker.reference_values.measurements: none"},
		{"measurement hex", func(m *Manifest) { m.Worker.ReferenceValues.Measurements[1].Value = "xyz" }, "worker.reference_values.measurements[1].value: want a hex measurement"},
		{"backend unknown", func(m *Manifest) { m.Analyses[0].Backend = "fhe" }, `analyses[0].backend: "fhe": want tee or mpc`},
		{"mpc sql", func(m *Manifest) { m.Analyses[1].Backend = BackendMPC }, "analyses[1].backend: mpc computes aggregate analyses only"},
		{"mpc no join", func(m *Manifest) { m.Analyses[2].Backend = BackendMPC }, "analyses[2].backend: mpc needs 1 to 7 joins"},
		{"mpc count", func(m *Manifest) {
			m.Analyses[0].Backend = BackendMPC
			m.Analyses[0].Aggregate.Measures[1] = Measure{Func: AggCount, As: "n"}
		}, "analyses[0].aggregate.measures[1].fn: mpc computes count_distinct_identities (distinct matched identifiers), and sum and avg of an int64 column, not count"},
		{"mpc min", func(m *Manifest) {
			mpcSums(m)
			m.Analyses[0].Aggregate.Measures[1] = Measure{Func: AggMin, Column: "subscribers.spend", As: "least"}
		}, "analyses[0].aggregate.measures[1].fn: mpc computes count_distinct_identities (distinct matched identifiers), and sum and avg of an int64 column, not min"},
		{"mpc sum of a double", func(m *Manifest) { m.Analyses[0].Backend = BackendMPC },
			`analyses[0].aggregate.measures[1].column: avg of "passengers.fare" on mpc: the column is double`},
		{"mpc sum no clip", func(m *Manifest) { mpcSums(m); m.Analyses[0].Aggregate.Measures[1].Clip = nil },
			"analyses[0].aggregate.measures[1].clip: missing: sum on mpc needs clip: {min, max}: the sums are decrypted as bounded discrete logarithms, so each value is clamped to a declared range"},
		{"mpc sum double", func(m *Manifest) { mpcSums(m); m.Analyses[0].Aggregate.Measures[2].Column = "subscribers.balance" },
			`analyses[0].aggregate.measures[2].column: avg of "subscribers.balance" on mpc: the column is double; mpc sums integers`},
		{"mpc clip order", func(m *Manifest) { mpcSums(m); m.Analyses[0].Aggregate.Measures[1].Clip = &Clip{Min: 5, Max: -5} },
			"analyses[0].aggregate.measures[1].clip: min 5 is above max -5"},
		{"mpc clip bounds", func(m *Manifest) { mpcSums(m); m.Analyses[0].Aggregate.Measures[2].Clip = &Clip{Min: -1 << 41, Max: 0} },
			"analyses[0].aggregate.measures[2].clip: bounds beyond ±1099511627776"},
		{"mpc clip on a count", func(m *Manifest) { mpcSums(m); m.Analyses[0].Aggregate.Measures[0].Clip = &Clip{Max: 1} },
			"analyses[0].aggregate.measures[0].clip: clip applies only under privacy, or to sum and avg on the mpc backend"},
		{"mpc sum without clip", func(m *Manifest) {
			mpcSums(m)
			m.Analyses[0].Aggregate.GroupBy = nil
			m.Analyses[0].Aggregate.Measures[1].Clip = nil
		}, `analyses[0].aggregate.measures[1].clip: missing: sum on mpc needs clip`},
		{"mpc two dims", func(m *Manifest) {
			m.Analyses[0].Backend = BackendMPC
			m.Analyses[0].Aggregate.Measures = m.Analyses[0].Aggregate.Measures[:1]
			m.Analyses[0].Aggregate.GroupBy = append(m.Analyses[0].Aggregate.GroupBy, "subscribers.plan")
		}, `analyses[0].aggregate.group_by: mpc groups by one owner's columns`},
		{"budget bad", func(m *Manifest) { m.Datasets[0].OutputPolicy.PrivacyBudget = "lots" }, `datasets[0].output_policy.privacy_budget: "lots": want a decimal`},
		{"budget zero", func(m *Manifest) { m.Datasets[0].OutputPolicy.PrivacyBudget = "0" }, `datasets[0].output_policy.privacy_budget: "0": want more than 0`},
		{"budget needs privacy", func(m *Manifest) { m.Datasets[0].OutputPolicy.PrivacyBudget = "2" }, `analyses[0].privacy: missing: dataset "passengers" has a privacy_budget`},
		{"privacy sql", func(m *Manifest) { m.Analyses[1].Privacy = &Privacy{Epsilon: "1"} }, "analyses[1].privacy: needs kind aggregate"},
		{"privacy no clip", func(m *Manifest) { m.Analyses[0].Privacy = &Privacy{Epsilon: "1"} }, "analyses[0].aggregate.measures[1].clip: missing: avg under privacy needs clip"},
		{"privacy epsilon", func(m *Manifest) { m.Analyses[2].Privacy = &Privacy{Epsilon: "101"} }, `analyses[2].privacy.epsilon: "101": want more than 0 and at most 100`},
		{"privacy over budget", func(m *Manifest) {
			m.Datasets[2].OutputPolicy.PrivacyBudget = "0.5"
			m.Analyses[2].Privacy = &Privacy{Epsilon: "1"}
		}, `analyses[2].privacy.epsilon: 1 is above dataset "towers"'s whole privacy_budget 0.5`},
		{"privacy max", func(m *Manifest) {
			m.Analyses[0].Privacy = &Privacy{Epsilon: "1"}
			m.Analyses[0].Aggregate.Measures[1].Clip = &Clip{Min: 0, Max: 10}
			m.Analyses[0].Aggregate.Measures[0] = Measure{Func: AggMin, Column: "passengers.fare", As: "least"}
		}, "analyses[0].aggregate.measures[0].fn: min cannot be released with differential privacy"},
		{"clip order", func(m *Manifest) {
			m.Analyses[0].Privacy = &Privacy{Epsilon: "1"}
			m.Analyses[0].Aggregate.Measures[1].Clip = &Clip{Min: 10, Max: 0}
		}, "analyses[0].aggregate.measures[1].clip: min 10 is above max 0"},
		{"privacy double", func(m *Manifest) {
			m.Analyses[0].Privacy = &Privacy{Epsilon: "1"}
			m.Analyses[0].Aggregate.Measures[1].Clip = &Clip{Min: 0, Max: 10}
		}, `analyses[0].aggregate.measures[1].column: avg of "passengers.fare" under privacy: the column is double`},
		{"mechanism unknown", func(m *Manifest) {
			m.Analyses[2].Privacy = &Privacy{Epsilon: "1", Mechanism: "exponential"}
		}, `analyses[2].privacy.mechanism: "exponential": want laplace or gaussian`},
		{"gaussian without delta", func(m *Manifest) {
			m.Analyses[2].Privacy = &Privacy{Epsilon: "1", Mechanism: MechanismGaussian}
		}, "analyses[2].privacy.delta: missing: the Gaussian mechanism needs delta"},
		{"gaussian delta too large", func(m *Manifest) {
			m.Analyses[2].Privacy = &Privacy{Epsilon: "1", Mechanism: MechanismGaussian, Delta: "0.01"}
		}, `analyses[2].privacy.delta: "0.01": want a decimal in (0, 0.001]`},
		{"gaussian delta not decimal", func(m *Manifest) {
			m.Analyses[2].Privacy = &Privacy{Epsilon: "1", Mechanism: MechanismGaussian, Delta: "1e-6"}
		}, `analyses[2].privacy.delta: "1e-6": want a decimal`},
		{"laplace with delta", func(m *Manifest) {
			m.Analyses[2].Privacy = &Privacy{Epsilon: "1", Delta: "0.000001"}
		}, "analyses[2].privacy.delta: the Laplace mechanism takes no delta"},
		{"mpc two joins, one owner", func(m *Manifest) {
			m.Analyses[0].Backend = BackendMPC
			m.Analyses[0].Aggregate.Measures = m.Analyses[0].Aggregate.Measures[:1]
			m.Analyses[0].Reads = nil
			m.Analyses[0].Aggregate.Joins = append(m.Analyses[0].Aggregate.Joins, Join{Dataset: "towers", Left: "subscribers.phone", Right: "towers.region"})
		}, `mpc intersects different owners' data`},
		{"mpc two joins, sums", func(m *Manifest) {
			mpcSums(m)
			m.Analyses[0].Reads = nil
			m.Analyses[0].Aggregate.Joins = append(m.Analyses[0].Aggregate.Joins, Join{Dataset: "towers", Left: "subscribers.phone", Right: "towers.region"})
		}, "mpc among more than two owners computes count_distinct_identities only"},
		{"clip without privacy", func(m *Manifest) { m.Analyses[0].Aggregate.Measures[1].Clip = &Clip{Max: 10} }, "analyses[0].aggregate.measures[1].clip: clip applies only under privacy"},
		{"clip min overflow", func(m *Manifest) {
			m.Analyses[0].Privacy = &Privacy{Epsilon: "1"}
			mpcSums(m)
			m.Analyses[0].Aggregate.Measures[1].Clip = &Clip{Min: -1 << 63, Max: 0}
		}, "analyses[0].aggregate.measures[1].clip: bounds beyond ±1099511627776"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := clone(t, base)
			tt.f(m)
			err := m.Validate()
			if !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("Validate = %v, want ErrInvalidManifest", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tt.want)
			}
		})
	}
	if err := clone(t, base).Validate(); err != nil {
		t.Fatal(err)
	}
	// The same analysis, on the cryptographic backend and with differential
	// privacy within the owners' budgets, is valid.
	m := clone(t, base)
	m.Datasets[0].OutputPolicy.PrivacyBudget = "3"
	m.Datasets[1].OutputPolicy.PrivacyBudget = "1.5"
	a := &m.Analyses[0]
	a.Backend, a.Privacy = BackendMPC, &Privacy{Epsilon: "0.5"}
	a.Aggregate.Measures = a.Aggregate.Measures[:1]
	m.Analyses = slices.Delete(m.Analyses, 1, 2) // custom SQL cannot be released with privacy
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if e, ok := a.Epsilon(); !ok || e.String() != "0.5" {
		t.Fatalf("Epsilon = %v, %v", e, ok)
	}
	if b, ok := m.Datasets[1].Budget(); !ok || b.String() != "1.5" {
		t.Fatalf("Budget = %v, %v", b, ok)
	}
	a.Privacy = &Privacy{Epsilon: "0.5", Mechanism: MechanismGaussian, Delta: "0.000001"}
	if err := m.Validate(); err != nil {
		t.Fatalf("a Gaussian release: %v", err)
	}
	// On the cryptographic backend, sums and averages of the carrier's
	// int64 column with clip are valid, with or without group-by columns
	// and privacy; a negative min is allowed.
	for _, f := range []func(*Manifest){
		mpcSums,
		func(m *Manifest) { mpcSums(m); m.Analyses[0].Aggregate.GroupBy = nil },
		func(m *Manifest) {
			mpcSums(m)
			m.Analyses[0].Privacy = &Privacy{Epsilon: "1"}
		},
	} {
		m := clone(t, base)
		f(m)
		if err := m.Validate(); err != nil {
			t.Error(err)
		}
	}
}

// mpcSums makes m's first analysis one the cryptographic backend computes
// with sums: the carrier's subscribers gain an int64 column spend (and a
// double column balance), and the analysis counts travellers, sums and
// averages spend by the airline's age band.
func mpcSums(m *Manifest) {
	s := m.Dataset("subscribers").Descriptor.Schema
	s.Columns = append(s.Columns, table.Column{Name: "spend", Type: table.Int64}, table.Column{Name: "balance", Type: table.Double})
	a := &m.Analyses[0]
	a.Backend = BackendMPC
	a.Aggregate.Measures = []Measure{
		{Func: AggCountDistinctIdentities, Dataset: "passengers", As: "travellers"},
		{Func: AggSum, Column: "subscribers.spend", As: "spend", Clip: &Clip{Min: -5, Max: 100}},
		{Func: AggAvg, Column: "subscribers.spend", As: "avg_spend", Clip: &Clip{Min: -5, Max: 100}},
	}
}

func TestSameSigningKey(t *testing.T) {
	m, _ := load(t)
	id, _ := party.Generate("carrier", party.KEMX25519)
	_ = id
	m.Parties[1].Card = m.Parties[0].Card
	err := m.Validate()
	if err == nil || !strings.Contains(err.Error(), "parties[1].card") {
		t.Fatal(err)
	}
}

func TestParseErrors(t *testing.T) {
	path, _ := example(t)
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown key", strings.Replace(string(src), "description:", "colour: red\ndescription:", 1), `line 8: colour: unknown key "colour"`},
		{"unknown nested key", strings.Replace(string(src), "min_distinct_identities: 10", "min_distinct_identities: 10\n      k_anon: 3", 1), `line 26: datasets[0].output_policy.k_anon: unknown key "k_anon"`},
		{"duplicate key", strings.Replace(string(src), "description:", "id: again\ndescription:", 1), `key "id" appears twice`},
		{"alias", strings.Replace(string(src), "receivers: [airline, carrier, analyst]", "receivers: &r [airline]\nextra: *r", 1), "aliases"},
		{"two docs", string(src) + "\n---\nid: x\n", "more than one YAML document"},
		{"empty", "", "empty document"},
		{"card and file", strings.Replace(string(src), "card_file: cards/airline.json", "card_file: cards/airline.json\n    card: {}", 1), "parties[0]: give card or card_file, not both"},
		{"missing card file", strings.Replace(string(src), "cards/airline.json", "cards/nope.json", 1), "parties[0].card_file:"},
		{"tampered card file", "", "parties[1].card_file: party: card fingerprint"},
		{"no descriptor", strings.Replace(string(src), "descriptor_file: descriptors/towers.json", "", 1), "datasets[2]: missing descriptor"},
		{"binary", strings.Replace(string(src), "description: ", "description: !!binary ", 1), "unsupported YAML type !!binary"},
		{"wrong type", strings.Replace(string(src), "min_distinct_identities: 10", "min_distinct_identities: ten", 1), "line 25: datasets[0].output_policy.min_distinct_identities: a string where an integer belongs"},
		{"list for an integer", strings.Replace(string(src), "min_distinct_identities: 10", "min_distinct_identities: [10]", 1), "line 25: datasets[0].output_policy.min_distinct_identities: a list where an integer belongs"},
		{"number for a string", strings.Replace(string(src), "description: ", "description: 12 #", 1), "line 8: description: a number where a string belongs"},
		{"oversized file", string(src) + "\n# " + strings.Repeat("x", MaxManifestSize), "larger than 1048576 bytes"},
		{"oversized card file", "", "parties[1].card_file:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Dir(path)
			if tt.name == "oversized card file" {
				bad := filepath.Join(dir, "cards/carrier-huge.json")
				os.WriteFile(bad, bytes.Repeat([]byte(" "), party.MaxCardSize+1), 0o644)
				tt.yaml = strings.Replace(string(src), "cards/carrier.json", "cards/carrier-huge.json", 1)
			}
			if tt.name == "tampered card file" {
				b, _ := os.ReadFile(filepath.Join(dir, "cards/carrier.json"))
				bad := filepath.Join(dir, "cards/carrier-bad.json")
				os.WriteFile(bad, bytes.Replace(b, []byte(`"carrier"`), []byte(`"carrieR"`), 1), 0o644)
				tt.yaml = strings.Replace(string(src), "cards/carrier.json", "cards/carrier-bad.json", 1)
			}
			p := filepath.Join(dir, "case.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadManifest(p)
			if !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadManifest = %v, want ErrInvalidManifest containing %q", err, tt.want)
			}
		})
	}
	// Without a file, references cannot be resolved.
	if _, err := ParseManifest(src); !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), "kura collab create") {
		t.Fatal(err)
	}
	// Oversized.
	if _, err := ParseManifest(make([]byte, MaxManifestSize+1)); !errors.Is(err, ErrInvalidManifest) {
		t.Fatal(err)
	}
	// Truncated.
	for _, n := range []int{10, len(src) / 3, len(src) / 2, len(src) - 40} {
		p := filepath.Join(filepath.Dir(path), "trunc.yaml")
		os.WriteFile(p, src[:n], 0o644)
		if _, err := LoadManifest(p); !errors.Is(err, ErrInvalidManifest) {
			t.Errorf("truncated at %d: %v", n, err)
		}
	}
}

func TestParseDescriptor(t *testing.T) {
	b, err := os.ReadFile("testdata/example/descriptors/passengers.json")
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDescriptor(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Owner != "airline" || len(d.Schema.Columns) != 5 {
		t.Fatalf("%+v", d)
	}
	for name, bad := range map[string][]byte{
		"unknown":   bytes.Replace(b, []byte(`"format"`), []byte(`"colour": 1, "format"`), 1),
		"digest":    bytes.Replace(b, []byte(`"sealed_sha256": "`), []byte(`"sealed_sha256": "x`), 1),
		"truncated": b[:len(b)/2],
		"trailing":  append(append([]byte{}, b...), '{', '}'),
		"oversized": append(append([]byte{}, b...), make([]byte, MaxDescriptorSize)...),
	} {
		if _, err := ParseDescriptor(bad); !errors.Is(err, ErrInvalidManifest) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCanonicalize(t *testing.T) {
	// RFC 8785 §3.2.2.3 and appendix B number vectors.
	nums := map[string]string{
		"0": "0", "-0": "0", "1e21": "1e+21", "1e-7": "1e-7", "0.000001": "0.000001",
		"123456789012345680000": "123456789012345680000", "4.50": "4.5", "2e-3": "0.002",
		"1.7976931348623157e308": "1.7976931348623157e+308", "5e-324": "5e-324",
		"333333333.33333329": "333333333.3333333", "1E30": "1e+30", "-1.5e-9": "-1.5e-9",
		"9007199254740993": "9007199254740992",
	}
	for in, want := range nums {
		got, err := Canonicalize([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("%s: got %s, %v; want %s", in, got, err, want)
		}
	}
	// RFC 8785 §3.2.3 sorting example (UTF-16 order) and string escaping.
	in := `{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`
	want := "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"
	got, err := Canonicalize([]byte(in))
	if err != nil || string(got) != want {
		t.Errorf("sort: got %s, %v", got, err)
	}
	got, _ = Canonicalize([]byte(`{ "a" : [ "<\u001f>\/\u2028", true , null ] }`))
	if string(got) != "{\"a\":[\"<\\u001f>/\u2028\",true,null]}" {
		t.Errorf("escape: %s", got)
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `[1`, `{} {}`, `1e400`, strings.Repeat("[", 100) + strings.Repeat("]", 100)} {
		if _, err := Canonicalize([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestHashVector pins the test vector of docs/spec/manifest.md §3.
func TestHashVector(t *testing.T) {
	if os.Getenv("KURA_UPDATE_VECTOR") != "" {
		m, err := LoadManifest("testdata/vector/source.yaml")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.MarshalIndent(m, "", "  ")
		os.WriteFile("testdata/vector/manifest.json", append(b, '\n'), 0o644)
		canon, _ := m.Canonical()
		os.WriteFile("testdata/vector/canonical.json", append(canon, '\n'), 0o644)
		os.WriteFile("testdata/vector/hash.txt", []byte(m.Hash()+"\n"), 0o644)
	}
	b, err := os.ReadFile("testdata/vector/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/vector/canonical.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canon, bytes.TrimSuffix(want, []byte("\n"))) {
		t.Errorf("canonical form differs from testdata/vector/canonical.json:\n%s", canon)
	}
	hash, _ := os.ReadFile("testdata/vector/hash.txt")
	if got := m.Hash(); got != strings.TrimSpace(string(hash)) {
		t.Errorf("hash %s, want %s", got, hash)
	}
}

var _ = ed25519.PublicKeySize

func rsaPEM(t testing.TB) string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func privateJWK(t testing.TB) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	j, err := jwk.Import(k)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(j)
	return b
}

// TestVerifierKeys: a pinned PEM key and the same key as a JWK name the
// same key (its thumbprint, as kura verifiers name their keys); a JWKS URL
// pins nothing.
func TestVerifierKeys(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	j, _ := jwk.PublicKeyOf(&k.PublicKey)
	jb, _ := json.Marshal(j)
	var kids []string
	for _, v := range []Verifier{{Name: "a", Key: pemKey}, {Name: "b", JWK: jb}} {
		set, err := v.PinnedKeys()
		if err != nil || set.Len() != 1 {
			t.Fatalf("%s: %v", v.Name, err)
		}
		key, _ := set.Key(0)
		kid, _ := key.KeyID()
		kids = append(kids, kid)
	}
	if kids[0] != kids[1] || kids[0] == "" {
		t.Errorf("PEM and JWK of one key have kids %q", kids)
	}
	if set, err := (&Verifier{Name: "c", JWKSURL: "https://v.example/jwks"}).PinnedKeys(); set != nil || err != nil {
		t.Errorf("a JWKS URL pins %v, %v", set, err)
	}
}

// TestLegacyFormat: a stored version in format 1 (no verifier list) still
// parses, verifies and hashes as before; a new manifest, collaboration or
// version in format 1 is refused with what to write instead.
func TestLegacyFormat(t *testing.T) {
	b, err := os.ReadFile("testdata/legacy/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	file := []byte(`{"kura_collaboration":1,"id":"vector","versions":[` + string(b) + `]}`)
	c, err := ParseCollaboration(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
	if h := c.Current().Hash(); h != "d1fd35c1aa00b448d427c82fcff0ae87b787799ae8f951cca05d72e1d200cc77" {
		t.Errorf("legacy hash changed: %s", h)
	}
	want := "kura_manifest: 1 is read but no longer written: write kura_manifest: 2 and list the verifiers"
	if _, err := ParseManifest(b); !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), want) {
		t.Errorf("ParseManifest of format 1: %v", err)
	}
	if _, err := New(clone(t, c.Current())); !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), want) {
		t.Errorf("New in format 1: %v", err)
	}
	m := next(t, c)
	m.Description = "v2, still format 1"
	if err := c.AddVersion(m); !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), want) {
		t.Errorf("AddVersion in format 1: %v", err)
	}
	// Moving to format 2 adds the verifier list.
	m.Format = FormatVersion
	m.Verifiers = []Verifier{{Name: "verifier-a", JWKSURL: "https://verifier.example/.well-known/jwks.json"}}
	if err := c.AddVersion(m); err != nil {
		t.Fatal(err)
	}
}
