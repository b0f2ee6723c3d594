#!/usr/bin/env bash
# Runs every test of mpsearch: first scripts/setup.sh --test (installs only
# what is missing: the packages and onnxruntime-node the tests use, so none
# of them skips on a fresh machine; MPSEARCH_SKIP_SETUP=1 skips this step),
# then go vet, go test ./... (OpenBLAS and lp_solve through cgo), the
# pure-Go builds (-tags purego, CGO_ENABLED=0) and each fuzz target for a
# bounded time (FUZZTIME, default 10s).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${MPSEARCH_SKIP_SETUP:-}" != 1 ]; then
  bash scripts/setup.sh --test
fi
. scripts/env.sh
fuzztime="${FUZZTIME:-10s}"
echo "== go vet" >&2
go vet ./...
echo "== go test ./..." >&2
go test -count=1 -timeout 40m ./...
echo "== go test -tags purego (pure-Go kernels)" >&2
go test -count=1 -tags purego ./kernels/...
echo "== CGO_ENABLED=0 go test (gonum BLAS, pure-Go ILP solver)" >&2
CGO_ENABLED=0 go test -count=1 ./network/... ./ilp/...
# fuzz_one runs one target. Go 1.26's fuzzing coordinator can report a bare
# "context deadline exceeded" when -fuzztime expires while a worker is busy
# (golang/go#75804, fixed in Go 1.27): no input failed and none is written.
# That case alone is retried once; any other failure, or a written failing
# input, fails at once.
fuzz_one() {
  local log
  for attempt in 1 2; do
    log=$(mktemp)
    if go test -run='^$' -fuzz="^$2\$" -fuzztime="$fuzztime" "$1" >"$log" 2>&1; then
      cat "$log" >&2; rm -f "$log"; return 0
    fi
    cat "$log" >&2
    if [ "$attempt" = 1 ] && grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written' "$log"; then
      echo "-- $2: the fuzzing coordinator's deadline race (golang/go#75804), no failing input; running it again" >&2
      rm -f "$log"; continue
    fi
    rm -f "$log"; return 1
  done
}
echo "== fuzzing, $fuzztime per target" >&2
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "-- $pkg $f" >&2
    fuzz_one "$pkg" "$f"
  done
done
echo "all tests passed" >&2
