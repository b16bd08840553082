#!/usr/bin/env bash
# Tests the Go bindings against the debug libtorchless.so in $CARGO_TARGET_DIR (default
# ./target): installs Debian's Go when missing, then go vet, go test -race ./..., and the
# 10,000-request load test without -race (bindings/go/examples/server/load_test.go says why).
# Build the library first: cargo build -p torchless-capi.
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
