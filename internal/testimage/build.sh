#!/bin/sh
# build.sh — builds mdctl's test VM image from Debian packages and caches it.
#
# A Debian bookworm root made by debootstrap (systemd, cloud-init, openssh-server,
# ifupdown + isc-dhcp-client + net-tools for cloud-init's ENI renderer, locales
# for cc_locale), booted
# directly: QEMU takes vmlinuz and initrd.img from the cache dir and the root
# filesystem is the whole virtio disk (root=/dev/vda), an ext4 made from the
# directory by mkfs.ext4 -d (no loop mounts) and converted to qcow2.
#
# The image carries one addition: mdctl-report.service, ordered after
# cloud-final, which writes cloud-init's status, result.json, status.json,
# the hostname, authorized keys, /var/tmp/mdctl-runcmd and cloud-init.log to
# the second serial port (ttyS1), between "=== mdctl-report begin" and
# "=== mdctl-report end". Tests and the bench judge a boot from that port.
#
# Usage: build.sh [CACHE_ROOT]   (default /var/cache/mdctl)
# Prints the image directory. Idempotent: the directory is named after the
# hash of this script, so a finished build costs nothing and a changed
# recipe builds anew. Concurrent callers wait on one lock.
set -eu

cache_root=${1:-/var/cache/mdctl}
mirror=${MDCTL_IMAGE_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
self=$(readlink -f "$0")
hash=$(sha256sum "$self" | cut -c1-16)
dir=$cache_root/test-image-$hash

if [ -f "$dir/done" ]; then echo "$dir"; exit 0; fi
mkdir -p "$cache_root"
exec 9>"$cache_root/test-image.lock"
flock 9
if [ -f "$dir/done" ]; then echo "$dir"; exit 0; fi

start=$(date +%s)
work=$cache_root/.build-$hash
rm -rf "$work"
mkdir -p "$work" "$cache_root/debs"
root=$work/root
log=$work/debootstrap.log

echo "building test image $dir (log $log)" >&2
debootstrap --variant=minbase --cache-dir="$cache_root/debs" \
  --include=python3-cffi-backend,systemd,systemd-sysv,udev,dbus,linux-image-amd64,initramfs-tools,cloud-init,openssh-server,sudo,ifupdown,isc-dhcp-client,net-tools,iproute2,netbase,procps,e2fsprogs,locales \
  "$suite" "$root" "$mirror" >"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }

# cloud-init's cc_locale sets Debian's default en_US.UTF-8 and update-locale
# refuses a locale that was never generated (Debian's locale-gen only builds
# what /etc/locale.gen lists).
sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' "$root/etc/locale.gen"
chroot "$root" locale-gen >>"$log" 2>&1

# debootstrap copies the build host's resolv.conf: a guest that keeps it waits
# 15 s on cloud-init's URL resolution. The guest gets its resolvers from DHCP.
rm -f "$root/etc/resolv.conf"
# Every VM is a new machine: its own machine-id, host keys and hostname.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
echo localhost >"$root/etc/hostname"
echo 'LABEL=root / ext4 defaults 0 1' >"$root/etc/fstab"
# No apt lists or package cache in the image.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb

cat >"$root/usr/local/sbin/mdctl-report" <<'REPORT'
#!/bin/sh
# Writes what a judge needs to ttyS1, once cloud-final is over.
out=/dev/ttyS1
[ -c "$out" ] || exit 0
stty -F "$out" raw -echo 115200 2>/dev/null
{
  echo "=== mdctl-report begin"
  echo "--- status"; cloud-init status --long; echo "status-rc=$?"
  echo "--- result.json"; cat /run/cloud-init/result.json; echo
  echo "--- status.json"; cat /run/cloud-init/status.json; echo
  echo "--- hostname"; hostname
  echo "--- authorized_keys"; cat /home/*/.ssh/authorized_keys /root/.ssh/authorized_keys 2>/dev/null
  echo "--- runcmd"; cat /var/tmp/mdctl-runcmd 2>/dev/null
  echo "--- cloud-init.log"; cat /var/log/cloud-init.log
  echo "=== mdctl-report end"
} >"$out" 2>&1
REPORT
chmod 0755 "$root/usr/local/sbin/mdctl-report"
cat >"$root/etc/systemd/system/mdctl-report.service" <<'UNIT'
[Unit]
Description=mdctl test report on ttyS1
After=cloud-final.service cloud-init.service cloud-config.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/mdctl-report
[Install]
WantedBy=cloud-init.target
UNIT
mkdir -p "$root/etc/systemd/system/cloud-init.target.wants"
ln -sf ../mdctl-report.service "$root/etc/systemd/system/cloud-init.target.wants/mdctl-report.service"

# Direct kernel boot: the kernel and initrd live beside the disk.
cp "$root"/boot/vmlinuz-* "$work/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/initrd.img"
chmod 0644 "$work/vmlinuz" "$work/initrd.img"

mkfs.ext4 -q -L root -d "$root" "$work/root.raw" 3G
qemu-img convert -O qcow2 "$work/root.raw" "$work/disk.qcow2"
rm -f "$work/root.raw"
rm -rf "$root"
grep -E '^Inst|^I: Retrieving|^I: Validating' "$log" | wc -l >/dev/null
end=$(date +%s)
echo "$((end - start))" >"$work/build-seconds"
date -u +%FT%TZ >"$work/done"
mv "$work" "$dir"
# One recipe's image is kept: older ones are 700 MB each.
for old in "$cache_root"/test-image-*; do
  [ "$old" = "$dir" ] || rm -rf "$old"
done
echo "test image built in $((end - start)) s" >&2
echo "$dir"
