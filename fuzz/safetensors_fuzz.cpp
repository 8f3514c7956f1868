// libFuzzer target: the safetensors header reader and its DCP_SHARDING_INFO record. The law: any
// input either gives tensors whose bytes tile the file's data region, each with one saved offset
// per dim when the header records them, or throws shardalg::Error.
#include <cstddef>
#include <cstdint>
#include <span>

#include "shardalg/storage/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace shardalg;
  MemorySource source(std::as_bytes(std::span(data, size)), "fuzz.safetensors");
  try {
    SafetensorsHeader header = read_safetensors_header(source);
    auto offsets = safetensors_saved_offsets(header, source.name());
    for (const SafetensorsTensor& t : header.tensors) {
      if (t.byte_offset + t.bytes > size) __builtin_trap();
      if (offsets && offsets->at(t.name).size() != t.shape.size()) __builtin_trap();
    }
  } catch (const Error&) {
  }
  return 0;
}
