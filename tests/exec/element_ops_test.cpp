#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "../test_support.hpp"
#include "shardalg/exec/element_ops.hpp"

using namespace shardalg;

TEST_CASE("fp16 conversions are exact on every fp16 value and round to nearest even") {
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    auto h = static_cast<std::uint16_t>(bits);
    float value = detail::fp16_to_float(h);
    if (std::isnan(value)) {
      CHECK(std::isnan(detail::fp16_to_float(detail::float_to_fp16(value))));
      continue;
    }
    REQUIRE(detail::float_to_fp16(value) == h);
  }
  CHECK(detail::float_to_fp16(1.0f) == 0x3c00);
  CHECK(detail::float_to_fp16(65504.0f) == 0x7bff);
  CHECK(detail::float_to_fp16(1e5f) == 0x7c00);                     // overflows to infinity
  CHECK(detail::float_to_fp16(std::ldexp(1.0f, -24)) == 0x0001);     // smallest subnormal
  CHECK(detail::float_to_fp16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // halfway: to even
  CHECK(detail::float_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
}

TEST_CASE("bf16 conversions round to nearest even and keep NaNs") {
  CHECK(detail::float_to_bf16(1.0f) == 0x3f80);
  CHECK(detail::float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);      // halfway: to even
  CHECK(detail::float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);  // halfway: to even (up)
  CHECK(detail::bf16_to_float(0x4040) == 3.0f);
  CHECK(std::isnan(detail::bf16_to_float(detail::float_to_bf16(std::nanf("")))));
}

TEST_CASE("reductions over raw bytes: identities, every op, wrapping integers, refused dtypes") {
  float f[2]{};
  fill_identity(DType::fp32, ReduceOp::min, reinterpret_cast<std::byte*>(f), 2);
  CHECK(f[0] == INFINITY);
  float values[2] = {3.0f, -2.0f};
  reduce_bytes(DType::fp32, ReduceOp::min, 2, reinterpret_cast<std::byte*>(f), reinterpret_cast<const std::byte*>(values), 2);
  CHECK(f[1] == -2.0f);
  std::int32_t big = std::numeric_limits<std::int32_t>::max(), one = 1;
  reduce_bytes(DType::int32, ReduceOp::sum, 1, reinterpret_cast<std::byte*>(&big), reinterpret_cast<const std::byte*>(&one), 1);
  CHECK(big == std::numeric_limits<std::int32_t>::min());  // wraps, no undefined behaviour
  std::uint16_t half[1]{};
  store_integer(DType::bf16, reinterpret_cast<std::byte*>(half), 6);
  std::uint16_t three{};
  store_integer(DType::bf16, reinterpret_cast<std::byte*>(&three), 3);
  reduce_bytes(DType::bf16, ReduceOp::avg, 3, reinterpret_cast<std::byte*>(half), reinterpret_cast<const std::byte*>(&three), 1);
  CHECK(detail::bf16_to_float(half[0]) == 7.0f);  // 6 + 3/3
  std::byte raw[1]{};
  SHARDALG_CHECK_THROWS_CONTAINING(reduce_bytes(DType::fp8, ReduceOp::sum, 1, raw, raw, 1), Error, "reductions of dtype 'fp8' are not supported");
  SHARDALG_CHECK_THROWS_CONTAINING(reduce_bytes(DType::boolean, ReduceOp::max, 1, raw, raw, 1), Error, "reductions of dtype 'bool' are not supported");
  std::byte pair[16]{};
  SHARDALG_CHECK_THROWS_CONTAINING(reduce_bytes(DType::complex64, ReduceOp::sum, 1, pair, pair, 1), Error, "reductions of dtype 'complex64'");
  std::int16_t counts[2] = {30000, -5}, more[2] = {10000, 7};
  reduce_bytes(DType::int16, ReduceOp::sum, 1, reinterpret_cast<std::byte*>(counts), reinterpret_cast<const std::byte*>(more), 2);
  CHECK(counts[0] == -25536);  // wraps at 16 bits
  CHECK(counts[1] == 2);
  SHARDALG_CHECK_THROWS_CONTAINING(parse_dtype("fp12"), Error, "unknown dtype 'fp12'");
}

TEST_CASE("DType: one table of names, sizes and kinds; text parsed once") {
  for (DType d : {DType::fp64, DType::int64, DType::fp32, DType::int32, DType::bf16, DType::fp16, DType::fp8, DType::int8, DType::bytes,
                  DType::int16, DType::boolean, DType::complex64, DType::complex128})
    CHECK(parse_dtype(to_string(d)) == d);  // names round-trip
  CHECK(element_bytes(DType::complex128) == 16);
  CHECK(element_bytes(DType::complex64) == 8);
  CHECK(element_bytes(DType::int16) == 2);
  CHECK(element_bytes(DType::boolean) == 1);
  CHECK(element_bytes(DType::fp64) == 8);
  CHECK(element_bytes(DType::int32) == 4);
  CHECK(element_bytes(DType::bf16) == 2);
  CHECK(element_bytes(DType::fp8) == 1);
  static_assert(element_bytes(DType::fp16) == 2 && to_string(DType::int8) == "int8", "the table is usable at compile time");
  CHECK_FALSE(has_arithmetic(DType::bytes));
  CHECK(is_integer(DType::int8));
  CHECK_FALSE(is_integer(DType::bf16));
  SHARDALG_CHECK_THROWS_CONTAINING(arithmetic_dtype(DType::fp8), Error, "reductions of dtype 'fp8' are not supported");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_dtype("FP32"), Error, "unknown dtype 'FP32' (fp64, int64, fp32");
  CHECK(detail::concat(DType::bf16) == "bf16");
}

TEST_CASE("dtype_names lists the table, each name parsing back") {
  CHECK(dtype_names() == "fp64, int64, fp32, int32, bf16, fp16, fp8, int8, bytes, int16, bool, complex64, complex128");
  std::string names = dtype_names() + ", ";
  for (std::size_t at = 0, comma; (comma = names.find(", ", at)) != std::string::npos; at = comma + 2)
    CHECK(to_string(parse_dtype(names.substr(at, comma - at))) == names.substr(at, comma - at));
}
