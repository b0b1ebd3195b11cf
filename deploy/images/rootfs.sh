#!/usr/bin/env bash
# Assembles a container image's root filesystem as a directory: one binary, exactly the
# shared libraries `ldd` names for it, the CA certificates, the time-zone database (for the
# agent and the control plane), and passwd/group entries for the unprivileged user 65532. Nothing else: no shell, no package
# manager. The Containerfiles run this in their build stage and copy the result into an
# empty image; deploy/images/check.sh runs the binary from it under chroot.
#   deploy/images/rootfs.sh BINARY OUTDIR
set -euo pipefail
binary="$1"
root="$2"
name="$(basename "$binary")"

rm -rf "$root"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/var/lib/sluice"
install -m 0755 "$binary" "$root/usr/local/bin/$name"
# Debug information is for the build machine; the image carries the code only.
strip --strip-all "$root/usr/local/bin/$name"

# Every library the dynamic linker will load (the loader included), copied to the path ldd
# found it at, under the name the binary asks for; the loader searches those directories.
ldd "$binary" | awk '/=> \// { print $3 } /^\t\// { print $1 }' | sort -u | while read -r library; do
  mkdir -p "$root$(dirname "$library")"
  cp -L "$library" "$root$library"
done

# The agent and the control plane read time zones for calendar budgets (`time_zone` in the
# policy); the legacy right/ and posix/ copies are left out.
if [[ "$name" != "sluice" ]]; then
  mkdir -p "$root/usr/share"
  cp -a /usr/share/zoneinfo "$root/usr/share/zoneinfo"
  rm -rf "$root/usr/share/zoneinfo/right" "$root/usr/share/zoneinfo/posix"
fi
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nsluice:x:65532:65532:sluice:/var/lib/sluice:/sbin/nologin\n' \
  > "$root/etc/passwd"
printf 'root:x:0:\nsluice:x:65532:\n' > "$root/etc/group"
chmod 1777 "$root/tmp"
chown 65532:65532 "$root/var/lib/sluice"
