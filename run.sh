#!/usr/bin/env bash
# One entry point that sets up what a fresh Debian / Raspberry Pi OS machine lacks, then
#   bash run.sh demo   - fleet server + private Mosquitto + simulated kiosks, dashboard on localhost
#   bash run.sh test   - the whole test suite (what .ci/run calls)
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
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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

ensure_postgres() {
    # The integration tests use PALAUTE_TEST_DATABASE_URL, by default the local server's `test`
    # database over TCP. On a machine without one, install PostgreSQL and use its socket.
    if [ -n "${PALAUTE_TEST_DATABASE_URL:-}" ]; then return 0; fi
    if command -v psql >/dev/null && psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
        export PALAUTE_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/test"
        return 0
    fi
    need_debs postgresql
    local version
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
        say "starting PostgreSQL $version"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    fi
    local me; me=$(id -un)
    as_root runuser -u postgres -- psql -q -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$me') THEN CREATE ROLE \"$me\" LOGIN SUPERUSER; END IF; END\$\$;"
    as_root runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
        || as_root runuser -u postgres -- createdb -O "$me" test
    export PALAUTE_TEST_DATABASE_URL="postgresql+psycopg://$me@/test?host=/var/run/postgresql"
}

case "$verb" in
    demo)
        need_debs mosquitto ca-certificates
        ensure_venv
        exec "$VENV/bin/palaute-server" demo "$@"
        ;;
    test)
        need_debs mosquitto mosquitto-clients openssl ca-certificates systemd xvfb xauth libmtdev1 \
            libgl1 libegl1 chromium chromium-driver espeak-ng sox fonts-dejavu-core
        ensure_venv
        ensure_postgres
        mkdir -p artifacts
        export KIVY_NO_ARGS=1 KIVY_NO_CONSOLELOG=1 KIVY_NO_FILELOG=1
        export KIVY_HOME="$ROOT/artifacts/kivy-home"
        say "running the test suite"
        set +e
        xvfb-run -a -s "-screen 0 1280x720x24" "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
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
