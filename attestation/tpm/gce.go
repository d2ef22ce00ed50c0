package tpm

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"

	"github.com/kura-cc/kura/attestation"
)

// gceInstanceInfoOID is the extension Google puts in a Compute Engine
// vTPM's AK certificate: the instance it belongs to.
var gceInstanceInfoOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 1, 21}

// gceInstanceInfo is that extension's value, as Google's go-tpm-tools
// reads it.
type gceInstanceInfo struct {
	Zone               string `asn1:"utf8"`
	ProjectNumber      int64
	ProjectID          string `asn1:"utf8"`
	InstanceID         int64
	InstanceName       string `asn1:"utf8"`
	SecurityProperties struct {
		SecurityVersion int64 `asn1:"explicit,tag:0,optional"`
		IsProduction    bool  `asn1:"explicit,tag:1,optional"`
	} `asn1:"explicit,optional"`
}

// gceInstance returns the Compute Engine instance an AK certificate names,
// or nil if it has no such extension.
func gceInstance(leaf *x509.Certificate) (map[string]any, error) {
	for _, ext := range leaf.Extensions {
		if !ext.Id.Equal(gceInstanceInfoOID) {
			continue
		}
		var info gceInstanceInfo
		rest, err := asn1.Unmarshal(ext.Value, &info)
		if err != nil || len(rest) > 0 || info.ProjectNumber < 0 || info.InstanceID < 0 {
			return nil, fmt.Errorf("%w: the AK certificate's Compute Engine instance extension is malformed (err %v, %d trailing bytes)", attestation.ErrMalformed, err, len(rest))
		}
		return map[string]any{
			"zone":             info.Zone,
			"project_id":       info.ProjectID,
			"project_number":   fmt.Sprint(info.ProjectNumber),
			"instance_id":      fmt.Sprint(info.InstanceID),
			"instance_name":    info.InstanceName,
			"security_version": fmt.Sprint(info.SecurityProperties.SecurityVersion),
			"is_production":    info.SecurityProperties.IsProduction,
		}, nil
	}
	return nil, nil
}

// gceNonHostInfo is the prefix of the EV_NONHOST_INFO event Compute
// Engine's firmware measures into PCR 0; the byte after it names the VM's
// memory encryption.
var gceNonHostInfo = []byte("GCE NonHostInfo\x00")

// gceTechnologies names that byte's values, as Google's go-tpm-tools does.
var gceTechnologies = map[byte]string{0: "none", 1: "sev", 2: "sev-es", 4: "sev-snp"}

// gceTechnology returns the memory encryption that a Compute Engine boot
// log's EV_NONHOST_INFO event declares, if the log has that event and
// replay compared PCR 0 with a quoted value; otherwise "". Google's
// firmware measures the event's data itself, so a digest that is not its
// hash means the data was altered: an error wrapping ErrBinding.
func gceTechnology(log *eventLog, replayed []string) (string, error) {
	if log == nil || !slices.ContainsFunc(replayed, func(p string) bool { return strings.HasSuffix(p, ":0") }) {
		return "", nil
	}
	for i, e := range log.Events {
		if e.Type != evNonHostInfo || e.PCR != 0 || !bytes.HasPrefix(e.Data, gceNonHostInfo) || len(e.Data) <= len(gceNonHostInfo) {
			continue
		}
		for _, d := range e.Digests {
			b, ok := banks[d.Alg]
			if !ok {
				continue
			}
			h := b.Hash.New()
			h.Write(e.Data)
			if !bytes.Equal(h.Sum(nil), d.Value) {
				return "", fmt.Errorf("%w: event %d (EV_NONHOST_INFO on PCR 0), Compute Engine's declaration of the VM's memory encryption: its %s digest is not the hash of its data, which was altered",
					attestation.ErrBinding, i+1, b.Name)
			}
		}
		tech, ok := gceTechnologies[e.Data[len(gceNonHostInfo)]]
		if !ok {
			tech = fmt.Sprintf("unknown (%d)", e.Data[len(gceNonHostInfo)])
		}
		return tech, nil
	}
	return "", nil
}
