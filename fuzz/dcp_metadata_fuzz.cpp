// libFuzzer target: DCP's .metadata readers. The laws: any input either gives a checkpoint layout or
// throws shardalg::Error (nothing in it is ever called); where the one-pass reader answers, the
// document reader gives the same layout (read_dcp_metadata takes the first answer of the two); and
// the one-pass reader answers the same with its worker on a thread of its own (as for large files)
// as with its worker's tasks run at once, and with its records read opcode by opcode as in one go.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "shardalg/storage/dcp_metadata.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::optional<shardalg::CheckpointLayout> one_pass = shardalg::detail::DcpOnePassReader::read(bytes, "fuzz.metadata");
  std::optional<shardalg::CheckpointLayout> threaded = shardalg::detail::DcpOnePassReader::read(bytes, "fuzz.metadata", 0);
  if (one_pass.has_value() != threaded.has_value() || (one_pass && !(*one_pass == *threaded))) __builtin_trap();
  std::optional<shardalg::CheckpointLayout> opcodes =
      shardalg::detail::DcpOnePassReader::read(bytes, "fuzz.metadata", shardalg::detail::DcpOnePassReader::worker_from_bytes, false);
  if (one_pass.has_value() != opcodes.has_value() || (one_pass && !(*one_pass == *opcodes))) __builtin_trap();
  try {
    shardalg::CheckpointLayout layout = shardalg::detail::read_dcp_metadata_document(bytes, "fuzz.metadata");
    if (one_pass && !(*one_pass == layout)) __builtin_trap();
  } catch (const shardalg::Error&) {
    if (one_pass) __builtin_trap();
  }
  return 0;
}
