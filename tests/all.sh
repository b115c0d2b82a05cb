#!/usr/bin/env bash
# Every check and test: formatting, lints, dependency rules, Rust unit and database tests
# (nextest), then the supabase-js end-to-end suite. This is the README's test command.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings

step "dependency rules"
# rustls only: no OpenSSL or native-tls anywhere in the build.
for banned in openssl-sys native-tls; do
  if cargo tree --workspace --locked -e normal -i "$banned" >/dev/null 2>&1; then
    echo "forbidden dependency in the tree: $banned" >&2
    cargo tree --workspace -e normal -i "$banned" >&2
    exit 1
  fi
done
# The PostgREST translator stays pure: no runtime, no database client, no web framework.
if [ -d crates/query ]; then
  if cargo tree -p manifold-query --locked -e normal --prefix none \
      | grep -E '^(tokio|tokio-postgres|deadpool|deadpool-postgres|axum|hyper) v' ; then
    echo "manifold-query must not depend on the crates above" >&2
    exit 1
  fi
fi

step "rust tests (nextest)"
cargo nextest run --workspace --locked --profile ci

step "end-to-end tests (supabase-js)"
"$root/tests/run.sh"
