// Pack and unpack kernels against a device-to-device copy of the same bytes (target: >= 80% of
// its bandwidth). The packed box is a tensor-parallel column block: `rows` rows of `row_bytes`
// taken from rows of 4 x row_bytes (stride), 256 MiB in all, the shape of a TP shard's message.
// Times are CUDA events around each launch (manual time). Needs a GPU: without one, says so and
// exits 77. Run by scripts/gpu.sh.
#include <benchmark/benchmark.h>

#include <iostream>

#include "shardalg/exec/nccl/copy_batch.hpp"
#include "shardalg/exec/nccl/cuda_launch.hpp"
#include "shardalg/exec/nccl/device_buffer.hpp"

using namespace shardalg;

namespace {

constexpr std::size_t total_bytes = std::size_t{256} << 20;

void check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(rc));
}

// Times f() on the default stream with CUDA events, per iteration.
template <class F>
void timed(benchmark::State& state, F&& f) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  f();  // warm-up
  for (auto _ : state) {
    check(cudaEventRecord(start, nullptr), "cudaEventRecord");
    f();
    check(cudaEventRecord(stop, nullptr), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    state.SetIterationTime(ms / 1e3);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(total_bytes));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

void device_to_device(benchmark::State& state) {
  DeviceBuffer src(total_bytes, nullptr), dst(total_bytes, nullptr);
  timed(state, [&] { check(cudaMemcpyAsync(dst.data(), src.data(), total_bytes, cudaMemcpyDeviceToDevice, nullptr), "cudaMemcpyAsync"); });
}

// pack (strided box -> dense stream) or unpack (the reverse), rows of state.range(0) bytes.
void box_copy(benchmark::State& state, bool pack) {
  index_t row_bytes = state.range(0), stride = 4 * row_bytes, rows = static_cast<index_t>(total_bytes) / row_bytes;
  DeviceBuffer tensor(static_cast<std::size_t>(rows * stride), nullptr), stream(total_bytes, nullptr);
  BoxRows box;
  box.row_shape = Dims{rows};
  box.row_strides = Dims{stride};
  box.row_bytes = row_bytes;
  CopyBatch batch;
  if (pack) add_pack(batch, box, tensor.data(), 0, box.bytes(), stream.data());
  else add_unpack(batch, box, tensor.data(), 0, box.bytes(), stream.data());
  DeviceBuffer descriptors(batch.copies().size() * sizeof(BoxCopy), nullptr);
  check(cudaMemcpy(descriptors.data(), batch.copies().data(), descriptors.size(), cudaMemcpyHostToDevice), "cudaMemcpy");
  auto copies = reinterpret_cast<const BoxCopy*>(descriptors.data());
  timed(state, [&] { check(cuda::launch_copies(copies, static_cast<std::int64_t>(batch.copies().size()), batch.units(), nullptr), "launch"); });
}

}  // namespace

BENCHMARK(device_to_device)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(box_copy, pack, true)->Arg(64)->Arg(256)->Arg(1024)->Arg(4096)->Arg(65536)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(box_copy, unpack, false)->Arg(64)->Arg(256)->Arg(1024)->Arg(4096)->Arg(65536)->UseManualTime()->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  int devices = 0;
  cudaError_t rc = cudaGetDeviceCount(&devices);
  if (rc != cudaSuccess || devices == 0) {
    std::cout << "SKIP: no CUDA device (" << (rc != cudaSuccess ? cudaGetErrorString(rc) : "0 devices") << ")\n";
    return 77;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
