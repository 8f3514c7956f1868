#include "../test_support.hpp"

#include <chrono>
#include <cmath>
#include <limits>

#include "shardalg/core/deadline.hpp"

using namespace shardalg;

TEST_CASE("checked_timeout accepts positive timeouts up to the limit and names any other") {
  CHECK(checked_timeout(2.5) == 2.5);
  CHECK(checked_timeout(max_timeout_seconds) == max_timeout_seconds);
  SHARDALG_CHECK_THROWS_CONTAINING(checked_timeout(0), Error, "timeout 0 s must be positive and at most 1e+09 s");
  SHARDALG_CHECK_THROWS_CONTAINING(checked_timeout(-1), Error, "timeout -1 s");
  SHARDALG_CHECK_THROWS_CONTAINING(checked_timeout(std::nan("")), Error, "timeout nan s");
  SHARDALG_CHECK_THROWS_CONTAINING(checked_timeout(std::numeric_limits<double>::infinity()), Error, "timeout inf s");
  SHARDALG_CHECK_THROWS_CONTAINING(checked_timeout(2 * max_timeout_seconds), Error, "timeout 2e+09 s");
}

TEST_CASE("deadline_after lies the timeout ahead, even at the longest timeout") {
  auto before = std::chrono::steady_clock::now();
  auto deadline = deadline_after(0.5);
  auto after = std::chrono::steady_clock::now();
  CHECK(deadline - before >= std::chrono::milliseconds(500));
  CHECK(deadline - after <= std::chrono::milliseconds(500));
  CHECK(deadline_after(max_timeout_seconds) - after >= std::chrono::hours(24 * 365 * 31));
}
