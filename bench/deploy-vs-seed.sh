#!/usr/bin/env bash
# Benchmark: `updraft deploy --artifact-path` against the seed's deploy-release.sh pipeline
# (cp the tarball to /tmp, tar -xzf into releases/<v>, ln -sfn current) on the same tarball,
# in the same run. Prints median wall times and the ratio. No services, no health checks:
# this measures the install + activate path only.
#
#   bash bench/deploy-vs-seed.sh [FILES] [KIB_PER_FILE] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${1:-2000}
KIB=${2:-48}
RUNS=${3:-5}
cargo build --release -q
BIN=$PWD/target/release/updraft
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# A release tree: half compressible text, half random bytes.
mkdir -p "$W/tree/bin" "$W/tree/assets"
python3 - "$W/tree" "$FILES" "$KIB" <<'PY'
import os, sys, random
root, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(42)
for i in range(n):
    sub = os.path.join(root, "assets", f"d{i % 50:02d}")
    os.makedirs(sub, exist_ok=True)
    size = kib * 1024
    if i % 2:
        data = rnd.randbytes(size)
    else:
        data = (f"line {i} " * (size // 8 + 1)).encode()[:size]
    with open(os.path.join(sub, f"f{i:05d}.bin"), "wb") as f:
        f.write(data)
PY
echo "1.0.0" > "$W/tree/VERSION"
tar -czf "$W/release.tar.gz" -C "$W/tree" .
SIZE=$(stat -c %s "$W/release.tar.gz")
UNPACKED=$(du -sb "$W/tree" | cut -f1)

seed_deploy() { # the seed's deploy-release.sh steps, verbatim in effect
  local root=$1 v=$2
  mkdir -p "$root/releases"
  cp "$W/release.tar.gz" "/tmp/bench-seed-$v.tar.gz"
  rm -rf "$root/releases/$v"; mkdir -p "$root/releases/$v"
  tar -xzf "/tmp/bench-seed-$v.tar.gz" -C "$root/releases/$v"
  ln -sfn "$root/releases/$v" "$root/releases/current"
  rm -f "/tmp/bench-seed-$v.tar.gz"
}
updraft_deploy() {
  "$BIN" --root "$1" deploy --version "$2" --artifact-path "$W/release.tar.gz" >/dev/null 2>&1
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_ms() { local s e; s=$(date +%s%N); "$@"; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }

seed_times=(); up_times=()
for i in $(seq 1 "$RUNS"); do
  sync
  seed_times+=("$(time_ms seed_deploy "$W/seed-$i" "1.0.$i")")
  sync
  up_times+=("$(time_ms updraft_deploy "$W/up-$i" "1.0.$i")")
done
S=$(printf '%s\n' "${seed_times[@]}" | median)
U=$(printf '%s\n' "${up_times[@]}" | median)
echo "tarball: $SIZE bytes compressed, $UNPACKED bytes unpacked, $FILES files; $RUNS runs each"
echo "seed deploy-release.sh (cp + tar -xzf + ln -sfn, no fsync, no checksum): median ${S} ms"
echo "updraft deploy (one-pass sha256 + gzip + hardened unpack, syncfs, atomic rename + symlink): median ${U} ms"
awk -v s="$S" -v u="$U" 'BEGIN { printf "ratio updraft/seed: %.2f\n", u / s }'
