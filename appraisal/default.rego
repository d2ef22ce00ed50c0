# kura's default appraisal policy (docs/spec/attestation.md §6).
#
# Input:  {"claims": <TEE claims>, "reference": <reference values>, "dev_mode": bool}
# Output: result = {"trust_vector": {AR4SI claim: value}, "checks": [...], "explain": {AR4SI claim: why}}
#
# AR4SI values used: 2 affirming; 32/33 warning; 96/97 contraindicated; 0 no claim.
package kura.appraisal

claims := input.claims

ref := object.get(input, "reference", {})

tee := claims.tee

# ---------------------------------------------------------------- helpers

# list_check judges value against an optional allow-list of hex strings.
list_check(name, allowed, value) := {"name": name, "status": "skipped", "detail": "no reference values configured"} if {
	count(allowed) == 0
} else := {"name": name, "status": "passed", "detail": sprintf("%s is allowed", [value])} if {
	value in {lower(x) | some x in allowed}
} else := {"name": name, "status": "failed", "detail": sprintf("%s is not in the reference values", [value])}

worst(checks, fail_value, ok_value) := fail_value if {
	some c in checks
	c.status == "failed"
} else := ok_value

# ---------------------------------------------------------------- executables

known := [m | some m in object.get(ref, "measurements", []); m.tee == tee]

matches := [m | some m in known; lower(m.value) == claims.measurement]

measurement_check := {"name": "measurement", "status": "skipped", "detail": sprintf("no reference measurements for %s: measurement %s not judged", [tee, claims.measurement])} if {
	count(known) == 0
} else := {"name": "measurement", "status": "passed", "detail": sprintf("%s is %s %s", [claims.measurement, matches[0].name, object.get(matches[0], "version", "")])} if {
	count(matches) > 0
} else := {"name": "measurement", "status": "failed", "detail": sprintf("%s is not a reference measurement for %s", [claims.measurement, tee])}

exec_checks contains measurement_check

exec_checks contains list_check("tdx mr_seam", object.get(ref, ["tdx", "mr_seam"], []), claims.tdx.mr_seam) if tee == "tdx"

exec_checks contains list_check(sprintf("tdx rtmr%d", [i]), object.get(ref, ["tdx", sprintf("rtmr%d", [i])], []), claims.tdx[sprintf("rtmr%d", [i])]) if {
	tee == "tdx"
	some i in numbers.range(0, 3)
}

executables := 0 if {
	every c in exec_checks { c.status == "skipped" }
} else := worst(exec_checks, 33, 2)

# ---------------------------------------------------------------- configuration

debug_check := {"name": "debug disabled", "status": "failed", "detail": "debug is enabled: the host can read and change guest memory"} if {
	claims.debug
} else := {"name": "debug disabled", "status": "passed", "detail": "debug is off"}

config_checks contains debug_check

config_checks contains list_check("snp host_data", object.get(ref, ["snp", "host_data"], []), claims.snp.host_data) if tee == "snp"

config_checks contains c if {
	tee == "snp"
	allowed := object.get(ref, ["snp", "vmpl"], [])
	c := vmpl_check(allowed, claims.snp.vmpl)
}

vmpl_check(allowed, v) := {"name": "snp vmpl", "status": "skipped", "detail": sprintf("VMPL %d; no allowed VMPLs configured", [v])} if {
	count(allowed) == 0
} else := {"name": "snp vmpl", "status": "passed", "detail": sprintf("VMPL %d is allowed", [v])} if {
	v in allowed
} else := {"name": "snp vmpl", "status": "failed", "detail": sprintf("VMPL %d is not in %v", [v, allowed])}

config_checks contains list_check(sprintf("tdx %s", [k]), object.get(ref, ["tdx", k], []), claims.tdx[k]) if {
	tee == "tdx"
	some k in ["xfam", "td_attributes", "mr_config_id", "mr_owner"]
}

configuration := worst(config_checks, 96, 2)

# ---------------------------------------------------------------- hardware

tcb_parts := ["bootloader", "tee", "snp", "microcode", "fmc"]

snp_low contains sprintf("%s %d < %d", [p, claims.snp.reported_tcb[p], min]) if {
	some p in tcb_parts
	min := object.get(ref, ["snp", "min_tcb", p], 0)
	claims.snp.reported_tcb[p] < min
}

default_tdx_status := {
	"UpToDate": "affirming",
	"SWHardeningNeeded": "warning",
	"ConfigurationNeeded": "warning",
	"ConfigurationAndSWHardeningNeeded": "warning",
}

tdx_status_map := object.get(ref, ["tdx", "tcb_status"], default_tdx_status)

hw_checks contains {"name": "simulated tee", "status": "passed", "detail": "INSECURE: simulated TEE accepted because dev mode is on; it proves nothing"} if {
	tee == "sim"
	input.dev_mode
}

hw_checks contains {"name": "simulated tee", "status": "failed", "detail": "INSECURE: simulated TEE refused outside dev mode"} if {
	tee == "sim"
	not input.dev_mode
}

hw_checks contains {"name": "snp minimum tcb", "status": "failed", "detail": concat(", ", sort(snp_low))} if {
	tee == "snp"
	count(snp_low) > 0
}

hw_checks contains {"name": "snp minimum tcb", "status": min_tcb_status, "detail": detail} if {
	tee == "snp"
	count(snp_low) == 0
	t := claims.snp.reported_tcb
	detail := sprintf("reported TCB bootloader %d tee %d snp %d microcode %d fmc %d", [t.bootloader, t.tee, t.snp, t.microcode, t.fmc])
}

min_tcb_status := "skipped" if {
	count(object.get(ref, ["snp", "min_tcb"], {})) == 0
} else := "passed"

hw_checks contains list_check("platform chip id", object.get(ref, ["snp", "chip_ids"], []), claims.platform_id) if tee == "snp"

hw_checks contains {"name": "tdx tcb status", "status": tdx_status_check, "detail": sprintf("Intel reports TCB status %q for this platform: %s", [claims.tcb_status, tdx_verdict])} if tee == "tdx"

tdx_verdict := object.get(tdx_status_map, claims.tcb_status, "contraindicated")

tdx_status_check := "failed" if tdx_verdict == "contraindicated" else := "passed"

hardware := 32 if {
	tee == "sim"
	input.dev_mode
} else := 97 if {
	tee == "sim"
} else := 96 if {
	some c in hw_checks
	c.status == "failed"
} else := 32 if {
	tee == "tdx"
	tdx_verdict == "warning"
} else := 2

# ---------------------------------------------------------------- result

instance_identity := 0 if tee == "sim" else := 2

runtime_opaque := 0 if tee == "sim" else := 2

why(checks, none) := none if {
	count(checks) == 0
} else := concat("; ", sort([sprintf("%s: %s (%s)", [c.name, c.status, c.detail]) | some c in checks]))

result := {
	"trust_vector": {
		"instance-identity": instance_identity,
		"configuration": configuration,
		"executables": executables,
		"hardware": hardware,
		"runtime-opaque": runtime_opaque,
	},
	"checks": array.concat(array.concat([c | some c in exec_checks], [c | some c in config_checks]), [c | some c in hw_checks]),
	"explain": {
		"instance-identity": identity_why,
		"configuration": why(config_checks, ""),
		"executables": why(exec_checks, ""),
		"hardware": why(hw_checks, "genuine TEE hardware: the evidence chains to the vendor root"),
		"runtime-opaque": opaque_why,
	},
}

identity_why := "INSECURE: sim evidence is signed by a software key; no instance identity" if tee == "sim" else := "evidence signature chains to the vendor root"

opaque_why := "INSECURE: simulated TEE memory is visible to the host" if tee == "sim" else := "guest memory is encrypted by the CPU"
