package snp

import (
	"encoding/hex"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
)

// Guest policy bits (SEV-SNP ABI specification, table "Guest Policy").
const (
	policySMTBit       = 16
	policyMigrateMABit = 18
	policyDebugBit     = 19
)

// claims returns the report's fields as the appraisal policy reads them
// (docs/spec/attestation.md §5). Byte strings are lower-case hex; numbers
// are int, or uint64 for the 64-bit bit fields.
func claims(v *verified) map[string]any {
	r := v.report
	turin := v.chain.line == "Turin"
	signer := "vcek"
	if v.signer == abi.VlekReportSigner {
		signer = "vlek"
	}
	policy := r.GetPolicy()
	return map[string]any{
		"tee":         "snp",
		"measurement": hex.EncodeToString(r.GetMeasurement()),
		"debug":       policy&(1<<policyDebugBit) != 0,
		"report_data": hex.EncodeToString(r.GetReportData()),
		"insecure":    false,
		"platform_id": hex.EncodeToString(r.GetChipId()),
		"snp": map[string]any{
			"version":           int(r.GetVersion()),
			"guest_svn":         int(r.GetGuestSvn()),
			"policy":            policy,
			"vmpl":              int(r.GetVmpl()),
			"signer":            signer,
			"product":           v.chain.line,
			"host_data":         hex.EncodeToString(r.GetHostData()),
			"id_key_digest":     hex.EncodeToString(r.GetIdKeyDigest()),
			"author_key_digest": hex.EncodeToString(r.GetAuthorKeyDigest()),
			"family_id":         hex.EncodeToString(r.GetFamilyId()),
			"image_id":          hex.EncodeToString(r.GetImageId()),
			"report_id":         hex.EncodeToString(r.GetReportId()),
			"chip_id":           hex.EncodeToString(r.GetChipId()),
			"current_tcb":       tcbClaims(r.GetCurrentTcb(), turin),
			"reported_tcb":      tcbClaims(r.GetReportedTcb(), turin),
			"committed_tcb":     tcbClaims(r.GetCommittedTcb(), turin),
			"launch_tcb":        tcbClaims(r.GetLaunchTcb(), turin),
			"platform_info":     r.GetPlatformInfo(),
			"smt_allowed":       policy&(1<<policySMTBit) != 0,
			"migrate_ma":        policy&(1<<policyMigrateMABit) != 0,
		},
	}
}

// tcbClaims splits a TCB_VERSION into its security patch levels. Milan and
// Genoa use go-sev-guest's layout; Turin moved the fields to make room for
// the FMC SPL (SEV-SNP ABI specification 1.58, TCB_VERSION), which
// go-sev-guest v0.15.0 does not know yet.
func tcbClaims(tcb uint64, turin bool) map[string]any {
	if turin {
		return map[string]any{
			"fmc":        int(tcb & 0xff),
			"bootloader": int(tcb >> 8 & 0xff),
			"tee":        int(tcb >> 16 & 0xff),
			"snp":        int(tcb >> 24 & 0xff),
			"microcode":  int(tcb >> 56 & 0xff),
		}
	}
	p := kds.DecomposeTCBVersion(kds.TCBVersion(tcb))
	return map[string]any{
		"bootloader": int(p.BlSpl),
		"tee":        int(p.TeeSpl),
		"snp":        int(p.SnpSpl),
		"microcode":  int(p.UcodeSpl),
		"fmc":        0,
	}
}
