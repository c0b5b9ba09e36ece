#!/bin/sh
# Installs the Palaute kiosk on Raspberry Pi OS and starts it. Run as root.
# cloud-init runs it on first boot (as /usr/local/sbin/palaute-install); on an image
# without cloud-init copy the bundle to the Pi and run: sudo ./install-kiosk.sh
# Idempotent: running it again upgrades the kiosk software and restarts the unit.
set -eu
KIOSK_PACKAGE=@KIOSK_PACKAGE@
VENV=/opt/palaute/venv
HERE=$(cd "$(dirname "$0")" && pwd)

# The bundle route: put the bundle's files where cloud-init would have written them.
if [ -f "$HERE/kiosk.toml" ] && [ "$HERE" != /etc/palaute ]; then
    getent group palaute >/dev/null || groupadd --system palaute
    id -u palaute >/dev/null 2>&1 || useradd --system --gid palaute --create-home \
        --home-dir /var/lib/palaute-home --shell /usr/sbin/nologin palaute
    for g in video render input gpio audio; do
        getent group "$g" >/dev/null && usermod -a -G "$g" palaute
    done
    install -d -m 0750 -o root -g palaute /etc/palaute
    install -m 0640 -o root -g palaute "$HERE/kiosk.toml" /etc/palaute/kiosk.toml
    install -m 0600 -o palaute -g palaute "$HERE/broker-password" /etc/palaute/broker-password
    [ -f "$HERE/ca.crt" ] && install -m 0644 "$HERE/ca.crt" /etc/palaute/ca.crt
    install -m 0644 "$HERE/palaute-kiosk.service" /etc/systemd/system/palaute-kiosk.service
fi

chgrp palaute /etc/palaute && chmod 0750 /etc/palaute
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet --upgrade "$KIOSK_PACKAGE"
"$VENV/bin/palaute-kiosk" check-config /etc/palaute/kiosk.toml

systemctl daemon-reload
systemctl enable palaute-kiosk.service
systemctl restart palaute-kiosk.service
echo "palaute-kiosk installed and started; follow it with: journalctl -u palaute-kiosk -f"
