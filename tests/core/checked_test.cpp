#include "../test_support.hpp"

#include <limits>

using namespace shardalg;

TEST_CASE("checked arithmetic computes in range and names the operation on overflow") {
  constexpr index_t max = std::numeric_limits<index_t>::max();
  CHECK(checked_add(2, 3) == 5);
  CHECK(checked_sub(2, 3) == -1);
  CHECK(checked_mul(1 << 20, 1 << 20) == index_t{1} << 40);
  SHARDALG_CHECK_THROWS_CONTAINING(checked_add(max, 1), OverflowError, "overflow in a + b: 9223372036854775807 + 1");
  SHARDALG_CHECK_THROWS_CONTAINING(checked_sub(-max, 2), OverflowError, "a - b");
  SHARDALG_CHECK_THROWS_CONTAINING(checked_mul(index_t{1} << 40, index_t{1} << 40), OverflowError, "a * b");
  const index_t big[] = {index_t{1} << 32, index_t{1} << 32};
  SHARDALG_CHECK_THROWS_CONTAINING(checked_product(big), OverflowError, "int64 overflow in the product of [4294967296, 4294967296]");
}

TEST_CASE("ceil_div rounds up without overflowing and rejects bad divisors") {
  CHECK(ceil_div(10, 4) == 3);
  CHECK(ceil_div(8, 4) == 2);
  CHECK(ceil_div(0, 4) == 0);
  CHECK(ceil_div(std::numeric_limits<index_t>::max(), 2) == index_t{1} << 62);
  SHARDALG_CHECK_THROWS_CONTAINING(ceil_div(5, 0), Error, "divisor must be positive, got 0");
  static_assert(ceil_div(7, 2) == 4);
}
