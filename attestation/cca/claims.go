package cca

import "encoding/hex"

// claims returns the token's claims as the appraisal policy reads them
// (docs/spec/attestation.md §5). Byte strings are lower-case hex.
func claims(t *Token) map[string]any {
	p, r := &t.Platform, &t.Realm
	state := LifecycleState(p.Lifecycle)
	components := make([]any, len(p.SoftwareComponents))
	for i, c := range p.SoftwareComponents {
		components[i] = map[string]any{
			"measurement_type":  c.MeasurementType,
			"measurement_value": hex.EncodeToString(c.MeasurementValue),
			"version":           c.Version,
			"signer_id":         hex.EncodeToString(c.SignerID),
			"hash_algo_id":      c.HashAlgID,
		}
	}
	cca := map[string]any{
		"platform_profile":      p.Profile,
		"implementation_id":     hex.EncodeToString(p.ImplementationID),
		"instance_id":           hex.EncodeToString(p.InstanceID),
		"platform_config":       hex.EncodeToString(p.Config),
		"lifecycle":             int(p.Lifecycle),
		"lifecycle_state":       state,
		"sw_components":         components,
		"verification_service":  p.VerificationService,
		"platform_hash_algo_id": p.HashAlgID,
		"realm_profile":         r.Profile,
		"rim":                   hex.EncodeToString(r.InitialMeasurement),
		"personalization_value": hex.EncodeToString(r.PersonalizationValue),
		"realm_hash_algo_id":    r.HashAlgID,
		"rak":                   hex.EncodeToString(r.PublicKey),
		"rak_hash_algo_id":      r.PublicKeyHashAlgID,
	}
	for i, rem := range r.ExtensibleMeasurements {
		cca["rem"+string(rune('0'+i))] = hex.EncodeToString(rem)
	}
	return map[string]any{
		"tee":         "cca",
		"measurement": hex.EncodeToString(r.InitialMeasurement),
		// The realm token has no debug flag; a platform whose root of
		// trust is in a debug lifecycle state cannot protect realms.
		"debug":       state == "non-cca-platform-debug" || state == "recoverable-cca-platform-debug",
		"report_data": hex.EncodeToString(r.Challenge),
		"insecure":    false,
		"platform_id": hex.EncodeToString(p.InstanceID),
		"cca":         cca,
	}
}
