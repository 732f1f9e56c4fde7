#!/usr/bin/env bash
# Installs whatever is missing for velo on a fresh Debian 12 machine (run as root), then builds.
# Safe to run twice: each step checks before it acts. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages: build tools, the native parts' headers and crate sources (native/b3 builds offline from
# Debian's packaged Rust crates), the peers that tests and benches compare with, and the container engines the
# runtime tests drive (docker.io, containerd, podman with its conmon; uidmap, slirp4netns and the CNI plugins
# are what podman expects beside it; docker-registry, CNCF Distribution 2.8, is the registry the push/pull tests start
# on loopback; chromium, headless, is what test/bench/report.test.ts opens the benchmark report in).
APT_PACKAGES=(gcc make pkg-config libc6-dev libfuse3-dev fuse3 libseccomp-dev libjson-c-dev libzstd-dev zstd busybox-static util-linux mount e2fsprogs coreutils
  b3sum cargo librust-blake3-dev librust-rayon-dev librust-memmap2-dev libarchive-tools strace fio runc bubblewrap hyperfine debootstrap docker.io containerd podman conmon uidmap slirp4netns containernetworking-plugins iptables iproute2 procps psmisc docker-registry golang-github-containerd-containerd-dev
  git python3 tar rsync attr prometheus chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: ${missing[*]} (run as root, or install them first)"; exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# Debian's docker-registry package enables a system registry on :5000 (all interfaces). velo's tests and benches
# start their own on loopback, so the system one stays off.
if [ "$(id -u)" = 0 ] && command -v systemctl >/dev/null 2>&1 && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  systemctl disable --now docker-registry >&2 || true
  say "disabled the system docker-registry service (tests start their own on loopback)"
fi

# The host ids velo gives its tenants' user namespaces (65,536 per tenant): a "velo" entry in /etc/subuid and
# /etc/subgid, placed after every existing range so it overlaps none (docs/sandbox.md, "User namespaces").
if [ "$(id -u)" = 0 ]; then
  for f in /etc/subuid /etc/subgid; do
    touch "$f"
    if ! grep -q '^velo:' "$f"; then
      start=$(awk -F: 'BEGIN { m = 1073741824 } NF == 3 && $2 + $3 > m { m = $2 + $3 } END { printf "%d", int((m + 65535) / 65536) * 65536 }' "$f")
      echo "velo:$start:268435456" >> "$f"
      say "$f: velo:$start:268435456 (4096 tenant ranges of 65536 ids)"
    fi
  done
fi

# The user the rootless tests run as (test/sandbox/rootless.test.ts): an ordinary system user with one range of
# 65,536 ids of its own in /etc/subuid and /etc/subgid, as `useradd` gives a person (docs/sandbox.md, "Rootless").
if [ "$(id -u)" = 0 ]; then
  if ! id velo-rootless >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin velo-rootless
    say "user velo-rootless (rootless tests)"
  fi
  for f in /etc/subuid /etc/subgid; do
    if ! grep -q '^velo-rootless:' "$f"; then
      start=$(awk -F: 'BEGIN { m = 100000 } NF == 3 && $2 + $3 > m { m = $2 + $3 } END { printf "%d", int((m + 65535) / 65536) * 65536 }' "$f")
      echo "velo-rootless:$start:65536" >> "$f"
      say "$f: velo-rootless:$start:65536"
    fi
  done
fi

# npm packages: (re)install only when package-lock.json changed since the last install.
stamp=node_modules/.velo-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  # Not `npm ci`: with this machine's npm (11, omit-lockfile-registry-resolved) the lock file leaves out other
  # platforms' optional packages and npm ci then refuses it as out of sync. `npm install --no-save` installs
  # the locked versions and leaves package-lock.json untouched. Build scripts run only for the packages
  # listed in package.json "allowScripts".
  say "installing npm packages"
  npm install --no-save --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json "$stamp"
fi

# The TypeScript bundle and the native build (make is incremental).
if [ ! -f dist/cli.js ] || [ -n "$(find src package.json -newer dist/cli.js -print -quit 2>/dev/null)" ]; then
  say "building the CLI bundle"
  node scripts/build.mjs >&2
fi
make -s -C native >&2
