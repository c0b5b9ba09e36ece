#!/usr/bin/env bash
# arm64-root.sh: a cached arm64 Debian 12 (minbase) root with the kiosk's Debian packages, for
# the first-boot test (tests/e2e/test_arm64_first_boot.py). Runs as root; prints the tarball's path.
#
#   bash tests/support/arm64-root.sh [PACKAGE_LIST]      # default: the bundle's debian-packages.txt
#
# Registers qemu-user with binfmt_misc when needed (a Raspberry Pi's userland under emulation),
# debootstraps bookworm once and installs the package list into it (6-15 minutes cold; the
# tarball is reused while the list is unchanged). Cache: $PALAUTE_ARM64_CACHE, default
# /var/tmp/palaute-arm64. Progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
list=${1:-$here/../../fleet_server/fleet/bundle/debian-packages.txt}
cache=${PALAUTE_ARM64_CACHE:-/var/tmp/palaute-arm64}
say() { printf '==> arm64 root: %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "arm64-root.sh: needs root (debootstrap, chroot, binfmt_misc)" >&2; exit 2; }

packages=$(sed -e 's/#.*//' "$list" | xargs)
key=$(printf '%s\n' "v1 $packages" | sha256sum | cut -c1-12)
tarball="$cache/bookworm-arm64-$key.tar"

missing=()
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register

mkdir -p "$cache"
exec 9>"$cache/build.lock"; flock 9
if [ -s "$tarball" ]; then echo "$tarball"; exit 0; fi

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "arm64-root.sh: no Debian mirror in /etc/apt" >&2; exit 2; }
root="$cache/build-root"
cleanup() { for m in dev/pts dev proc; do mountpoint -q "$root/$m" && umount -l "$root/$m"; done; rm -rf "$root"; }
trap cleanup EXIT
cleanup
start=$(date +%s)
say "debootstrap bookworm arm64 (minbase) from $mirror (a few minutes; log: $cache/debootstrap.log)"
debootstrap --arch=arm64 --variant=minbase bookworm "$root" "$mirror" > "$cache/debootstrap.log" 2>&1 ||
    { tail -n 5 "$cache/debootstrap.log" >&2; exit 1; }
# This machine's registry settings only, so apt inside reaches the same mirror.
rm -f "$root/etc/apt/sources.list"
cp -a /etc/apt/sources.list.d/. "$root/etc/apt/sources.list.d/" 2>/dev/null || true
[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/"
for f in /etc/apt/apt.conf.d/*; do
    grep -qiE 'proxy|acquire::https?::|auth' "$f" 2>/dev/null && cp "$f" "$root/etc/apt/apt.conf.d/"
done
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
mount -t proc proc "$root/proc"; mount --bind /dev "$root/dev"; mount --bind /dev/pts "$root/dev/pts"
say "installing the kiosk's Debian packages: $packages (5-10 minutes under emulation; log: $cache/apt.log)"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages && apt-get clean" \
    > "$cache/apt.log" 2>&1 || { tail -n 5 "$cache/apt.log" >&2; exit 1; }
for m in dev/pts dev proc; do umount -l "$root/$m"; done
rm -rf "$root/var/lib/apt/lists"/*
tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
say "cached $tarball ($(du -sh "$tarball" | cut -f1)) after $(( $(date +%s) - start )) s"
echo "$tarball"
