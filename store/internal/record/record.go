// Package record validates and normalises what the store backends write, so
// that every backend accepts, rejects and returns exactly the same values.
package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kura-cc/kura/store"
)

// Bounds on identifiers that are not secret values.
const (
	maxKEKID       = 256
	maxIdentity    = 1024
	maxPolicyID    = 256
	maxMetadataKey = 128
	// DefaultListLimit and MaxListLimit bound ListAudit.
	DefaultListLimit = 100
	MaxListLimit     = 10000
	// RewrapBatch is how many versions Rewrap replaces per transaction.
	RewrapBatch = 256
)

// Time normalises t as stored: UTC, truncated to microseconds (PostgreSQL's
// precision), or now when t is zero.
func Time(t time.Time, now func() time.Time) time.Time {
	if t.IsZero() {
		t = now()
	}
	return t.UTC().Truncate(time.Microsecond)
}

func text(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s longer than %d bytes", store.ErrInvalid, field, max)
	}
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: %s is not UTF-8 text without NUL bytes", store.ErrInvalid, field)
	}
	return nil
}

// Resource validates r for PutResource and returns the copy to store with its
// metadata encoded as JSON.
func Resource(r *store.Resource, now func() time.Time) (store.Resource, string, error) {
	if r == nil {
		return store.Resource{}, "", fmt.Errorf("%w: nil resource", store.ErrInvalid)
	}
	if err := store.ValidatePath(r.Path); err != nil {
		return store.Resource{}, "", err
	}
	switch {
	case r.Deleted:
		return store.Resource{}, "", fmt.Errorf("%w: PutResource cannot write a tombstone; use DeleteResource", store.ErrInvalid)
	case len(r.Sealed) == 0 || len(r.Sealed) > store.MaxSealedSize:
		return store.Resource{}, "", fmt.Errorf("%w: sealed value is %d bytes, want 1..%d", store.ErrInvalid, len(r.Sealed), store.MaxSealedSize)
	case len(r.WrappedDEK) == 0 || len(r.WrappedDEK) > 64<<10:
		return store.Resource{}, "", fmt.Errorf("%w: wrapped DEK is %d bytes, want 1..%d", store.ErrInvalid, len(r.WrappedDEK), 64<<10)
	case r.KEKID == "":
		return store.Resource{}, "", fmt.Errorf("%w: empty KEK id", store.ErrInvalid)
	}
	if err := text("KEK id", r.KEKID, maxKEKID); err != nil {
		return store.Resource{}, "", err
	}
	if err := text("created by", r.CreatedBy, maxIdentity); err != nil {
		return store.Resource{}, "", err
	}
	if err := text("policy id", r.PolicyID, maxPolicyID); err != nil {
		return store.Resource{}, "", err
	}
	meta, err := EncodeMetadata(r.Metadata)
	if err != nil {
		return store.Resource{}, "", err
	}
	out := *r
	out.Version = 0
	out.CreatedAt = Time(r.CreatedAt, now)
	out.Metadata = nil
	return out, meta, nil
}

// Tombstone validates a DeleteResource call and returns the tombstone to
// append (version to be assigned).
func Tombstone(path, by string, now func() time.Time) (store.Resource, error) {
	if err := store.ValidatePath(path); err != nil {
		return store.Resource{}, err
	}
	if err := text("deleted by", by, maxIdentity); err != nil {
		return store.Resource{}, err
	}
	return store.Resource{Path: path, Deleted: true, CreatedAt: Time(time.Time{}, now), CreatedBy: by}, nil
}

// EncodeMetadata validates m and encodes it as a JSON object ("{}" when
// empty).
func EncodeMetadata(m map[string]string) (string, error) {
	size := 0
	for k, v := range m {
		if k == "" || len(k) > maxMetadataKey {
			return "", fmt.Errorf("%w: metadata key length %d outside 1..%d", store.ErrInvalid, len(k), maxMetadataKey)
		}
		if err := text("metadata key", k, maxMetadataKey); err != nil {
			return "", err
		}
		if err := text("metadata value", v, store.MaxMetadataSize); err != nil {
			return "", err
		}
		size += len(k) + len(v)
	}
	if size > store.MaxMetadataSize {
		return "", fmt.Errorf("%w: metadata is %d bytes, more than %d", store.ErrInvalid, size, store.MaxMetadataSize)
	}
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("%w: metadata: %v", store.ErrInvalid, err)
	}
	return string(b), nil
}

// DecodeMetadata decodes what EncodeMetadata produced; nil when empty.
func DecodeMetadata(s string) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("store: corrupt metadata: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// Policy validates p for PutPolicy and returns the copy to store.
func Policy(p *store.Policy, now func() time.Time) (store.Policy, error) {
	if p == nil {
		return store.Policy{}, fmt.Errorf("%w: nil policy", store.ErrInvalid)
	}
	if err := store.ValidateScope(p.Scope); err != nil {
		return store.Policy{}, err
	}
	if strings.TrimSpace(p.Rego) == "" {
		return store.Policy{}, fmt.Errorf("%w: empty policy", store.ErrInvalid)
	}
	if err := text("policy", p.Rego, store.MaxRegoSize); err != nil {
		return store.Policy{}, err
	}
	if err := text("created by", p.CreatedBy, maxIdentity); err != nil {
		return store.Policy{}, err
	}
	out := *p
	out.Version = 0
	out.CreatedAt = Time(p.CreatedAt, now)
	return out, nil
}

// Audit validates rec for AppendAudit and returns the copy to store, its
// text fields sanitised.
func Audit(rec *store.AuditRecord, now func() time.Time) (store.AuditRecord, error) {
	if rec == nil {
		return store.AuditRecord{}, fmt.Errorf("%w: nil audit record", store.ErrInvalid)
	}
	switch rec.Decision {
	case store.DecisionReleased, store.DecisionRefused, store.DecisionAdminRefused:
	default:
		return store.AuditRecord{}, fmt.Errorf("%w: audit decision %q is not %q, %q or %q",
			store.ErrInvalid, sanitize(rec.Decision), store.DecisionReleased, store.DecisionRefused, store.DecisionAdminRefused)
	}
	out := *rec
	out.Seq = 0
	out.Time = Time(rec.Time, now)
	for _, f := range []*string{&out.Reason, &out.Resource, &out.TokenDigest, &out.PolicyID, &out.Requester, &out.TEE, &out.Measurement,
		&out.Collaboration, &out.ManifestHash, &out.Analysis, &out.RunID, &out.Epsilon} {
		*f = sanitize(*f)
	}
	return out, nil
}

// sanitize makes s storable text: invalid UTF-8 and NUL become U+FFFD, and
// the result is cut to MaxAuditFieldSize bytes on a rune boundary.
func sanitize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if len(s) <= store.MaxAuditFieldSize {
		return s
	}
	cut := store.MaxAuditFieldSize
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// ListLimit applies ListAudit's limit rules.
func ListLimit(limit int) int {
	if limit <= 0 {
		return DefaultListLimit
	}
	return min(limit, MaxListLimit)
}

// Prefix validates a ListResources prefix: it must be text a path could
// start with; anything else matches nothing, so it is reported as invalid.
func Prefix(prefix string) error {
	if len(prefix) > 3*128+2 {
		return fmt.Errorf("%w: prefix longer than any path", store.ErrInvalidPath)
	}
	return text("prefix", prefix, 3*128+2)
}

// Rewrapped validates what a Rewrap callback returned for a replacement.
func Rewrapped(wrapped []byte, kekID string) error {
	if len(wrapped) == 0 || len(wrapped) > 64<<10 {
		return fmt.Errorf("%w: rewrapped DEK is %d bytes, want 1..%d", store.ErrInvalid, len(wrapped), 64<<10)
	}
	if kekID == "" {
		return fmt.Errorf("%w: rewrap returned an empty KEK id", store.ErrInvalid)
	}
	return text("KEK id", kekID, maxKEKID)
}

// isHex reports whether s is n lowercase hex characters.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// RunID reports whether id can name a run: 32 lowercase hex characters.
// Reads, renewals and finishes of any other id find no run.
func RunID(id string) bool { return isHex(id, 32) }

// Run validates r for PutRun and returns the copy to store: queued,
// nothing claimed or finished, SubmittedAt and UpdatedAt normalised.
func Run(r *store.Run, now func() time.Time) (store.Run, error) {
	if r == nil {
		return store.Run{}, fmt.Errorf("%w: nil run", store.ErrInvalid)
	}
	if !RunID(r.ID) {
		return store.Run{}, fmt.Errorf("%w: run id is not 32 lowercase hex characters", store.ErrInvalid)
	}
	if err := store.CheckCollaborationID(r.Collaboration); err != nil {
		return store.Run{}, err
	}
	if !store.ValidText(r.Analysis, store.MaxAnalysisIDSize) {
		return store.Run{}, fmt.Errorf("%w: analysis id must be 1..%d bytes of UTF-8 without NUL", store.ErrInvalid, store.MaxAnalysisIDSize)
	}
	if !isHex(r.SubmittedBy, 64) {
		return store.Run{}, fmt.Errorf("%w: submitted by is not a card fingerprint (64 lowercase hex)", store.ErrInvalid)
	}
	at := Time(time.Time{}, now)
	return store.Run{
		ID:            r.ID,
		Collaboration: r.Collaboration,
		Analysis:      r.Analysis,
		SubmittedBy:   r.SubmittedBy,
		SubmittedAt:   Time(r.SubmittedAt, func() time.Time { return at }),
		State:         store.RunQueued,
		UpdatedAt:     at,
	}, nil
}

// Worker validates a worker's name.
func Worker(name string) error {
	if !store.ValidText(name, store.MaxWorkerNameSize) {
		return fmt.Errorf("%w: worker name must be 1..%d bytes of UTF-8 without NUL", store.ErrInvalid, store.MaxWorkerNameSize)
	}
	return nil
}

// Claim validates a ClaimRun call and returns its now (the store's clock
// when zero), lease expiry and attempt bound, as stored.
func Claim(worker string, now time.Time, lease time.Duration, maxAttempts int, clock func() time.Time) (time.Time, time.Time, int, error) {
	if err := Worker(worker); err != nil {
		return time.Time{}, time.Time{}, 0, err
	}
	if lease <= 0 {
		return time.Time{}, time.Time{}, 0, fmt.Errorf("%w: lease %v is not positive", store.ErrInvalid, lease)
	}
	if maxAttempts <= 0 {
		maxAttempts = store.DefaultMaxAttempts
	}
	now = Time(now, clock)
	return now, now.Add(lease).Truncate(time.Microsecond), maxAttempts, nil
}

// Finish validates a FinishRun call's outcome and returns errText as
// stored, sanitised like audit text.
func Finish(state, result, receipt, errText string) (string, error) {
	switch state {
	case store.RunCompleted:
		if !isHex(result, 64) {
			return "", fmt.Errorf("%w: a completed run's result is not a SHA-256 (64 lowercase hex)", store.ErrInvalid)
		}
		if errText != "" {
			return "", fmt.Errorf("%w: a completed run has no error", store.ErrInvalid)
		}
	case store.RunFailed:
		if result != "" {
			return "", fmt.Errorf("%w: a failed run has no result", store.ErrInvalid)
		}
	default:
		return "", fmt.Errorf("%w: run state %q is not %q or %q", store.ErrInvalid, sanitize(truncateRunes(state, 64)), store.RunCompleted, store.RunFailed)
	}
	if receipt != "" && !isHex(receipt, 64) {
		return "", fmt.Errorf("%w: receipt is not a SHA-256 (64 lowercase hex)", store.ErrInvalid)
	}
	return sanitize(errText), nil
}

// Revocation validates r for PutRevocation and returns the copy to store,
// its digest computed and its times normalised.
func Revocation(r *store.Revocation, now func() time.Time) (store.Revocation, error) {
	if r == nil {
		return store.Revocation{}, fmt.Errorf("%w: nil revocation", store.ErrInvalid)
	}
	if err := store.CheckCollaborationID(r.Collaboration); err != nil {
		return store.Revocation{}, err
	}
	switch {
	case !isHex(r.Signer, 64):
		return store.Revocation{}, fmt.Errorf("%w: revocation signer is not an Ed25519 public key (64 lowercase hex)", store.ErrInvalid)
	case !isHex(r.Party, 64):
		return store.Revocation{}, fmt.Errorf("%w: revocation party is not a card fingerprint (64 lowercase hex)", store.ErrInvalid)
	case r.RevokedAt.IsZero():
		return store.Revocation{}, fmt.Errorf("%w: revocation without a time", store.ErrInvalid)
	case len(r.Statement) == 0 || len(r.Statement) > store.MaxRevocationSize:
		return store.Revocation{}, fmt.Errorf("%w: revocation statement is %d bytes, want 1..%d", store.ErrInvalid, len(r.Statement), store.MaxRevocationSize)
	}
	sum := sha256.Sum256(r.Statement)
	return store.Revocation{
		Collaboration: r.Collaboration,
		Signer:        r.Signer,
		Party:         r.Party,
		RevokedAt:     Time(r.RevokedAt, now),
		Statement:     bytes.Clone(r.Statement),
		Digest:        hex.EncodeToString(sum[:]),
		StoredAt:      Time(time.Time{}, now),
	}, nil
}

// Signer validates a ListRevocations signer.
func Signer(signer string) error {
	if !isHex(signer, 64) {
		return fmt.Errorf("%w: signer is not an Ed25519 public key (64 lowercase hex)", store.ErrInvalid)
	}
	return nil
}

// truncateRunes cuts s to at most n bytes, for quoting in an error.
func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
