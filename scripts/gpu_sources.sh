#!/usr/bin/env bash
# Prints a fingerprint of the sources the GPU programs are built from (every file under include/,
# cuda/, tests/, bench/ and cmake/, and the CMake lists), so that scripts/gpu.sh can tell whether
# the programs of gpu-bundle/ were built from this tree. Needs no git (the device tool's copy of
# the tree has none).
set -euo pipefail
cd "$(dirname "$0")/.."
find include cuda tests bench cmake CMakeLists.txt -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
