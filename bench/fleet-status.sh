#!/usr/bin/env bash
# Benchmark: `updraft fleet status` over COUNT machine reports (default 10000) on a
# file:// registry and on the S3 test server (s3s-fs on loopback): wall seconds and peak
# RSS from /usr/bin/time -v, RUNS times each (default 3). A figure for the issue's note,
# not a test. Needs s3s-fs (`.ci/s3-server --install`) and GNU time.
#
#   bash bench/fleet-status.sh [COUNT] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-10000}
RUNS=${2:-3}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -q --bin updraft --example fleet-seed
BIN=$TARGET/release/updraft
SEED=$TARGET/release/examples/fleet-seed
S3FS=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
W=$(mktemp -d)
S3PID=
cleanup() { [ -n "$S3PID" ] && kill "$S3PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

measure() { # measure LABEL REGISTRY: RUNS runs of fleet status --json, one line each
  local label=$1 reg=$2 i
  for i in $(seq "$RUNS"); do
    /usr/bin/time -v "$BIN" fleet status --registry "$reg" --app bench --json \
      >"$W/out.json" 2>"$W/time.txt"
    local secs rss n
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$W/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/time.txt")
    n=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["reports"], len(d["bad"]))' "$W/out.json")
    printf '%-8s run %d: %s wall, peak RSS %d MiB (reports, bad: %s)\n' "$label" "$i" "$secs" $((rss / 1024)) "$n"
  done
}

echo "fleet status over $COUNT reports, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

# file://
mkdir -p "$W/registry"
"$SEED" "file://$W/registry" bench "$COUNT"
measure file "file://$W/registry"

# s3:// on s3s-fs (a bucket is a directory of its data dir)
mkdir -p "$W/s3/bench-bucket"
RUST_LOG=info NO_COLOR=1 "$S3FS" --host 127.0.0.1 --port 0 --access-key bench --secret-key bench-secret "$W/s3" \
  >"$W/s3.log" 2>&1 &
S3PID=$!
for _ in $(seq 100); do grep -q "server is running at" "$W/s3.log" && break; sleep 0.1; done
ENDPOINT=$(sed -n 's/.*server is running at \([^ ]*\).*/\1/p' "$W/s3.log" | head -1)
export AWS_ENDPOINT_URL=$ENDPOINT AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
export AWS_SHARED_CREDENTIALS_FILE=/nonexistent
"$SEED" "s3://bench-bucket/registry" bench "$COUNT"
measure s3 "s3://bench-bucket/registry"
