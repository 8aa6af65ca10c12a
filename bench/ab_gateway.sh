#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A/B of two gateway builds under the same load at the same time: both gateways run in front of
# one nginx upstream (the one bench/compare_gateway.sh uses), each with its own key and ledger, and
# open-loop runs at each RATE alternate between them, A B A B ..., so that both see the same host
# noise. On a shared VM the p99 of one run swings by 2-5x from minute to minute; a change to the
# request path is only visible as a difference between interleaved runs.
#
# Usage: bench/ab_gateway.sh A_BUILD B_BUILD [--rates "1000 5000"] [-r ROUNDS] [-d SECONDS]
#          [-c CONNS] [--closed] [--io-threads T] [--b-env "VAR=VALUE ..."] [--b-yaml "key: value"]
#          [--port BASE] [--keep DIR]
# A_BUILD, B_BUILD: build folders with cli/weft (the load generator comes from A_BUILD's
# bench/gateway/weft_ratebench). Defaults: rates "1000", 6 rounds of 10 s (after a 1 s warm-up), 32
# connections, io_threads 2, ports BASE (upstream), BASE+1 (A), BASE+2 (B), BASE 18280.
# --b-env: environment for gateway B only (the same binary twice, to try a setting); --b-yaml:
# more top-level lines for gateway B's config (e.g. "io_cpu_affinity: true").
# Prints one line per run and, per rate, the medians of p50 / p99 / p99.9 over the rounds.
# --closed: closed-loop runs instead (max throughput, CONNS connections, default 64), each line
# with req/s and the gateway's CPU us per request (/proc, user + system), and the means.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 2 ] || { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
A_BUILD="$1"; B_BUILD="$2"; shift 2
RATES="1000"; ROUNDS=6; DURATION=10; CONNS=""; IO_THREADS=2; B_ENV=""; B_YAML=""; PORT=18280
KEEP=""; CLOSED=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) RATES="$2"; shift 2 ;;
    -r|--rounds) ROUNDS="$2"; shift 2 ;;
    -d|--duration) DURATION="$2"; shift 2 ;;
    -c|--conns) CONNS="$2"; shift 2 ;;
    --closed) CLOSED=1; shift ;;
    --io-threads) IO_THREADS="$2"; shift 2 ;;
    --b-env) B_ENV="$2"; shift 2 ;;
    --b-yaml) B_YAML="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --keep) KEEP="$2"; shift 2 ;;
    *) echo "ab_gateway: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$CONNS" ]; then CONNS=$([ -n "$CLOSED" ] && echo 64 || echo 32); fi
RATEBENCH="$A_BUILD/bench/gateway/weft_ratebench"
NGINX="${NGINX:-/usr/sbin/nginx}"
for b in "$A_BUILD/cli/weft" "$B_BUILD/cli/weft" "$RATEBENCH" "$NGINX"; do
  [ -x "$b" ] || { echo "ab_gateway: no $b" >&2; exit 1; }
done
# shellcheck source=bench/gateway/bench_lib.sh
source "$REPO_ROOT/bench/gateway/bench_lib.sh"
bench_begin ab_gateway

start_gateway A "$A_BUILD" $((PORT + 1)) ""
GW_YAML_EXTRA="$B_YAML" start_gateway B "$B_BUILD" $((PORT + 2)) "$B_ENV"
echo "ab_gateway: A $A_BUILD :$((PORT + 1)), B $B_BUILD${B_ENV:+ ($B_ENV)}${B_YAML:+ ($B_YAML)} :$((PORT + 2)); work $WORK" >&2

run() {  # NAME RATE SECONDS WARMUP -> "p50 p99 p999"
  "$RATEBENCH" --url "http://127.0.0.1:${PORTS[$1]}/v1/completions" --rate "$2" --duration "$3" \
    --warmup "$4" --connections "$CONNS" -H "Authorization: Bearer ${KEYS[$1]}" --body "$BODY" \
    2>/dev/null | sed -E 's/.*"p50_ms":([0-9.]+).*"p99_ms":([0-9.]+).*"p999_ms":([0-9.]+).*/\1 \2 \3/'
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
if [ -n "$CLOSED" ]; then
  cpu_ticks() { awk '{print $14 + $15}' "/proc/${GW_PIDS[$1]}/stat"; }
  closed() {  # NAME SECONDS -> "req/s cpu_us_per_request"
    local c0 c1 out
    c0="$(cpu_ticks "$1")"
    out="$("$RATEBENCH" --closed --url "http://127.0.0.1:${PORTS[$1]}/v1/completions" \
      --duration "$2" --warmup 0 --connections "$CONNS" -H "Authorization: Bearer ${KEYS[$1]}" \
      --body "$BODY" 2>/dev/null)"
    c1="$(cpu_ticks "$1")"
    echo "$out" | sed -E 's/.*"ok":([0-9]+).*"achieved_rps":([0-9.]+).*/\1 \2/' |
      awk -v c0="$c0" -v c1="$c1" -v hz="$(getconf CLK_TCK)" \
        '{printf "%.0f %.1f\n", $2, (c1 - c0) * 1e6 / hz / $1}'
  }
  closed A 2 >/dev/null; closed B 2 >/dev/null
  : >"$WORK/runs.closed"
  for ((r = 1; r <= ROUNDS; ++r)); do
    for g in A B; do
      line="$(closed "$g" "$DURATION")"
      echo "$g $r $line" >>"$WORK/runs.closed"
      echo "ab_gateway: $g closed loop round $r: req/s, CPU us per request = $line" >&2
    done
  done
  for g in A B; do
    awk -v g="$g" -v n="$ROUNDS" '$1 == g {rps += $3; cpu += $4; all = all sprintf("%s/%s ", $3, $4)}
      END {printf "%s closed loop, mean of %d rounds: %.0f req/s, %.1f CPU us per request (by round: %s)\n", g, n, rps / n, cpu / n, all}' \
      "$WORK/runs.closed"
  done
  exit 0
fi
for rate in $RATES; do
  run A "$rate" 2 0 >/dev/null; run B "$rate" 2 0 >/dev/null
  : >"$WORK/runs.$rate"
  for ((r = 1; r <= ROUNDS; ++r)); do
    for g in A B; do
      line="$(run "$g" "$rate" "$DURATION" 1)"
      echo "$g $rate $r $line" >>"$WORK/runs.$rate"
      echo "ab_gateway: $g @$rate round $r: p50 p99 p99.9 ms = $line" >&2
    done
  done
  for g in A B; do
    printf '%s @%s req/s, median of %s rounds: p50 %s ms, p99 %s ms, p99.9 %s ms (p99 by round: %s)\n' \
      "$g" "$rate" "$ROUNDS" \
      "$(awk -v g="$g" '$1 == g {print $4}' "$WORK/runs.$rate" | median)" \
      "$(awk -v g="$g" '$1 == g {print $5}' "$WORK/runs.$rate" | median)" \
      "$(awk -v g="$g" '$1 == g {print $6}' "$WORK/runs.$rate" | median)" \
      "$(awk -v g="$g" '$1 == g {printf "%s ", $5}' "$WORK/runs.$rate" | sed 's/ $//')"
  done
done
