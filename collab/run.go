package collab

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/kura-cc/kura/internal/fault"
)

// RunContextVersion is the run context format this package reads and writes.
const RunContextVersion = 1

// ErrBadRunContext reports a malformed run context.
var ErrBadRunContext = fault.New(ErrCollab, fault.Malformed, "collab: malformed run context")

// RunContext is what a clean-room worker binds into its attestation, next
// to the verifier's nonce and its key-transport key: which collaboration
// version and analysis it runs, the run's id, and the public half of the
// ephemeral key it will sign the result bundle and the deletion receipt
// with. Key brokers read it from the attestation token; result receivers
// read it from the bundle and compare it with the token.
type RunContext struct {
	Version       int    `json:"v"`
	Collaboration string `json:"collaboration"` // collaboration id
	ManifestHash  string `json:"manifest_hash"` // hex SHA-256 of the manifest version run
	Analysis      string `json:"analysis"`      // analysis id
	RunID         string `json:"run_id"`        // 32 hex characters, random per run
	SigningKey    []byte `json:"signing_key"`   // Ed25519 public key, base64 in JSON
}

var (
	hexHash = regexp.MustCompile(`^[0-9a-f]{64}$`)
	hexRun  = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// Marshal returns the run context's bytes as bound into attestation: JSON
// with the fields in the order above and no insignificant whitespace.
func (rc *RunContext) Marshal() ([]byte, error) {
	if err := rc.check(); err != nil {
		return nil, err
	}
	return json.Marshal(rc)
}

func (rc *RunContext) check() error {
	switch {
	case rc.Version != RunContextVersion:
		return fmt.Errorf("%w: version %d, want %d", ErrBadRunContext, rc.Version, RunContextVersion)
	case rc.Collaboration == "":
		return fmt.Errorf("%w: no collaboration id", ErrBadRunContext)
	case !hexHash.MatchString(rc.ManifestHash):
		return fmt.Errorf("%w: manifest_hash must be 64 lowercase hex characters", ErrBadRunContext)
	case rc.Analysis == "":
		return fmt.Errorf("%w: no analysis id", ErrBadRunContext)
	case !hexRun.MatchString(rc.RunID):
		return fmt.Errorf("%w: run_id must be 32 lowercase hex characters", ErrBadRunContext)
	case len(rc.SigningKey) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: signing_key must be a %d-byte Ed25519 public key", ErrBadRunContext, ed25519.PublicKeySize)
	}
	return nil
}

// maxRunContext bounds an encoded run context.
const maxRunContext = 4 << 10

// ParseRunContext decodes and checks a run context. It accepts exactly the
// bytes Marshal produces, so the bytes bound into attestation have one
// meaning.
func ParseRunContext(data []byte) (*RunContext, error) {
	if len(data) > maxRunContext {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBadRunContext, len(data), maxRunContext)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var rc RunContext
	if err := dec.Decode(&rc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRunContext, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrBadRunContext)
	}
	canon, err := rc.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, data) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrBadRunContext)
	}
	return &rc, nil
}

// NewRunID returns a random run id.
func NewRunID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// CheckWorker checks an attested worker against the manifest's worker
// reference values: its launch measurement (hex, any case) must be listed
// for its TEE, and where the manifest sets them, its SNP reported TCB must
// meet snp.min_tcb and its TDX TCB status must be one snp.tcb_status maps
// to affirming or warning. claims are the verifier's annotated evidence
// claims for the TEE (the token's cpu0 evidence).
func (m *Manifest) CheckWorker(tee string, claims map[string]any) error {
	measurement, _ := claims["measurement"].(string)
	listed := false
	for _, rv := range m.Worker.ReferenceValues.Measurements {
		if measurement != "" && rv.TEE == tee && strings.EqualFold(rv.Value, measurement) {
			listed = true
		}
	}
	if !listed {
		return fmt.Errorf("worker measurement %s (%s) is not in the manifest's worker reference values", measurement, tee)
	}
	rv := m.Worker.ReferenceValues
	if tee == "snp" && rv.SNP != nil && len(rv.SNP.MinTCB) > 0 {
		snp, _ := claims["snp"].(map[string]any)
		tcb, _ := snp["reported_tcb"].(map[string]any)
		for part, min := range rv.SNP.MinTCB {
			got, ok := number(tcb[part])
			if !ok || got < float64(min) {
				return fmt.Errorf("worker SNP reported TCB %s is %v, the manifest's minimum is %d", part, tcb[part], min)
			}
		}
	}
	if tee == "tdx" && rv.TDX != nil && len(rv.TDX.TCBStatus) > 0 {
		status, _ := claims["tcb_status"].(string)
		if t := rv.TDX.TCBStatus[status]; t != "affirming" && t != "warning" {
			return fmt.Errorf("worker TDX TCB status %q is not accepted by the manifest's worker reference values", status)
		}
	}
	return nil
}

// number reads a JSON number claim.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}
