// Checked int64 arithmetic: an overflow is an OverflowError naming the operation, never UB.
#pragma once

#include <cstdint>
#include <span>
#include <utility>

#include "shardalg/core/error.hpp"

namespace shardalg {

// Every extent, offset and element count in shardalg is an index_t.
using index_t = std::int64_t;

// a + b, or OverflowError("int64 overflow in a + b: 9223372036854775807 + 1").
constexpr index_t checked_add(index_t a, index_t b) {
  index_t result = 0;
  if (__builtin_add_overflow(a, b, &result)) detail::fail<OverflowError>("int64 overflow in a + b: ", a, " + ", b);
  return result;
}

constexpr index_t checked_sub(index_t a, index_t b) {
  index_t result = 0;
  if (__builtin_sub_overflow(a, b, &result)) detail::fail<OverflowError>("int64 overflow in a - b: ", a, " - ", b);
  return result;
}

constexpr index_t checked_mul(index_t a, index_t b) {
  index_t result = 0;
  if (__builtin_mul_overflow(a, b, &result)) detail::fail<OverflowError>("int64 overflow in a * b: ", a, " * ", b);
  return result;
}

// f(), where an OverflowError gets describe() (the input whose size overflowed) in front of its
// message: "zero3: param 'w' (9223372036854775807 elements) padded for 4 ranks: int64 overflow ...".
template <class F, class Describe>
auto with_overflow_context(F&& f, Describe&& describe) {
  try {
    return std::forward<F>(f)();
  } catch (const OverflowError& e) {
    detail::fail<OverflowError>(describe(), ": ", e.what());
  }
}

// ceil(a / b) for a >= 0, b > 0, without the overflow of (a + b - 1) / b.
// Example: ceil_div(10, 4) == 3, ceil_div(0, 4) == 0.
constexpr index_t ceil_div(index_t a, index_t b) {
  if (b <= 0) detail::fail("ceil_div: divisor must be positive, got ", b);
  if (a < 0) detail::fail("ceil_div: dividend must be non-negative, got ", a);
  return a / b + (a % b != 0 ? 1 : 0);
}

namespace detail {
[[noreturn]] [[gnu::cold]] inline void fail_product_overflow(std::span<const index_t> values) {
  std::ostringstream list;
  for (std::size_t i = 0; i < values.size(); ++i) list << (i ? ", " : "") << values[i];
  fail<OverflowError>("int64 overflow in the product of [", list.str(), "]");
}
}  // namespace detail

// Product of all values (1 for none), or OverflowError naming them all (a shape's element count:
// "int64 overflow in the product of [9223372036854775807, 2]").
constexpr index_t checked_product(std::span<const index_t> values) {
  index_t result = 1;
  for (index_t v : values)
    if (__builtin_mul_overflow(result, v, &result)) detail::fail_product_overflow(values);
  return result;
}

}  // namespace shardalg
