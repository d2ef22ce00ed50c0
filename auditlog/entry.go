package auditlog

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kura-cc/kura/privacy"
)

// EntryVersion is the entry format version this package writes and reads.
const EntryVersion = 1

// MaxEntrySize bounds one encoded entry (docs/spec/auditlog.md §2).
const MaxEntrySize = 16 << 10

// MaxFieldSize bounds each text field of an entry, in bytes.
const MaxFieldSize = 1024

// Kind says what an entry records.
type Kind string

// The entry kinds (docs/spec/auditlog.md §2.2).
const (
	KindManifestVersion       Kind = "manifest_version"
	KindApproval              Kind = "approval"
	KindRevocation            Kind = "revocation"
	KindKeyRelease            Kind = "key_release"
	KindRunStart              Kind = "run_start"
	KindResult                Kind = "result"
	KindReceipt               Kind = "receipt"
	KindPolicyChange          Kind = "policy_change"
	KindReferenceValuesChange Kind = "reference_values_change"
	KindTimelockRegistration  Kind = "timelock_registration"
	KindInferenceBuild        Kind = "inference_build"
)

// Key release decisions, as the key broker records them.
const (
	DecisionReleased = "released"
	DecisionRefused  = "refused"
)

// Entry is one log entry. It carries digests and identifiers, never
// secrets or data. Which fields a kind requires or allows is specified in
// docs/spec/auditlog.md §2.2; Marshal and ParseEntry enforce it.
type Entry struct {
	// Kind says what happened.
	Kind Kind
	// Time is when it happened (UTC, nanosecond precision kept).
	Time time.Time
	// Collaboration identifies the collaboration (its id or manifest-chain
	// hash), for filtering.
	Collaboration string
	// Party is the fingerprint of the party that acted (64 hex digits).
	Party string
	// Subject is the kind-specific digest ("sha256:<hex>"): the manifest,
	// approval, revocation, result bundle, receipt, policy or document
	// hashed.
	Subject string
	// Previous is the previous manifest version's digest (manifest_version).
	Previous string
	// Version is the manifest version number (manifest_version; the
	// version approved or, for a revocation, named).
	Version uint64
	// Run identifies a clean-room run (run_start, result, receipt, and a
	// key_release to or refused to a run).
	Run string
	// Manifest is the digest ("sha256:<hex>") of the manifest version the
	// run executes (key_release).
	Manifest string
	// Analysis is the id of the analysis the run executes (key_release).
	Analysis string
	// Epsilon is the differential-privacy ε the run spends of the
	// dataset's budget, an exact decimal (key_release to a run of an
	// analysis under privacy).
	Epsilon string
	// Decision is DecisionReleased or DecisionRefused (key_release).
	Decision string
	// Reason says why, in a few words (key_release).
	Reason string
	// Resource is the key broker resource path (key_release, policy_change).
	Resource string
	// TokenDigest is the hex SHA-256 of the attestation token presented.
	TokenDigest string
	// PolicyID names the release policy (and version) that decided.
	PolicyID string
	// Requester is the client address or workload identity.
	Requester string
	// TEE is the attested TEE type ("snp", "tdx", "sim").
	TEE string
	// Measurement is the attested launch measurement (hex).
	Measurement string
	// BrokerSeq is the key broker's own audit-store sequence number.
	BrokerSeq int64
	// NotBefore is the earliest opening time (timelock_registration).
	NotBefore time.Time
}

// wireEntry is the JSON form, in canonical field order.
type wireEntry struct {
	V             int    `json:"v"`
	Kind          Kind   `json:"kind"`
	Time          string `json:"time"`
	Collaboration string `json:"collaboration,omitempty"`
	Party         string `json:"party,omitempty"`
	Subject       string `json:"subject,omitempty"`
	Previous      string `json:"previous,omitempty"`
	Version       uint64 `json:"version,omitempty"`
	Run           string `json:"run,omitempty"`
	Manifest      string `json:"manifest,omitempty"`
	Analysis      string `json:"analysis,omitempty"`
	Epsilon       string `json:"epsilon,omitempty"`
	Decision      string `json:"decision,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Resource      string `json:"resource,omitempty"`
	TokenDigest   string `json:"token_digest,omitempty"`
	PolicyID      string `json:"policy_id,omitempty"`
	Requester     string `json:"requester,omitempty"`
	TEE           string `json:"tee,omitempty"`
	Measurement   string `json:"measurement,omitempty"`
	BrokerSeq     int64  `json:"broker_seq,omitempty"`
	NotBefore     string `json:"not_before,omitempty"`
}

// kindRule lists the optional fields a kind requires and allows (v, kind
// and time are always required).
type kindRule struct{ required, allowed []string }

// ruleFor returns the rule for a kind, and false for an unknown kind.
func ruleFor(k Kind) (kindRule, bool) {
	switch k {
	case KindManifestVersion:
		return kindRule{required: []string{"collaboration", "subject"}, allowed: []string{"party", "previous", "version"}}, true
	case KindApproval:
		return kindRule{required: []string{"collaboration", "party", "subject"}, allowed: []string{"version"}}, true
	case KindRevocation:
		return kindRule{required: []string{"collaboration", "party", "subject"}, allowed: []string{"version"}}, true
	case KindKeyRelease:
		return kindRule{required: []string{"decision", "resource"}, allowed: []string{"collaboration", "party", "subject", "run", "manifest", "analysis", "epsilon", "reason", "token_digest", "policy_id", "requester", "tee", "measurement", "broker_seq"}}, true
	case KindRunStart:
		return kindRule{required: []string{"collaboration", "run", "subject"}, allowed: []string{"party", "tee", "measurement"}}, true
	case KindResult:
		return kindRule{required: []string{"run", "subject"}, allowed: []string{"collaboration", "party", "measurement", "analysis", "epsilon"}}, true
	case KindReceipt:
		return kindRule{required: []string{"run", "subject"}, allowed: []string{"collaboration", "party", "measurement"}}, true
	case KindPolicyChange:
		return kindRule{required: []string{"policy_id", "subject"}, allowed: []string{"collaboration", "party", "resource"}}, true
	case KindReferenceValuesChange:
		return kindRule{required: []string{"subject"}, allowed: []string{"collaboration", "party", "tee"}}, true
	case KindTimelockRegistration:
		return kindRule{required: []string{"subject", "not_before"}, allowed: []string{"collaboration", "party"}}, true
	case KindInferenceBuild:
		return kindRule{required: []string{"subject", "party", "tee", "measurement"}}, true
	}
	return kindRule{}, false
}

// Kinds returns every entry kind, sorted.
func Kinds() []Kind {
	ks := []Kind{KindManifestVersion, KindApproval, KindRevocation, KindKeyRelease, KindRunStart, KindResult,
		KindReceipt, KindPolicyChange, KindReferenceValuesChange, KindTimelockRegistration, KindInferenceBuild}
	slices.Sort(ks)
	return ks
}

func (e *Entry) wire() wireEntry {
	w := wireEntry{
		V: EntryVersion, Kind: e.Kind, Collaboration: e.Collaboration, Party: e.Party, Subject: e.Subject,
		Previous: e.Previous, Version: e.Version, Run: e.Run, Manifest: e.Manifest, Analysis: e.Analysis,
		Epsilon: e.Epsilon, Decision: e.Decision, Reason: e.Reason, Resource: e.Resource, TokenDigest: e.TokenDigest,
		PolicyID: e.PolicyID, Requester: e.Requester, TEE: e.TEE, Measurement: e.Measurement, BrokerSeq: e.BrokerSeq,
	}
	if !e.Time.IsZero() {
		w.Time = e.Time.UTC().Format(time.RFC3339Nano)
	}
	if !e.NotBefore.IsZero() {
		w.NotBefore = e.NotBefore.UTC().Format(time.RFC3339Nano)
	}
	return w
}

// present returns the optional fields that are set, by JSON name.
func (w *wireEntry) present() map[string]bool {
	return map[string]bool{
		"collaboration": w.Collaboration != "", "party": w.Party != "", "subject": w.Subject != "",
		"previous": w.Previous != "", "version": w.Version != 0, "run": w.Run != "",
		"manifest": w.Manifest != "", "analysis": w.Analysis != "", "epsilon": w.Epsilon != "",
		"decision": w.Decision != "", "reason": w.Reason != "", "resource": w.Resource != "",
		"token_digest": w.TokenDigest != "", "policy_id": w.PolicyID != "", "requester": w.Requester != "",
		"tee": w.TEE != "", "measurement": w.Measurement != "", "broker_seq": w.BrokerSeq != 0,
		"not_before": w.NotBefore != "",
	}
}

func (w *wireEntry) validate() error {
	if w.V != EntryVersion {
		return fmt.Errorf("%w: entry version %d, want %d", ErrMalformed, w.V, EntryVersion)
	}
	rule, ok := ruleFor(w.Kind)
	if !ok {
		return fmt.Errorf("%w: unknown entry kind %q (known: %v)", ErrMalformed, w.Kind, Kinds())
	}
	if w.Time == "" {
		return fmt.Errorf("%w: %s entry without time", ErrMalformed, w.Kind)
	}
	if err := checkTime("time", w.Time); err != nil {
		return err
	}
	set := w.present()
	for _, f := range rule.required {
		if !set[f] {
			return fmt.Errorf("%w: %s entry without required field %q", ErrMalformed, w.Kind, f)
		}
	}
	for f, ok := range set {
		if ok && !slices.Contains(rule.required, f) && !slices.Contains(rule.allowed, f) {
			return fmt.Errorf("%w: field %q is not allowed in a %s entry", ErrMalformed, f, w.Kind)
		}
	}
	for name, v := range map[string]string{
		"collaboration": w.Collaboration, "run": w.Run, "analysis": w.Analysis, "reason": w.Reason, "resource": w.Resource,
		"token_digest": w.TokenDigest, "policy_id": w.PolicyID, "requester": w.Requester, "tee": w.TEE,
		"measurement": w.Measurement,
	} {
		if err := checkText(name, v); err != nil {
			return err
		}
	}
	for name, v := range map[string]string{"subject": w.Subject, "previous": w.Previous, "manifest": w.Manifest} {
		if v != "" {
			if err := checkDigest(name, v); err != nil {
				return err
			}
		}
	}
	if w.Party != "" && !isLowerHex(w.Party, 64) {
		return fmt.Errorf("%w: party %q is not a fingerprint (64 lowercase hex digits)", ErrMalformed, w.Party)
	}
	if w.Decision != "" && w.Decision != DecisionReleased && w.Decision != DecisionRefused {
		return fmt.Errorf("%w: decision %q: want %q or %q", ErrMalformed, w.Decision, DecisionReleased, DecisionRefused)
	}
	if w.Epsilon != "" {
		if e, err := privacy.ParseEpsilon(w.Epsilon); err != nil || e.Sign() <= 0 {
			return fmt.Errorf("%w: epsilon %q: want a positive decimal like 0.5", ErrMalformed, truncate(w.Epsilon, 80))
		}
	}
	if w.BrokerSeq < 0 {
		return fmt.Errorf("%w: negative broker_seq", ErrMalformed)
	}
	if w.NotBefore != "" {
		if err := checkTime("not_before", w.NotBefore); err != nil {
			return err
		}
	}
	return nil
}

func checkTime(name, v string) error {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return fmt.Errorf("%w: %s %q: want RFC 3339 UTC", ErrMalformed, name, v)
	}
	if t.UTC().Format(time.RFC3339Nano) != v {
		return fmt.Errorf("%w: %s %q is not in canonical form %q", ErrMalformed, name, v, t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

func checkText(name, v string) error {
	if len(v) > MaxFieldSize {
		return fmt.Errorf("%w: %s is %d bytes, more than %d", ErrMalformed, name, len(v), MaxFieldSize)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrMalformed, name)
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: %s contains a control character", ErrMalformed, name)
	}
	return nil
}

// digestHexLen returns the hex length of a digest algorithm a subject may
// use, or 0.
func digestHexLen(alg string) int {
	switch alg {
	case "sha256":
		return 64
	case "sha384":
		return 96
	case "sha512":
		return 128
	}
	return 0
}

func checkDigest(name, v string) error {
	alg, h, ok := strings.Cut(v, ":")
	n := digestHexLen(alg)
	if !ok || n == 0 || !isLowerHex(h, n) {
		return fmt.Errorf("%w: %s %q: want \"sha256:\" and 64 lowercase hex digits (or sha384, sha512)", ErrMalformed, name, truncate(v, 80))
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Digest returns "sha256:<hex>" for a SHA-256 sum, the form Subject takes.
func Digest(sum [32]byte) string { return "sha256:" + hex.EncodeToString(sum[:]) }

// Marshal returns the entry's canonical encoding (docs/spec/auditlog.md
// §2.1), or an error wrapping ErrMalformed if the entry breaks the rules
// of its kind.
func (e *Entry) Marshal() ([]byte, error) {
	w := e.wire()
	if err := w.validate(); err != nil {
		return nil, err
	}
	b := encodeWire(&w)
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("%w: entry is %d bytes, more than %d", ErrMalformed, len(b), MaxEntrySize)
	}
	return b, nil
}

func encodeWire(w *wireEntry) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(w) // a struct of strings and integers always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// ParseEntry decodes an entry strictly: unknown fields and kinds, fields
// not allowed for the kind, and any encoding other than the canonical one
// are refused with an error wrapping ErrMalformed.
func ParseEntry(b []byte) (*Entry, error) {
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("%w: entry is %d bytes, more than %d", ErrMalformed, len(b), MaxEntrySize)
	}
	w, err := decodeWire(b)
	if err != nil {
		return nil, err
	}
	if err := w.validate(); err != nil {
		return nil, err
	}
	if !bytes.Equal(encodeWire(w), b) {
		return nil, fmt.Errorf("%w: entry is not in canonical form (field order, spacing or escaping differ; see docs/spec/auditlog.md §2.1)", ErrMalformed)
	}
	return w.entry(), nil
}

// DecodeEntryJSON decodes an entry written by hand or by another tool:
// strict about fields, kinds and values like ParseEntry, but not about
// spacing or field order. Marshal gives its canonical form.
func DecodeEntryJSON(b []byte) (*Entry, error) {
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("%w: entry is %d bytes, more than %d", ErrMalformed, len(b), MaxEntrySize)
	}
	w, err := decodeWire(b)
	if err != nil {
		return nil, err
	}
	if w.V == 0 {
		w.V = EntryVersion
	}
	if err := w.validate(); err != nil {
		return nil, err
	}
	return w.entry(), nil
}

func decodeWire(b []byte) (*wireEntry, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wireEntry
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: entry: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: entry: data after the JSON object", ErrMalformed)
	}
	return &w, nil
}

func (w *wireEntry) entry() *Entry {
	e := &Entry{
		Kind: w.Kind, Collaboration: w.Collaboration, Party: w.Party, Subject: w.Subject,
		Previous: w.Previous, Version: w.Version, Run: w.Run, Manifest: w.Manifest, Analysis: w.Analysis,
		Epsilon: w.Epsilon, Decision: w.Decision, Reason: w.Reason, Resource: w.Resource, TokenDigest: w.TokenDigest,
		PolicyID: w.PolicyID, Requester: w.Requester, TEE: w.TEE, Measurement: w.Measurement, BrokerSeq: w.BrokerSeq,
	}
	e.Time, _ = time.Parse(time.RFC3339Nano, w.Time) // validated
	if w.NotBefore != "" {
		e.NotBefore, _ = time.Parse(time.RFC3339Nano, w.NotBefore)
	}
	return e
}

// MarshalJSON returns the canonical encoding, so an Entry embeds in JSON
// documents as itself.
func (e *Entry) MarshalJSON() ([]byte, error) { return e.Marshal() }

// Filter selects entries; zero fields match everything.
type Filter struct {
	Kind          Kind
	Collaboration string
	Party         string
	Since, Until  time.Time
	// BrokerSeq selects the key_release entry of one broker decision (the
	// Kura-Audit-Seq of the broker's answer).
	BrokerSeq int64
}

// Match reports whether e passes the filter. Since is inclusive, Until
// exclusive.
func (f Filter) Match(e *Entry) bool {
	switch {
	case f.Kind != "" && e.Kind != f.Kind,
		f.Collaboration != "" && e.Collaboration != f.Collaboration,
		f.Party != "" && e.Party != f.Party,
		!f.Since.IsZero() && e.Time.Before(f.Since),
		!f.Until.IsZero() && !e.Time.Before(f.Until),
		f.BrokerSeq != 0 && e.BrokerSeq != f.BrokerSeq:
		return false
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
