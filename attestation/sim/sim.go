package sim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/kura-cc/kura/attestation"
)

// Warning is the text every sim artefact carries.
const Warning = "INSECURE: simulated TEE, evidence proves nothing"

// format identifies sim evidence version 1.
const format = "kura-sim-evidence/v1"

// MeasurementSize is the size of a sim measurement (SHA-384).
const MeasurementSize = sha512.Size384

// maxEvidenceSize bounds sim evidence; real documents are under 1 KiB.
const maxEvidenceSize = 16 << 10

// evidence is the sim evidence document (docs/spec/attestation.md §4.3).
type evidence struct {
	Format      string `json:"format"`
	Warning     string `json:"warning"`
	Measurement string `json:"measurement"` // hex, 48 bytes
	ReportData  string `json:"report_data"` // hex, 64 bytes
	Debug       bool   `json:"debug"`
	Key         []byte `json:"key"`       // PKIX DER of the ECDSA P-256 signing key
	Signature   []byte `json:"signature"` // ASN.1 ECDSA over SHA-256 of signedBytes
}

// signedBytes is the message the sim key signs: a tag, then the fields in a
// fixed binary layout, so no JSON canonicalisation is needed.
func signedBytes(measurement, reportData []byte, debug bool, key []byte) []byte {
	var b bytes.Buffer
	b.WriteString(format)
	b.WriteByte(0)
	b.Write(measurement)
	b.Write(reportData)
	if debug {
		b.WriteByte(1)
	} else {
		b.WriteByte(0)
	}
	b.Write(key)
	return b.Bytes()
}

// AttesterConfig configures a sim attester.
type AttesterConfig struct {
	// Key signs evidence. Nil generates a fresh key.
	Key *ecdsa.PrivateKey
	// Measurement is the measurement to report. Nil means SHA-384 of the
	// running executable, computed once.
	Measurement []byte
	// Debug sets the debug claim, for tests of policies that refuse debug guests.
	Debug bool
}

// Attester produces sim evidence. It is safe for concurrent use.
type Attester struct {
	key         *ecdsa.PrivateKey
	keyDER      []byte
	debug       bool
	measureOnce sync.Once
	measurement []byte
	measureErr  error
}

// NewAttester returns a sim attester.
func NewAttester(cfg AttesterConfig) (*Attester, error) {
	key := cfg.Key
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, fmt.Errorf("sim: generate key: %w", err)
		}
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("sim: encode key: %w", err)
	}
	a := &Attester{key: key, keyDER: der, debug: cfg.Debug}
	if cfg.Measurement != nil {
		if len(cfg.Measurement) != MeasurementSize {
			return nil, fmt.Errorf("sim: measurement is %d bytes, want %d", len(cfg.Measurement), MeasurementSize)
		}
		a.measurement = bytes.Clone(cfg.Measurement)
		a.measureOnce.Do(func() {})
	}
	return a, nil
}

// TEE returns attestation.Sim.
func (a *Attester) TEE() attestation.TEE { return attestation.Sim }

// PublicKey returns the attester's signing key, for verifiers that pin it.
func (a *Attester) PublicKey() *ecdsa.PublicKey { return &a.key.PublicKey }

// Measurement returns the measurement the attester reports.
func (a *Attester) Measurement() ([]byte, error) {
	a.measureOnce.Do(func() { a.measurement, a.measureErr = ExecutableMeasurement() })
	return a.measurement, a.measureErr
}

// Attest returns INSECURE sim evidence binding reportData.
func (a *Attester) Attest(_ context.Context, reportData [attestation.ReportDataSize]byte) (*attestation.Bundle, error) {
	m, err := a.Measurement()
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(signedBytes(m, reportData[:], a.debug, a.keyDER))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("sim: sign: %w", err)
	}
	ev, err := json.Marshal(evidence{
		Format:      format,
		Warning:     Warning,
		Measurement: hex.EncodeToString(m),
		ReportData:  hex.EncodeToString(reportData[:]),
		Debug:       a.debug,
		Key:         a.keyDER,
		Signature:   sig,
	})
	if err != nil {
		return nil, err
	}
	return &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.Sim, Evidence: ev}, nil
}

// ExecutableMeasurement returns SHA-384 of the running executable: the sim
// stand-in for a launch measurement.
func ExecutableMeasurement() ([]byte, error) {
	path, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("sim: find executable: %w", err)
	}
	return FileMeasurement(path)
}

// FileMeasurement returns SHA-384 of the file at path: the sim measurement
// of a worker run from that executable.
func FileMeasurement(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sim: measure executable: %w", err)
	}
	defer f.Close()
	h := sha512.New384()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("sim: measure executable: %w", err)
	}
	return h.Sum(nil), nil
}

// Config configures a sim verifier.
type Config struct {
	// TrustedKeys pins the sim keys whose evidence is accepted. Empty
	// accepts evidence signed by any key (it is INSECURE either way).
	TrustedKeys []crypto.PublicKey
}

// Verifier checks sim evidence. It is safe for concurrent use.
type Verifier struct {
	trusted [][]byte // PKIX DER of trusted keys
}

// NewVerifier returns a sim verifier.
func NewVerifier(cfg Config) (*Verifier, error) {
	v := &Verifier{}
	for _, k := range cfg.TrustedKeys {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("sim: trusted key: %w", err)
		}
		v.trusted = append(v.trusted, der)
	}
	return v, nil
}

// Verify checks the signature on sim evidence and returns its claims, all
// marked insecure. Trustee's sample evidence (IsSample) has no signature
// to check and is accepted only when no sim keys are pinned.
func (v *Verifier) Verify(_ context.Context, b *attestation.Bundle) (*attestation.Result, error) {
	res := &attestation.Result{TEE: attestation.Sim}
	if b.TEE == attestation.Sim && IsSample(b.Evidence) {
		return v.verifySample(b, res)
	}
	ev, m, rd, err := parse(b)
	if err != nil {
		return res, res.Fail("evidence parse", err)
	}
	res.Pass("evidence parse", Warning)
	pub, err := x509.ParsePKIXPublicKey(ev.Key)
	if err != nil {
		return res, res.Fail("sim key", fmt.Errorf("%w: key: %v", attestation.ErrMalformed, err))
	}
	ecKey, ok := pub.(*ecdsa.PublicKey)
	if !ok || ecKey.Curve != elliptic.P256() {
		return res, res.Fail("sim key", fmt.Errorf("%w: key is %T, want ECDSA P-256", attestation.ErrMalformed, pub))
	}
	if len(v.trusted) == 0 {
		res.Skip("sim key trusted", "no sim keys pinned: any sim key accepted ("+Warning+")")
	} else if !v.isTrusted(ev.Key) {
		return res, res.Fail("sim key trusted", fmt.Errorf("%w: sim key is not pinned", attestation.ErrUntrustedRoot))
	} else {
		res.Pass("sim key trusted", "key pinned in the verifier configuration")
	}
	digest := sha256.Sum256(signedBytes(m, rd, ev.Debug, ev.Key))
	if !ecdsa.VerifyASN1(ecKey, digest[:], ev.Signature) {
		return res, res.Fail("evidence signature", fmt.Errorf("%w: sim evidence signature does not verify", attestation.ErrBadSignature))
	}
	res.Pass("evidence signature", "ECDSA P-256 signature by the sim key")
	res.ReportData = rd
	res.Claims = map[string]any{
		"tee":         string(attestation.Sim),
		"measurement": ev.Measurement,
		"debug":       ev.Debug,
		"report_data": ev.ReportData,
		"insecure":    true,
		"warning":     Warning,
		"sim":         map[string]any{"key_sha256": hex.EncodeToString(sha256Sum(ev.Key))},
	}
	return res, nil
}

func (v *Verifier) isTrusted(der []byte) bool {
	for _, t := range v.trusted {
		if bytes.Equal(t, der) {
			return true
		}
	}
	return false
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// parse decodes and shape-checks sim evidence.
func parse(b *attestation.Bundle) (ev *evidence, measurement, reportData []byte, err error) {
	if b.TEE != attestation.Sim {
		return nil, nil, nil, fmt.Errorf("%w: bundle tee is %q, want sim", attestation.ErrMalformed, b.TEE)
	}
	if len(b.Evidence) > maxEvidenceSize {
		return nil, nil, nil, fmt.Errorf("%w: sim evidence is %d bytes, limit is %d", attestation.ErrMalformed, len(b.Evidence), maxEvidenceSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b.Evidence))
	dec.DisallowUnknownFields()
	ev = new(evidence)
	if err := dec.Decode(ev); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: sim evidence: %v", attestation.ErrMalformed, err)
	}
	if ev.Format != format {
		return nil, nil, nil, fmt.Errorf("%w: sim evidence format %q, want %q", attestation.ErrMalformed, ev.Format, format)
	}
	measurement, err = decodeHex("measurement", ev.Measurement, MeasurementSize)
	if err != nil {
		return nil, nil, nil, err
	}
	reportData, err = decodeHex("report_data", ev.ReportData, attestation.ReportDataSize)
	if err != nil {
		return nil, nil, nil, err
	}
	return ev, measurement, reportData, nil
}

func decodeHex(name, s string, size int) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: sim evidence %s: %v", attestation.ErrMalformed, name, err)
	}
	if len(b) != size {
		return nil, fmt.Errorf("%w: sim evidence %s is %d bytes, want %d", attestation.ErrMalformed, name, len(b), size)
	}
	return b, nil
}

// SampleWarning is the text every artefact of Trustee's sample evidence
// carries, with Warning.
const SampleWarning = "INSECURE: Trustee sample evidence is unsigned: anyone can make it, and it proves nothing"

// sampleFormat names Trustee's sample evidence in claims.
const sampleFormat = "trustee-sample"

// sampleEvidence is the evidence of Trustee's "sample" TEE, as its
// attestation service's sample verifier reads it: a security version and
// base64 report_data and init_data, with no measurement, key or signature
// (docs/spec/attestation.md §4.3).
type sampleEvidence struct {
	SVN        *string `json:"svn"`
	ReportData string  `json:"report_data"`
	InitData   string  `json:"init_data"`
}

// IsSample reports whether sim evidence is Trustee's sample evidence (a
// JSON object with "svn" and no "format") rather than kura's signed sim
// document.
func IsSample(evidence []byte) bool {
	var m map[string]json.RawMessage
	if len(evidence) > maxEvidenceSize || json.Unmarshal(evidence, &m) != nil {
		return false
	}
	_, svn := m["svn"]
	_, format := m["format"]
	return svn && !format
}

// IsSampleClaims reports whether claims are those of Trustee's sample
// evidence.
func IsSampleClaims(claims map[string]any) bool {
	s, _ := claims["sim"].(map[string]any)
	return s["format"] == sampleFormat
}

// verifySample checks the shape of Trustee's sample evidence: there is
// nothing else to check. Its report_data (at most 64 bytes) is
// zero-padded to 64 bytes, as Trustee's hardware verifiers regularise it,
// for the binding check; its measurement claim is empty (it has none).
func (v *Verifier) verifySample(b *attestation.Bundle, res *attestation.Result) (*attestation.Result, error) {
	dec := json.NewDecoder(bytes.NewReader(b.Evidence))
	dec.DisallowUnknownFields()
	var ev sampleEvidence
	if err := dec.Decode(&ev); err != nil || dec.More() {
		if err == nil {
			err = errors.New("trailing data")
		}
		return res, res.Fail("evidence parse", fmt.Errorf("%w: Trustee sample evidence: %v", attestation.ErrMalformed, err))
	}
	if ev.SVN == nil {
		return res, res.Fail("evidence parse", fmt.Errorf("%w: Trustee sample evidence has no svn", attestation.ErrMalformed))
	}
	rd, err := sampleBytes("report_data", ev.ReportData)
	if err != nil {
		return res, res.Fail("evidence parse", err)
	}
	initData, err := sampleBytes("init_data", ev.InitData)
	if err != nil {
		return res, res.Fail("evidence parse", err)
	}
	res.Pass("evidence parse", Warning+"; "+SampleWarning)
	if len(v.trusted) > 0 {
		return res, res.Fail("sim key trusted", fmt.Errorf("%w: Trustee sample evidence has no key, and this verifier pins sim keys", attestation.ErrUntrustedRoot))
	}
	res.Skip("evidence signature", SampleWarning)
	res.ReportData = make([]byte, attestation.ReportDataSize)
	copy(res.ReportData, rd)
	res.Claims = map[string]any{
		"tee":         string(attestation.Sim),
		"measurement": "",
		"debug":       false,
		"report_data": hex.EncodeToString(res.ReportData),
		"insecure":    true,
		"warning":     Warning + "; " + SampleWarning,
		"sim":         map[string]any{"format": sampleFormat, "svn": *ev.SVN, "init_data": hex.EncodeToString(initData)},
	}
	return res, nil
}

// sampleBytes decodes a base64 (standard, padded) member of sample
// evidence, at most 64 bytes; empty is allowed, as Trustee defaults it.
func sampleBytes(name, s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: Trustee sample evidence %s: %v", attestation.ErrMalformed, name, err)
	}
	if len(b) > attestation.ReportDataSize {
		return nil, fmt.Errorf("%w: Trustee sample evidence %s is %d bytes, at most %d", attestation.ErrMalformed, name, len(b), attestation.ReportDataSize)
	}
	return b, nil
}
