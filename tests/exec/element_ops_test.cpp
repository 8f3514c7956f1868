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
  fill_identity("fp32", ReduceOp::min, reinterpret_cast<std::byte*>(f), 2);
  CHECK(f[0] == INFINITY);
  float values[2] = {3.0f, -2.0f};
  reduce_bytes("fp32", ReduceOp::min, 2, reinterpret_cast<std::byte*>(f), reinterpret_cast<const std::byte*>(values), 2);
  CHECK(f[1] == -2.0f);
  std::int32_t big = std::numeric_limits<std::int32_t>::max(), one = 1;
  reduce_bytes("int32", ReduceOp::sum, 1, reinterpret_cast<std::byte*>(&big), reinterpret_cast<const std::byte*>(&one), 1);
  CHECK(big == std::numeric_limits<std::int32_t>::min());  // wraps, no undefined behaviour
  std::uint16_t half[1]{};
  store_integer("bf16", reinterpret_cast<std::byte*>(half), 6);
  std::uint16_t three{};
  store_integer("bf16", reinterpret_cast<std::byte*>(&three), 3);
  reduce_bytes("bf16", ReduceOp::avg, 3, reinterpret_cast<std::byte*>(half), reinterpret_cast<const std::byte*>(&three), 1);
  CHECK(detail::bf16_to_float(half[0]) == 7.0f);  // 6 + 3/3
  std::byte raw[1]{};
  SHARDALG_CHECK_THROWS_CONTAINING(reduce_bytes("fp8", ReduceOp::sum, 1, raw, raw, 1), Error, "reductions of dtype 'fp8' are not supported");
  SHARDALG_CHECK_THROWS_CONTAINING(fill_identity("fp12", ReduceOp::sum, raw, 1), Error, "unknown dtype 'fp12'");
}
