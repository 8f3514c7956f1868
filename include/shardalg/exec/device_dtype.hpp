// DeviceDtype: the element types reductions and identities compute with, in the device kernels
// and on the host (exec/element_ops.hpp), and the conversion from a dtype's name. bf16 and fp16
// are computed in float and rounded to nearest even; integer sums wrap.
#pragma once

#include <cstdint>
#include <string_view>

#include "shardalg/core/dtype.hpp"

namespace shardalg {

enum class DeviceDtype : std::uint8_t { fp32, fp64, int32, int64, int8, bf16, fp16 };

// Error naming a dtype without arithmetic (fp8, bytes) or an unknown one.
inline DeviceDtype device_dtype(std::string_view dtype) {
  if (dtype == "fp32") return DeviceDtype::fp32;
  if (dtype == "fp64") return DeviceDtype::fp64;
  if (dtype == "int32") return DeviceDtype::int32;
  if (dtype == "int64") return DeviceDtype::int64;
  if (dtype == "int8") return DeviceDtype::int8;
  if (dtype == "bf16") return DeviceDtype::bf16;
  if (dtype == "fp16") return DeviceDtype::fp16;
  dtype_bytes(dtype);  // names an unknown dtype
  detail::fail("reductions of dtype '", dtype, "' are not supported (no arithmetic on it)");
}

inline std::string_view to_string(DeviceDtype dtype) {
  constexpr std::string_view names[] = {"fp32", "fp64", "int32", "int64", "int8", "bf16", "fp16"};
  return names[static_cast<int>(dtype)];
}

}  // namespace shardalg
