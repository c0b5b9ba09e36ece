#!/bin/sh
# Installs the Palaute kiosk on Raspberry Pi OS (Bookworm: Python 3.11, Trixie: 3.13) and starts it.
# Run as root. cloud-init runs it on first boot (as /usr/local/sbin/palaute-install); on an image
# without cloud-init copy the bundle to the Pi and run: sudo ./install-kiosk.sh
# Idempotent: running it again installs the bundle's wheelhouse again and restarts the units.
#
# The kiosk software comes only from the bundle's wheelhouse (a release built with `palaute-server
# release build`, or `device wheelhouse`: the kiosk wheel and its aarch64 dependencies, pinned by
# sha256 in requirements-cpXYZ.txt): pip never asks a package index. It is installed in the
# updater's layout from the first boot: a venv in /opt/palaute/releases/<version>, the links
# current and stable to it (palaute-kiosk-updater --adopt), the wheels kept by hash in
# /opt/palaute/releases/.files so that an update downloads only what changed.
set -eu
DEBIAN_PACKAGES="@DEBIAN_PACKAGES@"
RELEASES=/opt/palaute/releases
HERE=$(cd "$(dirname "$0")" && pwd)
fail() { echo "palaute-install: $*" >&2; exit 1; }
# Trixie (Python 3.13) and later: no lgpio wheel; Debian's python3-lgpio, seen through a
# --system-site-packages venv. The kiosk updater decides the same way for every release's venv
# (kiosk.release_switch.uses_debian_lgpio; tests/kiosk/test_updater.py keeps the two in step).
lgpio_from_debian() {
    case "$1" in
        cp3[0-9]|cp31[0-2]) return 1 ;;  # Bookworm (3.11): lgpio's wheel is in the wheelhouse
        *) return 0 ;;
    esac
}

# The bundle route: put the bundle's files where cloud-init would have written them.
if [ -f "$HERE/kiosk.toml" ] && [ "$HERE" != /etc/palaute ]; then
    getent group palaute >/dev/null || groupadd --system palaute
    id -u palaute >/dev/null 2>&1 || useradd --system --gid palaute --create-home \
        --home-dir /var/lib/palaute-home --shell /usr/sbin/nologin palaute
    for g in video render input gpio audio; do
        if getent group "$g" >/dev/null; then usermod -a -G "$g" palaute; fi
    done
    install -d -m 0750 -o root -g palaute /etc/palaute
    install -m 0640 -o root -g palaute "$HERE/kiosk.toml" /etc/palaute/kiosk.toml
    install -m 0600 -o palaute -g palaute "$HERE/broker-password" /etc/palaute/broker-password
    if [ -f "$HERE/ca.crt" ]; then install -m 0644 "$HERE/ca.crt" /etc/palaute/ca.crt; fi
    for unit in palaute-kiosk.service palaute-kiosk-updater.service; do
        install -m 0644 "$HERE/$unit" "/etc/systemd/system/$unit"
    done
fi
chgrp palaute /etc/palaute && chmod 0750 /etc/palaute
install -d -m 0750 -o palaute -g palaute /var/lib/palaute

# The wheelhouse: beside this script (the bundle), or copied onto the SD card's boot partition.
WHEELHOUSE=${PALAUTE_WHEELHOUSE:-}
for dir in "$HERE/wheelhouse" /boot/firmware/wheelhouse /boot/wheelhouse; do
    if [ -z "$WHEELHOUSE" ] && [ -d "$dir" ]; then WHEELHOUSE=$dir; fi
done
[ -n "$WHEELHOUSE" ] || fail "no wheelhouse: copy the bundle's wheelhouse/ beside this script or onto the boot partition"

command -v python3 >/dev/null || DEBIAN_PACKAGES="python3 $DEBIAN_PACKAGES"
PY_TAG=$(python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])' 2>/dev/null || echo unknown)
VENV_OPTS=""
if lgpio_from_debian "$PY_TAG"; then
    DEBIAN_PACKAGES="$DEBIAN_PACKAGES python3-lgpio"; VENV_OPTS=--system-site-packages
fi
missing=""
for pkg in $DEBIAN_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "palaute-install: installing Debian packages:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
PY_TAG=$(python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
REQUIREMENTS="$WHEELHOUSE/requirements-$PY_TAG.txt"
[ -f "$REQUIREMENTS" ] || fail "the wheelhouse has no wheels for this Python ($PY_TAG): $(ls "$WHEELHOUSE"/requirements-*.txt 2>/dev/null | xargs -n1 basename | tr '\n' ' ')"

# The release the wheelhouse holds: the version its requirements pin for the kiosk wheel (palaute).
VERSION=$(sed -n 's/^palaute\(\[[a-z,]*\]\)\{0,1\}==\([^ ]*\) .*/\2/p' "$REQUIREMENTS" | head -n 1)
[ -n "$VERSION" ] || fail "$REQUIREMENTS pins no palaute version"
VENV=$RELEASES/$VERSION
install -d -m 0755 /opt/palaute "$RELEASES"
if [ -L "$VENV" ]; then rm "$VENV"; fi  # a link the updater made for an older layout
# shellcheck disable=SC2086
python3 -m venv $VENV_OPTS "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links "$WHEELHOUSE" \
    --require-hashes --only-binary=:all: --force-reinstall -r "$REQUIREMENTS"
"$VENV/bin/python" -c 'import lgpio' || fail "lgpio (gpiozero's pin library) does not import in $VENV"
"$VENV/bin/palaute-kiosk" check-config /etc/palaute/kiosk.toml
# This venv is the release that runs (current) and the last good one (stable), from now on.
"$VENV/bin/palaute-kiosk-updater" --config /etc/palaute/kiosk.toml --adopt --wheelhouse "$WHEELHOUSE"

systemctl daemon-reload
systemctl enable palaute-kiosk.service palaute-kiosk-updater.service
systemctl restart palaute-kiosk.service palaute-kiosk-updater.service
echo "palaute-kiosk $VERSION installed and started; follow it with: journalctl -u palaute-kiosk -f"
