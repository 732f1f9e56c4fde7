#!/usr/bin/env bash
# The main job: install what is missing, then run the sample app (examples/hello-app) with `npm start` in a
# fresh sandbox on the built-in default image (busybox + the host's node and npm, built on first use without
# network), print what the app prints (one line from an HTTP request to itself on the sandbox's loopback),
# and remove the sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${VELO_HOME:-}" ]; then
  export VELO_HOME=$(mktemp -d /tmp/velo-main.XXXXXX)
  trap 'rm -rf "$VELO_HOME"' EXIT
fi
./bin/velo sandbox run --rm --name hello-app --mount "$PWD/examples/hello-app:/app:ro" --workdir /app -- npm start --silent
