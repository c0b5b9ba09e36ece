#!/usr/bin/env bash
# One entry point that sets up what a fresh Debian / Raspberry Pi OS machine lacks, then
#   bash run.sh demo   - fleet server + private Mosquitto + simulated kiosks, dashboard on localhost
#   bash run.sh test   - ruff, mypy, then the whole test suite (what .ci/run calls)
# Anything after the verb goes to the demo (palaute-server demo --help) or to pytest.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
verb=${1:-}
[ $# -gt 0 ] && shift

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
need_debs() {
    # Install the Debian packages among "$@" that are not installed yet.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
    # No package starts its own service meanwhile (nginx on 80, the system Mosquitto on 1883):
    # the demo and the tests start private ones, and PostgreSQL is started below when needed.
    local policy=/usr/sbin/policy-rc.d own_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# run.sh: no service starts while it installs packages\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"; own_policy=1
    fi
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    if [ -n "$own_policy" ]; then as_root rm -f "$policy"; fi
    return $rc
}

python_ok() { command -v python3 >/dev/null && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

ensure_venv() {
    python_ok || need_debs python3 python3-venv python3-pip
    python_ok || { echo "Python >= 3.11 with venv is required" >&2; exit 1; }
    local stamp="$VENV/.palaute-installed" want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
    say "creating the Python environment in .venv"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e ".[kiosk,server,dev]"
    echo "$want" > "$stamp"
}

PG_MARK=palaute-run-sh  # a file in the config dir of the cluster run.sh set up: preferred on later runs

pg_use() {  # the URL of a local cluster over its Unix socket (peer authentication: no password)
    local version=$1 cluster=$2 port=$3 me; me=$(id -un)
    export PALAUTE_TEST_DATABASE_URL="postgresql+psycopg://$me@/test?host=/var/run/postgresql&port=$port"
    say "tests use PostgreSQL $version/$cluster (set up by run.sh) on port $port, database test, role $me"
}

ensure_postgres() {
    # The PostgreSQL tests use PALAUTE_TEST_DATABASE_URL. Without it: the cluster an earlier run
    # set up (marked with $PG_MARK), else a server already answering on 127.0.0.1:5432 without a
    # password, else Debian's PostgreSQL installed and set up here (role named after this user,
    # database `test`). Never a password prompt (psql -w).
    if [ -n "${PALAUTE_TEST_DATABASE_URL:-}" ]; then
        say "tests use PostgreSQL at PALAUTE_TEST_DATABASE_URL"
        return 0
    fi
    local version cluster port status _rest
    if command -v pg_lsclusters >/dev/null; then
        while read -r version cluster port status _rest; do
            [ -f "/etc/postgresql/$version/$cluster/$PG_MARK" ] || continue
            [ "$status" = online ] || as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
            pg_use "$version" "$cluster" "$port"
            return 0
        done < <(pg_lsclusters -h 2>/dev/null)
    fi
    if command -v psql >/dev/null &&
        PGCONNECT_TIMEOUT=5 psql -w -h 127.0.0.1 -p 5432 -U postgres -d test -c 'select 1' </dev/null >/dev/null 2>&1; then
        export PALAUTE_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/test"
        say "tests use the PostgreSQL server already on 127.0.0.1:5432 (database test, role postgres)"
        return 0
    fi
    need_debs postgresql
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    cluster=main
    if ! pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" {found=1} END {exit !found}'; then
        say "creating PostgreSQL cluster $version/$cluster"
        as_root pg_createcluster "$version" "$cluster" >/dev/null
    fi
    port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
    if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online" {found=1} END {exit !found}'; then
        say "starting PostgreSQL $version/$cluster on port $port"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
    fi
    local me; me=$(id -un)
    pg_admin() { as_root runuser -u postgres -- "$@" -p "$port"; }
    pg_admin psql -q -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$me') THEN CREATE ROLE \"$me\" LOGIN SUPERUSER; END IF; END\$\$;"
    pg_admin psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 || pg_admin createdb -O "$me" test
    as_root touch "/etc/postgresql/$version/$cluster/$PG_MARK"
    pg_use "$version" "$cluster" "$port"
}

case "$verb" in
    demo)
        need_debs mosquitto ca-certificates libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core
        ensure_venv
        exec "$VENV/bin/palaute-server" demo "$@"
        ;;
    test)
        # libatomic1: Playwright's node driver; nginx-light: `nginx -t` of deploy/nginx;
        # libpango*: WeasyPrint's PDFs (reports, posters);
        # qemu-user-static + debootstrap: the arm64 first-boot test (tests/e2e/test_arm64_first_boot.py);
        # rabbitmq-server: the clustered-broker test starts its own nodes (tests/e2e/test_clustered_broker.py).
        need_debs mosquitto mosquitto-clients openssl ca-certificates systemd xvfb xauth libmtdev1 \
            libgl1 libegl1 libatomic1 chromium chromium-driver espeak-ng sox fonts-dejavu-core \
            libpango-1.0-0 libpangoft2-1.0-0 \
            nginx-light qemu-user-static debootstrap rabbitmq-server
        ensure_venv
        # Linters first: a finding fails the run before any test starts (config in pyproject.toml).
        say "checking the code: ruff check . and mypy"
        if ! "$VENV/bin/ruff" check .; then
            echo "run.sh test: FAILED at ruff (findings above); fix them, then run again" >&2
            exit 1
        fi
        if ! "$VENV/bin/mypy"; then
            echo "run.sh test: FAILED at mypy (type errors above); fix them, then run again" >&2
            exit 1
        fi
        ensure_postgres
        mkdir -p artifacts
        export KIVY_NO_ARGS=1 KIVY_NO_CONSOLELOG=1 KIVY_NO_FILELOG=1
        export KIVY_HOME="$ROOT/artifacts/kivy-home"
        say "running the test suite"
        set +e
        # Parallel workers (pytest-xdist): most tests wait on brokers, servers and windows rather
        # than on the CPU, so twice the cores, at most 6. PALAUTE_TEST_WORKERS or `-n 0` overrides.
        cores=$(nproc)
        workers=${PALAUTE_TEST_WORKERS:-$(( cores * 2 > 6 ? 6 : cores * 2 ))}
        xvfb-run -a -s "-screen 0 1280x720x24" "$VENV/bin/python" -m pytest -p no:cacheprovider \
            -n "$workers" --maxschedchunk 1 "$@"
        rc=$?
        set -e
        # pytest's 5 means "no tests collected": that is a failure here, not a pass.
        exit $rc
        ;;
    *)
        echo "usage: bash run.sh demo|test [args]" >&2
        exit 2
        ;;
esac
