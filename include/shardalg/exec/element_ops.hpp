// Reductions over raw bytes of a DType: what an executor does with Partial sources, where the
// element type is known only at run time. bf16 and fp16 are reduced in float and rounded back
// to nearest even; fp8 and raw bytes have no arithmetic and are refused.
//
// Example: two fp32 partial sums 1.5 and 2.0 arriving at one element:
//   fill_identity(DType::fp32, ReduceOp::sum, target, 1);            // target = 0
//   reduce_bytes(DType::fp32, ReduceOp::sum, 2, target, one_point_five, 1);
//   reduce_bytes(DType::fp32, ReduceOp::sum, 2, target, two, 1);      // target = 3.5
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "shardalg/core/checked.hpp"
#include "shardalg/core/dtype.hpp"
#include "shardalg/exec/reduce_arithmetic.hpp"
#include "shardalg/placement/reduce_op.hpp"

namespace shardalg {

namespace detail {

inline float bf16_to_float(std::uint16_t bits) { return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16); }
inline std::uint16_t float_to_bf16(float value) {
  std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  if (std::isnan(value)) return static_cast<std::uint16_t>((bits >> 16) | 0x40);  // stays a NaN
  bits += 0x7fff + ((bits >> 16) & 1);                                              // round to nearest even
  return static_cast<std::uint16_t>(bits >> 16);
}

// IEEE binary16 <-> float.
inline float fp16_to_float(std::uint16_t h) {
  std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000) << 16;
  int exponent = (h >> 10) & 0x1f;
  std::uint32_t mantissa = h & 0x3ff;
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000 | (mantissa << 13));  // inf, NaN
  if (exponent == 0) {                                                                        // zero, subnormal
    float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(sign | static_cast<std::uint32_t>(exponent - 15 + 127) << 23 | (mantissa << 13));
}
inline std::uint16_t float_to_fp16(float value) {
  std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000);
  if (std::isnan(value)) return static_cast<std::uint16_t>(sign | 0x7e00);
  float magnitude = std::fabs(value);
  if (magnitude >= 65520.0f) return static_cast<std::uint16_t>(sign | 0x7c00);  // rounds to infinity
  if (magnitude < 6.103515625e-05f) {                                            // subnormal: multiples of 2^-24
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(magnitude * 16777216.0f)));
  }
  std::uint32_t m = std::bit_cast<std::uint32_t>(magnitude);
  m += 0x0fff + ((m >> 13) & 1);  // round the 23-bit mantissa to 10 bits, nearest even
  std::uint32_t exponent = (m >> 23) - 127 + 15;
  return static_cast<std::uint16_t>(sign | exponent << 10 | ((m >> 13) & 0x3ff));
}

// Calls f(tag) with a tag naming how elements of `dtype` are stored and computed:
// T stored as T, or a 2-byte float stored as bits and computed in float.
struct Bf16 {};
struct Fp16 {};
template <class F>
void with_arithmetic(DType dtype, F&& f) {
  switch (arithmetic_dtype(dtype)) {  // an error naming a dtype without arithmetic
    case DType::fp32: return f(float{});
    case DType::fp64: return f(double{});
    case DType::int32: return f(std::int32_t{});
    case DType::int64: return f(std::int64_t{});
    case DType::int8: return f(std::int8_t{});
    case DType::int16: return f(std::int16_t{});
    case DType::bf16: return f(Bf16{});
    case DType::fp16: return f(Fp16{});
    case DType::fp8:
    case DType::bytes:
    case DType::boolean:
    case DType::complex64:
    case DType::complex128: break;  // refused by arithmetic_dtype
  }
}

template <class Tag>
float load_float(const std::byte* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, 2);
  if constexpr (std::is_same_v<Tag, Bf16>) return bf16_to_float(bits);
  else return fp16_to_float(bits);
}
template <class Tag>
void store_float(std::byte* p, float value) {
  std::uint16_t bits;
  if constexpr (std::is_same_v<Tag, Bf16>) bits = float_to_bf16(value);
  else bits = float_to_fp16(value);
  std::memcpy(p, &bits, 2);
}

}  // namespace detail

// Sets `count` elements at `target` to the identity of `op` (0, 1, +inf or -inf / the extremes).
inline void fill_identity(DType dtype, ReduceOp op, std::byte* target, index_t count) {
  detail::with_arithmetic(dtype, [&](auto tag) {
    using Tag = decltype(tag);
    for (index_t i = 0; i < count; ++i) {
      if constexpr (std::is_same_v<Tag, detail::Bf16> || std::is_same_v<Tag, detail::Fp16>) {
        detail::store_float<Tag>(target + 2 * i, detail::identity_value<float>(op));
      } else {
        Tag value = detail::identity_value<Tag>(op);
        std::memcpy(target + static_cast<std::ptrdiff_t>(sizeof(Tag)) * i, &value, sizeof(Tag));
      }
    }
  });
}

// Stores the integer `value` as one element of `dtype` at `target` (rounded for 2-byte floats).
inline void store_integer(DType dtype, std::byte* target, std::int64_t value) {
  detail::with_arithmetic(dtype, [&](auto tag) {
    using Tag = decltype(tag);
    if constexpr (std::is_same_v<Tag, detail::Bf16> || std::is_same_v<Tag, detail::Fp16>) {
      detail::store_float<Tag>(target, static_cast<float>(value));
    } else {
      auto v = static_cast<Tag>(value);
      std::memcpy(target, &v, sizeof(Tag));
    }
  });
}

// target[i] = target[i] (op) values[i] for `count` elements; `contributors` divides for avg.
inline void reduce_bytes(DType dtype, ReduceOp op, index_t contributors, std::byte* target, const std::byte* values,
                         index_t count) {
  detail::with_arithmetic(dtype, [&](auto tag) {
    using Tag = decltype(tag);
    for (index_t i = 0; i < count; ++i) {
      if constexpr (std::is_same_v<Tag, detail::Bf16> || std::is_same_v<Tag, detail::Fp16>) {
        float result = detail::reduce_value(detail::load_float<Tag>(target + 2 * i), detail::load_float<Tag>(values + 2 * i), op, contributors);
        detail::store_float<Tag>(target + 2 * i, result);
      } else {
        Tag a, b;
        std::memcpy(&a, target + static_cast<std::ptrdiff_t>(sizeof(Tag)) * i, sizeof(Tag));
        std::memcpy(&b, values + static_cast<std::ptrdiff_t>(sizeof(Tag)) * i, sizeof(Tag));
        Tag result = detail::reduce_value(a, b, op, contributors);
        std::memcpy(target + static_cast<std::ptrdiff_t>(sizeof(Tag)) * i, &result, sizeof(Tag));
      }
    }
  });
}

}  // namespace shardalg
