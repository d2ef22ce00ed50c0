#!/usr/bin/env bash
# .ci/postgres.sh starts a local PostgreSQL server for the key broker store
# tests (store/postgres) and prints the line to put its URL in the
# environment:
#
#   eval "$(.ci/postgres.sh)"
#   go test ./store/...
#
# It runs as root on Debian (bookworm in CI). It installs PostgreSQL with
# apt-get when pg_ctlcluster is missing, creates and starts the newest
# installed cluster named "main", and creates a login role with a password and
# a database owned by it. Every step checks before it acts, so running the
# script twice is safe. Only the export line goes to stdout; progress and
# errors go to stderr.
#
# Environment (all optional):
#   KURA_PG_DB        database name   (default kura_test)
#   KURA_PG_USER      role name       (default kura)
#   KURA_PG_PASSWORD  role password   (default kura-test-password; a test
#                     server on loopback only, never a production secret)
set -euo pipefail

db=${KURA_PG_DB:-kura_test}
role=${KURA_PG_USER:-kura}
password=${KURA_PG_PASSWORD:-kura-test-password}

log() { printf 'postgres.sh: %s\n' "$*" >&2; }

for name in "$db" "$role"; do
	if [[ ! $name =~ ^[a-z_][a-z0-9_]*$ ]]; then
		log "invalid name '$name': use lower-case letters, digits and _"
		exit 2
	fi
done
if [[ $password == *"'"* || $password == *[@:/?#%]* ]]; then
	log "KURA_PG_PASSWORD must not contain ' @ : / ? # %"
	exit 2
fi

if [[ $(id -u) -ne 0 ]]; then
	log "run as root (it installs packages and starts the cluster as user postgres)"
	exit 2
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
	log "installing postgresql with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y postgresql >&2
fi

version=$(for d in /usr/lib/postgresql/*/bin/postgres; do basename "$(dirname "$(dirname "$d")")"; done | sort -V | tail -n 1)
if [[ -z $version ]]; then
	log "no PostgreSQL server found under /usr/lib/postgresql"
	exit 1
fi

# pg_lsclusters -h prints: version cluster port status owner datadir logfile
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
	log "creating cluster $version/main"
	pg_createcluster "$version" main >&2
fi
status=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $4 }')
if [[ $status != online* ]]; then
	log "starting cluster $version/main"
	pg_ctlcluster "$version" main start >&2
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')

for _ in $(seq 1 60); do
	if pg_isready -q -h 127.0.0.1 -p "$port"; then
		break
	fi
	sleep 0.5
done
if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
	log "PostgreSQL $version/main is not accepting connections on 127.0.0.1:$port"
	exit 1
fi

psql_postgres() {
	runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@"
}

psql_postgres -d postgres >&2 <<SQL
DO \$\$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
		CREATE ROLE $role LOGIN PASSWORD '$password';
	ELSE
		ALTER ROLE $role LOGIN PASSWORD '$password';
	END IF;
END
\$\$;
SQL

if [[ $(psql_postgres -d postgres -tA -c "SELECT 1 FROM pg_database WHERE datname = '$db'") != 1 ]]; then
	log "creating database $db owned by $role"
	psql_postgres -d postgres -c "CREATE DATABASE $db OWNER $role" >&2
fi

log "PostgreSQL $version ready on 127.0.0.1:$port, database $db, role $role"
printf 'export KURA_TEST_POSTGRES_URL=%s\n' "postgres://$role:$password@127.0.0.1:$port/$db?sslmode=disable"
