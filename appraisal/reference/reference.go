// Package reference is the reference values an appraisal compares
// attestation claims against (docs/spec/attestation.md §6.1): launch
// measurements, TCB floors, event-log and device requirements. It is data
// and its validation only — no policy engine — so that manifests (package
// collab) carry it anywhere, the browser's WebAssembly build included;
// package appraisal evaluates claims against it.
package reference

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Values are the values an appraisal compares claims against. They
// are data files (YAML or JSON); the format is in docs/spec/attestation.md §6.1.
type Values struct {
	// Measurements is the allow-list of launch measurements.
	Measurements []Measurement `json:"measurements,omitempty" yaml:"measurements"`
	SNP          *SNPValues    `json:"snp,omitempty" yaml:"snp"`
	TDX          *TDXValues    `json:"tdx,omitempty" yaml:"tdx"`
	CCA          *CCAValues    `json:"cca,omitempty" yaml:"cca"`
	VTPM         *VTPMValues   `json:"vtpm,omitempty" yaml:"vtpm"`
	Events       *EventValues  `json:"events,omitempty" yaml:"events"`
	Devices      *DeviceValues `json:"devices,omitempty" yaml:"devices"`
	NVIDIA       *NVIDIAValues `json:"nvidia,omitempty" yaml:"nvidia"`
}

// NVIDIAValues are reference values for NVIDIA GPU evidence: measurement
// index ("1" to "254") → allowed values (hex). Every listed index must be
// in the report with one of its values; indexes not listed are not judged
// (NVIDIA's RIMs mark some indexes inactive). The whole set of blocks can
// instead be pinned by a measurement with tee nvidia.
type NVIDIAValues struct {
	Measurements map[string][]string `json:"measurements,omitempty" yaml:"measurements"`
}

// check validates the indexes and values and lower-cases the values.
func (v *NVIDIAValues) check() error {
	if v == nil {
		return nil
	}
	for idx, values := range v.Measurements {
		if n, err := strconv.Atoi(idx); err != nil || n < 1 || n > 254 || strconv.Itoa(n) != idx {
			return fmt.Errorf("nvidia.measurements: index %q, want a decimal 1 to 254", idx)
		}
		if len(values) == 0 {
			return fmt.Errorf("nvidia.measurements[%s]: no values", idx)
		}
		for i, val := range values {
			if err := checkHex(fmt.Sprintf("nvidia.measurements[%s][%d]", idx, i), val, 32, 48, 64); err != nil {
				return err
			}
			values[i] = strings.ToLower(val)
		}
	}
	return nil
}

// DeviceValues are reference values for a composite bundle's devices
// (docs/spec/attestation.md §2.2): every Required device must be in the
// bundle with evidence of its TEE type, or the bundle is contraindicated.
type DeviceValues struct {
	Required []DeviceRequirement `json:"required,omitempty" yaml:"required"`
}

// DeviceRequirement names a device a bundle must carry: gpu0 with nvidia
// evidence, tpm0 with tpm evidence.
type DeviceRequirement struct {
	Name string `json:"name" yaml:"name"`
	TEE  string `json:"tee" yaml:"tee"`
}

// check validates each requirement.
func (v *DeviceValues) check() error {
	if v == nil {
		return nil
	}
	for i, r := range v.Required {
		if r.Name == "" || r.TEE == "" {
			return fmt.Errorf("devices.required[%d]: give the device's name (gpu0) and tee (nvidia)", i)
		}
	}
	return nil
}

// Measurement names one approved launch measurement.
type Measurement struct {
	TEE     string `json:"tee" yaml:"tee"`
	Name    string `json:"name" yaml:"name"`
	Version string `json:"version,omitempty" yaml:"version"`
	Value   string `json:"value" yaml:"value"` // hex
}

// SNPValues are SEV-SNP reference values. Empty lists are not checked.
type SNPValues struct {
	MinTCB   map[string]int `json:"min_tcb,omitempty" yaml:"min_tcb"` // bootloader, tee, snp, microcode, fmc
	ChipIDs  []string       `json:"chip_ids,omitempty" yaml:"chip_ids"`
	HostData []string       `json:"host_data,omitempty" yaml:"host_data"`
	VMPL     []int          `json:"vmpl,omitempty" yaml:"vmpl"`
}

// TDXValues are TDX reference values. Empty lists are not checked.
type TDXValues struct {
	// TCBStatus maps Intel TCB statuses to affirming, warning or
	// contraindicated; statuses not listed are contraindicated. Nil uses
	// the default: UpToDate affirming, the *Needed statuses warning.
	TCBStatus   map[string]string `json:"tcb_status,omitempty" yaml:"tcb_status"`
	MRSeam      []string          `json:"mr_seam,omitempty" yaml:"mr_seam"`
	RTMR0       []string          `json:"rtmr0,omitempty" yaml:"rtmr0"`
	RTMR1       []string          `json:"rtmr1,omitempty" yaml:"rtmr1"`
	RTMR2       []string          `json:"rtmr2,omitempty" yaml:"rtmr2"`
	RTMR3       []string          `json:"rtmr3,omitempty" yaml:"rtmr3"`
	XFAM        []string          `json:"xfam,omitempty" yaml:"xfam"`
	TDAttribute []string          `json:"td_attributes,omitempty" yaml:"td_attributes"`
	MRConfigID  []string          `json:"mr_config_id,omitempty" yaml:"mr_config_id"`
	MROwner     []string          `json:"mr_owner,omitempty" yaml:"mr_owner"`
}

// CCAValues are Arm CCA reference values; the realm initial measurement
// (RIM) is a Measurement with tee cca. Empty lists are not checked.
type CCAValues struct {
	// SWComponents are the approved platform software components. When
	// any are listed, every component the platform token measures must
	// match one of them.
	SWComponents []CCASoftwareComponent `json:"sw_components,omitempty" yaml:"sw_components"`
	// PlatformConfig lists the allowed platform configurations (hex).
	PlatformConfig []string `json:"platform_config,omitempty" yaml:"platform_config"`
	// ImplementationIDs lists the allowed platform implementation ids.
	ImplementationIDs []string `json:"implementation_ids,omitempty" yaml:"implementation_ids"`
	// REM0 to REM3 list the allowed realm extensible measurements.
	REM0 []string `json:"rem0,omitempty" yaml:"rem0"`
	REM1 []string `json:"rem1,omitempty" yaml:"rem1"`
	REM2 []string `json:"rem2,omitempty" yaml:"rem2"`
	REM3 []string `json:"rem3,omitempty" yaml:"rem3"`
	// PersonalizationValue lists the allowed realm personalization values.
	PersonalizationValue []string `json:"personalization_value,omitempty" yaml:"personalization_value"`
}

// CCASoftwareComponent is an approved platform software component. A
// measured component matches it when the measurement values are equal and
// so are the fields given here (type, signer id, version).
type CCASoftwareComponent struct {
	MeasurementType string `json:"measurement_type,omitempty" yaml:"measurement_type"`
	Value           string `json:"value" yaml:"value"` // hex
	SignerID        string `json:"signer_id,omitempty" yaml:"signer_id"`
	Version         string `json:"version,omitempty" yaml:"version"`
}

// VTPMValues are reference values for the PCRs an Azure vTPM quote covers
// (az-snp-vtpm, az-tdx-vtpm) or a TPM quote covers (tpm): bank ("sha1", "sha256", "sha384", "sha512")
// → PCR index ("0" to "23") → allowed values (hex). A PCR listed must be
// quoted and hold one of its values.
type VTPMValues struct {
	PCRs map[string]map[string][]string `json:"pcrs,omitempty" yaml:"pcrs"`
}

// EventValues are reference values for the events of a tpm bundle's
// replayed event logs (the TCG boot log and the IMA list) and of a tdx
// bundle's replayed CCEL log: every Required event must be among them and
// no Forbidden one may be.
type EventValues struct {
	Required  []EventMatch `json:"required,omitempty" yaml:"required"`
	Forbidden []EventMatch `json:"forbidden,omitempty" yaml:"forbidden"`
}

// EventMatch describes events by what they must have: a name (the
// event's description: an IMA file name such as /usr/local/bin/kura-worker,
// an EV_EFI_ACTION's text), a digest (hex: of any PCR bank, or an IMA file
// hash), a PCR (for tdx, the CCEL's MR index as logged: 1 is RTMR0), or
// several of these. It names at least a name or a digest.
type EventMatch struct {
	Name   string `json:"name,omitempty" yaml:"name"`
	Digest string `json:"digest,omitempty" yaml:"digest"`
	PCR    *int   `json:"pcr,omitempty" yaml:"pcr"`
}

// eventDigestSizes are the sizes of event digests: SHA-1, SHA-224,
// SHA-256 (and SM3), SHA-384, SHA-512.
var eventDigestSizes = []int{20, 28, 32, 48, 64}

// check validates each match and lower-cases its digest.
func (v *EventValues) check() error {
	if v == nil {
		return nil
	}
	for list, ms := range map[string][]EventMatch{"required": v.Required, "forbidden": v.Forbidden} {
		for i := range ms {
			m := &ms[i]
			where := fmt.Sprintf("events.%s[%d]", list, i)
			if m.Name == "" && m.Digest == "" {
				return fmt.Errorf("%s: give a name, a digest or both", where)
			}
			if m.Digest != "" {
				if err := checkHex(where+".digest", m.Digest, eventDigestSizes...); err != nil {
					return err
				}
				m.Digest = strings.ToLower(m.Digest)
			}
			if m.PCR != nil && (*m.PCR < 0 || *m.PCR > 23) {
				return fmt.Errorf("%s.pcr: %d, want 0 to 23", where, *m.PCR)
			}
		}
	}
	return nil
}

// vtpmBanks are the PCR banks' digest sizes.
var vtpmBanks = map[string]int{"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}

// maxReferenceSize bounds a reference values file.
const maxReferenceSize = 4 << 20

// Load reads a YAML or JSON reference values file. Unknown
// keys are errors, so a typo cannot silently disable a check.
func Load(path string) (*Values, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reference values: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxReferenceSize+1))
	if err != nil {
		return nil, fmt.Errorf("reference values: %w", err)
	}
	rv, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("reference values %s: %w", path, err)
	}
	return rv, nil
}

// Parse decodes reference values from YAML (JSON is YAML).
func Parse(data []byte) (*Values, error) {
	if len(data) > maxReferenceSize {
		return nil, fmt.Errorf("file is larger than %d bytes", maxReferenceSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var rv Values
	if err := dec.Decode(&rv); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err := rv.check(); err != nil {
		return nil, err
	}
	return &rv, nil
}

func (rv *Values) check() error {
	for i, m := range rv.Measurements {
		sizes := []int{48}
		switch m.TEE {
		case "snp", "tdx", "sim", "az-snp-vtpm", "az-tdx-vtpm", "nvidia": // nvidia: SHA-384 over every measurement block
		case "cca":
			sizes = ccaHashSizes // the RIM: SHA-256, SHA-384 or SHA-512
		case "tpm":
			sizes = ccaHashSizes // the quote's pcrDigest: SHA-256, SHA-384 or SHA-512
		default:
			return fmt.Errorf("measurements[%d]: tee %q, want snp, tdx, sim, cca, az-snp-vtpm, az-tdx-vtpm, tpm or nvidia", i, m.TEE)
		}
		if err := checkHex(fmt.Sprintf("measurements[%d].value", i), m.Value, sizes...); err != nil {
			return err
		}
		rv.Measurements[i].Value = strings.ToLower(m.Value)
	}
	if rv.CCA != nil {
		for i, c := range rv.CCA.SWComponents {
			where := fmt.Sprintf("cca.sw_components[%d]", i)
			if err := checkHex(where+".value", c.Value, ccaHashSizes...); err != nil {
				return err
			}
			rv.CCA.SWComponents[i].Value = strings.ToLower(c.Value)
			if c.SignerID != "" {
				if err := checkHex(where+".signer_id", c.SignerID, ccaHashSizes...); err != nil {
					return err
				}
				rv.CCA.SWComponents[i].SignerID = strings.ToLower(c.SignerID)
			}
		}
	}
	if err := rv.VTPM.check(); err != nil {
		return err
	}
	if err := rv.Events.check(); err != nil {
		return err
	}
	if err := rv.Devices.check(); err != nil {
		return err
	}
	if err := rv.NVIDIA.check(); err != nil {
		return err
	}
	if rv.TDX != nil {
		for status, verdict := range rv.TDX.TCBStatus {
			switch verdict {
			case "affirming", "warning", "contraindicated":
			default:
				return fmt.Errorf("tdx.tcb_status[%s]: %q, want affirming, warning or contraindicated", status, verdict)
			}
		}
	}
	return nil
}

// ccaHashSizes are the sizes of CCA measurements: SHA-256, SHA-384, SHA-512.
var ccaHashSizes = []int{32, 48, 64}

func checkHex(name, s string, sizes ...int) error {
	if !slices.Contains(sizes, len(s)/2) || len(s)%2 != 0 {
		want := make([]string, len(sizes))
		for i, n := range sizes {
			want[i] = strconv.Itoa(2 * n)
		}
		return fmt.Errorf("%s: %d hex digits, want %s", name, len(s), strings.Join(want, " or "))
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return fmt.Errorf("%s: not hex", name)
		}
	}
	return nil
}

// AsMap converts reference values to the generic form a policy reads.
func (rv *Values) AsMap() (map[string]any, error) {
	if rv == nil {
		return map[string]any{}, nil
	}
	data, err := json.Marshal(rv)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(data, &m)
}

// check validates bank names, PCR indices and value sizes, and lower-cases
// the values.
func (v *VTPMValues) check() error {
	if v == nil {
		return nil
	}
	for bank, pcrs := range v.PCRs {
		size, ok := vtpmBanks[bank]
		if !ok {
			return fmt.Errorf("vtpm.pcrs.%s: unknown bank, want sha1, sha256, sha384 or sha512", bank)
		}
		for idx, values := range pcrs {
			if n, err := strconv.Atoi(idx); err != nil || n < 0 || n > 23 || strconv.Itoa(n) != idx {
				return fmt.Errorf("vtpm.pcrs.%s.%s: want a PCR index from 0 to 23", bank, idx)
			}
			for i, val := range values {
				if err := checkHex(fmt.Sprintf("vtpm.pcrs.%s.%s[%d]", bank, idx, i), val, size); err != nil {
					return err
				}
				values[i] = strings.ToLower(val)
			}
		}
	}
	return nil
}
