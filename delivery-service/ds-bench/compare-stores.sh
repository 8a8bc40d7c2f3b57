#!/usr/bin/env bash
# ds-bench against every store in one run: G=10 and G=100 at C=64, for sled,
# PostgreSQL with one replica and PostgreSQL with three replicas. Prints one
# line per run (add JSON=1 for JSON lines). Numbers go in docs/benchmarks.md.
#   GROVE_BENCH_DATABASE_URL  a PostgreSQL URL whose user may create databases
#                             (default postgres://postgres@127.0.0.1:5432/test)
#   DURATION                  timed seconds per run (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
url="${GROVE_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
duration="${DURATION:-10}"
json=()
[ -n "${JSON:-}" ] && json=(--json)
cargo build --release -p delivery-service -p ds-bench
bench=./target/release/ds-bench
for g in 10 100; do
  common=(--group-size "$g" --senders 64 --size 1024 --duration "$duration" "${json[@]}")
  "$bench" "${common[@]}"
  "$bench" "${common[@]}" --store postgres --database-url "$url"
  "$bench" "${common[@]}" --store postgres --database-url "$url" --replicas 3
done
