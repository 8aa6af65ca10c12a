#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Instructions per request of one or more gateway builds, counted by valgrind's callgrind: a
# number that does not move with the host's noise, so a change to the request path shows even
# where timed runs on this shared VM cannot tell two builds apart (bench/ab_gateway.sh is the timed
# counterpart). Each build runs under callgrind in front of the nginx upstream of
# bench/compare_gateway.sh (ledger on, access log off), with instrumentation off while it starts
# and warms up; then a closed loop of SECONDS with CONNS connections is counted.
#
# Usage: bench/gateway/ir_gateway.sh BUILD [BUILD...] [-d SECONDS] [-c CONNS] [--port BASE]
#          [--keep DIR]
# BUILD: a build folder with cli/weft (the load generator is the first one's
# bench/gateway/weft_ratebench). Defaults: -d 15, -c 16, ports BASE (upstream) and BASE+1.. (one
# per build), BASE 18380. Prints, per build, Ir (instructions) per answered request: in all, on
# the I/O threads (asio's scheduler::run), in the shipper (Shipper::Run) and the WAL writer
# (Wal::WriterLoop). Health checks and load polls are counted too (a few per second: noise well
# under 1%). Needs valgrind. Takes about a minute per build.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILDS=(); DURATION=15; CONNS=16; PORT=18380; KEEP=""; IO_THREADS=2
while [ $# -gt 0 ]; do
  case "$1" in
    -d|--duration) DURATION="$2"; shift 2 ;;
    -c|--conns) CONNS="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --keep) KEEP="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "ir_gateway: unknown option $1" >&2; exit 2 ;;
    *) BUILDS+=("$1"); shift ;;
  esac
done
[ ${#BUILDS[@]} -ge 1 ] || { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
NGINX="${NGINX:-/usr/sbin/nginx}"
RATEBENCH="${BUILDS[0]}/bench/gateway/weft_ratebench"
for b in valgrind callgrind_control callgrind_annotate; do
  command -v "$b" >/dev/null || { echo "ir_gateway: needs $b (apt install valgrind)" >&2; exit 1; }
done
for b in "$RATEBENCH" "$NGINX"; do [ -x "$b" ] || { echo "ir_gateway: no $b" >&2; exit 1; }; done
for b in "${BUILDS[@]}"; do [ -x "$b/cli/weft" ] || { echo "ir_gateway: no $b/cli/weft" >&2; exit 1; }; done

# shellcheck source=bench/gateway/bench_lib.sh
source "$REPO_ROOT/bench/gateway/bench_lib.sh"
bench_begin ir_gateway

closed_loop() {  # NAME SECONDS -> the ratebench JSON line
  "$RATEBENCH" --closed --url "http://127.0.0.1:${PORTS[$1]}/v1/completions" --duration "$2" \
    --warmup 0 --connections "$CONNS" -H "Authorization: Bearer ${KEYS[$1]}" --body "$BODY" 2>/dev/null
}
# inclusive OUT FUNCTION: the inclusive Ir of FUNCTION (a regex on its name) in callgrind file OUT.
inclusive() {
  callgrind_annotate --inclusive=yes "$1" 2>/dev/null | grep -E "$2" | head -1 |
    awk '{gsub(",", "", $1); print $1 + 0}'
}

printf '| build | requests | Ir per request | I/O threads | shipper | WAL writer |\n| --- | ---: | ---: | ---: | ---: | ---: |\n'
n=0
for build in "${BUILDS[@]}"; do
  n=$((n + 1))
  name="g$n"
  out="$WORK/$name.callgrind"
  start_gateway "$name" "$build" $((PORT + n)) "" \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out"
  closed_loop "$name" 3 >/dev/null  # warm-up: pools, allocator, key cache
  callgrind_control -i on "${GW_PIDS[$name]}" >/dev/null 2>&1
  json="$(closed_loop "$name" "$DURATION")"
  callgrind_control -d "$name-counted" "${GW_PIDS[$name]}" >/dev/null 2>&1
  callgrind_control -i off "${GW_PIDS[$name]}" >/dev/null 2>&1
  kill -TERM "${GW_PIDS[$name]}" 2>/dev/null || true
  wait "${GW_PIDS[$name]}" 2>/dev/null || true
  ok="$(echo "$json" | sed -n 's/.*"ok":\([0-9]*\).*/\1/p')"
  dump="$(grep -l "^desc: Trigger: dump $name-counted" "$out"* | head -1)"
  [ -n "$ok" ] && [ "$ok" -gt 0 ] && [ -n "$dump" ] || {
    echo "ir_gateway: no count for $build (answered: ${ok:-none})" >&2; exit 1; }
  total="$(inclusive "$dump" 'PROGRAM TOTALS')"
  io="$(inclusive "$dump" 'scheduler::run\(')"
  ship="$(inclusive "$dump" 'weft::gateway::Shipper::Run\(\)')"
  wal="$(inclusive "$dump" 'weft::gateway::Wal::WriterLoop\(\)')"
  awk -v b="$build" -v ok="$ok" -v t="$total" -v io="$io" -v s="$ship" -v w="$wal" 'BEGIN {
    printf "| %s | %d | %.1fk | %.1fk | %.1fk | %.1fk |\n", b, ok, t / ok / 1e3, io / ok / 1e3,
      s / ok / 1e3, w / ok / 1e3 }'
done
