#!/usr/bin/env bash
# On a GPU machine: runs the GPU tests (tests/gpu), the pack/unpack benchmark (bench/gpu) and, when
# compute-sanitizer is installed, the GPU tests under its memcheck. The programs are those of
# gpu-bundle/ (scripts/gpu_bundle.sh) when they load here; otherwise they are built here
# (SHARDALG_GPU_ONLY), with the dependencies from gpu-bundle/usr when there is a bundle, else from
# scripts/bootstrap.sh. NCCL is CUDA's, or else the NCCL package of the machine's Python (PyTorch's).
# Results: stdout and, when $OUT is set (the device tool), $OUT/gpu_tests.txt,
# $OUT/gpu_pack_bench.json and $OUT/gpu_memcheck.txt. Exits 77 when there is no GPU.
# --build: build the programs here even when the bundle's load.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bundle=$root/gpu-bundle
build=$root/build/gpu
out=${OUT:-$build}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# NCCL and the CUDA runtime: CUDA's prefix first, then the NVIDIA packages of python3. A search
# that finds nothing prints nothing (and does not stop the script).
cuda=${CUDA_HOME:-/usr/local/cuda}
in_cuda() { find -L "$cuda/lib64" "$cuda/lib" -maxdepth 1 -name "$1" 2>/dev/null | sort | head -1 || true; }
in_python() {
  python3 -c 'import nvidia; print(*nvidia.__path__, sep="\n")' 2>/dev/null | while read -r d; do find "$d" -name "$1"; done 2>/dev/null |
    sort | head -1 || true
}
if [[ -f $cuda/include/nccl.h ]]; then
  nccl_include=$cuda/include
  nccl_library=$(in_cuda 'libnccl.so*')
else
  nccl_header=$(in_python nccl.h)
  nccl_include=${nccl_header%/nccl.h}
  nccl_library=$(in_python 'libnccl.so*')
fi
[[ -n $nccl_library && -n $nccl_include ]] || { echo "gpu.sh: NCCL not found in $cuda nor in python3's nvidia packages" >&2; exit 1; }
cudart=$(in_cuda 'libcudart.so.*')
[[ -n $cudart ]] || cudart=$(in_python 'libcudart.so.*')
echo "gpu.sh: NCCL $nccl_library, CUDA runtime ${cudart:-not found}"
export LD_LIBRARY_PATH=${nccl_library%/*}:${cudart%/*}:$bundle/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

loads() { [[ -x $1 ]] && ldd "$1" >/dev/null 2>&1 && ! ldd "$1" 2>&1 | grep -q 'not found'; }
tests=$bundle/bin/shardalg_gpu_tests
bench=$bundle/bin/gpu_pack_bench
current() { [[ -f $bundle/sources.txt && $(cat "$bundle/sources.txt") == $(scripts/gpu_sources.sh) ]]; }
if [[ ${1:-} != --build ]] && current && loads "$tests" && loads "$bench"; then
  echo "gpu.sh: running the programs of gpu-bundle/ (built by scripts/gpu_bundle.sh from these sources)"
else
  if [[ -d $bundle/bin ]] && ! current; then
    echo "gpu.sh: the programs of gpu-bundle/ were built from other sources (scripts/gpu_sources.sh differs): not run"
  elif [[ -d $bundle/bin ]]; then
    echo "gpu.sh: the programs of gpu-bundle/ do not load here:"; ldd "$tests" "$bench" 2>&1 | grep 'not found' || true
  fi
  configure=(-DCMAKE_BUILD_TYPE=Release -DSHARDALG_GPU_ONLY=ON -DSHARDALG_WARNINGS_AS_ERRORS=OFF
             -DSHARDALG_NCCL_LIBRARY="$nccl_library" -DSHARDALG_NCCL_INCLUDE="$nccl_include")
  if [[ -d $bundle/usr ]]; then
    configure+=(-DBoost_DIR="$bundle/usr/lib/x86_64-linux-gnu/cmake/Boost-1.74.0" -DEigen3_DIR="$bundle/usr/share/eigen3/cmake"
                -Ddoctest_DIR="$bundle/usr/lib/cmake/doctest" -Dbenchmark_DIR="$bundle/usr/lib/x86_64-linux-gnu/cmake/benchmark")
  else
    scripts/bootstrap.sh
  fi
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  echo "gpu.sh: building the GPU programs here"
  cmake -S . -B "$build" "${generator[@]}" "${configure[@]}" >/dev/null
  cmake --build "$build" -j "$(nproc)"
  tests=$build/tests/gpu/shardalg_gpu_tests
  bench=$build/bench/gpu/gpu_pack_bench
fi

set +e
"$tests" 2>&1 | tee "$out/gpu_tests.txt"
status=${PIPESTATUS[0]}
set -e
[[ $status -eq 77 ]] && { echo "gpu.sh: no GPU here"; exit 77; }
"$bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/gpu_pack_bench.json" --benchmark_out_format=json
if command -v compute-sanitizer >/dev/null; then
  echo "gpu.sh: the GPU tests under compute-sanitizer memcheck"
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 3 "$tests" >"$out/gpu_memcheck.txt" 2>&1 && echo "memcheck: clean" ||
    { echo "memcheck: exit $? (see gpu_memcheck.txt)"; tail -20 "$out/gpu_memcheck.txt"; status=1; }
fi
exit "$status"
