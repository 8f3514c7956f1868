// One table of how checkpoint formats name shardalg's dtypes: torch's dtype (a pickled global
// torch.<name>), torch.save's legacy storage class, and safetensors' dtype string.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "shardalg/core/dtype.hpp"

namespace shardalg {

struct FormatDTypeNames {
  DType dtype;
  std::string_view torch;          // torch.<name>
  std::string_view storage_class;  // torch.<name> of torch.save's typed storage
  std::string_view safetensors;
};

// uint8 is the raw-bytes dtype; fp8 is float8_e4m3fn (the format of fp8 training weights). safetensors
// has no complex dtype: an empty name means the format cannot hold it.
inline constexpr std::array<FormatDTypeNames, 13> format_dtype_table{{
    {DType::fp64, "float64", "DoubleStorage", "F64"},
    {DType::int64, "int64", "LongStorage", "I64"},
    {DType::fp32, "float32", "FloatStorage", "F32"},
    {DType::int32, "int32", "IntStorage", "I32"},
    {DType::bf16, "bfloat16", "BFloat16Storage", "BF16"},
    {DType::fp16, "float16", "HalfStorage", "F16"},
    {DType::fp8, "float8_e4m3fn", "Float8_e4m3fnStorage", "F8_E4M3"},
    {DType::int8, "int8", "CharStorage", "I8"},
    {DType::bytes, "uint8", "ByteStorage", "U8"},
    {DType::int16, "int16", "ShortStorage", "I16"},
    {DType::boolean, "bool", "BoolStorage", "BOOL"},
    {DType::complex64, "complex64", "ComplexFloatStorage", ""},
    {DType::complex128, "complex128", "ComplexDoubleStorage", ""},
}};

namespace detail {

template <std::string_view FormatDTypeNames::*field>
DType dtype_named(std::string_view name, std::string_view what) {
  std::string known;
  for (const FormatDTypeNames& e : format_dtype_table) {
    if ((e.*field).empty()) continue;  // the format cannot hold this dtype
    if (e.*field == name) return e.dtype;
    known += (known.empty() ? "" : ", ") + std::string(e.*field);
  }
  fail<FormatError>(what, " dtype '", name, "' is not supported (", known, ")");
}

inline const FormatDTypeNames& format_names(DType dtype) {
  for (const FormatDTypeNames& e : format_dtype_table)
    if (e.dtype == dtype) return e;
  fail("dtype ", dtype, " has no checkpoint format name");
}

}  // namespace detail

inline DType dtype_from_torch(std::string_view name) { return detail::dtype_named<&FormatDTypeNames::torch>(name, "torch"); }
inline DType dtype_from_storage_class(std::string_view name) { return detail::dtype_named<&FormatDTypeNames::storage_class>(name, "torch storage"); }
inline DType dtype_from_safetensors(std::string_view name) { return detail::dtype_named<&FormatDTypeNames::safetensors>(name, "safetensors"); }
inline std::string_view torch_dtype_name(DType dtype) { return detail::format_names(dtype).torch; }
// Error naming the dtype when safetensors cannot hold it (complex).
inline std::string_view safetensors_dtype_name(DType dtype) {
  std::string_view name = detail::format_names(dtype).safetensors;
  if (name.empty()) detail::fail<FormatError>("safetensors has no dtype for ", dtype, " (save it as DCP)");
  return name;
}

}  // namespace shardalg
