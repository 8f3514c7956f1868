// Element types by name, as frameworks spell them, and their sizes in bytes.
#pragma once

#include <string_view>

#include "shardalg/core/checked.hpp"

namespace shardalg {

// Bytes per element of a named dtype: fp64/int64 8, fp32/int32 4, bf16/fp16 2, fp8/int8/bytes 1.
// Error naming the dtype and the known ones otherwise.
inline index_t dtype_bytes(std::string_view dtype) {
  if (dtype == "fp64" || dtype == "int64") return 8;
  if (dtype == "fp32" || dtype == "int32") return 4;
  if (dtype == "bf16" || dtype == "fp16") return 2;
  if (dtype == "fp8" || dtype == "int8" || dtype == "bytes") return 1;
  detail::fail("unknown dtype '", dtype, "' (fp64, int64, fp32, int32, bf16, fp16, fp8, int8, bytes)");
}

}  // namespace shardalg
