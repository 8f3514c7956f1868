#!/usr/bin/env bash
# Builds and runs every test: the Release configuration (unit, property, compile-fail, CLI and
# package tests, and a build of the benchmarks and examples), then the ASan+UBSan configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
jobs=$(nproc)
for preset in default asan; do
  echo "=== configuration: $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  ctest --preset "$preset"
done
