// The machine's copy speed, the ceiling of every executor's copies: memcpy of buffers that fit
// in the last-level cache and of buffers that do not, and the same bytes as 512-byte rows taken
// at a stride of two rows (a block-cyclic tile's rows). Bytes per second counts the bytes copied.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// (megabytes, row bytes; 0: one memcpy of the whole buffer).
void BM_Copy(benchmark::State& state) {
  auto bytes = static_cast<std::size_t>(state.range(0)) << 20;
  auto row = static_cast<std::size_t>(state.range(1));
  std::size_t stride = row ? 2 * row : bytes;
  std::vector<std::byte> from(row ? 2 * bytes : bytes, std::byte{1}), to(bytes, std::byte{2});
  for (auto _ : state) {
    if (row == 0)
      std::memcpy(to.data(), from.data(), bytes);
    else
      for (std::size_t r = 0; r < bytes / row; ++r) std::memcpy(to.data() + r * row, from.data() + r * stride, row);
    benchmark::DoNotOptimize(to.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_Copy)->ArgsProduct({{4, 16, 64, 256}, {0, 512}})->Unit(benchmark::kMillisecond);

}  // namespace
