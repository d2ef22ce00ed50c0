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

# family is the hardware whose claims the evidence carries: Azure's vTPM
# TEEs carry SNP or TDX claims and are judged by the same rules.
family := "snp" if tee == "az-snp-vtpm" else := "tdx" if tee == "az-tdx-vtpm" else := tee

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

exec_checks contains list_check("tdx mr_seam", object.get(ref, ["tdx", "mr_seam"], []), claims.tdx.mr_seam) if family == "tdx"

exec_checks contains list_check(sprintf("tdx rtmr%d", [i]), object.get(ref, ["tdx", sprintf("rtmr%d", [i])], []), claims.tdx[sprintf("rtmr%d", [i])]) if {
	family == "tdx"
	some i in numbers.range(0, 3)
}

exec_checks contains list_check(sprintf("cca rem%d", [i]), object.get(ref, ["cca", sprintf("rem%d", [i])], []), claims.cca[sprintf("rem%d", [i])]) if {
	tee == "cca"
	some i in numbers.range(0, 3)
}

exec_checks contains cca_sw_check if tee == "cca"

# nvidia: each listed measurement index must hold one of its values.
nvidia_ref := object.get(ref, ["nvidia", "measurements"], {})

nvidia_mismatches := [sprintf("index %s is %s", [i, object.get(claims.measurements, i, "absent")]) |
	some i, allowed in nvidia_ref
	not lower(object.get(claims.measurements, i, "")) in {lower(x) | some x in allowed}
]

exec_checks contains {"name": "nvidia measurements", "status": "skipped", "detail": "no reference values for the GPU's measurement indexes"} if {
	tee == "nvidia"
	count(nvidia_ref) == 0
}

exec_checks contains {"name": "nvidia measurements", "status": "passed", "detail": sprintf("the %d listed measurement indexes hold reference values", [count(nvidia_ref)])} if {
	tee == "nvidia"
	count(nvidia_ref) > 0
	count(nvidia_mismatches) == 0
}

exec_checks contains {"name": "nvidia measurements", "status": "failed", "detail": sprintf("not reference values: %s", [concat("; ", sort(nvidia_mismatches))])} if {
	tee == "nvidia"
	count(nvidia_mismatches) > 0
}

# A measured platform component is known when a reference component has its
# measurement value and, where the reference gives them, its type, signer id
# and version.
cca_sw_refs := object.get(ref, ["cca", "sw_components"], [])

cca_sw_known(c) if {
	some r in cca_sw_refs
	lower(r.value) == c.measurement_value
	object.get(r, "measurement_type", "") in {"", c.measurement_type}
	lower(object.get(r, "signer_id", "")) in {"", c.signer_id}
	object.get(r, "version", "") in {"", c.version}
}

cca_sw_unknown contains sprintf("%s %s", [c.measurement_type, c.measurement_value]) if {
	some c in claims.cca.sw_components
	not cca_sw_known(c)
}

cca_sw_check := {"name": "cca platform software", "status": "skipped", "detail": "no reference software components configured"} if {
	count(cca_sw_refs) == 0
} else := {"name": "cca platform software", "status": "failed", "detail": sprintf("not in the reference values: %s", [concat(", ", sort(cca_sw_unknown))])} if {
	count(cca_sw_unknown) > 0
} else := {"name": "cca platform software", "status": "passed", "detail": sprintf("all %d measured components are reference components", [count(claims.cca.sw_components)])}

# Azure vTPM TEEs: the SNP or TDX measurement is the paravisor's; the guest
# OS's boot chain is in the PCRs, judged against vtpm.pcrs.
exec_checks contains list_check(sprintf("vtpm pcr %s:%s", [bank, idx]), allowed, object.get(claims.vtpm.pcrs, [bank, idx], "not quoted")) if {
	tee in {"az-snp-vtpm", "az-tdx-vtpm", "tpm"}
	some bank, pcrs in object.get(ref, ["vtpm", "pcrs"], {})
	some idx, allowed in pcrs
}

# tpm and tdx: the events of the replayed event logs (tpm: boot log and IMA
# list; tdx: the CCEL log, whose pcr is the MR index as logged). A
# reference event matches an event when its name (the event's description:
# an IMA file name, an EV_EFI_ACTION's text), digest (of any bank, or an IMA
# file hash) and PCR, those it gives, are the event's. A name matches only
# a description the replay binds (data_verified): other event data is
# whatever the log says.
tpm_events := object.get(claims, ["tdx", "events"], []) if tee == "tdx" else := object.get(claims, ["vtpm", "events"], [])

event_name_ok(r, _) if object.get(r, "name", "") == ""

event_name_ok(r, e) if {
	r.name == e.description
	object.get(e, "data_verified", false)
}

event_digest_ok(r, _) if object.get(r, "digest", "") == ""

event_digest_ok(r, e) if {
	some v in e.digests
	v == lower(r.digest)
}

event_matches(r, e) if {
	event_name_ok(r, e)
	object.get(r, "pcr", e.pcr) == e.pcr
	event_digest_ok(r, e)
}

event_seen(r) if {
	some e in tpm_events
	event_matches(r, e)
}

event_label(r) := sprintf("%s (%s)", [r.name, r.digest]) if {
	object.get(r, "name", "") != ""
	object.get(r, "digest", "") != ""
} else := r.name if object.get(r, "name", "") != "" else := r.digest

required_events := object.get(ref, ["events", "required"], [])

forbidden_events := object.get(ref, ["events", "forbidden"], [])

events_missing contains event_label(r) if {
	some r in required_events
	not event_seen(r)
}

event_register(e) := sprintf("RTMR%d", [e.rtmr]) if e.rtmr != null else := sprintf("PCR %d", [e.pcr])

events_found contains sprintf("%s: %s %s %s", [event_label(r), event_register(e), e.type, e.description]) if {
	some r in forbidden_events
	some e in tpm_events
	event_matches(r, e)
}

exec_checks contains {"name": "required events", "status": "skipped", "detail": "no required events configured"} if {
	tee in {"tpm", "tdx"}
	count(required_events) == 0
}

exec_checks contains {"name": "required events", "status": "failed", "detail": sprintf("not in the replayed event logs: %s", [concat(", ", sort(events_missing))])} if {
	tee in {"tpm", "tdx"}
	count(events_missing) > 0
}

exec_checks contains {"name": "required events", "status": "passed", "detail": sprintf("all %d required events are in the replayed event logs", [count(required_events)])} if {
	tee in {"tpm", "tdx"}
	count(required_events) > 0
	count(events_missing) == 0
}

exec_checks contains {"name": "forbidden events", "status": "skipped", "detail": "no forbidden events configured"} if {
	tee in {"tpm", "tdx"}
	count(forbidden_events) == 0
}

exec_checks contains {"name": "forbidden events", "status": "failed", "detail": sprintf("measured: %s", [concat(", ", sort(events_found))])} if {
	tee in {"tpm", "tdx"}
	count(events_found) > 0
}

exec_checks contains {"name": "forbidden events", "status": "passed", "detail": sprintf("none of %d forbidden events in %d replayed events", [count(forbidden_events), count(tpm_events)])} if {
	tee in {"tpm", "tdx"}
	count(forbidden_events) > 0
	count(events_found) == 0
}

executables := 0 if {
	every c in exec_checks { c.status == "skipped" }
} else := worst(exec_checks, 33, 2)

# ---------------------------------------------------------------- configuration

debug_check := {"name": "debug disabled", "status": "skipped", "detail": "an NVIDIA GPU report carries no debug, devtools or CC mode state: only reference measurements judge the firmware and driver"} if {
	tee == "nvidia"
} else := {"name": "debug disabled", "status": "failed", "detail": "debug is enabled: the host can read and change guest memory"} if {
	claims.debug
} else := {"name": "debug disabled", "status": "passed", "detail": "debug is off"}

config_checks contains debug_check

config_checks contains list_check("snp host_data", object.get(ref, ["snp", "host_data"], []), claims.snp.host_data) if family == "snp"

config_checks contains c if {
	family == "snp"
	allowed := object.get(ref, ["snp", "vmpl"], [])
	c := vmpl_check(allowed, claims.snp.vmpl)
}

vmpl_check(allowed, v) := {"name": "snp vmpl", "status": "skipped", "detail": sprintf("VMPL %d; no allowed VMPLs configured", [v])} if {
	count(allowed) == 0
} else := {"name": "snp vmpl", "status": "passed", "detail": sprintf("VMPL %d is allowed", [v])} if {
	v in allowed
} else := {"name": "snp vmpl", "status": "failed", "detail": sprintf("VMPL %d is not in %v", [v, allowed])}

config_checks contains list_check(sprintf("tdx %s", [k]), object.get(ref, ["tdx", k], []), claims.tdx[k]) if {
	family == "tdx"
	some k in ["xfam", "td_attributes", "mr_config_id", "mr_owner"]
}

config_checks contains list_check("cca platform config", object.get(ref, ["cca", "platform_config"], []), claims.cca.platform_config) if tee == "cca"

config_checks contains list_check("cca personalization value", object.get(ref, ["cca", "personalization_value"], []), claims.cca.personalization_value) if tee == "cca"

configuration := 0 if {
	every c in config_checks { c.status == "skipped" }
} else := worst(config_checks, 96, 2)

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
	family == "snp"
	count(snp_low) > 0
}

hw_checks contains {"name": "snp minimum tcb", "status": min_tcb_status, "detail": detail} if {
	family == "snp"
	count(snp_low) == 0
	t := claims.snp.reported_tcb
	detail := sprintf("reported TCB bootloader %d tee %d snp %d microcode %d fmc %d", [t.bootloader, t.tee, t.snp, t.microcode, t.fmc])
}

min_tcb_status := "skipped" if {
	count(object.get(ref, ["snp", "min_tcb"], {})) == 0
} else := "passed"

hw_checks contains list_check("platform chip id", object.get(ref, ["snp", "chip_ids"], []), claims.platform_id) if family == "snp"

hw_checks contains {"name": "tdx tcb status", "status": tdx_status_check, "detail": sprintf("Intel reports TCB status %q for this platform: %s", [claims.tcb_status, tdx_verdict])} if family == "tdx"

tdx_verdict := object.get(tdx_status_map, claims.tcb_status, "contraindicated")

tdx_status_check := "failed" if tdx_verdict == "contraindicated" else := "passed"

hw_checks contains {"name": "cca lifecycle", "status": "passed", "detail": sprintf("platform lifecycle %d is secured", [claims.cca.lifecycle])} if {
	tee == "cca"
	claims.cca.lifecycle_state == "secured"
}

hw_checks contains {"name": "cca lifecycle", "status": "failed", "detail": sprintf("platform lifecycle %d is %s, not secured: the platform root of trust does not protect realms", [claims.cca.lifecycle, claims.cca.lifecycle_state])} if {
	tee == "cca"
	claims.cca.lifecycle_state != "secured"
}

hw_checks contains {"name": "tpm attestation key", "status": "passed", "detail": "the quote is signed by an attestation key pinned in the verifier's configuration; nothing proves it is a hardware TPM's"} if {
	tee == "tpm"
	claims.vtpm.ak_trust == "pinned"
}

hw_checks contains {"name": "tpm attestation key", "status": "passed", "detail": sprintf("the quote is signed by an attestation key certified by %s under the configured root %s", [claims.vtpm.ak_certificate.issuer, claims.vtpm.ak_certificate.root])} if {
	tee == "tpm"
	claims.vtpm.ak_trust == "certificate"
}

hw_checks contains list_check("cca implementation id", object.get(ref, ["cca", "implementation_ids"], []), claims.cca.implementation_id) if tee == "cca"

# ---------------------------------------------------------------- devices

# devices summarises a composite bundle's other devices (gpu0, tpm0), each
# appraised by this policy on its own claims: {name: {tee, status,
# failed_checks}}.
devices := object.get(claims, "devices", {})

device_checks contains {"name": sprintf("device %s", [name]), "status": "passed", "detail": sprintf("%s evidence verified and appraised affirming", [d.tee])} if {
	some name, d in devices
	d.status == "affirming"
}

device_checks contains {"name": sprintf("device %s", [name]), "status": "failed", "detail": sprintf("%s evidence appraised %s: %s", [d.tee, d.status, concat("; ", d.failed_checks)])} if {
	some name, d in devices
	d.status != "affirming"
}

required_devices := object.get(ref, ["devices", "required"], [])

missing_devices := [sprintf("%s (%s)", [r.name, r.tee]) | some r in required_devices; object.get(devices, [r.name, "tee"], "") != r.tee]

device_checks contains {"name": "required devices", "status": "passed", "detail": sprintf("the bundle has every required device: %s", [concat(", ", [sprintf("%s (%s)", [r.name, r.tee]) | some r in required_devices])])} if {
	count(required_devices) > 0
	count(missing_devices) == 0
}

device_checks contains {"name": "required devices", "status": "failed", "detail": sprintf("no verified evidence of %s in the bundle", [concat(", ", missing_devices)])} if {
	count(missing_devices) > 0
}

# device_tier is what the devices make of the hardware claim: a device
# appraised warning warns; anything worse, or a required device missing,
# contraindicates the whole bundle.
device_tier := 96 if {
	some d in devices
	not d.status in {"affirming", "warning"}
} else := 96 if {
	count(missing_devices) > 0
} else := 32 if {
	some d in devices
	d.status == "warning"
} else := 2

hardware := 96 if {
	device_tier == 96
} else := 32 if {
	tee == "sim"
	input.dev_mode
} else := 97 if {
	tee == "sim"
} else := 96 if {
	some c in hw_checks
	c.status == "failed"
} else := 32 if {
	family == "tdx"
	tdx_verdict == "warning"
} else := 32 if {
	device_tier == 32
} else := 2

# ---------------------------------------------------------------- result

instance_identity := 0 if tee == "sim" else := 2

runtime_opaque := 0 if tee in {"sim", "tpm", "nvidia"} else := 2

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
	"checks": array.concat(array.concat(array.concat([c | some c in exec_checks], [c | some c in config_checks]), [c | some c in hw_checks]), [c | some c in device_checks]),
	"explain": {
		"instance-identity": identity_why,
		"configuration": why(config_checks, ""),
		"executables": why(exec_checks, ""),
		"hardware": why(hw_checks | device_checks, "genuine TEE hardware: the evidence chains to the vendor root"),
		"runtime-opaque": opaque_why,
	},
}

identity_why := "INSECURE: sim evidence is signed by a software key; no instance identity" if tee == "sim" else := "platform token signed by a configured CPAK, realm token by the realm key it vouches for" if tee == "cca" else := "TPM quote signed by a pinned attestation key" if {
	tee == "tpm"
	claims.vtpm.ak_trust == "pinned"
} else := "TPM quote signed by an attestation key with a certificate from a configured authority" if tee == "tpm" else := "evidence signature chains to the vendor root"

opaque_why := "INSECURE: simulated TEE memory is visible to the host" if tee == "sim" else := "realm memory is isolated from the host by the CCA platform" if tee == "cca" else := "a TPM attests boot and runtime integrity; it does not isolate memory from the host" if tee == "tpm" else := "the report does not say whether the GPU runs in confidential-computing mode: no claim of protected GPU memory" if tee == "nvidia" else := "guest memory is encrypted by the CPU"
