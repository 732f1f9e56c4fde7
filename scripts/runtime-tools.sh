#!/usr/bin/env bash
# OCI conformance: runs the validation suite of opencontainers/runtime-tools against one or more OCI runtimes
# (runc as the reference, velo-runtime once it is built) and reports ok / not ok per test and per runtime.
#
# usage: scripts/runtime-tools.sh [--src DIR] [RUNTIME...]
#   --src DIR   runtime-tools checkout (default: $RUNTIME_TOOLS_SRC, else /work/ext/runtime-tools). It must
#               live outside this repository: the suite is built there and nothing of it enters velo.
#   RUNTIME     runtime binaries to test (default: /usr/sbin/runc, and native/build/velo-runtime if it exists).
# environment: RT_TIMEOUT  seconds per test executable (default 180)
#              RT_JOBS     tests run at once per runtime, 1 or 2 (default 2)
#              RT_ONLY     extended regex: run only the tests whose name matches (for debugging one test)
#              RT_ROOTFS   "busybox": build the bundles' rootfs from Debian's busybox-static instead of the
#                          rootfs-<arch>.tar.gz of the checkout (used anyway when the checkout has none)
#
# The script downloads nothing: the checkout must exist (see need_src below for how to get it); golang-go
# comes from Debian's apt when missing, and the suite builds offline from its vendor/ directory.
# Results: a table on stdout, the full TAP of every runtime in bench/results/runtime-tools-<date>.txt and a
# summary in bench/results/runtime-tools-<date>.json. Exit status 0 when the suite ran (whatever it found),
# non-zero when it could not run.
set -euo pipefail

PINNED_COMMIT=260e151  # the commit docs/runtime.md's counts were taken with
REPO=$(cd "$(dirname "$0")/.." && pwd)
SELF="$REPO/scripts/runtime-tools.sh"

say() { printf 'runtime-tools: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# ---------------------------------------------------------------------------------------------------------
# One test executable against one runtime. Called through xargs (so at most RT_JOBS run at once) as
# `runtime-tools.sh __one LABEL TEST`, with the run's settings in the environment (exported by main).

# Test cgroups are at fixed paths (/cgrouptest for the absolute tests, testdir/cgrouptest/container under the
# runtime's own cgroup for the relative ones), so each hierarchy and each cgroup we run in is visited.
cgroup_dirs() {
  local m p
  local -a own
  mapfile -t own < <(cut -d: -f3- /proc/self/cgroup | sort -u)
  while read -r m; do
    printf '%s\n' "$m/cgrouptest"
    for p in "${own[@]}"; do
      p=${p%/}
      printf '%s\n' "$m$p/testdir/cgrouptest/container" "$m$p/testdir/cgrouptest" "$m$p/testdir"
    done
  done < <(findmnt -rn -t cgroup,cgroup2 -o TARGET)
}

# Removes the suite's test cgroups: a process still inside one can only be a container the suite left (the
# names are the suite's and only one run of this script is allowed at a time), so it is killed by its pid.
cleanup_cgroups() {
  local d pid
  while read -r d; do
    [ -d "$d" ] || continue
    if [ -f "$d/cgroup.procs" ]; then
      while read -r pid; do
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
      done < "$d/cgroup.procs"
    fi
    local i
    for i in 1 2 3 4 5 6 7 8 9 10; do rmdir "$d" 2>/dev/null && break; sleep 0.2; done
    [ -d "$d" ] && printf 'cgroup %s could not be removed\n' "$d"
  done < <(cgroup_dirs)
  return 0
}

# Removes what one test left: containers under its private runtime root, mounts under its temp dir (a test
# that shares the host's mount namespace, linux_ns_itype, leaves the container's mounts there), the dirs.
cleanup_test() {
  local rt=$1 root=$2 tmp=$3 id m
  if [ -d "$root" ]; then
    for id in $(ls -A "$root"); do
      # bounded: a runtime under test may hang here too
      timeout -k 5 30 "$rt" --root "$root" kill "$id" KILL >/dev/null 2>&1 || true
      timeout -k 5 30 "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
      [ -e "$root/$id" ] && printf 'container %s still in %s after delete --force\n' "$id" "$root"
    done
  fi
  # mountinfo field 5 is the mount point (octal escapes are irrelevant: our paths have no spaces).
  while read -r m; do
    umount -l "$m" 2>/dev/null || printf 'could not unmount %s\n' "$m"
  done < <(awk -v p="$tmp/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  # --one-file-system: never descend into a mount that survived (/proc or /sys of a container).
  rm -rf --one-file-system "$root" "$tmp" 2>/dev/null || printf 'could not remove all of %s\n' "$tmp"
  return 0
}

run_one() {
  local label=$1 t=$2
  local d="$RT_WORK/$label" rt real
  rt="$d/bin/$label"
  real=$(cat "$d/runtime-path")
  local res="$d/res/$t" root="$d/roots/$t" tmp="$d/tmp/$t"
  mkdir -p "$d/res" "$root" "$tmp"
  local uses_cgroups=0
  grep -qE 'CgroupsPath|CgroupPath' "$RT_SRC/validation/$t/"*.go && uses_cgroups=1

  exec_test() {
    local start end rc=0 pg
    start=$(date +%s.%N)
    # GNU timeout puts itself and the test in a new process group (its pid): on timeout the whole group gets
    # the signal, and afterwards anything still in that group (e.g. an `unshare ... sleep` a test forgot) is
    # killed by that group id.
    ( cd "$RT_RUN" && VELO_RT_ROOT="$root" TMPDIR="$tmp" RUNTIME="$rt" \
        exec timeout -k 10 "$RT_TIMEOUT" "$RT_SRC/validation/$t/$t.t" >"$res.tap" 2>"$res.err" ) &
    pg=$!
    wait "$pg" || rc=$?
    kill -KILL -- "-$pg" 2>/dev/null || true
    end=$(date +%s.%N)
    printf '%s\n' "$rc" >"$res.rc"
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f\n", e - s }' >"$res.secs"
    cleanup_test "$real" "$root" "$tmp" >>"$res.leaks"
  }
  : >"$res.leaks"
  if [ "$uses_cgroups" = 1 ]; then
    # Tests with cgroups share fixed cgroup paths: one at a time, each starting from none of them.
    (
      flock 8
      cleanup_cgroups >>"$res.leaks.before"
      exec_test
      cleanup_cgroups >>"$res.leaks"
    ) 8>"$RT_WORK/cgroup.lock"
    rm -f "$res.leaks.before"
  else
    exec_test
  fi
  say "$label: $t done (rc $(cat "$res.rc"), $(cat "$res.secs")s)"
}

if [ "${1:-}" = __one ]; then
  run_one "$2" "$3"
  exit 0
fi

# ---------------------------------------------------------------------------------------------------------
# TAP of one test executable -> counts and the failing lines. Besides the "ok"/"not ok" lines of the test,
# a line marked "(velo: ...)" is added when the executable's outcome is not in its TAP: it timed out, it
# exited non-zero (many tests call Fatal and exit 1 when the runtime failed to create the container), its
# plan promised more points than it printed, or it printed no test point at all (hooks/poststart/... report
# a failure only as an "error" diagnostic with plan 1..0; the *_fail tests exit 0 silently when the runtime
# correctly refused the config). Nothing is hidden: a test that cannot run on this host counts as failed.
#   output: "ok N notok N skip N" on the first line, then the TAP to record (with the added lines)
tap_eval() {
  local tap=$1 rc=$2 secs=$3 err=$4 name=$5
  local errline=""
  if [ -s "$err" ]; then
    # the last line that says something ("exit status 1" alone is Go's summary of the runtime's exit)
    errline=$(grep -vE '^[[:space:]]*$|^exit status [0-9]+$|^Refer to: ' "$err" | tail -n 1 | cut -c1-400 || true)
  fi
  awk -v rc="$rc" -v secs="$secs" -v timeout="$RT_TIMEOUT" -v errline="$errline" -v name="$name" '
    function add(okay, why) {
      n++
      if (okay) ok++; else notok++
      extra = extra sprintf("%s %d - %s (velo: %s)\n", okay ? "ok" : "not ok", n, name, why)
    }
    { body = body $0 "\n" }
    /^ok( |$)/ { ok++; n++; if (toupper($0) ~ /# SKIP/) skip++; next }
    /^not ok( |$)/ { notok++; n++; next }
    /^1\.\.[0-9]+/ { hasplan = 1; plan = substr($1, 4) + 0; next }
    /^ *"error": "/ && reported == "" {
      reported = $0
      sub(/^ *"error": "/, "", reported); sub(/\\n.*/, "", reported); sub(/",?$/, "", reported)
    }
    END {
      if (rc == 124 || rc == 137) add(0, "timed out after " timeout "s")
      else if (rc != 0) add(0, "exited with status " rc (errline != "" ? "; stderr: " errline : ""))
      else if (hasplan && plan > n) {
        printed = n
        for (i = printed; i < plan; i++) add(0, "plan 1.." plan " but only " printed " test points printed")
      } else if (n == 0) {
        if (reported != "") add(0, "no test point; the test reported: " reported)
        else add(1, "no test point, exit status 0: the test passes by exiting cleanly")
      }
      printf "ok %d notok %d skip %d\n", ok, notok, skip
      printf "%s", body
      printf "%s", extra
    }' "$tap"
}

need_src() {
  cat >&2 <<EOF
runtime-tools: no runtime-tools checkout at ${1}.
Get one OUTSIDE this repository (this script downloads nothing), at commit ${PINNED_COMMIT}:
  1. a git copy of github.com/opencontainers/runtime-tools: in the agent sandbox the \`fetch\` tool with
     source "github:opencontainers/runtime-tools" gives a bare git dir (/work/.mirror/opencontainers+runtime-tools/repo);
     elsewhere: git clone --bare https://github.com/opencontainers/runtime-tools /tmp/runtime-tools.git
  2. git --git-dir=<that git dir> worktree add --detach /work/ext/runtime-tools ${PINNED_COMMIT}
     (or: mkdir -p DIR && git --git-dir=<that git dir> archive ${PINNED_COMMIT} | tar -x -C DIR)
then run again, with --src DIR or RUNTIME_TOOLS_SRC=DIR if it is not /work/ext/runtime-tools.
EOF
  exit 2
}

SRC=${RUNTIME_TOOLS_SRC:-/work/ext/runtime-tools}
RUNTIMES=()
while [ $# -gt 0 ]; do
  case $1 in
    --src) [ $# -ge 2 ] || die "--src needs a directory"; SRC=$2; shift 2 ;;
    --src=*) SRC=${1#--src=}; shift ;;
    -h|--help) sed -n '2,20p' "$SELF" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) RUNTIMES+=("$1"); shift ;;
  esac
done

[ "$(id -u)" = 0 ] || die "needs root (the suite creates containers, cgroups and mounts)"
RT_TIMEOUT=${RT_TIMEOUT:-180}
[[ $RT_TIMEOUT =~ ^[0-9]+$ ]] && [ "$RT_TIMEOUT" -gt 0 ] || die "RT_TIMEOUT must be a number of seconds"
RT_JOBS=${RT_JOBS:-2}
case $RT_JOBS in 1|2) ;; *) die "RT_JOBS must be 1 or 2" ;; esac

[ -d "$SRC/validation" ] && [ -f "$SRC/Makefile" ] || need_src "$SRC"
SRC=$(cd "$SRC" && pwd -P)
case "$SRC/" in
  "$(cd "$REPO" && pwd -P)/"*) die "$SRC is inside the velo repository: keep the runtime-tools checkout outside it" ;;
esac
commit=unknown
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
  commit=$(git -C "$SRC" rev-parse HEAD)
  case $commit in
    "$PINNED_COMMIT"*) ;;
    *) say "note: checkout is at ${commit:0:12}, docs/runtime.md's counts are for $PINNED_COMMIT" ;;
  esac
fi

# Only one run at a time: tests use fixed cgroup paths, and the cleanup removes whatever is at those paths.
mkdir -p /run/lock
exec 9>/run/lock/velo-runtime-tools.lock
flock -n 9 || die "another scripts/runtime-tools.sh run holds /run/lock/velo-runtime-tools.lock"

# Runtimes: explicit ones must exist; by default runc, and velo-runtime only once it is built.
declare -a RT_PATHS=() RT_LABELS=() ABSENT=()
add_runtime() {
  local p=$1 label
  label=$(basename "$p")
  if [[ " ${RT_LABELS[*]-} " == *" $label "* ]]; then label="$label-${#RT_LABELS[@]}"; fi
  RT_PATHS+=("$p"); RT_LABELS+=("$label")
}
if [ ${#RUNTIMES[@]} -eq 0 ]; then
  [ -x /usr/sbin/runc ] || die "/usr/sbin/runc is missing (apt-get install runc)"
  add_runtime /usr/sbin/runc
  if [ -x "$REPO/native/build/velo-runtime" ]; then add_runtime "$REPO/native/build/velo-runtime"
  else ABSENT+=("velo-runtime"); say "velo-runtime: $REPO/native/build/velo-runtime does not exist (not built yet): not run"
  fi
else
  for r in "${RUNTIMES[@]}"; do
    if [[ $r != */* ]]; then p=$(command -v "$r" || true); [ -n "$p" ] || die "runtime $r not found in PATH"; r=$p; fi
    [ -x "$r" ] || die "runtime $r does not exist or is not executable"
    add_runtime "$(cd "$(dirname "$r")" && pwd -P)/$(basename "$r")"
  done
fi

# Go from Debian (1.19 at the time of writing; the pinned commit's go.mod says go 1.19).
if ! command -v go >/dev/null; then
  say "installing golang-go (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq golang-go >&2 || { apt-get update -qq >&2 && apt-get install -y -qq golang-go >&2; } \
    || die "could not install golang-go"
fi

# Build: offline from vendor/, in the checkout (outside the repo), only when a source is newer than the build.
export GOFLAGS=-mod=vendor GOPROXY=off GO111MODULE=on GOTOOLCHAIN=local
mapfile -t TESTS < <(cd "$SRC/validation" && for f in */*.go; do
  n=${f%%/*}; [ "$n" != util ] && [ "$f" = "$n/$n.go" ] && printf '%s\n' "$n"; done | sort -u)
[ ${#TESTS[@]} -gt 0 ] || die "no validation tests in $SRC/validation"
stale=0
[ -x "$SRC/runtimetest" ] || stale=1
for t in "${TESTS[@]}"; do [ -x "$SRC/validation/$t/$t.t" ] || stale=1; done
if [ $stale = 0 ] && [ -n "$(find "$SRC" -path "$SRC/.git" -prune -o \( -name '*.go' -o -name go.mod -o -name modules.txt \) -newer "$SRC/runtimetest" -print -quit)" ]; then
  stale=1
fi
if [ $stale = 1 ]; then
  say "building runtimetest and ${#TESTS[@]} validation executables in $SRC (go $(go env GOVERSION))"
  make -s -C "$SRC" runtimetest validation-executables >&2 || die "build failed (see above)"
fi

if [ -n "${RT_ONLY:-}" ]; then
  mapfile -t TESTS < <(printf '%s\n' "${TESTS[@]}" | grep -E -- "$RT_ONLY" || true)
  [ ${#TESTS[@]} -gt 0 ] || die "RT_ONLY=$RT_ONLY matches no test"
fi

# Work dir: the tests run with it as cwd (they read ./runtimetest and ./rootfs-<arch>.tar.gz from the cwd).
RT_WORK=$(mktemp -d /tmp/velo-rtools.XXXXXX)
# mktemp makes it 0700: a container whose root maps to another uid (linux_uid_mappings, linux_ns_nopath's user
# namespace) could then not reach its own bundle under it.
chmod 0755 "$RT_WORK"
RT_RUN="$RT_WORK/run"
mkdir -p "$RT_RUN"
final_cleanup() {
  local d
  for d in "$RT_WORK"/*/tmp; do
    [ -d "$d" ] || continue
    awk -v p="$d/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r umount -l 2>/dev/null || true
  done
  rm -rf --one-file-system "$RT_WORK" 2>/dev/null || say "could not remove all of $RT_WORK"
}
trap final_cleanup EXIT
trap 'exit 130' INT TERM
# A copy, not a link: the tests copy ./runtimetest into each bundle with a copy that keeps symlinks as links.
cp "$SRC/runtimetest" "$RT_RUN/runtimetest"
arch=$(go env GOARCH)
if [ "${RT_ROOTFS:-}" != busybox ] && [ -f "$SRC/rootfs-$arch.tar.gz" ]; then
  ln -s "$SRC/rootfs-$arch.tar.gz" "$RT_RUN/rootfs-$arch.tar.gz"
  ROOTFS_FROM="$SRC/rootfs-$arch.tar.gz"
else
  # A busybox rootfs like the suite's own: the static busybox with a link per applet, /etc/passwd and group.
  bb=$(command -v busybox || true)
  if [ -z "$bb" ] || ! file -L "$bb" 2>/dev/null | grep -q 'statically linked'; then
    say "installing busybox-static (apt-get) for the bundles' rootfs"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >&2 || die "could not install busybox-static"
    bb=$(command -v busybox)
  fi
  r="$RT_WORK/rootfs"
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,tmp,root,var/empty}
  cp "$bb" "$r/bin/busybox"
  for a in $("$bb" --list-full); do
    [ -e "$r/$a" ] || ln -s /bin/busybox "$r/$a"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'daemon:x:2:2:daemon:/sbin:/bin/false' \
    'nobody:x:65534:65534:nobody:/var/empty:/bin/false' >"$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'daemon:x:2:' 'tty:x:5:' 'nogroup:x:65534:' >"$r/etc/group"
  chmod 1777 "$r/tmp"
  tar -czf "$RT_RUN/rootfs-$arch.tar.gz" -C "$r" .
  ROOTFS_FROM="busybox $("$bb" 2>&1 | head -n 1 | awk '{print $2}') from $bb"
fi

export RT_WORK RT_RUN RT_SRC="$SRC" RT_TIMEOUT
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT_DIR="$REPO/bench/results"
mkdir -p "$OUT_DIR"
TXT="$OUT_DIR/runtime-tools-$stamp.txt"
JSON="$OUT_DIR/runtime-tools-$stamp.json"

{
  echo "# runtime-tools validation suite, $stamp"
  echo "# suite: $SRC (commit $commit), rootfs: $ROOTFS_FROM"
  echo "# host: $(uname -sr), cgroups: $(if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo v2; elif [ -d /sys/fs/cgroup/unified ]; then echo hybrid; else echo v1; fi)"
  echo "# per-test timeout ${RT_TIMEOUT}s, ${RT_JOBS} at a time"
} >"$TXT"

for i in "${!RT_PATHS[@]}"; do
  label=${RT_LABELS[$i]} path=${RT_PATHS[$i]}
  d="$RT_WORK/$label"
  mkdir -p "$d/bin" "$d/res"
  printf '%s\n' "$path" >"$d/runtime-path"
  # Each test gets its own state root (--root, a global option of runc and crun, which velo-runtime follows):
  # a test's cleanup then only sees its own containers, and other users of the runtime are not touched.
  cat >"$d/bin/$label" <<EOF
#!/bin/sh
exec "$path" --root "\${VELO_RT_ROOT:?}" "\$@"
EOF
  chmod +x "$d/bin/$label"
  say "$label ($path): ${#TESTS[@]} tests, ${RT_JOBS} at a time, timeout ${RT_TIMEOUT}s each"
  printf '%s\n' "${TESTS[@]}" | xargs -P "$RT_JOBS" -I{} bash "$SELF" __one "$label" {} \
    || say "$label: some test runs did not complete (counted as failures below)"

  {
    echo
    echo "# ======== $label: $path ($(timeout 10 "$path" --version 2>/dev/null | head -n 1 || echo 'no --version'))"
  } >>"$TXT"
  : >"$d/summary.tsv"
  : >"$d/failures.tsv"
  for t in "${TESTS[@]}"; do
    res="$d/res/$t"
    rc=$(cat "$res.rc" 2>/dev/null || echo 255); secs=$(cat "$res.secs" 2>/dev/null || echo 0)
    touch "$res.tap" "$res.err"
    ev=$(tap_eval "$res.tap" "$rc" "$secs" "$res.err" "$t")
    read -r _ ok _ notok _ skip <<<"$(head -n 1 <<<"$ev")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$ok" "$notok" "$skip" "$rc" "$secs" >>"$d/summary.tsv"
    {
      echo "# ---- $t: rc $rc, ${secs}s, $ok ok ($skip skipped), $notok not ok"
      tail -n +2 <<<"$ev"
      if [ -s "$res.err" ]; then sed 's/^/# stderr: /' "$res.err"; fi
      if [ -s "$res.leaks" ]; then sed 's/^/# cleanup: /' "$res.leaks"; fi
    } >>"$TXT"
    tail -n +2 <<<"$ev" | grep '^not ok' | sed "s/^/$t\t/" >>"$d/failures.tsv" || true
    if [ -s "$res.leaks" ]; then say "$label: $t: cleanup: $(tr '\n' ';' <"$res.leaks")"; fi
  done
done

# Table, totals, JSON (node is a requirement of the repo anyway).
export RT_LABELS_S="${RT_LABELS[*]}" RT_PATHS_S="${RT_PATHS[*]}" RT_ABSENT_S="${ABSENT[*]-}" RT_JSON="$JSON" \
  RT_TXT="$TXT" RT_COMMIT="$commit" RT_STAMP="$stamp" RT_ROOTFS_FROM="$ROOTFS_FROM" RT_JOBS RT_REPO="$REPO"
node - <<'EOF'
const fs = require('fs'), path = require('path'), os = require('os'), cp = require('child_process')
const labels = process.env.RT_LABELS_S.split(' ').filter(Boolean)
const paths = process.env.RT_PATHS_S.split(' ').filter(Boolean)
const absent = process.env.RT_ABSENT_S.split(' ').filter(Boolean)
const runtimes = {}
for (const [i, label] of labels.entries()) {
  const d = path.join(process.env.RT_WORK, label)
  const tests = {}
  for (const line of fs.readFileSync(path.join(d, 'summary.tsv'), 'utf8').split('\n').filter(Boolean)) {
    const [name, ok, notok, skip, rc, secs] = line.split('\t')
    tests[name] = {ok: +ok, notOk: +notok, skipped: +skip, exitStatus: +rc, seconds: +secs, failures: []}
  }
  for (const line of fs.readFileSync(path.join(d, 'failures.tsv'), 'utf8').split('\n').filter(Boolean)) {
    const tab = line.indexOf('\t')
    tests[line.slice(0, tab)].failures.push(line.slice(tab + 1))
  }
  let version = ''
  try { version = cp.execFileSync(paths[i], ['--version'], {encoding: 'utf8', timeout: 10000}).split('\n')[0] } catch {}
  const vals = Object.values(tests)
  runtimes[label] = {path: paths[i], version, passed: vals.reduce((a, t) => a + t.ok, 0),
    failed: vals.reduce((a, t) => a + t.notOk, 0), skipped: vals.reduce((a, t) => a + t.skipped, 0), tests}
}
for (const a of absent) runtimes[a] = {path: path.join(process.env.RT_REPO, 'native/build/velo-runtime'), absent: true}
const summary = {date: process.env.RT_STAMP, suite: {repo: 'github.com/opencontainers/runtime-tools',
  commit: process.env.RT_COMMIT, rootfs: process.env.RT_ROOTFS_FROM}, host: {kernel: os.release(),
  cgroups: fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'v2' : fs.existsSync('/sys/fs/cgroup/unified') ? 'hybrid' : 'v1'},
  timeoutSeconds: +process.env.RT_TIMEOUT, jobs: +process.env.RT_JOBS,
  counting: 'ok / not ok lines of each test\'s TAP (SKIP counts as ok), plus one line per test whose outcome is not in its TAP (timeout, non-zero exit, missing points, no point at all); see scripts/runtime-tools.sh',
  tap: path.basename(process.env.RT_TXT), runtimes}
fs.writeFileSync(process.env.RT_JSON, JSON.stringify(summary, null, 2) + '\n')

const cols = Object.keys(runtimes)
const names = [...new Set(labels.flatMap((l) => Object.keys(runtimes[l].tests)))].sort()
const w = Math.max(4, ...names.map((n) => n.length))
const cell = (l, n) => runtimes[l].absent ? 'not run' : (t => t ? `${t.ok} ok / ${t.notOk} not ok` : '-')(runtimes[l].tests[n])
const cw = cols.map((l) => Math.max(l.length, ...names.map((n) => cell(l, n).length)))
const row = (a) => a.map((s, i) => i === 0 ? s.padEnd(w) : s.padEnd(cw[i - 1])).join('  ')
console.log(row(['test', ...cols]))
console.log(row(['-'.repeat(w), ...cw.map((x) => '-'.repeat(x))]))
for (const n of names) console.log(row([n, ...cols.map((l) => cell(l, n))]))
console.log()
console.log(cols.map((l) => runtimes[l].absent ? `${l}: not run (${runtimes[l].path} does not exist)`
  : `${l}: ${runtimes[l].passed} passed, ${runtimes[l].failed} failed`).join(' / '))
console.log(`(passed includes ${cols.filter((l) => !runtimes[l].absent).map((l) => `${runtimes[l].skipped} SKIP for ${l}`).join(', ')})`)
console.log(`TAP: ${path.relative(process.cwd(), process.env.RT_TXT)}\nJSON: ${path.relative(process.cwd(), process.env.RT_JSON)}`)
EOF
