#!/usr/bin/env bash
# Runs every test of mpsearch: go vet, go test ./... (OpenBLAS and lp_solve
# through cgo), the pure-Go builds (-tags purego, CGO_ENABLED=0) and each
# fuzz target for a bounded time (FUZZTIME, default 10s).
set -euo pipefail
cd "$(dirname "$0")/.."
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
echo "== fuzzing, $fuzztime per target" >&2
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "-- $pkg $f" >&2
    go test -run='^$' -fuzz="^$f\$" -fuzztime="$fuzztime" "$pkg" >&2
  done
done
echo "all tests passed" >&2
