#!/usr/bin/env bash
# Benchmark: what a no-change poll costs. A registry served by nginx over http and over
# https (a certificate from a throw-away CA made with openssl, trusted through
# SSL_CERT_FILE); an app root already on the channel's version, so each `updraft update`
# is one conditional GET answered 304. Side by side in one run: the median CPU time
# (user+sys, from wait4's rusage) and wall time of RUNS no-change polls against RUNS runs
# of `updraft --version`, the cost of starting the process at all (the floor).
#
#   bash bench/poll-vs-floor.sh [RUNS]          # needs nginx (with ssl) and openssl
#   UPDRAFT_BIN=/path/to/updraft bash bench/poll-vs-floor.sh   # another build, e.g. an older one
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-200}
if [ -n "${UPDRAFT_BIN:-}" ]; then
  BIN=$(realpath "$UPDRAFT_BIN")
else
  TARGET=${CARGO_TARGET_DIR:-target}
  cargo build --release -q --bin updraft
  BIN=$(cd "$TARGET/release" && pwd)/updraft
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
W=$(mktemp -d)
NGINX_PID=
cleanup() {
  [ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A registry with one release on channel prod.
mkdir -p "$W/app/bin" "$W/registry" "$W/out"
printf '#!/bin/sh\necho bench\n' >"$W/app/bin/server"
chmod +x "$W/app/bin/server"
"$BIN" keygen --secret-key "$W/ci.key" --public-key "$W/ci.pub" >/dev/null
"$BIN" pack "$W/app" --version 1.0.0 --output "$W/out/app.tar.gz" >/dev/null
"$BIN" publish --registry "file://$W/registry" --app bench --version 1.0.0 \
  --artifact "$W/out/app.tar.gz" --channel prod --secret-key "$W/ci.key" >/dev/null

# A CA and a server certificate for 127.0.0.1 signed by it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=updraft bench CA" -keyout "$W/ca.key" -out "$W/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=127.0.0.1" -keyout "$W/server.key" -out "$W/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$W/server.ext"
openssl x509 -req -in "$W/server.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial \
  -days 2 -extfile "$W/server.ext" -out "$W/server.pem" 2>/dev/null

HTTP_PORT=$(free_port)
HTTPS_PORT=$(free_port)
mkdir -p "$W/nginx"
# As root, workers would switch to nobody, who cannot read the 0700 temp dir.
USER_LINE=
[ "$(id -u)" = 0 ] && USER_LINE="user root;"
cat >"$W/nginx/nginx.conf" <<EOF
$USER_LINE
worker_processes 1;
error_log $W/nginx/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $W/nginx/body;
  proxy_temp_path $W/nginx/proxy;
  fastcgi_temp_path $W/nginx/fastcgi;
  uwsgi_temp_path $W/nginx/uwsgi;
  scgi_temp_path $W/nginx/scgi;
  server {
    listen 127.0.0.1:$HTTP_PORT;
    listen 127.0.0.1:$HTTPS_PORT ssl;
    ssl_certificate $W/server.pem;
    ssl_certificate_key $W/server.key;
    root $W/registry;
  }
}
EOF
"$NGINX" -p "$W/nginx" -c "$W/nginx/nginx.conf" -g "daemon off; pid $W/nginx/nginx.pid;" 2>/dev/null &
NGINX_PID=$!
for _ in $(seq 100); do [ -s "$W/nginx/nginx.pid" ] && break; sleep 0.05; done
python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1])' \
  "http://127.0.0.1:$HTTP_PORT/bench/channels/prod.json" 2>/dev/null ||
  { echo "nginx did not come up:" >&2; cat "$W/nginx/error.log" >&2; exit 1; }

# One app root per scheme, each brought onto 1.0.0 by a first update.
for scheme in http https; do
  port=$HTTP_PORT
  [ "$scheme" = https ] && port=$HTTPS_PORT
  cat >"$W/$scheme.toml" <<EOF
app = "bench"
root = "$W/root-$scheme"
registry = "$scheme://127.0.0.1:$port"
channel = "prod"
public_key_files = ["$W/ci.pub"]
EOF
  env -u SSL_CERT_DIR SSL_CERT_FILE="$W/ca.pem" "$BIN" --config "$W/$scheme.toml" update >/dev/null 2>&1 ||
    { echo "the first $scheme update failed:" >&2; env -u SSL_CERT_DIR SSL_CERT_FILE="$W/ca.pem" "$BIN" --config "$W/$scheme.toml" update; exit 1; }
done

# RUNS runs of a command: one "cpu_us wall_us" line each, from wait4's rusage. With
# TRUST=ca the bench CA is all it trusts (SSL_CERT_FILE alone replaces the system
# store); otherwise the environment's trust settings stay as they are.
measure() {
  python3 - "$RUNS" "$@" <<'PY'
import os, sys, time
runs, argv = int(sys.argv[1]), sys.argv[2:]
env = dict(os.environ)
if os.environ.get("TRUST") == "ca":
    env["SSL_CERT_FILE"] = os.environ["BENCH_CA"]
    env.pop("SSL_CERT_DIR", None)
devnull = os.open(os.devnull, os.O_RDWR)
for _ in range(runs):
    start = time.perf_counter_ns()
    pid = os.fork()
    if pid == 0:
        os.dup2(devnull, 0); os.dup2(devnull, 1); os.dup2(devnull, 2)
        os.execve(argv[0], argv, env)
    _, status, ru = os.wait4(pid, 0)
    wall = (time.perf_counter_ns() - start) // 1000
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv)} failed")
    print(int((ru.ru_utime + ru.ru_stime) * 1e6), wall)
PY
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
export BENCH_CA=$W/ca.pem

echo "$RUNS runs each, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); medians in ms"
printf '%-32s %10s %10s %16s\n' "" "cpu" "wall" "cpu over floor"
FLOOR=
row() { # row LABEL ARGV...
  local label=$1
  shift
  measure "$@" >"$W/times"
  local cpu wall
  cpu=$(cut -d' ' -f1 "$W/times" | median)
  wall=$(cut -d' ' -f2 "$W/times" | median)
  [ -z "$FLOOR" ] && FLOOR=$cpu
  awk -v l="$label" -v c="$cpu" -v w="$wall" -v f="$FLOOR" \
    'BEGIN { printf "%-32s %10.2f %10.2f %16.2f\n", l, c / 1000, w / 1000, (c - f) / 1000 }'
}
row "updraft --version (floor)" "$BIN" --version
row "no-change update over http" "$BIN" --config "$W/http.toml" update
TRUST=ca row "no-change update over https" "$BIN" --config "$W/https.toml" update
