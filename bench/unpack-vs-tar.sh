#!/usr/bin/env bash
# Time the seed's unpack (cp the tarball to /tmp, then tar -xzf) against updraft's
# one-pass unpack with sha256 (bench/unpack_bench.rs -> updraft::unpack::unpack_tar_gz),
# on the same realistic tarball, in the same run. Prints the best of $RUNS runs each.
#
#   bench/unpack-vs-tar.sh                         # default flate2 backend
#   BENCH_FEATURES=flate2/zlib-rs bench/unpack-vs-tar.sh
#   FILES=2000 TOTAL_MB=100 RUNS=5 bench/unpack-vs-tar.sh
#
# Measured 2026-11-25 on a shared, busy 2-core VM (2000 files, 105 MB, 57 MB gz; GNU tar
# runs gzip in a second process, updraft decompresses, hashes and writes on one thread):
#   seed (cp + tar -xzf)   0.60-0.76 s    seed + sha256sum  0.76-0.85 s
#   updraft (one pass)     0.32-0.73 s    ratio seed/updraft 1.04-1.88x
# The spread is other jobs on the machine; compare runs from the same invocation only.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
FILES=${FILES:-2000}
TOTAL_MB=${TOTAL_MB:-100}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/updraft-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cargo build --release --example unpack-bench ${BENCH_FEATURES:+--features "$BENCH_FEATURES"}
BIN=${CARGO_TARGET_DIR:-target}/release/examples/unpack-bench

# A release-like tree: a few large binaries (half random, half structured), many
# text/JSON-like assets, some random blobs (images, fonts). Deterministic (seeded).
python3 - "$WORK/tree" "$FILES" "$TOTAL_MB" <<'PY'
import os, random, sys
root, files, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) << 20
rng = random.Random(42)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 10)))
         for _ in range(5000)]
text = b""
while len(text) < 4 << 20:
    line = b" ".join(rng.choice(words) for _ in range(12))
    text += b'{"key": "' + line + b'", "n": ' + str(rng.randint(0, 10**6)).encode() + b"},\n"
def content(kind, size):
    if kind == "random":
        return rng.randbytes(size)
    if kind == "text":
        off = rng.randint(0, len(text) - 1)
        return (text[off:] + text)[:size]
    half = size // 2   # "binary": random code-like half, repetitive tables half
    return rng.randbytes(half) + (bytes(range(256)) * (size // 256 + 1))[: size - half]
big = max(1, files // 100)
plan = [("bin/app%d" % i, "binary", int(total * 0.4 / big)) for i in range(big)]
rest = files - big
for i in range(rest):
    kind = "random" if i % 5 == 0 else "text"
    plan.append(("assets/d%02d/f%05d.%s" % (i % 40, i, "png" if kind == "random" else "json"),
                 kind, int(total * 0.6 / rest * rng.uniform(0.2, 1.8))))
for name, kind, size in plan:
    p = os.path.join(root, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(content(kind, size))
    if name.startswith("bin/"):
        os.chmod(p, 0o755)
PY
tar -C "$WORK/tree" -czf "$WORK/release.tar.gz" .
TARBALL="$WORK/release.tar.gz"
echo "tarball: $(stat -c %s "$TARBALL") bytes compressed, $(du -sb "$WORK/tree" | cut -f1) bytes in $(find "$WORK/tree" -type f | wc -l) files"
cat "$TARBALL" >/dev/null  # warm the page cache for every contestant alike

now() { date +%s.%N; }
best() { printf '%s\n' "$@" | sort -g | head -1; }
seed=(); seed_sha=(); ours=(); onepass=(); blocks=(); whole=()
for run in $(seq "$RUNS"); do
  rm -rf "$WORK/d" "$WORK/copy.tar.gz"; sync
  t0=$(now)
  cp "$TARBALL" "$WORK/copy.tar.gz" && mkdir "$WORK/d" && tar -xzf "$WORK/copy.tar.gz" -C "$WORK/d"
  t1=$(now); seed+=("$(echo "$t1 - $t0" | bc -l)")

  rm -rf "$WORK/d" "$WORK/copy.tar.gz"; sync
  t0=$(now)
  cp "$TARBALL" "$WORK/copy.tar.gz" && sha256sum "$WORK/copy.tar.gz" >/dev/null \
    && mkdir "$WORK/d" && tar -xzf "$WORK/copy.tar.gz" -C "$WORK/d"
  t1=$(now); seed_sha+=("$(echo "$t1 - $t0" | bc -l)")

  rm -rf "$WORK/d"; sync
  t0=$(now)
  mkdir "$WORK/d" && "$BIN" "$TARBALL" "$WORK/d" >"$WORK/ours.out"
  t1=$(now); ours+=("$(echo "$t1 - $t0" | bc -l)")

  rm -rf "$WORK/b"; sync
  mkdir "$WORK/b" && "$BIN" "$TARBALL" "$WORK/b" blocks >"$WORK/blocks.out"
  blocks+=("$(sed -n 's/.*seconds=//p' "$WORK/blocks.out")")
  rm -rf "$WORK/w"; sync
  mkdir "$WORK/w" && "$BIN" "$TARBALL" "$WORK/w" whole >"$WORK/whole.out"
  whole+=("$(sed -n 's/.*seconds=//p' "$WORK/whole.out")")
  onepass+=("$(sed -n 's/.*seconds=//p' "$WORK/ours.out")")
  echo "run $run: seed ${seed[-1]}s, seed+sha256sum ${seed_sha[-1]}s, updraft ${ours[-1]}s" \
    "(in-process: one-pass ${onepass[-1]}s, verified blocks ${blocks[-1]}s, verified whole ${whole[-1]}s)"
done
diff -r "$WORK/d" "$WORK/b" >/dev/null && diff -r "$WORK/d" "$WORK/w" >/dev/null \
  || { echo "block-verified trees differ!" >&2; exit 1; }
# Same tree either way.
rm -rf "$WORK/d2" && mkdir "$WORK/d2" && tar -xzf "$TARBALL" -C "$WORK/d2"
diff -r "$WORK/d" "$WORK/d2" >/dev/null || { echo "trees differ!" >&2; exit 1; }
grep -q "sha256=$(sha256sum "$TARBALL" | cut -d' ' -f1)" "$WORK/ours.out" || { echo "sha256 differs!" >&2; exit 1; }

S=$(best "${seed[@]}"); SS=$(best "${seed_sha[@]}"); O=$(best "${ours[@]}")
echo "best of $RUNS: seed (cp + tar -xzf) ${S}s; seed + sha256sum ${SS}s; updraft one-pass unpack+sha256 ${O}s"
printf 'ratio seed/updraft: %.2fx   (seed+sha256sum)/updraft: %.2fx\n' \
  "$(echo "$S / $O" | bc -l)" "$(echo "$SS / $O" | bc -l)"
P=$(best "${onepass[@]}"); B=$(best "${blocks[@]}"); W=$(best "${whole[@]}")
printf 'in-process best of %s: one-pass %ss, verified blocks %ss (%.3fx), verified whole %ss (%.3fx)\n' \
  "$RUNS" "$P" "$B" "$(echo "$B / $P" | bc -l)" "$W" "$(echo "$W / $P" | bc -l)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
