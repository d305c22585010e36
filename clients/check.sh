#!/usr/bin/env bash
# Generated clients work out of the box: against the real server (the demo),
# this checks the OpenAPI document with openapi-spec-validator and Redocly's
# strict recommended rules, generates a TypeScript client (openapi-typescript
# + openapi-fetch, default settings) that must pass `tsc --strict` and then
# records an expenditure and reads the budget, and generates a Python client
# (openapi-python-client, default settings) that reads the budget, timeline
# and portfolio and reads a refusal as a typed problem.
#
#   clients/check.sh [path/to/grantlog]     (default: target/debug/grantlog)
#
# Installs its tools from the lockfiles (npm ci; pip into clients/.venv).
# Exit code 0 only when every step passes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
bin="${1:-$root/target/debug/grantlog}"
[ -x "$bin" ] || { echo "no grantlog binary at $bin (cargo build first)"; exit 1; }
build="$here/build"
rm -rf "$build"
mkdir -p "$build/python"

echo "== tools (npm ci; pip from clients/python/requirements.txt)"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
if [ ! -x "$here/.venv/bin/python" ]; then
    python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install --quiet --disable-pip-version-check --require-virtualenv -r "$here/python/requirements.txt"

echo "== the server (demo)"
data="$(mktemp -d)"
token="check-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"$bin" serve --demo --data-dir "$data" --listen 127.0.0.1:0 --admin-token "$token" > "$data/stdout" 2> "$data/stderr" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT
url=""
for _ in $(seq 1 300); do
    url="$(sed -n 's/^grantlog listening on //p' "$data/stdout" | head -n 1)"
    [ -n "$url" ] && break
    kill -0 $server 2>/dev/null || { cat "$data/stderr"; echo "the server stopped"; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "the server did not listen"; exit 1; }
for _ in $(seq 1 300); do
    curl -sf "$url/readyz" > /dev/null && break
    sleep 0.1
done
curl -sf "$url/openapi.json" > "$build/openapi.json"
echo "serving $url"

echo "== the document: openapi-spec-validator"
"$here/.venv/bin/openapi-spec-validator" "$build/openapi.json"

echo "== the document: Redocly, recommended rules with every warning an error"
(cd "$here" && npx --no-install redocly lint --config redocly.yaml --format=summary "$build/openapi.json")

echo "== TypeScript: openapi-typescript, tsc --strict, the script"
(cd "$here" && npx --no-install openapi-typescript "$build/openapi.json" -o ts/schema.d.ts)
(cd "$here" && npx --no-install tsc -p ts/tsconfig.json)
GRANTLOG_URL="$url" GRANTLOG_TOKEN="$token" node "$build/ts/check.js"

echo "== Python: openapi-python-client, the script"
(cd "$build/python" && "$here/.venv/bin/openapi-python-client" generate --path "$build/openapi.json" \
    --meta none --output-path grantlog_client --overwrite > "$build/python/generate.log" 2>&1) \
    || { cat "$build/python/generate.log"; exit 1; }
if grep -q "^WARNING" "$build/python/generate.log"; then
    grep -A3 "^WARNING" "$build/python/generate.log"
fi
PYTHONPATH="$build/python" GRANTLOG_URL="$url" GRANTLOG_TOKEN="$token" "$here/.venv/bin/python" "$here/python/check.py"

echo "== generated clients: all checks passed"
