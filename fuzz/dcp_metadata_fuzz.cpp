// libFuzzer target: the restricted pickle reader and DCP's .metadata decoder. The law: any input
// either gives a checkpoint layout or throws shardalg::Error; nothing in it is ever called.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shardalg/storage/dcp_metadata.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    shardalg::read_dcp_metadata(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.metadata");
  } catch (const shardalg::Error&) {
  }
  return 0;
}
