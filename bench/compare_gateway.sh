#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The gateway benchmarks of issue 4, in one run, all on loopback with their own temporary folder:
#  - a fast upstream: Debian's nginx returning a fixed OpenAI completion for POST /v1/completions
#    (and 200 for GET /health and a minimal load report for GET /weft/v1/load);
#  - `weft gateway` in front of it (a real key checked, quotas unlimited, ledger on with fsync,
#    access log off), and nginx as a plain reverse proxy to the same upstream (keepalive pool);
# then measures with bench/gateway (target weft_ratebench):
#  (a) added latency: open-loop load at each RATE (latency from the scheduled send time, so no
#      coordinated omission) through the gateway and straight to the upstream; added = gateway -
#      direct per percentile. Goal: p99 added < 1 ms.
#  (b) max requests/s through the gateway and through nginx-as-proxy, closed loop, the same number
#      of connections. Goal: gateway >= 0.8x nginx.
#  (c) the gateway's VmRSS holding IDLE idle client connections (after the load above). Goal:
#      < 200 MB.
# Each (a)/(b) cell runs ROUNDS times, the targets alternating order; the table shows medians.
#
# Usage: bench/compare_gateway.sh [--rates "1000 5000"] [-d DURATION] [--warmup W] [-r ROUNDS]
#          [-c OPEN_CONNS] [--max-conns C] [--max-client ratebench|wrk] [--idle N] [--port BASE]
#          [--io-threads T] [--gateway-data DIR] [--build DIR] [--commit TEXT] [--perf DIR]
#          [--keep DIR]
# Defaults: rates "1000 5000", -d 10 s per run after --warmup 2 s, -r 3, -c 32 connections (open
# loop), --max-conns 64 (closed loop, client ratebench), --idle 10000, ports BASE..BASE+2 (default
# 18180), gateway io_threads 2 (nginx proxy: as many workers), binaries under --build DIR (default
# build/release): cli/weft and bench/gateway/weft_ratebench.
# --gateway-data DIR: the gateway's data folder (keys, ledger WAL) there instead of in the work
#   folder, e.g. on a tmpfs to see what the WAL's fdatasync costs.
# --commit TEXT: names the measured source in the table (default: this checkout's HEAD, marked when
#   gateway/, base/, api/ or cli/ have uncommitted changes); give it when --build was configured
#   from another source tree (e.g. a `git archive` snapshot).
# --perf DIR: `perf record --call-graph dwarf` of the gateway during the first max-throughput run
#   and the first run at the highest rate, into DIR.
# --keep DIR: keeps configs, logs and JSON there (else a temporary folder is removed).
# GW_PRELOAD=LIB in the environment: the gateway runs with LD_PRELOAD=LIB (e.g. to try tcmalloc).
# The max runs also report CPU time per request (user + system of the gateway process, of nginx's
# master and workers), warm-up included: a ratio that holds on a busy machine.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RATES="1000 5000"
DURATION=10
WARMUP=2
ROUNDS=3
OPEN_CONNS=32
MAX_CONNS=64
MAX_CLIENT=ratebench
IDLE=10000
PORT=18180
IO_THREADS=2
BUILD="$REPO_ROOT/build/release"
PERF_DIR=""
KEEP=""
COMMIT=""
GW_DIR=""

usage() { sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) RATES="$2"; shift 2 ;;
    -d|--duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    -r|--rounds) ROUNDS="$2"; shift 2 ;;
    -c|--conns) OPEN_CONNS="$2"; shift 2 ;;
    --max-conns) MAX_CONNS="$2"; shift 2 ;;
    --max-client) MAX_CLIENT="$2"; shift 2 ;;
    --idle) IDLE="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --io-threads) IO_THREADS="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --perf) PERF_DIR="$2"; shift 2 ;;
    --commit) COMMIT="$2"; shift 2 ;;
    --gateway-data) GW_DIR="$2"; shift 2 ;;
    --keep) KEEP="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option $1" >&2; usage 2 ;;
  esac
done
WEFT="$BUILD/cli/weft"
RATEBENCH="$BUILD/bench/gateway/weft_ratebench"
NGINX="${NGINX:-/usr/sbin/nginx}"
[ -x "$WEFT" ] || { echo "compare_gateway: no weft at $WEFT" >&2; exit 1; }
[ -x "$RATEBENCH" ] || { echo "compare_gateway: no weft_ratebench at $RATEBENCH" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "compare_gateway: no nginx at $NGINX (apt install nginx-light)" >&2; exit 1; }
command -v curl >/dev/null || { echo "compare_gateway: needs curl" >&2; exit 1; }
if [ "$MAX_CLIENT" = wrk ]; then command -v wrk >/dev/null || { echo "compare_gateway: no wrk" >&2; exit 1; }; fi
if [ -n "$PERF_DIR" ]; then command -v perf >/dev/null || { echo "compare_gateway: no perf" >&2; exit 1; }; fi

# Room for the idle connections: the gateway holds IDLE sockets (plus its own), the holder as many.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 512)) ]; then
  echo "compare_gateway: ulimit -n is $(ulimit -n), below --idle $IDLE + 512" >&2; exit 1
fi

if [ -n "$KEEP" ]; then WORK="$KEEP"; mkdir -p "$WORK"; else WORK="$(mktemp -d)"; fi
chmod 755 "$WORK"
UP_PORT=$PORT; GW_PORT=$((PORT + 1)); PX_PORT=$((PORT + 2))
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    local i
    for ((i = 0; i < 50; ++i)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [ -z "$KEEP" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $UP_PORT $GW_PORT $PX_PORT; do
  if port_busy "$p"; then echo "compare_gateway: port $p is already in use (--port)" >&2; exit 1; fi
done

BENCH_NAME=compare_gateway
# shellcheck source=bench/gateway/bench_lib.sh
source "$REPO_ROOT/bench/gateway/bench_lib.sh"
start_upstream

# --- nginx as a plain reverse proxy to it ---
nginx_conf proxy "$IO_THREADS" "  upstream bench_upstream {
    server 127.0.0.1:$UP_PORT;
    keepalive 256;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
  }
  server {
    listen 127.0.0.1:$PX_PORT backlog=4096;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }
  }"
start_nginx proxy
wait_http "http://127.0.0.1:$PX_PORT/health"

# --- the gateway: one tenant and key, unlimited quotas, ledger on (default), access log off ---
GW_DIR="${GW_DIR:-$WORK/gateway}"
if [ -e "$GW_DIR" ] && [ -n "$(ls -A "$GW_DIR")" ]; then
  echo "compare_gateway: $GW_DIR is not empty" >&2; exit 1
fi
mkdir -p "$GW_DIR"
KEY="$("$WEFT" keys create --data "$GW_DIR" --tenant bench --deployments bench 2>"$GW_DIR/keys.log" | tail -1)"
[ -n "$KEY" ] || { echo "compare_gateway: weft keys create failed:" >&2; cat "$GW_DIR/keys.log" >&2; exit 1; }
gateway_yaml "$GW_DIR" "$GW_PORT" "$IO_THREADS"
${GW_PRELOAD:+env LD_PRELOAD=$GW_PRELOAD} "$WEFT" gateway --config "$GW_DIR/gateway.yaml" --quiet >"$GW_DIR/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_http "http://127.0.0.1:$GW_PORT/health"
AUTH="Authorization: Bearer $KEY"
# The first load report makes the replica known; then one request must pass end to end.
ok=""
for ((i = 0; i < 100; ++i)); do
  code="$(curl -s -m 2 -o "$WORK/first.json" -w '%{http_code}' -H "$AUTH" \
          -H 'Content-Type: application/json' -d "$BODY" "http://127.0.0.1:$GW_PORT/v1/completions" || true)"
  if [ "$code" = 200 ]; then ok=1; break; fi
  sleep 0.1
done
[ -n "$ok" ] || { echo "compare_gateway: the gateway answers $code:" >&2; cat "$WORK/first.json" >&2; exit 1; }
code="$(curl -s -m 2 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' \
        -H 'Content-Type: application/json' -d "$BODY" "http://127.0.0.1:$GW_PORT/v1/completions" || true)"
[ "$code" = 401 ] || { echo "compare_gateway: a wrong key got $code, not 401" >&2; exit 1; }
echo "compare_gateway: upstream :$UP_PORT, gateway :$GW_PORT (pid $GW_PID), nginx proxy :$PX_PORT; work $WORK" >&2

url_of() {  # TARGET
  case "$1" in
    direct) echo "http://127.0.0.1:$UP_PORT/v1/completions" ;;
    gateway) echo "http://127.0.0.1:$GW_PORT/v1/completions" ;;
    nginx) echo "http://127.0.0.1:$PX_PORT/v1/completions" ;;
  esac
}
json_num() { sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p" "$1"; }
PERF_PID=""
perf_start() {  # NAME
  [ -n "$PERF_DIR" ] || return 0
  mkdir -p "$PERF_DIR"
  perf record --call-graph dwarf,16384 -F 499 -p "$GW_PID" -o "$PERF_DIR/$1.perf.data" >"$PERF_DIR/$1.perf.log" 2>&1 &
  PERF_PID=$!
  sleep 0.5
}
perf_stop() {
  [ -n "$PERF_PID" ] || return 0
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  PERF_PID=""
}

# open_run TARGET RATE ROUND: one open-loop run; appends "open target rate round p50 p90 p99 p999 max rps errors lag99"
open_run() {
  local t="$1" rate="$2" round="$3" j="$WORK/open.$1.$2.$3.json"
  local profile=""
  if [ "$t" = gateway ] && [ "$round" = 1 ] && [ "$rate" = "$MAX_RATE" ]; then profile=1; perf_start "open$rate"; fi
  "$RATEBENCH" --url "$(url_of "$t")" --rate "$rate" --duration "$DURATION" --warmup "$WARMUP" \
    --connections "$OPEN_CONNS" -H "$AUTH" --body "$BODY" >"$j" 2>"$j.err" || true
  if [ -n "$profile" ]; then perf_stop; fi
  [ -s "$j" ] || { echo "compare_gateway: ratebench failed against $t:" >&2; cat "$j.err" >&2; return 0; }
  printf 'open\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$rate" "$round" \
    "$(json_num "$j" p50_ms)" "$(json_num "$j" p90_ms)" "$(json_num "$j" p99_ms)" \
    "$(json_num "$j" p999_ms)" "$(json_num "$j" max_ms)" "$(json_num "$j" achieved_rps)" \
    "$(json_num "$j" errors)" "$(json_num "$j" send_lag_p99_ms)" >>"$WORK/results"
  echo "compare_gateway: open $t @$rate round $round: $(cat "$j")" >&2
}

# cpu_ticks TARGET: CPU time (user + system, clock ticks) so far of the process(es) serving TARGET:
# the gateway; nginx's proxy or the upstream, master and workers.
cpu_ticks() {
  local pids p sum=0
  case "$1" in
    gateway) pids="$GW_PID" ;;
    nginx) pids="$PROXY_PID $(pgrep -P "$PROXY_PID" | tr '\n' ' ')" ;;
    direct) pids="$UPSTREAM_PID $(pgrep -P "$UPSTREAM_PID" | tr '\n' ' ')" ;;
  esac
  for p in $pids; do
    # Fields 14 and 15 after the ")" that ends the command name (which may hold spaces).
    sum=$((sum + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  echo "$sum"
}
TICKS_PER_S="$(getconf CLK_TCK)"
# thread_ticks: "name ticks" per gateway thread (threads of one name summed), sorted by name.
thread_ticks() {
  local t
  for t in /proc/"$GW_PID"/task/*; do
    echo "$(cat "$t/comm" 2>/dev/null) $(sed 's/.*) //' "$t/stat" 2>/dev/null | awk '{print $12 + $13}')"
  done | awk 'NF == 2 {s[$1] += $2} END {for (n in s) print n, s[n]}' | sort
}

# max_run TARGET ROUND: one closed-loop run; appends "max target conns round rps errors p50 p99
# cpu_us_per_request"
max_run() {
  local t="$1" round="$2" j="$WORK/max.$1.$2.json"
  local profile="" cpu0 cpu1
  if [ "$t" = gateway ] && [ "$round" = 1 ]; then profile=1; perf_start max; fi
  if [ "$MAX_CLIENT" = wrk ]; then
    cat >"$WORK/wrk.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
                 summary.errors.status + summary.errors.timeout
  io.write(string.format('{"achieved_rps":%.1f,"errors":%d,"p50_ms":%.4f,"p99_ms":%.4f}\n',
    summary.requests / (summary.duration / 1e6), errors, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000))
end
EOF
    wrk -t1 -c "$MAX_CONNS" -d "${WARMUP}s" -s "$WORK/wrk.lua" "$(url_of "$t")" >/dev/null 2>&1 || true
    cpu0="$(cpu_ticks "$t")"
    wrk -t1 -c "$MAX_CONNS" -d "${DURATION}s" -s "$WORK/wrk.lua" "$(url_of "$t")" 2>"$j.err" |
      grep '^{' >"$j" || true
    cpu1="$(cpu_ticks "$t")"
  else
    # The warm-up's CPU counts too: the CPU time is divided by every request sent, warm-up included.
    cpu0="$(cpu_ticks "$t")"
    [ "$t" = gateway ] && thread_ticks >"$WORK/threads0"
    "$RATEBENCH" --closed --url "$(url_of "$t")" --duration "$DURATION" --warmup "$WARMUP" \
      --connections "$MAX_CONNS" -H "$AUTH" --body "$BODY" >"$j" 2>"$j.err" || true
    cpu1="$(cpu_ticks "$t")"
    [ "$t" = gateway ] && thread_ticks >"$WORK/threads1"
  fi
  if [ -n "$profile" ]; then perf_stop; fi
  [ -s "$j" ] || { echo "compare_gateway: max-throughput client failed against $t:" >&2; cat "$j.err" >&2; return 0; }
  local secs="$DURATION" rps us
  [ "$MAX_CLIENT" = wrk ] || secs=$((DURATION + WARMUP))
  rps="$(json_num "$j" achieved_rps)"
  us="$(awk -v c=$((cpu1 - cpu0)) -v hz="$TICKS_PER_S" -v r="$rps" -v s="$secs" \
        'BEGIN {if (r + 0 > 0) printf "%.1f", c / hz / (r * s) * 1e6}')"
  if [ "$t" = gateway ] && [ -s "$WORK/threads1" ]; then
    # Per thread name: CPU us per request in this run (appended, one line per run).
    join "$WORK/threads0" "$WORK/threads1" | awk -v hz="$TICKS_PER_S" -v r="$rps" -v s="$secs" \
      '$3 > $2 && r + 0 > 0 {printf "%s%s %.1f", sep, $1, ($3 - $2) / hz / (r * s) * 1e6; sep = ", "} END {print ""}' \
      >>"$WORK/threads"
  fi
  printf 'max\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$MAX_CONNS" "$round" \
    "$rps" "$(json_num "$j" errors)" "$(json_num "$j" p50_ms)" \
    "$(json_num "$j" p99_ms)" "$us" >>"$WORK/results"
  echo "compare_gateway: max $t c=$MAX_CONNS round $round: $(cat "$j")" >&2
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
MAX_RATE="$(echo "$RATES" | tr ' ' '\n' | sort -n | tail -1)"
: >"$WORK/results"
start_all=$(date +%s)
# Warm-up of every path (connection pools, allocator, key cache, page cache of the WAL).
for t in direct gateway nginx; do
  "$RATEBENCH" --closed --url "$(url_of "$t")" --duration 2 --warmup 0 --connections 16 \
    -H "$AUTH" --body "$BODY" >/dev/null 2>&1 || true
done

for ((round = 1; round <= ROUNDS; ++round)); do
  for rate in $RATES; do
    if [ $((round % 2)) -eq 1 ]; then open_run direct "$rate" "$round"; open_run gateway "$rate" "$round"
    else open_run gateway "$rate" "$round"; open_run direct "$rate" "$round"; fi
  done
  if [ $((round % 2)) -eq 1 ]; then max_run gateway "$round"; max_run nginx "$round"
  else max_run nginx "$round"; max_run gateway "$round"; fi
done
max_run direct 0

# --- (c) idle connections ---
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
sleep 1
RSS_BEFORE="$(rss_kib "$GW_PID")"
FDS_BEFORE="$(fds "$GW_PID")"
"$RATEBENCH" --hold "$IDLE" --url "http://127.0.0.1:$GW_PORT/" --duration 300 \
  >"$WORK/hold.json" 2>"$WORK/hold.err" &
HOLD_PID=$!
PIDS+=("$HOLD_PID")
for ((i = 0; i < 600; ++i)); do
  [ -s "$WORK/hold.json" ] && break
  kill -0 "$HOLD_PID" 2>/dev/null || break
  sleep 0.1
done
HELD="$(json_num "$WORK/hold.json" held | head -1)"
# Until the gateway has accepted them all (its fd count), then let it settle.
for ((i = 0; i < 300; ++i)); do
  [ "$(fds "$GW_PID")" -ge $((FDS_BEFORE + ${HELD:-0})) ] && break
  sleep 0.1
done
sleep 2
FDS_HOLDING="$(fds "$GW_PID")"
RSS_HOLDING="$(rss_kib "$GW_PID")"
HWM_HOLDING="$(awk '/^VmHWM:/ {print $2}' "/proc/$GW_PID/status")"
# Other clients still get served meanwhile.
code="$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "$AUTH" -H 'Content-Type: application/json' \
        -d "$BODY" "http://127.0.0.1:$GW_PORT/v1/completions" || true)"
kill -TERM "$HOLD_PID" 2>/dev/null || true
wait "$HOLD_PID" 2>/dev/null || true
DROPPED="$(json_num "$WORK/hold.json" dropped | tail -1)"
echo "compare_gateway: idle: held ${HELD:-?} (dropped by the gateway: ${DROPPED:-?}), gateway fds $FDS_BEFORE -> $FDS_HOLDING, VmRSS $RSS_BEFORE -> $RSS_HOLDING KiB (VmHWM $HWM_HOLDING), a request meanwhile: $code" >&2
GW_HWM="$(awk '/^VmHWM:/ {print $2}' "/proc/$GW_PID/status")"

# --- the table ---
med() {  # KIND TARGET KEY FIELD: median over rounds
  awk -F'\t' -v k="$1" -v t="$2" -v key="$3" -v f="$4" \
    '$1 == k && $2 == t && $3 == key && $f != "" {print $f}' "$WORK/results" | sort -g |
    awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
sum_errors() {  # KIND TARGET KEY FIELD
  awk -F'\t' -v k="$1" -v t="$2" -v key="$3" -v f="$4" '$1 == k && $2 == t && $3 == key {s += $f} END {print s + 0}' "$WORK/results"
}
f3() { awk -v x="$1" 'BEGIN {if (x == "") printf "-"; else printf "%.3f", x}'; }
f0() { awk -v x="$1" 'BEGIN {if (x == "") printf "-"; else printf "%.0f", x}'; }
sub3() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "") printf "-"; else printf "%+.3f", a - b}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "" && b != "" && b + 0 > 0) printf "%.2f", a / b; else printf "-"}'; }
met() { awk -v c="$1" 'BEGIN {if (c == "") print "-"; else if (c + 0) print "**yes**"; else print "no"}'; }
mb() { awk -v k="$1" 'BEGIN {if (k == "") printf "-"; else printf "%.1f", k * 1024 / 1e6}'; }

if [ -z "$COMMIT" ]; then
  COMMIT="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)"
  if [ -n "$(git -C "$REPO_ROOT" status --porcelain -- gateway base api cli 2>/dev/null | head -1)" ]; then
    COMMIT="$COMMIT (gateway/base/api/cli modified)"
  fi
fi
echo
echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), load average before" \
     "$LOAD_BEFORE; weft $COMMIT; nginx" \
     "$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')." \
     "Gateway: io_threads $IO_THREADS, key auth, quotas unlimited, ledger on (WAL fsync on $(df --output=fstype "$GW_DIR" | tail -1)), --quiet;" \
     "nginx proxy: $IO_THREADS workers, upstream keepalive. Open loop: $OPEN_CONNS connections, ${DURATION}s after ${WARMUP}s" \
     "warm-up; closed loop ($MAX_CLIENT): $MAX_CONNS connections; medians of $ROUNDS rounds. Run took $(( $(date +%s) - start_all ))s."
echo
echo "| measure | gateway | baseline | gateway - baseline / ratio | goal | met |"
echo "| --- | ---: | ---: | ---: | --- | --- |"
for rate in $RATES; do
  for p in "p50 5" "p99 7"; do
    set -- $p
    g="$(med open gateway "$rate" "$(( $2 ))")"; d="$(med open direct "$rate" "$(( $2 ))")"
    added="$(awk -v a="$g" -v b="$d" 'BEGIN {if (a == "" || b == "") print ""; else print a - b}')"
    goal="-"; ok="-"
    if [ "$1" = p99 ]; then goal="< 1 ms"; ok="$(met "$(awk -v x="$added" 'BEGIN {if (x == "") print ""; else print (x < 1) ? 1 : 0}')")"; fi
    echo "| $1 latency ms at $rate req/s (baseline: direct) | $(f3 "$g") | $(f3 "$d") | $(sub3 "$g" "$d") | $goal | $ok |"
  done
done
for rate in $RATES; do
  echo "| achieved req/s at $rate / errors (gateway; direct) | $(f0 "$(med open gateway "$rate" 10)") / $(sum_errors open gateway "$rate" 11) |" \
       "$(f0 "$(med open direct "$rate" 10)") / $(sum_errors open direct "$rate" 11) | | | |"
done
g="$(med max gateway "$MAX_CONNS" 5)"; n="$(med max nginx "$MAX_CONNS" 5)"
okr="$(awk -v a="$g" -v b="$n" 'BEGIN {if (a == "" || b == "" || b + 0 == 0) print ""; else print (a / b >= 0.8) ? 1 : 0}')"
echo "| max req/s, $MAX_CONNS connections (baseline: nginx proxy) | $(f0 "$g") | $(f0 "$n") | $(ratio "$g" "$n")x | >= 0.8x | $(met "$okr") |"
echo "| max req/s straight to the upstream (for scale) | | $(f0 "$(med max direct "$MAX_CONNS" 5)") | | | |"
gc="$(med max gateway "$MAX_CONNS" 9)"; nc="$(med max nginx "$MAX_CONNS" 9)"
echo "| CPU us per request in the max runs (baseline: nginx proxy; upstream alone: $(med max direct "$MAX_CONNS" 9)) | $gc | $nc | $(ratio "$gc" "$nc")x | | |"
echo "| errors in max runs (gateway; nginx) | $(sum_errors max gateway "$MAX_CONNS" 6) | $(sum_errors max nginx "$MAX_CONNS" 6) | | | |"
okm="$(awk -v k="$RSS_HOLDING" 'BEGIN {if (k == "") print ""; else print (k * 1024 / 1e6 < 200) ? 1 : 0}')"
per="$(awk -v a="$RSS_HOLDING" -v b="$RSS_BEFORE" -v n="${HELD:-0}" 'BEGIN {if (n > 0 && a != "" && b != "") printf "%.1f KiB/conn", (a - b) / n; else printf "-"}')"
echo "| gateway VmRSS MB holding ${HELD:-?} idle connections (baseline: before them) | $(mb "$RSS_HOLDING") | $(mb "$RSS_BEFORE") | $per | < 200 MB | $(met "$okm") |"
echo
if [ -s "$WORK/threads" ]; then
  echo "Gateway CPU us per request by thread in its max runs ($MAX_CLIENT client only), one line per run:"
  sed 's/^/  /' "$WORK/threads"
  echo
fi
echo "Idle: the gateway dropped ${DROPPED:-?} of them while held; a request during the hold got $code; gateway peak RSS (VmHWM) over the whole run $(mb "$GW_HWM") MB."
