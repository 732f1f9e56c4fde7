#!/bin/bash
# Stage 2 of a scripts/test-hosts.sh guest: pid 1 after the initramfs switched to the overlay root (see
# scripts/hosts/init). Sets the machine up like a small pure-cgroup-v2 host, runs the job the host wrote
# ($velo_job: smoke check, vitest on the given files, or one shell command), prints
#   VELO-HOSTS-INFO kernel=... cgroup=...
#   VELO-HOSTS-RESULT <kernel> rc=N
# on the console (the host greps them) and powers off. Every write goes to the scratch disk (/velo-hosts).
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
umask 022
S=/velo-hosts
rc=99
kernel=$(uname -r)

say() { printf 'velo-hosts guest: %s\n' "$*"; }
finish() {
  printf '\nVELO-HOSTS-RESULT %s rc=%s\n' "$kernel" "$rc"
  sync
  /bin/busybox poweroff -f
  sleep 30
}
trap finish EXIT

# shellcheck source=/dev/null
. "$velo_job" || { say "cannot read the job file $velo_job"; exit; }

# --- the machine -------------------------------------------------------------------------------------------
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
mkdir -p /dev/mqueue && mount -t mqueue mqueue /dev/mqueue
# Pure cgroup v2 (cgroup_no_v1=all on the command line), mounted the way systemd mounts it; every available
# controller enabled for the children of the root, as on a systemd host.
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup 2>/dev/null ||
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || say "cannot enable the $c controller"
done
# Where tests and velo write: the scratch disk's ext4 directly (a store's farms and tenant upper dirs cannot
# live on the overlay root: an overlay upper dir on overlayfs is refused), and a fresh, empty home.
for d in tmp var/tmp run root var/lib/velo; do
  mkdir -p "$S/$d" "/$d" && mount --bind "$S/$d" "/$d"
done
chmod 1777 /tmp /var/tmp
chmod 0700 /root
mkdir -p /run/lock /run/user
# The kernel's modules (from the cache dir, through the overlay) for modprobe and the kernel's own requests.
mkdir -p "/lib/modules/$kernel" && mount --bind "$VH_MODDIR" "/lib/modules/$kernel"
echo /sbin/modprobe > /proc/sys/kernel/modprobe
for m in overlay fuse loop; do
  grep -qw "$m" /proc/filesystems /proc/modules 2>/dev/null || modprobe "$m" 2>/dev/null || say "modprobe $m failed"
done
[ -d /sys/fs/fuse/connections ] && mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null
ip link set lo up 2>/dev/null
hostname velo-hosts
ulimit -n 1048576 2>/dev/null || ulimit -n 65536

if awk '$3 == "cgroup" {found = 1} END {exit !found}' /proc/mounts; then cg=hybrid; else cg=v2; fi
echo
echo "VELO-HOSTS-INFO kernel=$kernel cgroup=$cg controllers=\"$(cat /sys/fs/cgroup/cgroup.subtree_control)\" cpus=$(nproc) mem=$(awk '/MemTotal/ {print int($2 / 1024) "M"}' /proc/meminfo)"

dmesg -C 2>/dev/null   # boot messages are not news; what the run makes the kernel say is printed on failure
cd "$VH_CHECKOUT" || exit
export CI=1 NO_COLOR=1
case "$VH_MODE" in
  smoke)
    echo "--- uname -r"; uname -r
    echo "--- /sys/fs/cgroup/cgroup.controllers"; cat /sys/fs/cgroup/cgroup.controllers
    echo "--- /proc/filesystems"; grep -w overlay /proc/filesystems
    echo "--- velo sandbox run --rm -- sh -c 'id; cat /proc/self/cgroup'"
    VELO_HOME=$S/velo-home ./bin/velo sandbox run --rm -- sh -c 'id; cat /proc/self/cgroup'
    rc=$?
    ;;
  test)
    say "vitest run ${VH_FILES[*]}"
    # Through a pipe: vitest sees no terminal and prints plain lines (no redraws) on the serial console.
    # TCG runs the isolation suites' set-up 3-5x slower than the host: hooks get 10 minutes, not 3.
    node_modules/.bin/vitest run --hookTimeout=600000 --testTimeout=900000 "${VH_FILES[@]}" 2>&1 | cat
    rc=${PIPESTATUS[0]}
    ;;
  exec)
    say "bash -c $VH_EXEC"
    bash -c "$VH_EXEC" 2>&1 | cat
    rc=${PIPESTATUS[0]}
    ;;
  *) say "unknown mode $VH_MODE" ;;
esac
if [ "$rc" != 0 ]; then
  echo "--- kernel messages during the run (warnings and worse, last 40)"
  dmesg --level=emerg,alert,crit,err,warn 2>/dev/null | tail -n 40
fi
exit
