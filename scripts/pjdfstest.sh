#!/usr/bin/env bash
# POSIX conformance of a velo volume: runs pjdfstest (github.com/pjd/pjdfstest) on a volume mounted with
# `velo volume mount`, in a store of its own, and reports assertions passed / failed per test file.
#
# usage: scripts/pjdfstest.sh [--src DIR] [--baseline] [--vault] [--jobs N]
#   --src DIR    a pjdfstest checkout (default: $PJDFSTEST_SRC, else /work/ext/pjdfstest). It must live outside
#                this repository: the suite is built there (autoreconf -ifs; ./configure; make pjdfstest) and
#                nothing of it enters velo. Get it with: git clone https://github.com/pjd/pjdfstest DIR
#   --baseline   also run the suite on a plain directory of the same filesystem (the store's), for comparison
#   --vault      also run it in the .vault of a volume (docs/volumes.md, "The vault": an fscrypt-encrypted ext4 of
#                its own, loop-mounted while unlocked), through a `velo volume mount` of that volume
#   --jobs N     test files run at once by prove (default 1, as pjdfstest's README runs it)
#
# Root only (pjdfstest changes owners and makes device nodes). The script downloads nothing but Debian's
# autoconf/automake when they are missing. Results: a table on stdout, the TAP of each run in
# bench/results/pjdfstest-<date>-<target>.tap and a summary in bench/results/pjdfstest-<date>.json. Exit status 0
# when the suite ran (whatever it found), non-zero when it could not run. Not part of `npm test` (minutes).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VELO="$REPO/bin/velo"
say() { printf 'pjdfstest: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

SRC=${PJDFSTEST_SRC:-/work/ext/pjdfstest}
BASELINE=0
VAULT=0
JOBS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --src) SRC=$2; shift 2 ;;
    --baseline) BASELINE=1; shift ;;
    --vault) VAULT=1; shift ;;
    --jobs) JOBS=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run as root: pjdfstest changes owners and makes device nodes"
[ -f "$SRC/pjdfstest.c" ] && [ -d "$SRC/tests" ] ||
  die "no pjdfstest checkout at $SRC (git clone https://github.com/pjd/pjdfstest $SRC, or give --src DIR)"
SRC=$(cd "$SRC" && pwd)
case "$SRC/" in "$REPO"/*) die "the checkout must live outside this repository ($SRC)";; esac
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "--jobs wants a positive number, not $JOBS"

need=()
command -v autoreconf >/dev/null || need+=(autoconf)
command -v automake >/dev/null || need+=(automake)
command -v prove >/dev/null || need+=(perl)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi
[ -x "$REPO/native/build/velo" ] || bash "$REPO/scripts/setup.sh"

if [ ! -x "$SRC/pjdfstest" ]; then
  say "building pjdfstest in $SRC"
  (cd "$SRC" && autoreconf -ifs >/dev/null 2>&1 && ./configure -q >/dev/null && make -s pjdfstest >/dev/null) ||
    die "cannot build pjdfstest in $SRC (autoreconf -ifs; ./configure; make pjdfstest)"
fi

WORK=$(mktemp -d /var/tmp/velo-pjdfstest.XXXXXX)
HOME_DIR="$WORK/home"
MNT="$WORK/mnt"
VMNT="$WORK/vault-mnt"
cleanup() {
  set +e
  for m in "$MNT" "$VMNT"; do
    if mountpoint -q "$m" 2>/dev/null; then VELO_HOME="$HOME_DIR" "$VELO" volume umount "$m" >/dev/null 2>&1 || umount -l "$m"; fi
  done
  # the vault's filesystem is loop-mounted from the store while unlocked: locked before the store goes
  [ "$VAULT" = 1 ] && VELO_HOME="$HOME_DIR" "$VELO" volume vault lock pjdfstest-vault >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
OUT="$REPO/bench/results"
mkdir -p "$OUT" "$MNT"

# one prove run in DIR: the TAP goes to FILE, "files failed_files assertions failed todo" to stdout
run_suite() {
  local dir=$1 tap=$2
  say "running the suite in $dir (prove -j $JOBS; this takes minutes)"
  (cd "$dir" && timeout 3600 prove -r -v -j "$JOBS" "$SRC/tests") >"$tap" 2>&1 || true
  # per assertion: "ok N" / "not ok N" lines of every test file; per file: prove's "Failed N/M subtests" lines
  # prove -v: a "PATH.t ..." line opens each file's TAP, "ok N" / "not ok N" are its assertions ("not ok N # TODO":
  # a failure pjdfstest expects on this OS, not counted as one, as prove does not); a file with a failed
  # assertion, a bad plan or a non-zero exit says so in prove's lines after it
  awk '
    /^\/.*\.t \.+/ { files++; cur = $1; next }
    /^ok [0-9]+/ { asserts++; next }
    /^not ok [0-9]+.*# TODO/ { asserts++; todo++; next }
    /^not ok [0-9]+/ { asserts++; notok++; bad[cur] = 1; next }
    /^Failed [0-9]+\/[0-9]+ subtests/ || /^Dubious, test returned/ || /^No subtests run/ { bad[cur] = 1 }
    END { n = 0; for (f in bad) n++; printf "%d %d %d %d %d\n", files, n, asserts, notok, todo }
  ' "$tap"
}

say "a volume in a store of its own ($HOME_DIR), mounted on $MNT"
export VELO_HOME="$HOME_DIR"
"$VELO" volume create pjdfstest >/dev/null
"$VELO" volume mount pjdfstest "$MNT" >/dev/null
read -r vfiles vfailed vasserts vnot vtodo < <(run_suite "$MNT" "$OUT/pjdfstest-$STAMP-volume.tap")
"$VELO" volume umount "$MNT" >/dev/null

rows=("volume (velo volume mount)|$vfiles|$vfailed|$vasserts|$vnot|$vtodo|$OUT/pjdfstest-$STAMP-volume.tap")
if [ "$VAULT" = 1 ]; then
  say "a volume with a vault ($HOME_DIR), mounted on $VMNT; the suite runs in its .vault"
  mkdir -p "$VMNT"
  "$VELO" volume create pjdfstest-vault >/dev/null
  # a throwaway password for a throwaway vault (removed with the store below)
  printf 'pjdfstest vault password\n' | "$VELO" volume vault create pjdfstest-vault --size 1g --password-stdin >/dev/null
  "$VELO" volume mount pjdfstest-vault "$VMNT" >/dev/null
  [ -d "$VMNT/.vault" ] || die "the vault is not at $VMNT/.vault"
  read -r xfiles xfailed xasserts xnot xtodo < <(run_suite "$VMNT/.vault" "$OUT/pjdfstest-$STAMP-vault.tap")
  "$VELO" volume umount "$VMNT" >/dev/null
  "$VELO" volume vault lock pjdfstest-vault >/dev/null
  rows+=("vault (.vault of a mounted volume: fscrypt ext4)|$xfiles|$xfailed|$xasserts|$xnot|$xtodo|$OUT/pjdfstest-$STAMP-vault.tap")
fi
if [ "$BASELINE" = 1 ]; then
  mkdir -p "$WORK/plain"
  read -r bfiles bfailed basserts bnot btodo < <(run_suite "$WORK/plain" "$OUT/pjdfstest-$STAMP-plain.tap")
  rows+=("plain directory, same filesystem|$bfiles|$bfailed|$basserts|$bnot|$btodo|$OUT/pjdfstest-$STAMP-plain.tap")
fi

fs_type=$(findmnt -no FSTYPE -T "$HOME_DIR" || echo '?')
printf '\npjdfstest %s on %s (%s, kernel %s)\n' "$(cd "$SRC" && git rev-parse --short HEAD 2>/dev/null || echo '?')" "$(hostname)" "$fs_type" "$(uname -r)"
printf '| where | test files | files with a failure | assertions | failed | expected failures (TODO) |\n| --- | --- | --- | --- | --- | --- |\n'
json='['
for r in "${rows[@]}"; do
  IFS='|' read -r where files failed asserts notok todo tap <<<"$r"
  printf '| %s | %s | %s | %s | %s | %s |\n' "$where" "$files" "$failed" "$asserts" "$notok" "$todo"
  json+="{\"where\":\"$where\",\"testFiles\":$files,\"filesFailed\":$failed,\"assertions\":$asserts,\"failed\":$notok,\"todo\":$todo,\"tap\":\"$tap\"},"
  if [ "$notok" != 0 ]; then
    echo "failed assertions ($where):"
    grep -E '^/.*\.t \.+|^not ok' "$tap" | grep -v '# TODO' | grep -B1 '^not ok' | grep -v '^--$' | sed 's/^/  /' | head -50 || true
  fi
done
json="${json%,}]"
printf '{"kind":"peer-suite","suite":"pjdfstest","date":"%s","filesystem":"%s","kernel":"%s","runs":%s}\n' "$STAMP" "$fs_type" "$(uname -r)" "$json" >"$OUT/pjdfstest-$STAMP.json"
say "TAP and summary in $OUT/pjdfstest-$STAMP*"
