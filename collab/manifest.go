package collab

import (
	"encoding/json"
	"time"

	"github.com/kura-cc/kura/appraisal/reference"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/party"
)

// FormatVersion is the manifest format this package writes: every new
// manifest (New, AddVersion, ParseManifest) has it. Format 2 added the
// verifier list.
const FormatVersion = 2

// LegacyFormatVersion is the format before the verifier list. Stored
// versions in it are still read and verified; receivers then name the
// verifiers they trust themselves (docs/spec/manifest.md §2.3).
const LegacyFormatVersion = 1

// Manifest is one version of a collaboration: who takes part, which sealed
// datasets they bring, which analyses may run on them under which output
// policy, which worker builds may see the plaintext, and who receives the
// results. Its canonical hash (docs/spec/manifest.md) is what parties sign.
//
// People write manifests in YAML; the YAML is converted to JSON and decoded
// strictly, so the field names below are the YAML keys too.
type Manifest struct {
	Format      int    `json:"kura_manifest"` // FormatVersion
	ID          string `json:"id"`            // collaboration id, stable across versions
	Description string `json:"description,omitempty"`
	// Previous is the hex SHA-256 hash of the version this one replaces,
	// empty for the first: the manifest history is a hash chain.
	Previous  string     `json:"previous,omitempty"`
	Parties   []Party    `json:"parties"`
	Datasets  []Dataset  `json:"datasets,omitempty"`
	Analyses  []Analysis `json:"analyses,omitempty"`
	Worker    Worker     `json:"worker"`
	Receivers []string   `json:"receivers,omitempty"` // default result receivers (party names)
	// Verifiers are the attestation verifiers the parties accept: a run's
	// attestation token must come from one of them, and receivers check
	// results against their keys. Required from format 2 on.
	Verifiers []Verifier `json:"verifiers,omitempty"`
	// Expires, when set (RFC 3339, UTC, whole seconds), is when the
	// approvals of this version lapse: key brokers release no key to a run
	// of it afterwards, so continuing needs a new version, approved again.
	// It is in every party's scope.
	Expires string `json:"expires,omitempty"`
}

// ExpiresAt returns Expires as a time, and whether it is set.
func (m *Manifest) ExpiresAt() (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, m.Expires)
	return t, err == nil && m.Expires != ""
}

// Verifier is an attestation verifier the parties accept
// (docs/spec/manifest.md §2.3). Exactly one of JWKSURL, Key and JWK gives
// the keys its tokens are signed with.
type Verifier struct {
	// Name identifies the verifier in messages: [a-z0-9][a-z0-9._-]{0,62}.
	Name string `json:"name"`
	// URL is the verifier's attestation API (POST /v1/attestation/nonce
	// and /verify), where a worker attests; optional.
	URL string `json:"url,omitempty"`
	// JWKSURL is where the verifier publishes its token keys, fetched by
	// receivers: http(s)://host/.well-known/jwks.json for kura.
	JWKSURL string `json:"jwks_url,omitempty"`
	// Key pins one public key: PEM (PKIX), ECDSA P-256 or P-384.
	Key string `json:"key,omitempty"`
	// JWK pins one public key as a JWK object: EC P-256 or P-384, no
	// private member.
	JWK json.RawMessage `json:"jwk,omitempty"`
}

// Role is what a party does in a collaboration.
type Role string

// Roles.
const (
	RoleDataProvider   Role = "data_provider"
	RoleAnalyst        Role = "analyst"
	RoleResultReceiver Role = "result_receiver"
	RoleAuditor        Role = "auditor"
)

// Party is a participant: its public card (signing and receiving keys) and
// its roles.
type Party struct {
	Name  string      `json:"name"` // must equal Card.Name
	Roles []Role      `json:"roles"`
	Card  *party.Card `json:"card"`
}

// Dataset is a sealed dataset a data provider brings. The descriptor comes
// from `kura data register` and names the sealed file's digest and the key
// broker resource that holds its key.
type Dataset struct {
	// ID names the dataset in analyses; it is a SQL identifier
	// ([a-z_][a-z0-9_]*, at most 63 bytes).
	ID         string     `json:"id"`
	Owner      string     `json:"owner"` // party name; must have the data_provider role
	Descriptor Descriptor `json:"descriptor"`
	// Location says where the worker fetches the sealed file (a path or
	// blob URL). It is a hint, not trusted: the worker checks the digest.
	Location     string       `json:"location,omitempty"`
	OutputPolicy OutputPolicy `json:"output_policy"`
}

// Descriptor describes a registered sealed dataset; it holds no secret
// (docs/spec/dataset.md §8).
type Descriptor struct {
	Version      int           `json:"version"`
	DatasetID    string        `json:"dataset_id"`
	Owner        string        `json:"owner"`
	Format       string        `json:"format"`
	Schema       *table.Schema `json:"schema"`
	KeyID        string        `json:"key_id"`
	SealedSHA256 string        `json:"sealed_sha256"`
	SealedSize   int64         `json:"sealed_size"`
	KeyBroker    KeyBrokerRef  `json:"key_broker"`
	RegisteredAt string        `json:"registered_at"` // RFC 3339
}

// KeyBrokerRef names the key-broker resource that holds a dataset's key.
type KeyBrokerRef struct {
	URL      string `json:"url"`
	Resource string `json:"resource"` // repository/type/tag
	Version  int64  `json:"version"`
}

// OutputPolicy is a data owner's rule for anything computed from its data.
// When an analysis reads several datasets their policies combine and the
// strictest wins: the largest minimum, the intersection of allowed lists.
type OutputPolicy struct {
	// MinDistinctIdentities is the least number of distinct identities of
	// this dataset behind every output row; rows below it are suppressed
	// and counted. At least 1; kura's recommended floor is 10.
	MinDistinctIdentities int `json:"min_distinct_identities"`
	// AllowedAggregates limits the measure functions over this dataset's
	// columns; empty allows all of AggregateFunctions.
	AllowedAggregates []AggFunc `json:"allowed_aggregates,omitempty"`
	// AllowedColumns limits which of this dataset's columns may be group-by
	// dimensions or measure arguments; empty allows every column that is
	// neither an identity nor a join column. Identity and join columns are
	// never output, whatever this says.
	AllowedColumns []string `json:"allowed_columns,omitempty"`
	// PrivacyBudget, when set, is the total differential-privacy ε (an
	// exact decimal, as privacy.ParseEpsilon reads it) that all runs of the
	// collaboration together may spend on this dataset: every analysis
	// reading it must then set Privacy, and each run charges its ε
	// (docs/spec/analysis.md §7).
	PrivacyBudget string `json:"privacy_budget,omitempty"`
}

// AnalysisKind says how an analysis is declared.
type AnalysisKind string

// Analysis kinds.
const (
	// KindAggregate is declared structurally; kura generates the SQL.
	KindAggregate AnalysisKind = "aggregate"
	// KindSQL is custom SQL approved verbatim by every owner it reads.
	KindSQL AnalysisKind = "sql"
)

// Analysis is a computation the parties approve.
type Analysis struct {
	ID        string       `json:"id"` // [a-z0-9_-]+
	Kind      AnalysisKind `json:"kind"`
	Aggregate *Aggregate   `json:"aggregate,omitempty"` // KindAggregate
	// SQL is a single SELECT over the dataset ids as table names (KindSQL).
	SQL string `json:"sql,omitempty"`
	// Reads lists the datasets the analysis reads: required for KindSQL,
	// derived (and checked if given) for KindAggregate.
	Reads []string `json:"reads,omitempty"`
	// Receivers overrides Manifest.Receivers for this analysis.
	Receivers []string `json:"receivers,omitempty"`
	// MaxRuns, when above zero, is how many runs of this analysis may get
	// keys: each key broker counts the runs it released keys to and
	// refuses the next one.
	MaxRuns int `json:"max_runs,omitempty"`
	// Backend says what computes the analysis: BackendTEE (the default,
	// also written as empty) or BackendMPC.
	Backend Backend `json:"backend,omitempty"`
	// Privacy, when set, releases the measures with differential privacy
	// and charges each run's ε to every dataset the analysis reads.
	Privacy *Privacy `json:"privacy,omitempty"`
}

// Backend is what computes an analysis.
type Backend string

// Backends.
const (
	// BackendTEE is a worker in an attested TEE that receives every
	// dataset's key (docs/spec/cleanroom.md).
	BackendTEE Backend = "tee"
	// BackendMPC is the owners' agents computing by private set
	// intersection, each next to its own data; no TEE, no key leaves its
	// owner (docs/spec/mpc.md).
	BackendMPC Backend = "mpc"
)

// BackendOf returns the analysis's backend, BackendTEE when unset.
func (a *Analysis) BackendOf() Backend {
	if a.Backend == "" {
		return BackendTEE
	}
	return a.Backend
}

// Privacy is an analysis's differential-privacy release (docs/spec/analysis.md
// §7).
type Privacy struct {
	// Epsilon is the ε one run spends, split evenly over the measures: an
	// exact decimal in (0, 100].
	Epsilon string `json:"epsilon"`
	// Mechanism is MechanismLaplace (the default, also written as empty:
	// pure ε-DP) or MechanismGaussian ((ε, Delta)-DP through zCDP, less
	// noise on many measures).
	Mechanism string `json:"mechanism,omitempty"`
	// Delta, for the Gaussian mechanism only, is the δ of the (ε, δ)
	// guarantee its noise is calibrated to: an exact decimal in (0, 1e-3].
	Delta string `json:"delta,omitempty"`
}

// Noise mechanisms of a private analysis.
const (
	MechanismLaplace  = "laplace"
	MechanismGaussian = "gaussian"
)

// Aggregate is a structurally declared aggregate analysis: an inner join of
// datasets on declared join columns, filters, group-by dimensions and
// measures. Columns are written "dataset.column".
type Aggregate struct {
	From     string    `json:"from"` // dataset id
	Joins    []Join    `json:"joins,omitempty"`
	Where    []Filter  `json:"where,omitempty"`
	GroupBy  []string  `json:"group_by,omitempty"`
	Measures []Measure `json:"measures"`
}

// Join is an inner join on two join columns (both declared join: true in
// their schemas).
type Join struct {
	Dataset string `json:"dataset"` // the dataset joined in
	Left    string `json:"left"`    // "dataset.column" already in the query
	Right   string `json:"right"`   // "dataset.column" of Dataset
}

// Filter restricts rows before aggregation.
type Filter struct {
	Column string `json:"column"` // "dataset.column"
	Op     string `json:"op"`     // =, !=, <, <=, >, >=, in
	Value  any    `json:"value"`  // a JSON scalar, or a list for "in"
}

// AggFunc is a measure function.
type AggFunc string

// Measure functions.
const (
	AggCount                   AggFunc = "count"                     // rows
	AggCountDistinctIdentities AggFunc = "count_distinct_identities" // distinct identities of Measure.Dataset
	AggSum                     AggFunc = "sum"
	AggAvg                     AggFunc = "avg"
	AggMin                     AggFunc = "min"
	AggMax                     AggFunc = "max"
)

// AggregateFunctions lists every measure function.
func AggregateFunctions() []AggFunc {
	return []AggFunc{AggCount, AggCountDistinctIdentities, AggSum, AggAvg, AggMin, AggMax}
}

// Measure is one output aggregate.
type Measure struct {
	Func    AggFunc `json:"fn"`
	Column  string  `json:"column,omitempty"`  // "dataset.column" for sum, avg, min, max
	Dataset string  `json:"dataset,omitempty"` // for count_distinct_identities
	As      string  `json:"as"`                // output column name
	// Clip bounds each row's value of a sum or avg under Privacy, and each
	// identifier's value on the mpc backend: values are clamped to
	// [Min, Max] before they are added, which bounds the sum's sensitivity
	// (and, on the mpc backend, the discrete logarithm that decrypts it).
	// Required for sum and avg under Privacy or BackendMPC, refused
	// otherwise.
	Clip *Clip `json:"clip,omitempty"`
}

// Clip is a closed range of integers.
type Clip struct {
	Min int64 `json:"min"`
	Max int64 `json:"max"`
}

// Worker says which worker builds may see the plaintext: the key brokers
// release keys only to a worker whose attested measurement (and TCB) is
// listed here.
type Worker struct {
	ReferenceValues reference.Values `json:"reference_values"`
}
