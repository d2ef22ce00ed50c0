package trust

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxPolicySize bounds a policy file.
const maxPolicySize = 1 << 20

// Policy says which gateways a client may send anything to
// (docs/spec/inference.md §8). YAML or JSON; unknown keys are errors.
type Policy struct {
	// Verifiers are the attestation verifiers whose tokens are trusted:
	// JWKS files, or https URLs serving one.
	Verifiers []string `yaml:"verifiers" json:"verifiers"`
	Gateway   struct {
		// Measurements are the gateway builds allowed, by TEE and launch
		// measurement. Empty: any build the log shows approved.
		Measurements []Measurement `yaml:"measurements" json:"measurements"`
		// AllowInsecure accepts the INSECURE simulated TEE (development
		// only): its evidence proves nothing.
		AllowInsecure bool `yaml:"allow_insecure" json:"allow_insecure"`
	} `yaml:"gateway" json:"gateway"`
	GPU struct {
		// Required refuses a gateway whose evidence has no verified
		// NVIDIA GPU (device gpu0) appraised affirming.
		Required bool `yaml:"required" json:"required"`
		// Measurements, when given, are the allowed GPU measurements
		// (the nvidia claims' digest of every measurement block).
		Measurements []string `yaml:"measurements" json:"measurements"`
	} `yaml:"gpu" json:"gpu"`
	BuildLog struct {
		// Key is the transparency log's verifier key (note format). When
		// set, the gateway must show an inclusion proof of its build's
		// approval by one of Approvers.
		Key string `yaml:"key" json:"key"`
		// Approvers are the fingerprints of the parties whose build
		// approvals are trusted.
		Approvers []string `yaml:"approvers" json:"approvers"`
	} `yaml:"build_log" json:"build_log"`
	// MaxAge bounds how long a verification is used before the gateway is
	// checked again (default 5m; never past the token's expiry).
	MaxAge time.Duration `yaml:"max_age" json:"max_age"`
}

// Measurement is an allowed gateway launch measurement.
type Measurement struct {
	TEE   string `yaml:"tee" json:"tee"`
	Value string `yaml:"value" json:"value"` // hex
}

// LoadPolicy reads a policy file.
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inference policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("inference policy: %w", err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("inference policy %s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy decodes and checks a policy. A policy must name at least one
// verifier, and trust builds by measurement, by the log, or both: a policy
// that would trust any gateway is refused.
func ParsePolicy(data []byte) (*Policy, error) {
	if len(data) > maxPolicySize {
		return nil, fmt.Errorf("%w: policy is larger than %d bytes", ErrMalformed, maxPolicySize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Policy
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	bad := func(format string, args ...any) (*Policy, error) {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	switch {
	case len(p.Verifiers) == 0:
		return bad("verifiers: name at least one verifier whose tokens are trusted (a JWKS file or URL)")
	case len(p.Gateway.Measurements) == 0 && p.BuildLog.Key == "":
		return bad("give gateway.measurements, build_log, or both: this policy would trust any gateway")
	case p.BuildLog.Key != "" && len(p.BuildLog.Approvers) == 0:
		return bad("build_log.approvers: name the parties whose build approvals are trusted")
	case p.MaxAge < 0:
		return bad("max_age is negative")
	}
	for i, m := range p.Gateway.Measurements {
		if b, err := hex.DecodeString(m.Value); m.TEE == "" || err != nil || len(b) < 16 {
			return bad("gateway.measurements[%d]: want a tee and a hex measurement", i)
		}
	}
	for i, m := range p.GPU.Measurements {
		if b, err := hex.DecodeString(m); err != nil || len(b) != 48 {
			return bad("gpu.measurements[%d]: want 96 hex digits (SHA-384)", i)
		}
	}
	for i, a := range p.BuildLog.Approvers {
		if b, err := hex.DecodeString(a); err != nil || len(b) != 32 {
			return bad("build_log.approvers[%d]: want a party fingerprint, 64 hex digits", i)
		}
	}
	if p.MaxAge == 0 {
		p.MaxAge = 5 * time.Minute
	}
	return &p, nil
}
