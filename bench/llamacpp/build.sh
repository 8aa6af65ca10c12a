#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds llama.cpp's llama-bench and llama-server (CPU only) as a side-by-side baseline for Weft, entirely outside the
# repository. The source comes from the npm package node-llama-cpp (pinned), which carries llama.cpp
# as a git bundle (llama/gitRelease.bundle); nothing else is downloaded. Idempotent: re-running only
# rebuilds what changed. Prints the llama-bench path on its last line.
#
# Env: WEFT_BENCH_DIR (default ~/.cache/weft-bench), JOBS (default 2), NICE (default 10).
set -euo pipefail

NODE_LLAMA_CPP_VERSION="3.21.1"
BENCH_DIR="${WEFT_BENCH_DIR:-$HOME/.cache/weft-bench}"
JOBS="${JOBS:-2}"
NICE="${NICE:-10}"
TARGETS=(llama-bench llama-simple llama-completion llama-server)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mkdir -p "$BENCH_DIR"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
case "$BENCH_DIR/" in
  "$REPO_ROOT"/*) echo "build.sh: WEFT_BENCH_DIR ($BENCH_DIR) must be outside the repo" >&2; exit 1 ;;
esac

NPM_DIR="$BENCH_DIR/npm"
SRC_DIR="$BENCH_DIR/llama.cpp"
BUILD_DIR="$BENCH_DIR/llama.cpp-build"
TARBALL="$NPM_DIR/node-llama-cpp-$NODE_LLAMA_CPP_VERSION.tgz"
BUNDLE="$NPM_DIR/package/llama/gitRelease.bundle"

log() { echo "[llamacpp/build.sh] $*" >&2; }

# 1. The npm tarball (npm pack downloads the package only; no install scripts run, no binaries).
mkdir -p "$NPM_DIR"
if [ ! -f "$TARBALL" ]; then
  log "npm pack node-llama-cpp@$NODE_LLAMA_CPP_VERSION -> $NPM_DIR"
  (cd "$NPM_DIR" && npm pack "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" --silent >/dev/null)
fi
if [ ! -f "$BUNDLE" ]; then
  (cd "$NPM_DIR" && tar xzf "$TARBALL" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json)
fi
git bundle list-heads "$BUNDLE" >/dev/null
BUNDLE_HEAD="$(git bundle list-heads "$BUNDLE" | awk '$2 == "HEAD" {print $1}')"
[ -n "$BUNDLE_HEAD" ] || BUNDLE_HEAD="$(git bundle list-heads "$BUNDLE" | awk 'NR==1 {print $1}')"

# 2. The source tree, checked out at the bundle's HEAD.
if [ ! -d "$SRC_DIR/.git" ]; then
  log "git clone $BUNDLE -> $SRC_DIR"
  git clone -q --no-checkout "$BUNDLE" "$SRC_DIR"
fi
if [ "$(git -C "$SRC_DIR" rev-parse HEAD 2>/dev/null || true)" != "$BUNDLE_HEAD" ] ||
   ! git -C "$SRC_DIR" diff --quiet HEAD 2>/dev/null; then
  git -C "$SRC_DIR" fetch -q "$BUNDLE" "$BUNDLE_HEAD" 2>/dev/null || true
  git -C "$SRC_DIR" -c advice.detachedHead=false checkout -q --force "$BUNDLE_HEAD"
fi
COMMIT="$(git -C "$SRC_DIR" rev-parse HEAD)"
RELEASE_TAG="$(sed -n 's/.*"tag": *"\([^"]*\)".*/\1/p' "$NPM_DIR/package/llama/llama.cpp.info.json" 2>/dev/null || true)"
log "llama.cpp commit $COMMIT (node-llama-cpp $NODE_LLAMA_CPP_VERSION, release tag '${RELEASE_TAG:-?}')"

# 3. Configure: CPU only, Release, native ISA, static libs, no curl/SSL, no tests, no web UI.
#    llama-server is built (for bench/compare_serving.sh); a cache from before it was added is
#    reconfigured.
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] ||
   ! grep -q "^LLAMA_BUILD_SERVER:BOOL=ON" "$BUILD_DIR/CMakeCache.txt"; then
  log "cmake configure -> $BUILD_DIR"
  cmake -S "$SRC_DIR" -B "$BUILD_DIR" "${GEN[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=ON -DGGML_CPU=ON \
    -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_HIP=OFF -DGGML_SYCL=OFF \
    -DGGML_OPENCL=OFF -DGGML_RPC=OFF -DGGML_BLAS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=ON \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
    --no-warn-unused-cli >"$BENCH_DIR/cmake-configure.log" 2>&1 ||
    { cat "$BENCH_DIR/cmake-configure.log" >&2; exit 1; }
fi

# 4. Build (niced: the machine is shared).
log "building ${TARGETS[*]} with -j$JOBS (nice $NICE)"
start=$(date +%s)
nice -n "$NICE" cmake --build "$BUILD_DIR" --config Release -j "$JOBS" --target "${TARGETS[@]}"
log "build took $(( $(date +%s) - start ))s"

BIN="$BUILD_DIR/bin/llama-bench"
[ -x "$BIN" ] || { log "llama-bench not found at $BIN"; exit 1; }
[ -x "$BUILD_DIR/bin/llama-server" ] || { log "llama-server not found in $BUILD_DIR/bin"; exit 1; }
printf '%s\n' "commit=$COMMIT" "node_llama_cpp=$NODE_LLAMA_CPP_VERSION" "release_tag=${RELEASE_TAG:-}" \
  "bin_dir=$BUILD_DIR/bin" >"$BENCH_DIR/llama.cpp.built"
echo "$BIN"
