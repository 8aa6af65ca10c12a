# SPDX-License-Identifier: Apache-2.0
# Shared by bench/compare_gateway.sh, bench/ab_gateway.sh and bench/gateway/ir_gateway.sh
# (sourced, not run): the request body, the fixed completion, the nginx upstream that serves it
# and a gateway in front of it. Uses the caller's WORK (a folder), NGINX (the nginx binary), PIDS
# (an array: started processes), UP_PORT and IO_THREADS; logs as $BENCH_NAME.

# bench_begin NAME: the work folder (KEEP when set, else a temporary one removed at exit), PIDS
# stopped at exit, UP_PORT=PORT, and the upstream started on it; logs as NAME.
bench_begin() {
  BENCH_NAME="$1"
  if [ -n "${KEEP:-}" ]; then WORK="$KEEP"; mkdir -p "$WORK"; else WORK="$(mktemp -d)"; fi
  chmod 755 "$WORK"
  UP_PORT=$PORT
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  start_upstream
}
bench_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; fi
}

# wait_http URL [HEADER]: up to 20 s for a 200.
wait_http() {
  local i
  for ((i = 0; i < 200; ++i)); do
    if curl -sf -m 1 -o /dev/null ${2:+-H "$2"} "$1"; then return 0; fi
    sleep 0.1
  done
  echo "${BENCH_NAME:-bench}: no 200 from $1" >&2; return 1
}

COMPLETION='{"id":"cmpl-bench","object":"text_completion","created":1700000000,"model":"bench","choices":[{"index":0,"text":" a fixed answer from the bench upstream","logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":6,"completion_tokens":8,"total_tokens":14}}'
BODY='{"model":"bench","prompt":"The gateway benchmark says hello","max_tokens":8}'

# nginx_conf NAME WORKERS SERVER_BLOCK: a self-contained nginx config under $WORK/NAME.
nginx_conf() {
  local dir="$WORK/$1"
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes $2;
$( [ "$(id -u)" = 0 ] && echo "user root root;" )
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  default_type application/json;
$3
}
EOF
}

start_nginx() {  # NAME
  "$NGINX" -p "$WORK/$1" -c "$WORK/$1/nginx.conf" -e "$WORK/$1/error.log" \
    >"$WORK/$1/stdout.log" 2>&1 &
  PIDS+=($!)
  eval "${1^^}_PID=$!"
}

# start_upstream: the fast upstream on UP_PORT (fixed completion, /health, a load report).
start_upstream() {
  nginx_conf upstream 1 "  server {
    listen 127.0.0.1:$UP_PORT backlog=4096;
    location = /v1/completions { return 200 '$COMPLETION'; }
    location = /health { return 200 '{\"status\":\"ok\"}'; }
    location = /weft/v1/load { return 200 '{\"model\":\"bench\",\"ready\":true}'; }
    location / { return 404; }
  }"
  start_nginx upstream
  wait_http "http://127.0.0.1:$UP_PORT/health"
}

# gateway_yaml DIR PORT IO_THREADS [EXTRA]: DIR/gateway.yaml for a gateway on PORT in front of the
# upstream (ledger on in DIR, quotas unlimited, access log off by --quiet); EXTRA: more top-level
# YAML lines (e.g. "io_cpu_affinity: true").
gateway_yaml() {
  cat >"$1/gateway.yaml" <<EOF
listen: 127.0.0.1:$2
io_threads: $3
${4:-}
data_dir: $1
limits:
  header_timeout_s: 600
  idle_timeout_s: 600
  max_outstanding_per_replica: 100000
health:
  interval_s: 1
  load_poll_interval_s: 0.5
deployments:
  bench:
    replicas:
      - id: up0
        url: http://127.0.0.1:$UP_PORT
EOF
}

# start_gateway NAME BUILD PORT "ENV" [WRAPPER...]: a gateway from BUILD/cli/weft on PORT with its
# own key and data under $WORK/NAME (KEYS[NAME], PORTS[NAME], GW_PIDS[NAME]), run as
# `env ENV WRAPPER... weft gateway ...` (GW_YAML_EXTRA: more lines for its config); returns once
# one completion passed end to end.
declare -A KEYS PORTS GW_PIDS
start_gateway() {
  local name="$1" build="$2" port="$3" envs="$4"
  shift 4
  local dir="$WORK/$name"
  mkdir -p "$dir"
  KEYS[$name]="$("$build/cli/weft" keys create --data "$dir" --tenant bench --deployments bench 2>"$dir/keys.log" | tail -1)"
  [ -n "${KEYS[$name]}" ] || { echo "${BENCH_NAME:-bench}: weft keys create failed:" >&2; cat "$dir/keys.log" >&2; exit 1; }
  PORTS[$name]=$port
  gateway_yaml "$dir" "$port" "${IO_THREADS:-2}" "${GW_YAML_EXTRA:-}"
  # shellcheck disable=SC2086
  env $envs "$@" "$build/cli/weft" gateway --config "$dir/gateway.yaml" --quiet >"$dir/gateway.log" 2>&1 &
  PIDS+=($!)
  GW_PIDS[$name]=$!
  local i code=""
  for ((i = 0; i < 300; ++i)); do
    code="$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${KEYS[$name]}" \
            -H 'Content-Type: application/json' -d "$BODY" "http://127.0.0.1:$port/v1/completions" || true)"
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  echo "${BENCH_NAME:-bench}: gateway $name answers $code:" >&2; tail -5 "$dir/gateway.log" >&2; exit 1
}
