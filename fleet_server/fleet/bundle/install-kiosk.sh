#!/bin/sh
# Installs the Palaute kiosk on Raspberry Pi OS (Bookworm: Python 3.11, Trixie: 3.13) and starts it.
# Run as root. cloud-init runs it on first boot (as /usr/local/sbin/palaute-install); on an image
# without cloud-init copy the bundle to the Pi and run: sudo ./install-kiosk.sh
# Idempotent: running it again installs the bundle's wheelhouse again and restarts the unit.
#
# The kiosk software comes only from the bundle's wheelhouse (the kiosk wheel and its aarch64
# dependencies, pinned by sha256 in requirements-cpXYZ.txt): pip never asks a package index.
set -eu
DEBIAN_PACKAGES="@DEBIAN_PACKAGES@"
VENV=/opt/palaute/venv
HERE=$(cd "$(dirname "$0")" && pwd)
fail() { echo "palaute-install: $*" >&2; exit 1; }

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
    install -m 0644 "$HERE/palaute-kiosk.service" /etc/systemd/system/palaute-kiosk.service
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
case "$PY_TAG" in
    cp311|cp312) ;;  # Bookworm: lgpio's wheel is in the wheelhouse
    *) # Trixie (3.13) and later: no lgpio wheel; Debian's python3-lgpio, seen through the venv.
       DEBIAN_PACKAGES="$DEBIAN_PACKAGES python3-lgpio"; VENV_OPTS=--system-site-packages ;;
esac
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

# shellcheck disable=SC2086
python3 -m venv $VENV_OPTS "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links "$WHEELHOUSE" \
    --require-hashes --only-binary=:all: --force-reinstall -r "$REQUIREMENTS"
"$VENV/bin/python" -c 'import lgpio' || fail "lgpio (gpiozero's pin library) does not import in $VENV"
"$VENV/bin/palaute-kiosk" check-config /etc/palaute/kiosk.toml

systemctl daemon-reload
systemctl enable palaute-kiosk.service
systemctl restart palaute-kiosk.service
echo "palaute-kiosk installed and started; follow it with: journalctl -u palaute-kiosk -f"
