// libFuzzer target: the zip directory reader and torch.save's tensor record (a .distcp item).
// The law: any input either locates a tensor inside the input or throws shardalg::Error.
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
  } catch (const Error&) {
  }
  return 0;
}
