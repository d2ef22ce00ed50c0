#!/usr/bin/env bash
# The newcomer walkthrough: a clean room run as a service, end to end, with
# nothing but the kura command line. Read it as a tutorial; run it to watch:
#
#   go build -o /tmp/kura ./cmd/kura && KURA=/tmp/kura bash docs/walkthrough.sh
#
# CI runs it (go test ./cmd/kura -run TestWalkthrough). It needs bash, curl,
# grep, sed and coreutils, and nothing from the network.
#
# The people, each in a directory of their own with their own HOME (so their
# own ~/.config/kura/client.yaml; XDG_CONFIG_HOME or KURA_CLIENT_CONFIG would
# do as well), under a fresh temporary directory:
#
#   operator  runs `kura serve`: verifier, key broker, transparency log and
#             coordinator behind one HTTPS listener (docs/operations.md)
#   worker    a TEE machine where the operator runs `kura worker serve`; here
#             the simulated TEE, which is INSECURE and proves nothing
#   airline   a data owner: who flew where (flights)
#   carrier   a data owner: whose phone was seen where, for how long (visits)
#   analyst   proposes the collaboration, runs the analysis, receives the result
#   auditor   anyone at all: checks the transparency log without trusting the
#             operator
#
# What they hand each other (the server's URL and certificate, cards, key
# lines, dataset descriptors, the manifest's hash) is copied between their
# directories here; in real life it goes by e-mail or a ticket, and
# fingerprints are compared out of band. Nothing secret is ever copied: data
# keys and identities stay in their owner's directory.
#
# Environment: KURA (the kura binary; default: kura on PATH), ROWS (rows per
# dataset, default 2000), KEEP=1 (keep the temporary directory).
# shellcheck disable=SC2030,SC2031 # each party's HOME is set in a subshell, on purpose
set -Eeuo pipefail

KURA=${KURA:-kura}
ROWS=${ROWS:-2000}

# --- Plumbing -----------------------------------------------------------------

# Every command runs in its party's directory, so make the binary's path
# absolute (without resolving a symbolic link: its name may matter).
if [[ $KURA == */* ]]; then
	KURA="$(cd "$(dirname "$KURA")" && pwd)/$(basename "$KURA")"
elif ! KURA=$(command -v "$KURA"); then
	echo "walkthrough: no kura on PATH; build one (go build ./cmd/kura) and set KURA=/path/to/kura" >&2
	exit 2
fi
for tool in curl grep sed; do
	command -v "$tool" >/dev/null || {
		echo "walkthrough: needs $tool" >&2
		exit 2
	}
done

# The caller's kura settings would leak into every party: each party here has
# its configuration file and nothing else.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^KURA_' || true)
unset XDG_CONFIG_HOME XDG_STATE_HOME XDG_CACHE_HOME XDG_DATA_HOME

W=$(mktemp -d "${TMPDIR:-/tmp}/kura-walkthrough.XXXXXX")
pids=()
exec 3>&1 # the transcript: where `as` prints each command

# On exit, stop what runs in the background and, after a failure, show the
# logs that say why.
finish() {
	local rc=$?
	for pid in ${pids[@]+"${pids[@]}"}; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if ((rc != 0)); then
		for log in "$W/operator/server.log" "$W/worker/worker.log"; do
			[[ -s $log ]] || continue
			echo "--- last lines of $log" >&2
			tail -n 25 "$log" >&2
		done
		echo "walkthrough FAILED (exit $rc); its files are in $W" >&2
	elif [[ ${KEEP:-} == 1 ]]; then
		echo "files kept in $W"
	else
		rm -rf "$W"
	fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# On a failure, name the line of this script that failed (the caller's, when
# it failed inside one of the helpers below).
on_error() {
	local rc=$? i=1 line
	((BASH_SUBSHELL == 0)) || return 0
	while [[ " as expect wait_for " == *" ${FUNCNAME[i]} "* ]]; do ((i++)); done
	line=${BASH_LINENO[i - 1]}
	echo "walkthrough: exit $rc at line $line: $(sed -n "${line}s/^[[:space:]]*//p" "${BASH_SOURCE[0]}")" >&2
}
trap on_error ERR

# step prints a heading.
step() { printf '\n== %s\n' "$*"; }

# as PARTY COMMAND... prints COMMAND as PARTY would type it, then runs it in
# PARTY's directory with PARTY's home, so with PARTY's ~/.config/kura. Logs
# at level warn: INSECURE warnings and errors, not every step's info line.
as() {
	local who=$1
	shift
	printf '%s$ %s\n' "$who" "$*" >&3
	(cd "$W/$who" && export HOME="$W/$who" KURA_LOG_LEVEL=warn && "$@")
}

# kura is the binary under test.
kura() { "$KURA" "$@"; }

# expect FILE PATTERN fails, showing FILE, unless a line of FILE matches the
# extended regular expression PATTERN.
expect() {
	grep -Eq -- "$2" "$1" && return
	echo "walkthrough: expected /$2/ in $1, which holds:" >&2
	cat "$1" >&2
	return 1
}

# json_field FILE NAME prints the first string value named NAME in FILE, one
# of kura's --json documents (jq does this better, where you have it).
json_field() { sed -n "s/.*\"$2\": *\"\([^\"]*\)\".*/\1/p" "$1" | head -n 1; }

# wait_for SECONDS PID WHAT COMMAND... runs COMMAND every 0.1 s until it
# succeeds, and fails if the process PID exits first.
wait_for() {
	local deadline=$((SECONDS + $1)) pid=$2 what=$3
	shift 3
	until "$@" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "walkthrough: kura exited while we waited for $what" >&2
			return 1
		fi
		if ((SECONDS >= deadline)); then
			echo "walkthrough: timed out waiting for $what" >&2
			return 1
		fi
		sleep 0.1
	done
}

mkdir -p "$W"/{operator,worker,airline,carrier,analyst,auditor}
echo "kura: $KURA"
echo "working in $W"

# --- 1. The operator starts the server ------------------------------------------

step "1. operator: kura serve --dev (HTTPS, self-signed certificate) with a config file"
# Every setting of kura serve is a flag, a KURA_* variable or a key of a YAML
# file named by --config (docs/operations.md, "Running it"). Paths in it are
# relative to where kura serve runs. Port 0 lets the system pick a free port;
# kura prints the URL it listens on.
cat >"$W/operator/kura.yaml" <<'EOF'
addr: 127.0.0.1:0
data: data      # state, keys, the transparency log, the self-signed certificate
offline: true   # never fetch AMD or Intel collateral (the sim TEE needs none)
EOF

# start_server runs kura serve in the background, waits until it is ready
# and sets URL. --dev accepts the INSECURE simulated TEE and, with no
# --tls-cert, serves HTTPS with a self-signed certificate it keeps in
# <data>/tls/dev-cert.pem and prints (docs/operations.md, "TLS").
start_server() {
	: >"$W/operator/server.out"
	printf 'operator$ kura serve --dev --config kura.yaml &\n' >&3
	(cd "$W/operator" && export HOME="$W/operator" &&
		exec "$KURA" serve --dev --config kura.yaml >server.out 2>>server.log 3>&-) &
	server_pid=$!
	pids+=("$server_pid")
	wait_for 30 "$server_pid" "kura serve to print its URL" grep -q '^kura listening on ' "$W/operator/server.out"
	URL=$(sed -n 's/^kura listening on //p' "$W/operator/server.out")
	# /readyz answers 200 once the store and the transparency log are up.
	# curl pins the certificate as every kura client does.
	wait_for 30 "$server_pid" "$URL/readyz" curl -fsS --cacert "$W/operator/data/tls/dev-cert.pem" "$URL/readyz"
	cat "$W/operator/server.out"
}
start_server
expect "$W/operator/server.out" '^tls certificate data/tls/dev-cert\.pem sha256:[0-9a-f]{64}$'
curl -fsS --cacert "$W/operator/data/tls/dev-cert.pem" "$URL/readyz" >"$W/operator/readyz.json"
expect "$W/operator/readyz.json" '"status": ?"ready"'
# A restart must keep the URL the parties were given: fix the port.
sed "s|^addr: .*|addr: ${URL#https://}|" "$W/operator/kura.yaml" >"$W/operator/kura.yaml.new"
mv "$W/operator/kura.yaml.new" "$W/operator/kura.yaml"

# The operator publishes the URL, the certificate to pin (its SHA-256
# fingerprint was printed above, for comparing out of band) and the
# transparency log's public key.
for p in worker airline carrier analyst auditor; do
	cp "$W/operator/data/tls/dev-cert.pem" "$W/$p/kura-ca.pem"
done
cp "$W/operator/data/log-key.pub" "$W/auditor/log.pub"

# --- 2. Client configuration ----------------------------------------------------

step "2. everyone: ~/.config/kura/client.yaml, so that no command needs --url or --ca"
# The keys are url, ca, identity (a party directory) and admin_key (an
# owner's key broker key); a relative path is relative to the file
# (docs/operations.md, "How clients pin the server"). Flags and KURA_URL,
# KURA_CA, ... override it.
client_config() {
	local who=$1
	mkdir -p "$W/$who/.config/kura"
	{
		echo "url: $URL"
		echo "ca: ../../kura-ca.pem"
		case $who in airline | carrier | analyst) echo "identity: ../../id" ;; esac
		case $who in airline | carrier) echo "admin_key: ../../owner.pem" ;; esac
	} >"$W/$who/.config/kura/client.yaml"
}
for p in worker airline carrier analyst auditor; do client_config "$p"; done
echo "airline's ~/.config/kura/client.yaml:"
cat "$W/airline/.config/kura/client.yaml"

# --- 3. Identities and owner keys -----------------------------------------------

step "3. parties: kura party init; owners: kura kbs admin-key"
# A party's identity is a signing key and a receiving key (id/identity.key,
# secret) and a card to share (id/card.json). The printed fingerprint is
# what the others compare before they trust the card.
for p in airline carrier analyst; do
	as "$p" kura party init "$p" -o id >"$W/$p/fingerprint"
	expect "$W/$p/fingerprint" '^[0-9a-f]{64}$'
	echo "$p's card fingerprint: $(cat "$W/$p/fingerprint")"
done
# A data owner's key for the shared key broker. Its line names the
# repository it owns (by default the one named like the key): the owner API
# lets it touch nothing else, so rival owners can share one broker.
for p in airline carrier; do
	as "$p" kura kbs admin-key --name "$p" -o owner.pem >"$W/$p/admin-key.line"
	expect "$W/$p/admin-key.line" "^ed25519 [A-Za-z0-9+/=]+ $p\$"
	cat "$W/$p/admin-key.line"
done

step "3b. operator: admit the owners' keys (admin-keys file) and restart"
# kura serve reads the admin keys file at start only (docs/operations.md, "A
# key broker shared by several owners"): admitting an owner is a restart.
# The file lists public keys; kura refuses it if others may write it.
cat "$W/airline/admin-key.line" "$W/carrier/admin-key.line" >"$W/operator/admin-keys"
chmod 644 "$W/operator/admin-keys"
echo "admin-keys: admin-keys" >>"$W/operator/kura.yaml"
# --print-config shows what kura serve would run with, and where each value
# comes from.
as operator kura serve --dev --config kura.yaml --print-config >"$W/operator/effective.yaml"
expect "$W/operator/effective.yaml" '^admin-keys: "?admin-keys"? # file$'
grep -E '^(addr|data|admin-keys|dev):' "$W/operator/effective.yaml"
printf 'operator$ kill %s   # SIGTERM: kura drains and exits\n' "$server_pid"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
start_server
expect "$W/operator/server.out" "^kura listening on $URL\$"
# The certificate survives restarts, so the parties' pins stay valid.
[[ $(cat "$W/operator/data/tls/dev-cert.pem") == $(cat "$W/airline/kura-ca.pem") ]]

# --- 4. The owners seal, upload and register their data -------------------------

step "4. owners: kura scenario gen, data seal, data upload, data register"
# seal_and_register OWNER DATASET: the owner seals its own file on its own
# machine under a fresh data key (DATASET.kura.key, which never leaves it
# except to its key broker); uploads the ciphertext to the server's blob
# store, where a worker in its own directory on another machine fetches it
# (the manifest's location: an https:// URL, or a path on the worker's
# machine; docs/spec/cleanroom.md §4); and puts the data key in the key
# broker, pinned to the owner's party key, which releases it only to runs of
# analyses the owner approved. The descriptor register writes (public) is
# what the manifest references.
seal_and_register() {
	local who=$1 ds=$2
	# The synthetic scenario writes both companies' files; each owner keeps
	# only its own.
	as "$who" kura scenario gen --rows "$ROWS" -o gen
	as "$who" kura data seal "gen/$ds.parquet" --schema "gen/$ds.schema.yaml" -o "$ds.kura"
	as "$who" kura data upload "$ds.kura" --json >"$W/$who/upload.json"
	expect "$W/$who/upload.json" "\"location\": ?\"$URL/v1/datasets/[0-9a-f]{64}\""
	as "$who" kura data register "$ds.kura" --key-file "$ds.kura.key" -o "$ds.descriptor.json"
	expect "$W/$who/$ds.descriptor.json" "\"resource\": ?\"$who/dataset-key/$ds\""
}
seal_and_register airline flights
seal_and_register carrier visits

# --- 5. The analyst proposes the collaboration ---------------------------------

step "5. analyst: kura collab create, approve, push"
# The analyst gathers the cards and descriptors (public), the uploads'
# locations, and from the operator the verifier everyone accepts: the
# server's own, at its URL, with its token keys at /.well-known/jwks.json.
# The owners approve the worker's build by measurement; for the simulated
# TEE that is the SHA-384 of the kura binary.
mkdir -p "$W/analyst/cards" "$W/analyst/descriptors"
for p in airline carrier analyst; do cp "$W/$p/id/card.json" "$W/analyst/cards/$p.json"; done
cp "$W/airline/flights.descriptor.json" "$W/carrier/visits.descriptor.json" "$W/analyst/descriptors/"
measurement=$(as analyst kura attest measurement --tee sim 2>/dev/null)
# The manifest (docs/spec/manifest.md §2): who takes part, which sealed data
# with which output policy, which analysis, which worker builds, who
# receives the result, which verifiers count.
cat >"$W/analyst/manifest.yaml" <<EOF
kura_manifest: 2
id: walkthrough
description: How long do the airline's passengers stay, by home prefecture? Statistics only.
parties:
  - {name: airline, roles: [data_provider], card_file: cards/airline.json}
  - {name: carrier, roles: [data_provider], card_file: cards/carrier.json}
  - {name: analyst, roles: [analyst, result_receiver], card_file: cards/analyst.json}
datasets:
  - id: flights
    owner: airline
    descriptor_file: descriptors/flights.descriptor.json
    location: $(json_field "$W/airline/upload.json" location)
    output_policy: {min_distinct_identities: 10}
  - id: visits
    owner: carrier
    descriptor_file: descriptors/visits.descriptor.json
    location: $(json_field "$W/carrier/upload.json" location)
    output_policy: {min_distinct_identities: 10}
analyses:
  - id: stay_by_prefecture
    kind: aggregate
    aggregate:
      from: flights
      joins:
        - {dataset: visits, left: flights.phone, right: visits.phone}
      group_by: [flights.home_prefecture]
      measures:
        - {fn: count_distinct_identities, dataset: visits, as: travellers}
        - {fn: avg, column: visits.stay_days, as: avg_stay_days}
worker:
  reference_values:
    measurements:
      - tee: sim
        name: kura-worker (simulated, INSECURE)
        value: $measurement
receivers: [analyst]
verifiers:
  - name: operator
    url: $URL
    jwks_url: $URL/.well-known/jwks.json
EOF
as analyst kura collab create manifest.yaml -o walkthrough.collab.json >"$W/analyst/create.out"
cat "$W/analyst/create.out"
expect "$W/analyst/create.out" '^created walkthrough\.collab\.json: collaboration walkthrough version 1 sha256:[0-9a-f]{64}$'
# The hash the analyst announces to the owners, who compare it with what they
# review.
hash=$(grep -Eo 'sha256:[0-9a-f]{64}' "$W/analyst/create.out")
# Every party approves, the analyst too: a receiver trusts a result's
# attestation because the manifest's verifier list is one it signed
# (docs/spec/cleanroom.md §8).
as analyst kura collab approve walkthrough.collab.json --hash "$hash"
# Publish it: the coordinator takes pushes from the collaboration's parties
# only, and logs every version and approval.
as analyst kura collab push walkthrough.collab.json
# Nothing runs before the owners approve: the coordinator refuses the run.
if as analyst kura run submit walkthrough --analysis stay_by_prefecture 2>"$W/analyst/refused.err"; then
	echo "walkthrough: a run was queued before the owners approved" >&2
	exit 1
fi
cat "$W/analyst/refused.err"
expect "$W/analyst/refused.err" 'not approved: party "airline" never approved'

# --- 6. The owners review and approve ------------------------------------------

step "6. owners: kura collab pull, show, approve --hash, push"
# Each owner fetches the collaboration from the coordinator (pull verifies
# its hash chain and signatures), reads it, and signs only the version whose
# hash the analyst announced: a file that changed since is refused (exit 5).
for p in airline carrier; do
	as "$p" kura collab pull walkthrough -o walkthrough.collab.json
	as "$p" kura collab show walkthrough.collab.json >"$W/$p/review.yaml"
	expect "$W/$p/review.yaml" "^# $hash\$"
	expect "$W/$p/review.yaml" 'id: stay_by_prefecture'
	as "$p" kura collab approve walkthrough.collab.json --hash "$hash"
	as "$p" kura collab push walkthrough.collab.json
done
as analyst kura collab pull walkthrough -o walkthrough.collab.json
# --require-all: exit 5 unless every data provider approved this version.
as analyst kura collab status walkthrough.collab.json --require-all >"$W/analyst/status.out"
cat "$W/analyst/status.out"
expect "$W/analyst/status.out" '^  carrier +approved'

# --- 7. A worker joins ------------------------------------------------------------

step "7. worker: kura worker serve --tee sim --dev"
# The worker registers with the coordinator by attestation: it needs no key
# from the operator, only its client.yaml (url, ca). It fetches the sealed
# files from their locations and checks them against the manifest. --poll:
# look for queued runs more often than the default 2s.
printf 'worker$ kura worker serve --tee sim --dev --poll 200ms &\n'
(cd "$W/worker" && export HOME="$W/worker" &&
	exec "$KURA" worker serve --tee sim --dev --poll 200ms >worker.out 2>worker.log 3>&-) &
pids+=("$!")
wait_for 30 "$!" "the worker to register" grep -q 'worker registered' "$W/worker/worker.log"
sed -n 's/.*msg="worker registered[^"]*" \(worker=[^ ]*\) \(tee=[^ ]*\).*/registered: \1 \2/p' "$W/worker/worker.log"

# --- 8. The analyst runs the analysis ---------------------------------------------

step "8. analyst: kura run submit, run wait"
# Signed with the analyst's identity (client.yaml); queued because every
# owner approved. Each key broker checks the run's attestation and the
# approvals again before it releases a key.
as analyst kura run submit walkthrough --analysis stay_by_prefecture --json >"$W/analyst/submit.json"
expect "$W/analyst/submit.json" '"state": ?"queued"'
run=$(json_field "$W/analyst/submit.json" id)
echo "run $run queued"
# run wait exits 0 once the run completed, 1 if it failed.
as analyst kura run wait "$run" --every 200ms --timeout 60s
as analyst kura run status "$run" --json >"$W/analyst/run.json"
expect "$W/analyst/run.json" '"state": ?"completed"'
expect "$W/analyst/run.json" '"worker": ?"sim-[0-9a-f]{8}"'
worker=$(json_field "$W/analyst/run.json" worker)
echo "run by worker $worker"

# --- 9. The receiver fetches, verifies and opens the result -----------------------

step "9. analyst: kura result fetch, result open, receipt verify"
# fetch checks that the files are the ones the coordinator names for the run;
# open verifies everything (signatures, attestation against the verifier the
# analyst approved, approvals, inputs) before it decrypts. --dev: accept the
# simulated TEE.
as analyst kura result fetch "$run" -o result.json
as analyst kura result open result.json --dev --format csv >"$W/analyst/result.csv" 2>"$W/analyst/open.report"
cat "$W/analyst/open.report" "$W/analyst/result.csv"
expect "$W/analyst/open.report" 'ok +attestation token signed by verifier "operator"'
expect "$W/analyst/result.csv" '^home_prefecture,travellers,avg_stay_days$'
rows=$(($(wc -l <"$W/analyst/result.csv") - 1))
((rows > 0)) || {
	echo "walkthrough: the result has no rows: every group was suppressed (more ROWS?)" >&2
	exit 1
}
# The deletion receipt: the worker wiped the keys and the plaintext.
as analyst kura receipt verify result.receipt.json --result result.json --dev >"$W/analyst/receipt.out"
cat "$W/analyst/receipt.out"
expect "$W/analyst/receipt.out" 'ok +receipt is for this result bundle'
expect "$W/analyst/receipt.out" 'wiped +visits: key carrier/dataset-key/visits \(released: true\)'

# --- 10. Anyone audits the log ----------------------------------------------------

step "10. auditor: kura audit verify, audit ls"
# The log's key came from the operator. verify checks the signed checkpoint,
# remembers it (trust on first use) so that a later check proves the log only
# grew, and with --full re-hashes every entry.
as auditor kura audit verify --log "$URL/log/" --key log.pub --full >"$W/auditor/verify.out"
cat "$W/auditor/verify.out"
expect "$W/auditor/verify.out" '^OK$'
as auditor kura audit ls --log "$URL/log/" --key log.pub --collab walkthrough >"$W/auditor/ls.out"
cat "$W/auditor/ls.out"
for kind in manifest_version approval run_start key_release result receipt; do
	expect "$W/auditor/ls.out" "	$kind	.*collab=walkthrough"
done
expect "$W/auditor/ls.out" "	result	collab=walkthrough run=$run "

step "summary"
cat <<EOF
operator   kura serve --dev on $URL (self-signed TLS, config file, admin keys, one restart)
owners     airline and carrier sealed $ROWS rows each, uploaded the ciphertext, registered the keys
manifest   walkthrough $hash, approved by airline, carrier and analyst
run        $run: completed by worker $worker; $rows rows out, verified and opened by the analyst
receipt    keys and plaintext wiped, verified
log        $(sed -n 's/^size: *//p' "$W/auditor/verify.out") entries, verified in full by the auditor
walkthrough OK (${SECONDS}s)
EOF
