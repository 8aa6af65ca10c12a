#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Serving throughput of `weft engine` against llama.cpp's llama-server on the same GGUF files, same
# threads, same load generator (bench/loadgen, target weft_loadgen): aggregate completion tokens/s
# and TTFT p50/p99 at several numbers of concurrent streaming clients, plus each server's peak RSS.
# For every (model, clients) cell both servers are started fresh with room for exactly `clients`
# sequences of CTX tokens (llama-server: -np clients -c clients*CTX --cont-batching; weft: --ctx CTX
# --kv-blocks clients*CTX/16 --max-running clients), warmed up, loaded for DURATION seconds, and
# stopped; the order of the two servers alternates from cell to cell. Prompts are P random token ids
# (a new prompt per request, so no prefix cache helps), max_tokens N, temperature 0, ignore_eos.
#
# Usage: bench/compare_serving.sh [-t THREADS] [-c "1 4 16 64"] [-p P] [-n N] [-d DURATION]
#          [--ctx CTX] [--port PORT] [--weft BIN] [--llama-server BIN] [--loadgen BIN]
#          [--weft-args "..."] [--llama-args "..."] [--keep DIR] [MODEL.gguf ...]
# Defaults: models llama-110m-q8_0.gguf llama-1b-q8_0.gguf under ${WEFT_BENCH_DIR:-~/.cache/weft-
# bench}/models, threads = nproc, clients "1 4 16 64", -p 128 -n 64, -d 30 s, CTX = P+N rounded up
# to 256, ports PORT and PORT+1 (default 18080), weft = build/release/cli/weft, loadgen =
# build/release/bench/loadgen/weft_loadgen, llama-server from bench/llamacpp/build.sh.
# --keep DIR keeps the server logs and the loadgen JSON there (else a temporary dir is removed).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${WEFT_BENCH_DIR:-$HOME/.cache/weft-bench}"
THREADS="$(nproc)"
CLIENTS="1 4 16 64"
P=128
N=64
DURATION=30
CTX=""
PORT=18080
WEFT="$REPO_ROOT/build/release/cli/weft"
LLAMA_SERVER="$BENCH_DIR/llama.cpp-build/bin/llama-server"
LOADGEN="$REPO_ROOT/build/release/bench/loadgen/weft_loadgen"
WEFT_ARGS=""
LLAMA_ARGS=""
KEEP=""
MODELS=()

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    -t|--threads) THREADS="$2"; shift 2 ;;
    -c|--clients) CLIENTS="$2"; shift 2 ;;
    -p) P="$2"; shift 2 ;;
    -n) N="$2"; shift 2 ;;
    -d|--duration) DURATION="$2"; shift 2 ;;
    --ctx) CTX="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --weft) WEFT="$2"; shift 2 ;;
    --llama-server) LLAMA_SERVER="$2"; shift 2 ;;
    --loadgen) LOADGEN="$2"; shift 2 ;;
    --weft-args) WEFT_ARGS="$2"; shift 2 ;;
    --llama-args) LLAMA_ARGS="$2"; shift 2 ;;
    --keep) KEEP="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) echo "unknown option $1" >&2; usage 2 ;;
    *) MODELS+=("$1"); shift ;;
  esac
done
if [ ${#MODELS[@]} -eq 0 ]; then
  for m in llama-110m-q8_0.gguf llama-1b-q8_0.gguf; do
    if [ -f "$BENCH_DIR/models/$m" ]; then MODELS+=("$BENCH_DIR/models/$m")
    else echo "compare_serving: skipping missing $BENCH_DIR/models/$m" >&2; fi
  done
fi
[ ${#MODELS[@]} -gt 0 ] || { echo "compare_serving: no model files" >&2; exit 1; }
[ -x "$WEFT" ] || { echo "compare_serving: no weft at $WEFT (build the release preset)" >&2; exit 1; }
[ -x "$LLAMA_SERVER" ] ||
  { echo "compare_serving: no llama-server at $LLAMA_SERVER (run bench/llamacpp/build.sh)" >&2; exit 1; }
[ -x "$LOADGEN" ] || { echo "compare_serving: no weft_loadgen at $LOADGEN" >&2; exit 1; }
command -v curl >/dev/null || { echo "compare_serving: needs curl" >&2; exit 1; }
# llama.cpp pads a context to a multiple of 256 per sequence; give weft the same.
if [ -z "$CTX" ]; then CTX=$(( (P + N + 255) / 256 * 256 )); fi
[ $((CTX % 16)) -eq 0 ] || { echo "compare_serving: --ctx must be a multiple of 16" >&2; exit 1; }

if [ -n "$KEEP" ]; then WORK="$KEEP"; mkdir -p "$WORK"; else WORK="$(mktemp -d)"; fi
SERVER_PID=""
cleanup_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap 'cleanup_server; if [ -z "$KEEP" ]; then rm -rf "$WORK"; fi' EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server ENGINE MODEL CLIENTS PORT LOG: starts one server in the background (SERVER_PID) and
# waits until GET /health answers 200; returns 1 if it dies or takes over 300 s.
start_server() {
  local engine="$1" model="$2" c="$3" port="$4" log="$5"
  local cmd
  if port_busy "$port"; then echo "compare_serving: port $port is already in use" >&2; return 1; fi
  if [ "$engine" = weft ]; then
    # shellcheck disable=SC2206
    cmd=("$WEFT" engine --model "$model" --port "$port" --threads "$THREADS" --ctx "$CTX"
         --kv-blocks $((c * CTX / 16)) --max-running "$c" $WEFT_ARGS)
  else
    # shellcheck disable=SC2206
    cmd=("$LLAMA_SERVER" -m "$model" --port "$port" --host 127.0.0.1 -t "$THREADS" -tb "$THREADS"
         -c $((c * CTX)) -np "$c" --cont-batching --no-webui $LLAMA_ARGS)
  fi
  echo "compare_serving: ${cmd[*]}" >&2
  "${cmd[@]}" >"$log" 2>&1 &
  SERVER_PID=$!
  local i
  for ((i = 0; i < 600; ++i)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "compare_serving: $engine exited during start-up; last log lines:" >&2
      tail -5 "$log" >&2
      SERVER_PID=""
      return 1
    fi
    if curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/health"; then return 0; fi
    sleep 0.5
  done
  echo "compare_serving: $engine not healthy after 300 s" >&2
  return 1
}

# stop_server: sets PEAK_RSS_KIB (VmHWM), then SIGTERM, up to 30 s, then SIGKILL.
stop_server() {
  PEAK_RSS_KIB="$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || true)"
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 60; ++i)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

json_num() { sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p" "$1"; }

# run_cell ENGINE MODEL_INDEX CLIENTS: appends "engine mi clients tok_s ttft50 ttft99 errors rss_kib"
# to $WORK/results.
run_cell() {
  local engine="$1" mi="$2" c="$3" model="${MODELS[$2]}"
  local port=$PORT; [ "$engine" = llama ] && port=$((PORT + 1))
  local tag="$engine.$mi.$c"
  if ! start_server "$engine" "$model" "$c" "$port" "$WORK/$tag.server.log"; then
    cleanup_server; SERVER_PID=""
    printf '%s\t%s\t%s\t\t\t\tstart failed\t\n' "$engine" "$mi" "$c" >>"$WORK/results"
    return 0
  fi
  local rc=0
  "$LOADGEN" --port "$port" --clients "$c" --duration "$DURATION" --prompt-tokens "$P" \
    --max-tokens "$N" --seed "$((mi * 1000 + c))" \
    --label "$engine" --json >"$WORK/$tag.json" 2>"$WORK/$tag.loadgen.err" || rc=$?
  stop_server
  local rss="$PEAK_RSS_KIB"
  if [ ! -s "$WORK/$tag.json" ]; then
    echo "compare_serving: loadgen failed against $engine (rc $rc):" >&2
    tail -5 "$WORK/$tag.loadgen.err" >&2
    printf '%s\t%s\t%s\t\t\t\tloadgen failed\t%s\n' "$engine" "$mi" "$c" "$rss" >>"$WORK/results"
    return 0
  fi
  local j="$WORK/$tag.json"
  [ "$rc" = 0 ] || { echo "compare_serving: $engine errors:" >&2; tail -3 "$WORK/$tag.loadgen.err" >&2; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$engine" "$mi" "$c" "$(json_num "$j" tok_s)" \
    "$(json_num "$j" ttft_p50_ms)" "$(json_num "$j" ttft_p99_ms)" \
    "$(( $(json_num "$j" errors) + $(json_num "$j" warmup_errors) ))" "$rss" >>"$WORK/results"
  echo "compare_serving: $engine $(basename "$model") c=$c: $(cat "$j")" >&2
}

: >"$WORK/results"
start_all=$(date +%s)
cell=0
for mi in "${!MODELS[@]}"; do
  for c in $CLIENTS; do
    if [ $(((cell + mi) % 2)) -eq 0 ]; then run_cell weft "$mi" "$c"; run_cell llama "$mi" "$c"
    else run_cell llama "$mi" "$c"; run_cell weft "$mi" "$c"; fi
    cell=$((cell + 1))
  done
done

field() { awk -F'\t' -v e="$1" -v m="$2" -v c="$3" -v f="$4" '$1 == e && $2 == m && $3 == c {print $f}' "$WORK/results"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "" && b != "" && b + 0 > 0) printf "%.2f", a / b; else printf "-"}'; }
f1() { awk -v x="$1" 'BEGIN {if (x == "") printf "-"; else printf "%.1f", x}'; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "") printf "-"; else printf "%.0f / %.0f", a, b}'; }
mib() { awk -v x="$1" 'BEGIN {if (x == "") printf "-"; else printf "%.0f", x / 1024}'; }

COMMIT="$(sed -n 's/^commit=//p' "$BENCH_DIR/llama.cpp.built" 2>/dev/null | cut -c1-10)"
echo
echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); threads $THREADS;" \
     "prompt $P random tokens, max_tokens $N, ignore_eos, ${DURATION}s per cell after warm-up; per-sequence" \
     "ctx $CTX; llama.cpp ${COMMIT:-?}; weft $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)." \
     "Sweep took $(( $(date +%s) - start_all ))s."
echo
echo "| model | clients | weft tok/s | llama-server tok/s | weft/llama | weft TTFT p50/p99 ms | llama-server TTFT p50/p99 ms | weft peak RSS MiB | llama-server peak RSS MiB | errors weft/llama |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for mi in "${!MODELS[@]}"; do
  name="$(basename "${MODELS[$mi]}" .gguf)"
  for c in $CLIENTS; do
    w="$(field weft "$mi" "$c" 4)"; l="$(field llama "$mi" "$c" 4)"
    echo "| $name | $c | $(f1 "$w") | $(f1 "$l") | $(ratio "$w" "$l") |" \
         "$(ms "$(field weft "$mi" "$c" 5)" "$(field weft "$mi" "$c" 6)") |" \
         "$(ms "$(field llama "$mi" "$c" 5)" "$(field llama "$mi" "$c" 6)") |" \
         "$(mib "$(field weft "$mi" "$c" 8)") | $(mib "$(field llama "$mi" "$c" 8)") |" \
         "$(field weft "$mi" "$c" 7)/$(field llama "$mi" "$c" 7) |"
  done
done
