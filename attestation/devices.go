package attestation

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"regexp"
)

// MaxDevices bounds the devices of a composite bundle.
const MaxDevices = 8

// deviceName is what a device may be called: a short kind and a number
// ("gpu0", "tpm0"). "cpu0" is the bundle's own evidence.
var deviceName = regexp.MustCompile(`^[a-z]{2,8}[0-9]{1,3}$`)

// PrimaryDevice names the bundle's own evidence among its devices, in
// claims and in the EAR's submods.
const PrimaryDevice = "cpu0"

// Device is one more device's evidence in a composite bundle
// (docs/spec/attestation.md §2.2): a GPU's or a TPM's, attested for the
// same nonce and bound into the primary evidence's report_data through
// RuntimeData.Hash.
type Device struct {
	// Name names the device ("gpu0", "tpm0"): its EAR submod.
	Name string `json:"name"`
	// Bundle is the device's evidence bundle, JSON as the attester
	// encoded it (standard base64 in JSON). The primary report_data binds
	// its SHA-256, so these bytes are what is verified, not a re-encoding.
	Bundle []byte `json:"bundle"`
}

// ParseDevice parses d's bundle and checks that it belongs in a composite
// bundle whose runtime data is parent: its runtime data is exactly the
// parent's nonce (a device's evidence binds the nonce only, under kura's
// rule, and is made before the primary evidence, which binds it), and it
// has no devices of its own.
func (d *Device) ParseDevice(parent *RuntimeData) (*Bundle, error) {
	b, err := ParseBundle(d.Bundle)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", d.Name, err)
	}
	rd := b.RuntimeData
	switch {
	case len(rd.Devices) > 0:
		return nil, fmt.Errorf("%w: device %s: a device's bundle has no devices of its own", ErrMalformed, d.Name)
	case b.Binding != BindingKura:
		return nil, fmt.Errorf("%w: device %s: binding %q; a device binds its nonce under kura's rule", ErrMalformed, d.Name, b.Binding)
	case len(rd.PublicKey) > 0 || len(rd.Context) > 0:
		return nil, fmt.Errorf("%w: device %s: its runtime data has a public key or context; a device binds the nonce only", ErrMalformed, d.Name)
	case string(rd.Nonce) != string(parent.Nonce):
		return nil, fmt.Errorf("%w: device %s: its nonce %x is not the bundle's %x", ErrBinding, d.Name, rd.Nonce, parent.Nonce)
	}
	return b, nil
}

// checkDevices reports whether the devices are well named, unique and
// within their limits. Their bundles are parsed when verified.
func (r *RuntimeData) checkDevices() error {
	if len(r.Devices) == 0 {
		return nil
	}
	if len(r.Devices) > MaxDevices {
		return fmt.Errorf("%w: %d devices, limit is %d", ErrMalformed, len(r.Devices), MaxDevices)
	}
	if r.Empty() {
		return fmt.Errorf("%w: runtime data has devices but no nonce", ErrMalformed)
	}
	seen := map[string]bool{}
	for _, d := range r.Devices {
		switch {
		case !deviceName.MatchString(d.Name) || d.Name == PrimaryDevice:
			return fmt.Errorf("%w: device name %q: want a kind and a number such as gpu0 or tpm0 (%s is the bundle's own evidence)", ErrMalformed, d.Name, PrimaryDevice)
		case seen[d.Name]:
			return fmt.Errorf("%w: device %s appears twice", ErrMalformed, d.Name)
		case len(d.Bundle) == 0:
			return fmt.Errorf("%w: device %s has no bundle", ErrMalformed, d.Name)
		}
		seen[d.Name] = true
	}
	return nil
}

// devicesDigest is SHA-512 over each device's length-prefixed name and the
// SHA-256 of its bundle bytes, in order (docs/spec/attestation.md §3).
func (r *RuntimeData) devicesDigest() []byte {
	h := sha512.New()
	var n [4]byte
	for _, d := range r.Devices {
		binary.BigEndian.PutUint32(n[:], uint32(len(d.Name)))
		h.Write(n[:])
		h.Write([]byte(d.Name))
		sum := sha256.Sum256(d.Bundle)
		h.Write(sum[:])
	}
	return h.Sum(nil)
}

// DeviceAttester is an Attester for one device of a composite bundle.
type DeviceAttester struct {
	Name     string // gpu0, tpm0
	Attester Attester
}

// AttestComposite produces a composite bundle (docs/spec/attestation.md
// §2.2): each device attests rd's nonce alone under kura's rule, then the
// primary attester attests rd with the devices' bundles bound into it.
// Without devices it is the primary's ordinary bundle for rd.
func AttestComposite(ctx context.Context, primary Attester, devices []DeviceAttester, rd RuntimeData) (*Bundle, error) {
	rd.Devices = nil
	nonceOnly := RuntimeData{Nonce: rd.Nonce}
	if err := nonceOnly.Check(); err != nil || rd.Empty() {
		return nil, fmt.Errorf("%w: a composite bundle needs a nonce (%v)", ErrMalformed, err)
	}
	for _, d := range devices {
		db, err := d.Attester.Attest(ctx, nonceOnly.ReportData())
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", d.Name, err)
		}
		db.RuntimeData = nonceOnly
		data, err := json.Marshal(db)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", d.Name, err)
		}
		rd.Devices = append(rd.Devices, Device{Name: d.Name, Bundle: data})
	}
	if err := rd.Check(); err != nil {
		return nil, err
	}
	b, err := primary.Attest(ctx, rd.ReportData())
	if err != nil {
		return nil, err
	}
	b.RuntimeData = rd
	if err := b.Check(); err != nil {
		return nil, err
	}
	return b, nil
}
