#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Side-by-side prompt-processing (ppP) and generation (tgN) speed and peak memory of llama.cpp's
# llama-bench and `weft bench` on the same GGUF files, same threads, same machine. The two engines
# alternate order every round so a noisy shared machine slows both alike; each cell is the median
# of the rounds, peak RSS the largest seen (pp and tg run in one process, so RSS is per model).
#
# Usage: bench/compare_llamacpp.sh [-t THREADS] [-p P] [-n N] [-r ROUNDS] [--weft BIN]
#                                  [--llama-bench BIN] [MODEL.gguf ...]
# Defaults: models llama-1b-q8_0.gguf llama-1b-q4_0.gguf llama-110m-q8_0.gguf under
# ${WEFT_BENCH_DIR:-~/.cache/weft-bench}/models (missing ones are skipped), threads = nproc,
# -p 64 -n 32, 3 rounds, weft = build/release/cli/weft, llama-bench from bench/llamacpp/build.sh.
# Without a weft binary it prints the llama.cpp columns only.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${WEFT_BENCH_DIR:-$HOME/.cache/weft-bench}"
THREADS="$(nproc)"
P=64
N=32
ROUNDS=3
WEFT="$REPO_ROOT/build/release/cli/weft"
LLAMA_BENCH="$BENCH_DIR/llama.cpp-build/bin/llama-bench"
MODELS=()

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    -t|--threads) THREADS="$2"; shift 2 ;;
    -p) P="$2"; shift 2 ;;
    -n) N="$2"; shift 2 ;;
    -r|--rounds) ROUNDS="$2"; shift 2 ;;
    --weft) WEFT="$2"; shift 2 ;;
    --llama-bench) LLAMA_BENCH="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) echo "unknown option $1" >&2; usage 2 ;;
    *) MODELS+=("$1"); shift ;;
  esac
done
if [ ${#MODELS[@]} -eq 0 ]; then
  for m in llama-1b-q8_0.gguf llama-1b-q4_0.gguf llama-110m-q8_0.gguf; do
    if [ -f "$BENCH_DIR/models/$m" ]; then MODELS+=("$BENCH_DIR/models/$m")
    else echo "compare: skipping missing $BENCH_DIR/models/$m" >&2; fi
  done
fi
[ ${#MODELS[@]} -gt 0 ] || { echo "compare: no model files" >&2; exit 1; }
[ -x "$LLAMA_BENCH" ] || { echo "compare: no llama-bench at $LLAMA_BENCH (run bench/llamacpp/build.sh)" >&2; exit 1; }
TIME_BIN=/usr/bin/time
"$TIME_BIN" -v true >/dev/null 2>&1 || { echo "compare: needs GNU time at $TIME_BIN (scripts/setup)" >&2; exit 1; }
HAVE_WEFT=1
if [ ! -x "$WEFT" ]; then
  echo "compare: no weft binary at $WEFT; printing llama.cpp only" >&2
  HAVE_WEFT=0
fi

TESTS=()
[ "$P" -gt 0 ] && TESTS+=("pp$P")
[ "$N" -gt 0 ] && TESTS+=("tg$N")

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Pulls "test<TAB>t/s" out of a llama-bench-style markdown table: the cell that reads ppN/tgN and
# the first number of the last cell ("123.45 ± 1.20").
parse_md() {
  awk -F'|' '/^\|/ {
    test = ""; for (i = 2; i < NF; ++i) { c = $i; gsub(/ /, "", c); if (c ~ /^(pp|tg)[0-9]+$/) test = c }
    if (test == "") next
    ts = $(NF - 1); sub(/^ +/, "", ts); split(ts, parts, " "); print test "\t" parts[1]
  }' "$1"
}
peak_rss_kib() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }

# run ENGINE MODEL_INDEX ROUND: one timed run; appends "engine model test ts" to $WORK/results and
# "engine model rss_kib" to $WORK/rss.
run() {
  local engine="$1" mi="$2" round="$3" model="${MODELS[$2]}"
  local out="$WORK/$engine.$mi.$round.out" tim="$WORK/$engine.$mi.$round.time"
  local cmd
  if [ "$engine" = llama ]; then
    cmd=("$LLAMA_BENCH" -m "$model" -p "$P" -n "$N" -t "$THREADS" -r 1 -o md)
  else
    cmd=("$WEFT" bench "$model" -p "$P" -n "$N" --threads "$THREADS" -r 1)
  fi
  echo "compare: round $round: ${cmd[*]}" >&2
  if ! "$TIME_BIN" -v -o "$tim" "${cmd[@]}" >"$out" 2>"$out.err"; then
    echo "compare: $engine failed on $model (see below)" >&2
    tail -5 "$out.err" >&2
    return 0
  fi
  parse_md "$out" | while IFS=$'\t' read -r test ts; do
    printf '%s\t%s\t%s\t%s\n' "$engine" "$mi" "$test" "$ts" >>"$WORK/results"
  done
  printf '%s\t%s\t%s\n' "$engine" "$mi" "$(peak_rss_kib "$tim")" >>"$WORK/rss"
}

: >"$WORK/results"
: >"$WORK/rss"
for ((round = 1; round <= ROUNDS; ++round)); do
  for mi in "${!MODELS[@]}"; do
    if [ "$HAVE_WEFT" = 1 ] && [ $(((round + mi) % 2)) -eq 0 ]; then
      run weft "$mi" "$round"; run llama "$mi" "$round"
    else
      run llama "$mi" "$round"; [ "$HAVE_WEFT" = 1 ] && run weft "$mi" "$round"
    fi
  done
done

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ts_of() { awk -F'\t' -v e="$1" -v m="$2" -v t="$3" '$1 == e && $2 == m && $3 == t {print $4}' "$WORK/results" | median; }
rss_of() {
  awk -F'\t' -v e="$1" -v m="$2" '$1 == e && $2 == m && $3 != "" {if ($3 > x) x = $3} END {if (x) printf "%.1f", x / 1024}' "$WORK/rss"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "" && b != "" && b + 0 > 0) printf "%.2f", a / b; else printf "-"}'; }
fmt() { awk -v x="$1" 'BEGIN {if (x == "") printf "-"; else printf "%.2f", x}'; }

COMMIT="$(sed -n 's/^commit=//p' "$BENCH_DIR/llama.cpp.built" 2>/dev/null | cut -c1-10)"
echo
echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); threads $THREADS;" \
     "$ROUNDS rounds, alternating order; median t/s, max peak RSS. llama.cpp ${COMMIT:-?}."
echo
echo "| model | test | llama.cpp t/s | weft t/s | weft/llama.cpp | llama.cpp peak RSS MiB | weft peak RSS MiB | weft/llama.cpp RSS |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for mi in "${!MODELS[@]}"; do
  name="$(basename "${MODELS[$mi]}")"
  lr="$(rss_of llama "$mi")"; wr="$(rss_of weft "$mi")"
  for test in "${TESTS[@]}"; do
    l="$(ts_of llama "$mi" "$test")"; w="$(ts_of weft "$mi" "$test")"
    echo "| $name | $test | $(fmt "$l") | $(fmt "$w") | $(ratio "$w" "$l") | ${lr:--} | ${wr:--} | $(ratio "$wr" "$lr") |"
  done
done
