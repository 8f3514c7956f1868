// DType: the element types frameworks store, under the names they give them. One table holds
// each type's name, size and kind; text becomes a DType once, where it enters (a command line, a
// model file), and the library works with the enum. Executors map it to their own types with a
// switch: host arithmetic (exec/element_ops.hpp), NCCL's ncclDataType_t and the CUDA kernels.
//
// Example: parse_dtype("bf16") == DType::bf16; element_bytes(DType::bf16) == 2;
// to_string(DType::bf16) == "bf16"; has_arithmetic(DType::fp8) == false.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "shardalg/core/checked.hpp"
#include "shardalg/core/error.hpp"

namespace shardalg {

enum class DType : std::uint8_t { fp64, int64, fp32, int32, bf16, fp16, fp8, int8, bytes, int16, boolean, complex64, complex128 };

namespace detail {

struct DTypeEntry {
  DType dtype;
  std::string_view name;
  index_t bytes;
  bool arithmetic;  // executors can reduce it (Partial sources); fp8, raw bytes, bool and complex have none
  bool integer;
};

// Indexed by the enum's value.
inline constexpr std::array<DTypeEntry, 13> dtype_table{{
    {DType::fp64, "fp64", 8, true, false},
    {DType::int64, "int64", 8, true, true},
    {DType::fp32, "fp32", 4, true, false},
    {DType::int32, "int32", 4, true, true},
    {DType::bf16, "bf16", 2, true, false},
    {DType::fp16, "fp16", 2, true, false},
    {DType::fp8, "fp8", 1, false, false},
    {DType::int8, "int8", 1, true, true},
    {DType::bytes, "bytes", 1, false, false},
    {DType::int16, "int16", 2, true, true},
    {DType::boolean, "bool", 1, false, false},
    {DType::complex64, "complex64", 8, false, false},
    {DType::complex128, "complex128", 16, false, false},
}};

constexpr bool dtype_table_in_enum_order() {
  for (std::size_t i = 0; i < dtype_table.size(); ++i)
    if (static_cast<std::size_t>(dtype_table[i].dtype) != i) return false;
  return true;
}
static_assert(dtype_table_in_enum_order(), "dtype_table must list the DTypes in the enum's order");

constexpr const DTypeEntry& entry(DType dtype) { return dtype_table[static_cast<std::size_t>(dtype)]; }

}  // namespace detail

// Bytes per element: complex128 16, fp64/int64/complex64 8, fp32/int32 4, bf16/fp16/int16 2,
// fp8/int8/bytes/bool 1.
constexpr index_t element_bytes(DType dtype) { return detail::entry(dtype).bytes; }
constexpr std::string_view to_string(DType dtype) { return detail::entry(dtype).name; }
// Whether executors can reduce elements of this type (Partial sources): all but fp8, bytes, bool
// and the complex types (checkpoints store and move them; no framework shards them as Partial).
constexpr bool has_arithmetic(DType dtype) { return detail::entry(dtype).arithmetic; }
constexpr bool is_integer(DType dtype) { return detail::entry(dtype).integer; }

// `dtype`, or an error naming it when it has no arithmetic (a reduction of fp8 or raw bytes).
inline DType arithmetic_dtype(DType dtype) {
  if (!has_arithmetic(dtype)) detail::fail("reductions of dtype '", to_string(dtype), "' are not supported (no arithmetic on it)");
  return dtype;
}

// The known names, in the table's order: "fp64, int64, fp32, int32, bf16, fp16, fp8, int8, bytes,
// int16, bool, complex64, complex128".
inline std::string dtype_names() {
  std::string names;
  for (const detail::DTypeEntry& e : detail::dtype_table) names += (names.empty() ? "" : ", ") + std::string(e.name);
  return names;
}

// Reads a dtype's name. Error naming the text and the known names.
inline DType parse_dtype(std::string_view name) {
  for (const detail::DTypeEntry& e : detail::dtype_table)
    if (e.name == name) return e.dtype;
  detail::fail("unknown dtype '", name, "' (", dtype_names(), ")");
}

inline std::ostream& operator<<(std::ostream& out, DType dtype) { return out << to_string(dtype); }

}  // namespace shardalg
