#!/usr/bin/env bash
# The recipe of velo's built-in default image ("default"), built WITHOUT network from what the host has:
# busybox-static (Debian package busybox-static) for a shell and coreutils, plus the host's node and npm with
# exactly the shared libraries `ldd` says node needs. Every mtime is pinned, so the same host gives the same
# tree — and the same layer id — on every build. Usage: rootfs/build.sh OUTDIR (OUTDIR must not exist).
set -euo pipefail
out=${1:?usage: rootfs/build.sh OUTDIR}
[ -e "$out" ] && { echo "rootfs/build.sh: $out exists" >&2; exit 1; }
busybox=$(command -v busybox) || { echo "rootfs/build.sh: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || ldd "$busybox" 2>&1 | grep -q 'not a dynamic' || {
  echo "rootfs/build.sh: $busybox is not static (apt-get install busybox-static)" >&2; exit 1; }
node=$(readlink -f "$(command -v node)")
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
[ -f "$npm_dir/bin/npm-cli.js" ] || { echo "rootfs/build.sh: cannot find npm next to $(command -v npm)" >&2; exit 1; }

mkdir -p "$out"
cd "$out"
mkdir -p usr/bin usr/sbin usr/lib/x86_64-linux-gnu usr/lib64 usr/lib/node_modules usr/local/bin etc root home tmp var/tmp run proc sys dev app
chmod 1777 tmp var/tmp
chmod 700 root
ln -s usr/bin bin
ln -s usr/sbin sbin
ln -s usr/lib lib
ln -s usr/lib64 lib64

# busybox and one symlink per applet (sh, ls, ps, mount, ...)
install -m 0755 "$busybox" usr/bin/busybox
for a in $(usr/bin/busybox --list); do
  [ -e "usr/bin/$a" ] || ln -s busybox "usr/bin/$a"
done

# node and its shared libraries, at the paths the dynamic loader looks in
install -m 0755 "$node" usr/bin/node
for lib in $(ldd "$node" | grep -o '/[^ ]*'); do
  real=$(readlink -f "$lib")
  cp -L "$real" "usr/lib/x86_64-linux-gnu/$(basename "$lib")"
done
ln -sf /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 usr/lib64/ld-linux-x86-64.so.2

# npm, as the host has it
cp -a "$npm_dir" usr/lib/node_modules/npm
ln -s ../lib/node_modules/npm/bin/npm-cli.js usr/bin/npm
ln -s ../lib/node_modules/npm/bin/npx-cli.js usr/bin/npx

cat > etc/passwd <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
node:x:1000:1000:node:/home/node:/bin/sh
P
cat > etc/group <<'G'
root:x:0:
tty:x:5:
nogroup:x:65534:
node:x:1000:
G
# without root, the owner is said on stdout and recorded by the ingest (src/sandbox/default-image.ts)
mkdir -p home/node
if [ "$(id -u)" = 0 ]; then chown 1000:1000 home/node; else echo "owner 1000 1000 home/node"; fi
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > etc/hosts
printf 'hosts: files dns\n' > etc/nsswitch.conf
printf 'NAME="velo default"\nID=velo\nPRETTY_NAME="velo default image (busybox + node %s)"\n' "$("$node" -v)" > etc/os-release
: > etc/resolv.conf

# reproducible: same host files → same layer id
find . -exec touch -h -d @1700000000 {} +
