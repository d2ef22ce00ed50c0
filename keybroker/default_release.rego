# kura's default resource-release policy (docs/spec/keybroker.md §5).
#
# Input:  {"token": {...}, "request": {...}, "resource": {...}, "dev_mode": bool}
# Output: data.kura.release = {"allow": bool, "deny": [reasons]}
package kura.release

default allow := false

allow if {
	input.token
	count(deny) == 0
}

deny contains "no attestation token: attest first (POST /kbs/v0/auth, /kbs/v0/attest) or send a Bearer EAR token" if {
	not input.token
}

# The simulated TEE proves nothing: refused unless dev mode is on.
deny contains "INSECURE: the simulated TEE is refused outside dev mode" if {
	input.token.tee == "sim"
	not input.dev_mode
}

# Hardware TEEs must be affirmed by the verifier.
deny contains sprintf("the verifier appraised the evidence as %s, not affirming", [input.token.status]) if {
	input.token.tee != "sim"
	input.token.status != "affirming"
}

# In dev mode sim is accepted when the only reservation is the sim warning:
# hardware 32 (unsafe: simulated), everything else affirming or not claimed.
deny contains sprintf("sim evidence appraised %s with %s = %d", [input.token.status, claim, value]) if {
	input.token.tee == "sim"
	input.dev_mode
	some claim, value in input.token.trust_vector
	not sim_ok(claim, value)
}

sim_ok(_, value) if value in {0, 2}

sim_ok("hardware", 32)
