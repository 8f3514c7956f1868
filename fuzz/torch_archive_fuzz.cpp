// libFuzzer target: the zip directory reader and torch.save's tensor record (a .distcp item).
// The law: any input either locates a tensor inside the input or throws shardalg::Error; the
// located storage is then checksummed as verification does (both CRC-32 paths agree).
#include <cstddef>
#include <cstdint>
#include <span>

#include "shardalg/storage/torch_saved_tensor.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace shardalg;
  MemorySource source(std::as_bytes(std::span(data, size)), "fuzz.distcp");
  try {
    SavedTensorData tensor = read_saved_tensor(source, 0, size);
    if (tensor.storage_offset + tensor.storage_bytes > size) __builtin_trap();  // located bytes must be inside
    auto storage = std::as_bytes(std::span(data + tensor.storage_offset, static_cast<std::size_t>(tensor.storage_bytes)));
    if (crc32(storage) != ~detail::crc32_tables(storage, ~0u)) __builtin_trap();
  } catch (const Error&) {
  }
  return 0;
}
