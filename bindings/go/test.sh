#!/usr/bin/env bash
# Tests the Go bindings against the debug libtorchless.so in $CARGO_TARGET_DIR (default
# ./target): installs Debian's Go when missing, then go vet, go test -race ./..., and the
# 10,000-request load test without -race (bindings/go/examples/server/load_test.go says why),
# then examples/httpclient against a live `torchless serve` (the debug binary beside the library).
# Build both first: cargo build -p torchless-capi -p torchless.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v go >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq golang-go >/dev/null \
    || { echo "cannot install Go (apt-get install golang-go failed); the Go bindings need it" >&2; exit 1; }
fi
lib=$(cd ../.. && realpath "${CARGO_TARGET_DIR:-target}")/debug
[ -f "$lib/libtorchless.so" ] || { echo "$lib/libtorchless.so is missing: cargo build -p torchless-capi" >&2; exit 1; }
export CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib"
go version
go vet ./...
go test -race -count=1 ./...
go test -count=1 -run TestTenThousandRequests -v ./examples/server

# examples/httpclient (standard library only) against `torchless serve` on a free loopback port:
# /v1/embeddings always, /v1/chat/completions once the llama fixture has a chat template. The
# server must then drain and exit 0 on SIGTERM.
bin="$lib/torchless"
[ -x "$bin" ] || { echo "$bin is missing: cargo build -p torchless" >&2; exit 1; }
fixtures=$(cd ../../tests/fixtures && pwd)
log=$(mktemp)
"$bin" serve --device cpu --port 0 --model minilm="$fixtures/bert/tiny-st" \
  --model llama="$fixtures/decoders/llama" 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
addr=""
for _ in $(seq 300); do
  addr=$(sed -n 's/^listening on //p' "$log")
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
[ -n "$addr" ] || { cat "$log" >&2; echo "torchless serve did not start" >&2; exit 1; }
chat=()
if grep -q chat_template "$fixtures/decoders/llama/tokenizer_config.json" 2>/dev/null; then
  chat=(-chat-model llama)
fi
timeout 300 go run ./examples/httpclient -url "$addr" -embed-model minilm ${chat[@]+"${chat[@]}"}
kill -TERM "$pid"
wait "$pid"
echo "examples/httpclient: ok (torchless serve exited 0 after SIGTERM)"
