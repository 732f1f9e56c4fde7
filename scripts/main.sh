#!/usr/bin/env bash
# The main job: install what is missing, then run the sample app (examples/hello-app) as a detached workload in a
# fresh sandbox on the built-in default image (busybox + the host's node and npm, built on first use without
# network), on velo's default network with its port published on the host's loopback; fetch a page from it on
# the host side, show its logs, and remove the sandbox (and, in a store of its own, the network).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
own_home=
if [ -z "${VELO_HOME:-}" ]; then
  export VELO_HOME=$(mktemp -d /tmp/velo-main.XXXXXX)
  chmod 711 "$VELO_HOME" # the tenant's root (its own user namespace) reaches its files through it
  own_home=1
fi
name=hello-app-$$
# a free port on the host's loopback
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cleanup() {
  ./bin/velo sandbox rm -f "$name" >/dev/null 2>&1 || true
  if [ -n "$own_home" ]; then
    ./bin/velo network rm bridge >/dev/null 2>&1 || true
    rm -rf "$VELO_HOME"
  fi
}
trap cleanup EXIT
./bin/velo sandbox run -d --name "$name" --network bridge -p "127.0.0.1:$port:3000" --env PORT=3000 \
  --mount "$PWD/examples/hello-app:/app:ro" --workdir /app -- npm start --silent >/dev/null
echo "velo: $name runs detached, published on 127.0.0.1:$port; fetching a page from the host:" >&2
node -e '
  const [port] = process.argv.slice(1)
  let tries = 100
  ;(function get() {
    require("http").get({host: "127.0.0.1", port, path: "/velo"}, (r) => r.pipe(process.stdout)).on("error", () => {
      if (--tries > 0) setTimeout(get, 100)
      else { console.error("velo: the app did not answer"); process.exit(1) }
    })
  })()' "$port"
echo "velo: its logs (velo sandbox logs $name):" >&2
./bin/velo sandbox logs "$name"
./bin/velo sandbox rm -f "$name" >/dev/null 2>&1
echo "velo: removed $name" >&2
