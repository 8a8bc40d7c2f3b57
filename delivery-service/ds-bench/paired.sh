#!/usr/bin/env bash
# Paired A/B runs of ds-bench: two builds, alternated round by round on the
# same machine, so that a noisy machine shifts both alike. Prints every run as
# a JSON line, then the median of each side and of the per-round ratio (B/A).
#   paired.sh DIR_A DIR_B ROUNDS "G C" ["G C" ...]
# DIR_A and DIR_B each hold a ds-bench and a grove-ds (copies of
# target/release/), e.g.:
#   cargo build --release -p delivery-service -p ds-bench
#   mkdir -p /tmp/b && cp target/release/{ds-bench,grove-ds} /tmp/b
# DURATION (default 10) and WARMUP (default 2) are the timed and warm-up
# seconds of each run.
set -euo pipefail
a="$1"; b="$2"; rounds="$3"; shift 3
duration="${DURATION:-10}"; warmup="${WARMUP:-2}"
cases=("$@")
out="$(mktemp)"
for i in $(seq 1 "$rounds"); do
  for w in "${cases[@]}"; do
    read -r g c <<<"$w"
    for side in A B; do
      dir="$a"; [ "$side" = B ] && dir="$b"
      line="$("$dir/ds-bench" --group-size "$g" --senders "$c" --size 1024 \
        --duration "$duration" --warmup "$warmup" --json 2>/dev/null | tail -n 1)"
      echo "{\"side\":\"$side\",\"round\":$i,\"run\":$line}" | tee -a "$out"
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
keys = ["accepted_per_s", "send_p50_ms", "send_p99_ms", "e2e_p50_ms", "e2e_p99_ms",
        "server_cpu_s_per_1000_deliveries", "mean_fsync_batch", "lost"]
cases = sorted({(r["run"]["group_size"], r["run"]["senders"]) for r in runs})
for g, c in cases:
    sel = [r for r in runs if (r["run"]["group_size"], r["run"]["senders"]) == (g, c)]
    print(f"G={g} C={c}")
    for k in keys:
        side = {s: [r["run"][k] for r in sel if r["side"] == s] for s in "AB"}
        ratios = [bb / aa for aa, bb in zip(side["A"], side["B"]) if aa]
        ratio = f"B/A median {statistics.median(ratios):.3f} ({min(ratios):.3f} to {max(ratios):.3f})" if ratios else ""
        print(f"  {k:36} A {statistics.median(side['A']):10.4f}  B {statistics.median(side['B']):10.4f}  {ratio}")
PY
rm -f "$out"
