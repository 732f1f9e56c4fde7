#!/usr/bin/env bash
# `npm run test:hosts`: velo's sandbox tests on other kernels and on a pure cgroup v2 host, each in a qemu guest
# (TCG, no KVM, no network device) that boots one of Debian's kernels (docs/sandbox.md, "Other kernels and
# cgroup v2").
#
# usage: scripts/test-hosts.sh [--kernel K]... [--smoke | --exec CMD] [--timeout MIN] [--log-dir DIR] [TEST FILE|DIR]...
#   --kernel K     6.1 (the kernel linux-image-amd64 depends on), 6.12 (the newest linux-image-6.12.*+deb12-amd64),
#                  or an exact kernel release such as 6.1.0-57-amd64; repeatable (default: 6.1 and 6.12)
#   --smoke        only boot: uname -r, the cgroup controllers, overlay in /proc/filesystems, one
#                  `velo sandbox run --rm` (a few minutes)
#   --exec CMD     instead of the tests, run `bash -c CMD` in the checkout inside the guest (same machine set-up;
#                  for looking into a failure, e.g. --exec 'ls /sys/fs/cgroup; runc --version')
#   --timeout MIN  minutes per guest before it is killed and counted as failed (default 60)
#   --log-dir DIR  keep each guest's console log there (<kernel>.log)
#   TEST...        vitest files or dirs, relative to the checkout (default: $DEFAULT_TESTS below)
# environment: VELO_HOSTS_CACHE (kernel cache, default /var/cache/velo-hosts; kept between runs),
#              VELO_HOSTS_TMP (where the scratch disk file goes, default /var/tmp), VELO_HOSTS_MEM (6G),
#              VELO_HOSTS_SMP (2), VELO_HOSTS_DISK (sparse scratch disk size, 20G), VELO_HOSTS_TIMEOUT,
#              VELO_HOSTS_KERNELS (default kernel list, "6.1 6.12")
#
# Needs root (apt-get, the kernel cache, qemu's 9p export of / with the host's owners). The guest sees the
# host's / read-only over virtio-9p and writes only to its scratch disk; this script removes the disk, its
# temp dir and any qemu it started on exit, Ctrl-C included. Exit status: 0 when every guest reported rc=0.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DEFAULT_TESTS=(test/sandbox test/fuse/sandbox.test.ts test/runtime/lifecycle.test.ts test/runtime/cgroup.test.ts test/runtime/mounts.test.ts test/runtime/idmap.test.ts test/runtime/overlay.test.ts)
CACHE=${VELO_HOSTS_CACHE:-/var/cache/velo-hosts}
TMPBASE=${VELO_HOSTS_TMP:-/var/tmp}
MEM=${VELO_HOSTS_MEM:-6G}
SMP=${VELO_HOSTS_SMP:-2}
DISK=${VELO_HOSTS_DISK:-20G}
TIMEOUT=${VELO_HOSTS_TIMEOUT:-60}
read -r -a KERNELS <<< "${VELO_HOSTS_KERNELS:-6.1 6.12}"
# Modules the initramfs loads before the root exists (their dependencies are added from modules.dep); the
# rest (fuse, loop, ...) guest.sh loads with modprobe from the cache dir.
INITRD_MODULES=(virtio_pci virtio_blk 9pnet_virtio 9p overlay ext4)
APT_NEEDS=(qemu-system-x86 busybox-static cpio kmod e2fsprogs xz-utils zstd)

say() { printf 'test-hosts: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

MODE=test
EXEC_CMD=
LOG_DIR=
kernels=()
tests=()
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) [ $# -ge 2 ] || die "--kernel needs a value"; kernels+=("$2"); shift 2 ;;
    --kernel=*) kernels+=("${1#*=}"); shift ;;
    --smoke) MODE=smoke; shift ;;
    --exec) [ $# -ge 2 ] || die "--exec needs a command"; MODE=exec; EXEC_CMD=$2; shift 2 ;;
    --exec=*) MODE=exec; EXEC_CMD=${1#*=}; shift ;;
    --timeout) [ $# -ge 2 ] || die "--timeout needs minutes"; TIMEOUT=$2; shift 2 ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --log-dir) [ $# -ge 2 ] || die "--log-dir needs a dir"; LOG_DIR=$2; shift 2 ;;
    --log-dir=*) LOG_DIR=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; tests+=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) tests+=("$1"); shift ;;
  esac
done
[ ${#kernels[@]} -gt 0 ] || kernels=("${KERNELS[@]}")
[ ${#tests[@]} -gt 0 ] || tests=("${DEFAULT_TESTS[@]}")
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] && [ "$TIMEOUT" -gt 0 ] || die "--timeout: minutes, a positive integer"
[ "$(id -u)" = 0 ] || die "run as root (apt-get, the kernel cache, qemu's 9p export of / with real owners)"
for t in "${tests[@]}"; do
  [ -e "$REPO/$t" ] || die "no such test file or dir in the checkout: $t"
done

# --- cleanup: whatever this run started or made, on any exit ------------------------------------------------
RUN_TMP=
QEMU_PID=
TAIL_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$QEMU_PID" 2>/dev/null || true
  fi
  if [ -n "$TAIL_PID" ]; then kill "$TAIL_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ -n "$RUN_TMP" ]; then rm -rf "$RUN_TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# --- host packages ------------------------------------------------------------------------------------------
missing=()
for p in "${APT_NEEDS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
command -v qemu-system-x86_64 > /dev/null || die "qemu-system-x86_64 not found after installing qemu-system-x86"

# --- kernels: Debian's packages, downloaded and extracted into the cache, never installed --------------------
# Prints the kernel release (6.1.0-57-amd64, 6.12.118+deb12-amd64) a --kernel value stands for.
resolve_kernel() {
  local k=$1 pkg
  case "$k" in
    6.1)
      pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\./ {print $2; exit}')
      ;;
    6.12)
      pkg=$(apt-cache pkgnames linux-image-6.12. 2>/dev/null | grep -E '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' | sort -V | tail -n 1)
      ;;
    *) pkg=linux-image-$k ;;
  esac
  if [ -z "$pkg" ]; then
    # No apt lists (or none that name it): the newest release of that series already in the cache.
    local r
    r=$(ls "$CACHE" 2>/dev/null | grep -E "^${k//./\\.}[.-].*-amd64$" | grep -v -- -rt- | sort -V | tail -n 1 || true)
    [ -n "$r" ] && [ -f "$CACHE/$r/.complete" ] || return 1
    echo "$r"
    return
  fi
  echo "${pkg#linux-image-}"
}

# Downloads linux-image-RELEASE and extracts it into $CACHE/RELEASE (once; later runs reuse it), with the
# modules.dep that the package's postinst would have made (depmod -b).
fetch_kernel() {
  local rel=$1 dir=$CACHE/$1 dl
  [ -f "$dir/.complete" ] && return 0
  mkdir -p "$CACHE"
  dl=$(mktemp -d "$CACHE/.dl.XXXXXX")
  chmod 0755 "$dl"
  chown _apt: "$dl" 2>/dev/null || true   # apt-get download drops to _apt when it can
  say "downloading linux-image-$rel"
  if ! (cd "$dl" && apt-get download -q "linux-image-$rel" >&2); then
    say "download failed; apt-get update and once more"
    apt-get update -qq >&2
    (cd "$dl" && apt-get download -q "linux-image-$rel" >&2) || { rm -rf "$dl"; return 1; }
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  say "extracting into $dir"
  dpkg-deb -x "$dl"/linux-image-*.deb "$dir"
  rm -rf "$dl"
  [ -f "$dir/boot/vmlinuz-$rel" ] && [ -d "$dir/lib/modules/$rel" ] || { rm -rf "$dir"; say "unexpected package layout"; return 1; }
  depmod -b "$dir" "$rel"
  touch "$dir/.complete"
}

# An initramfs for RELEASE: busybox-static, scripts/hosts/init and the modules of INITRD_MODULES with their
# dependencies in load order (modprobe --show-depends against the cache dir), decompressed (busybox's insmod
# takes plain .ko; 6.12's are .ko.xz).
build_initrd() {
  local rel=$1 out=$2 kdir=$CACHE/$1 d m base
  d=$RUN_TMP/initrd-$rel
  mkdir -p "$d/bin" "$d/dev" "$d/proc" "$d/sys" "$d/modules"
  cp /bin/busybox "$d/bin/busybox"
  cp "$REPO/scripts/hosts/init" "$d/init"
  chmod 0755 "$d/init"
  for m in "${INITRD_MODULES[@]}"; do
    modprobe -d "$kdir" -S "$rel" --show-depends "$m" || die "$rel: no module $m"
  done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r m; do
    base=$(basename "$m")
    case "$m" in
      *.ko.xz) xz -dc "$m" > "$d/modules/${base%.xz}"; base=${base%.xz} ;;
      *.ko.zst) zstd -qdc "$m" > "$d/modules/${base%.zst}"; base=${base%.zst} ;;
      *.ko.gz) gzip -dc "$m" > "$d/modules/${base%.gz}"; base=${base%.gz} ;;
      *) cp "$m" "$d/modules/$base" ;;
    esac
    echo "$base" >> "$d/modules/load.list"
  done
  touch "$d/modules/load.list"
  (cd "$d" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$out"
}

# --- one guest -----------------------------------------------------------------------------------------------
# Sets GUEST_RC (the rc the guest reported, or empty), GUEST_CG, GUEST_TESTS, GUEST_SECS.
run_guest() {
  local rel=$1 kdir=$CACHE/$1 g=$RUN_TMP/$1 log start deadline marker_at= timed_out=
  mkdir -p "$g"
  log=$g/console.log
  build_initrd "$rel" "$g/initrd.gz"
  # The scratch disk: sparse, made ext4 here (mke2fs writes a regular file as root without a loop device),
  # inode tables left for later so it stays sparse.
  truncate -s "$DISK" "$g/scratch.img"
  mkfs.ext4 -q -F -L velo-hosts -E lazy_itable_init=1,lazy_journal_init=1 "$g/scratch.img"
  {
    printf 'VH_MODE=%q\n' "$MODE"
    printf 'VH_EXEC=%q\n' "$EXEC_CMD"
    printf 'VH_CHECKOUT=%q\n' "$REPO"
    printf 'VH_MODDIR=%q\n' "$kdir/lib/modules/$rel"
    printf 'VH_FILES=('; printf ' %q' "${tests[@]}"; printf ' )\n'
  } > "$g/job.sh"
  : > "$log"
  say "booting $rel (qemu TCG, $SMP cpus, $MEM, cgroup_no_v1=all; timeout $TIMEOUT min)"
  start=$(date +%s)
  deadline=$((start + TIMEOUT * 60))
  # No network device at all (-nic none); the host's / as read-only 9p (qemu refuses writes too); the console
  # on the serial port, into the log; stdin not a terminal, so ^C stays with this script.
  qemu-system-x86_64 -accel tcg -cpu max -smp "$SMP" -m "$MEM" -M pc \
    -nographic -nodefaults -serial stdio -nic none -no-reboot \
    -kernel "$kdir/boot/vmlinuz-$rel" -initrd "$g/initrd.gz" \
    -append "console=ttyS0 cgroup_no_v1=all quiet loglevel=3 panic=-1 velo_guest=$REPO/scripts/hosts/guest.sh velo_job=$g/job.sh" \
    -fsdev "local,id=hostroot,path=/,security_model=passthrough,readonly=on,multidevs=remap" \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -drive "file=$g/scratch.img,format=raw,if=virtio,cache=unsafe" \
    < /dev/null > "$log" 2>&1 &
  QEMU_PID=$!
  tail -n +1 -f --pid="$QEMU_PID" "$log" 2>/dev/null | tr -d '\r' &
  TAIL_PID=$!
  while kill -0 "$QEMU_PID" 2>/dev/null; do
    if [ -z "$marker_at" ] && grep -q '^VELO-HOSTS-RESULT ' "$log"; then marker_at=$(date +%s); fi
    # Powering off takes a moment; a guest that reported and still runs a minute later is stopped here.
    if [ -n "$marker_at" ] && [ "$(date +%s)" -ge $((marker_at + 60)) ]; then kill "$QEMU_PID" 2>/dev/null || true; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "$rel: no result after $TIMEOUT min, stopping the guest"
      timed_out=1
      kill "$QEMU_PID" 2>/dev/null || true
      break
    fi
    sleep 2
  done
  wait "$QEMU_PID" 2>/dev/null || true
  QEMU_PID=
  wait "$TAIL_PID" 2>/dev/null || true
  TAIL_PID=
  GUEST_SECS=$(($(date +%s) - start))
  GUEST_RC=$(tr -d '\r' < "$log" | sed -n 's/^VELO-HOSTS-RESULT .* rc=\([0-9]*\)$/\1/p' | tail -n 1)
  [ -z "$timed_out" ] || GUEST_RC=
  GUEST_CG=$(tr -d '\r' < "$log" | sed -n 's/.*VELO-HOSTS-INFO .* cgroup=\([^ ]*\) .*/\1/p' | tail -n 1)
  GUEST_TESTS=$(tr -d '\r' < "$log" | sed -n 's/^ *Tests  *\(.*\)$/\1/p' | tail -n 1)
  if [ -n "$LOG_DIR" ]; then
    mkdir -p "$LOG_DIR"
    tr -d '\r' < "$log" > "$LOG_DIR/$rel.log"
  fi
  rm -rf "$g"
}

# --- main ----------------------------------------------------------------------------------------------------
mkdir -p "$CACHE" "$TMPBASE"
RUN_TMP=$(mktemp -d "$TMPBASE/velo-hosts.XXXXXX")
releases=()
exec 9> "$CACHE/.lock"
flock 9   # one download/extract at a time across runs
for k in "${kernels[@]}"; do
  rel=$(resolve_kernel "$k") || die "cannot resolve kernel $k (apt-get update? no such linux-image package?)"
  fetch_kernel "$rel" || die "cannot get linux-image-$rel"
  releases+=("$rel")
done
flock -u 9

# The guest runs the checkout's build outputs as they are (its own writes land on its scratch disk): build here.
say "building on the host (node scripts/build.mjs && make -s -C native)"
(cd "$REPO" && node scripts/build.mjs && make -s -C native) >&2

rows=()
failed=0
for rel in "${releases[@]}"; do
  run_guest "$rel"
  if [ "$GUEST_RC" = 0 ]; then result=passed
  elif [ -n "$GUEST_RC" ]; then result="failed (rc=$GUEST_RC)"; failed=1
  else result="no result"; failed=1
  fi
  rows+=("$(printf '%-24s %-7s %-18s %7s  %s' "$rel" "${GUEST_CG:-?}" "$result" "$GUEST_SECS" "${GUEST_TESTS:-}")")
done

echo
printf '%-24s %-7s %-18s %7s  %s\n' kernel cgroup result seconds "$([ "$MODE" = test ] && echo tests || echo "($MODE)")"
for r in "${rows[@]}"; do echo "$r"; done
exit "$failed"
