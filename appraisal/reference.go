package appraisal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ReferenceValues are the values an appraisal compares claims against. They
// are data files (YAML or JSON); the format is in docs/spec/attestation.md §6.1.
type ReferenceValues struct {
	// Measurements is the allow-list of launch measurements.
	Measurements []Measurement `json:"measurements,omitempty" yaml:"measurements"`
	SNP          *SNPValues    `json:"snp,omitempty" yaml:"snp"`
	TDX          *TDXValues    `json:"tdx,omitempty" yaml:"tdx"`
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

// maxReferenceSize bounds a reference values file.
const maxReferenceSize = 4 << 20

// LoadReferenceValues reads a YAML or JSON reference values file. Unknown
// keys are errors, so a typo cannot silently disable a check.
func LoadReferenceValues(path string) (*ReferenceValues, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reference values: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxReferenceSize+1))
	if err != nil {
		return nil, fmt.Errorf("reference values: %w", err)
	}
	rv, err := ParseReferenceValues(data)
	if err != nil {
		return nil, fmt.Errorf("reference values %s: %w", path, err)
	}
	return rv, nil
}

// ParseReferenceValues decodes reference values from YAML (JSON is YAML).
func ParseReferenceValues(data []byte) (*ReferenceValues, error) {
	if len(data) > maxReferenceSize {
		return nil, fmt.Errorf("file is larger than %d bytes", maxReferenceSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var rv ReferenceValues
	if err := dec.Decode(&rv); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err := rv.check(); err != nil {
		return nil, err
	}
	return &rv, nil
}

func (rv *ReferenceValues) check() error {
	for i, m := range rv.Measurements {
		switch m.TEE {
		case "snp", "tdx", "sim":
		default:
			return fmt.Errorf("measurements[%d]: tee %q, want snp, tdx or sim", i, m.TEE)
		}
		if err := checkHex(fmt.Sprintf("measurements[%d].value", i), m.Value, 48); err != nil {
			return err
		}
		rv.Measurements[i].Value = strings.ToLower(m.Value)
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

func checkHex(name, s string, size int) error {
	if len(s) != 2*size {
		return fmt.Errorf("%s: %d hex digits, want %d", name, len(s), 2*size)
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return fmt.Errorf("%s: not hex", name)
		}
	}
	return nil
}

// asMap converts reference values to the generic form the policy reads.
func (rv *ReferenceValues) asMap() (map[string]any, error) {
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
