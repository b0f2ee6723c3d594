#!/usr/bin/env bash
# Installs what mpsearch needs on Debian 12 and builds bin/mpsearch.
#   scripts/setup.sh          packages + build
#   scripts/setup.sh --test   also what only the tests use: Fashion-MNIST,
#                             Chromium (report test), Node.js + ONNX Runtime
#                             (exported-model and torchvision tests),
#                             PyTorch, torchvision and onnx (torchvision export)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
pkgs=(liblpsolve55-dev libopenblas-dev gcc)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(dataset-fashion-mnist chromium python3-torch python3-torchvision python3-onnx)
  command -v node >/dev/null || pkgs+=(nodejs npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >&2
fi
if [ "${1:-}" = "--test" ] && [ ! -d internal/ortrun/node_modules/onnxruntime-node ]; then
  echo "setup: installing onnxruntime-node 1.30.0 into internal/ortrun" >&2
  npm install --prefix internal/ortrun --ignore-scripts --no-save --no-package-lock --no-audit --no-fund onnxruntime-node@1.30.0 >&2
fi
command -v go >/dev/null || { echo "setup: Go 1.26 or newer is needed (https://go.dev/dl); put it on PATH and run again" >&2; exit 1; }
. scripts/env.sh
mkdir -p bin
go build -o bin/mpsearch ./cmd/mpsearch
echo "setup: built bin/mpsearch" >&2
