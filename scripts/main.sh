#!/usr/bin/env bash
# The main job: install what is missing, then ingest the sample app into a fresh store and show the store.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export VELO_HOME="${VELO_HOME:-$(mktemp -d /tmp/velo-main.XXXXXX)}"
./bin/velo.js ingest examples/hello-app --name hello-app
./bin/velo.js status
