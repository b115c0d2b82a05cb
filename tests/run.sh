#!/usr/bin/env bash
# End-to-end suite: builds manifold, starts it against a throwaway data dir on free ports, runs
# the real @supabase/supabase-js tests (node --test, Node 22 from node_modules), then stops what it
# started by pid and checks that nothing was left running.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$here"

if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
node_bin="$here/node_modules/.bin/node"
command -v psql >/dev/null || { echo "psql (PostgreSQL client) is needed to load test fixtures" >&2; exit 1; }

cargo build --manifest-path "$root/Cargo.toml" --bin manifold --quiet
manifold="${CARGO_TARGET_DIR:-$root/target}/debug/manifold"

# Under /tmp with mode 755 so the postgres OS user can reach the cluster when we run as root.
work="$(mktemp -d /tmp/manifold-e2e.XXXXXX)"
chmod 755 "$work"
server_pid=""

cleanup() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
    echo "---- server log (last 80 lines) ----" >&2
    tail -n 80 "$work/server.log" >&2
  fi
  # E2E_SERVER_LOG=<file> keeps the whole server log for debugging.
  if [ -n "${E2E_SERVER_LOG:-}" ] && [ -f "$work/server.log" ]; then
    cp "$work/server.log" "$E2E_SERVER_LOG"
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

free_port() {
  "$node_bin" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
api_port="$(free_port)"
db_port="$(free_port)"

# --- auth (issue 5) ---------------------------------------------------------------------------
# User access tokens issued by /auth/v1 are signed with a fresh ES256 key, so getClaims verifies
# them through the JWK set, and auth-asymmetric.test.mjs uses such a token with REST, Storage and
# Realtime next to the HS256 API keys. (The REST, storage and realtime suites mint their own HS256
# user tokens with the project secret; they do not go through the ES256 key.)
# Anonymous sign-in is on for its test. The whole suite signs users in from 127.0.0.1, so the
# per-IP limits on /token and /signup are raised here; auth-email.test.mjs checks the default
# limit on /verify instead.
MANIFOLD_AUTH__SIGNING_KEYS="$("$node_bin" -e '
  const { generateKeyPairSync, randomUUID } = require("crypto");
  const jwk = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
  console.log(JSON.stringify({ keys: [{ ...jwk, kid: randomUUID(), alg: "ES256", use: "sig" }] }));
')"
export MANIFOLD_AUTH__SIGNING_KEYS
export MANIFOLD_AUTH__ANONYMOUS_SIGN_INS=true
export MANIFOLD_AUTH__RATE_LIMIT__TOKEN_PER_5MIN=100000
export MANIFOLD_AUTH__RATE_LIMIT__SIGNUP_PER_5MIN=100000
# ----------------------------------------------------------------------------------------------

MANIFOLD_API__LISTEN="127.0.0.1:$api_port" \
MANIFOLD_DATABASE__PORT="$db_port" \
MANIFOLD_REST__SCHEMAS='["public", "fixtures"]' \
MANIFOLD_LOG="${MANIFOLD_LOG:-info}" \
  "$manifold" start --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 600); do
  if curl -fs "http://127.0.0.1:$api_port/health" >/dev/null 2>&1; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { echo "manifold exited during startup" >&2; exit 1; }
  sleep 0.1
done
curl -fs "http://127.0.0.1:$api_port/health" >/dev/null || { echo "manifold never became healthy" >&2; exit 1; }

keys="$work/data/keys.json"
key() { "$node_bin" -e "console.log(require('$keys')['$1'])"; }
export API_URL="http://127.0.0.1:$api_port"
export ANON_KEY="$(key anon_key)"
export SERVICE_ROLE_KEY="$(key service_role_key)"
export PUBLISHABLE_KEY="$(key publishable_key)"
export SECRET_KEY="$(key secret_key)"
export JWT_SECRET="$(key jwt_secret)"
export DB_URL="postgresql://postgres:$(key postgres_password)@127.0.0.1:$db_port/postgres"

for fixture in fixtures/*.sql; do
  [ -e "$fixture" ] || continue
  psql "$DB_URL" -q -v ON_ERROR_STOP=1 -f "$fixture" >/dev/null
done
# The fixtures' DDL fired the reload event trigger; wait until the cache shows them.
for _ in $(seq 1 100); do
  status="$(curl -s -o /dev/null -w '%{http_code}' -H "apikey: $ANON_KEY" -H 'accept-profile: fixtures' \
    "$API_URL/rest/v1/teams?select=id&limit=1")"
  [ "$status" = "200" ] && break
  sleep 0.1
done

set +e
"$node_bin" --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$work/tap.txt" "$@" "${E2E_FILES:-e2e/**/*.test.mjs}"
status=$?
set -e
executed="$(grep -E '^# tests [0-9]+' "$work/tap.txt" | awk '{print $3}')"
if [ "${executed:-0}" -eq 0 ]; then
  echo "no end-to-end test ran" >&2
  exit 1
fi
[ "$status" -eq 0 ] || exit "$status"

kill -TERM "$server_pid"
wait "$server_pid" || { echo "manifold did not stop cleanly" >&2; exit 1; }
server_pid=""
sleep 0.2
if grep -ls "$work" /proc/[0-9]*/cmdline >/dev/null 2>&1; then
  echo "processes were left running after manifold stopped:" >&2
  grep -ls "$work" /proc/[0-9]*/cmdline >&2
  exit 1
fi
echo "end-to-end: $executed tests passed"
