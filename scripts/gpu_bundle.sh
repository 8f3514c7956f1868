#!/usr/bin/env bash
# Packs what scripts/gpu.sh needs on a GPU machine that can install nothing (the device tool's:
# no network, no Boost, Eigen, doctest or Google Benchmark): the GPU test and benchmark programs
# built here, and the files of their dependencies' Debian packages, so that gpu.sh can also build
# them there when the programs built here do not load. Run here (CUDA toolkit installed, no GPU
# needed); writes gpu-bundle/ (git ignores it; the device tool takes it with carry ["gpu-bundle"]).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
cmake --preset default >/dev/null
cmake --build --preset default --target shardalg_gpu_tests gpu_pack_bench
[[ -x build/default/tests/gpu/shardalg_gpu_tests ]] || { echo "gpu_bundle.sh: the NCCL backend was not built (no CUDA toolkit?)" >&2; exit 1; }

bundle=gpu-bundle
rm -rf "$bundle"
mkdir -p "$bundle/bin"
cp build/default/tests/gpu/shardalg_gpu_tests build/default/bench/gpu/gpu_pack_bench "$bundle/bin/"
scripts/gpu_sources.sh >"$bundle/sources.txt"  # gpu.sh runs these programs only on the same sources

# The packages' files under /usr keep their layout in $bundle/usr: their CMake packages find their
# headers and libraries relative to themselves. Of Boost only Hana (header-only) and its CMake package.
{
  dpkg -L libeigen3-dev doctest-dev libbenchmark-dev libbenchmark1debian
  dpkg -L libboost1.74-dev | grep -E '^/usr/lib/x86_64-linux-gnu/cmake/(Boost-|boost_headers-|BoostDetectToolset)'
  find /usr/include/boost/hana /usr/include/boost/hana.hpp /usr/include/boost/version.hpp
} | grep -E '^/usr/(include|lib|share/eigen3)/' | while read -r f; do [[ -d $f ]] || echo "${f#/}"; done >"$bundle/files.txt"
tar -C / --no-recursion -cf - -T "$bundle/files.txt" | tar -C "$bundle" -xf -
echo "gpu_bundle.sh: $bundle/ ($(du -sh "$bundle" | cut -f1)): $(ls "$bundle/bin" | tr '\n' ' ')and $(wc -l <"$bundle/files.txt") dependency files"
