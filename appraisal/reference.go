package appraisal

import rv "github.com/kura-cc/kura/appraisal/reference"

// The reference values types, defined in package appraisal/reference so
// that manifests carry them without this package's policy engine.
type (
	ReferenceValues      = rv.Values
	Measurement          = rv.Measurement
	SNPValues            = rv.SNPValues
	TDXValues            = rv.TDXValues
	CCAValues            = rv.CCAValues
	CCASoftwareComponent = rv.CCASoftwareComponent
	VTPMValues           = rv.VTPMValues
	EventValues          = rv.EventValues
	EventMatch           = rv.EventMatch
	DeviceValues         = rv.DeviceValues
	DeviceRequirement    = rv.DeviceRequirement
	NVIDIAValues         = rv.NVIDIAValues
)

// LoadReferenceValues reads a YAML or JSON reference values file
// (package appraisal/reference, Load).
func LoadReferenceValues(path string) (*ReferenceValues, error) { return rv.Load(path) }

// ParseReferenceValues decodes reference values from YAML or JSON
// (package appraisal/reference, Parse).
func ParseReferenceValues(data []byte) (*ReferenceValues, error) { return rv.Parse(data) }
