#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("the scanner reads integers and names and reports positions") {
  detail::Scanner in(" dp = -12 ", "test");
  CHECK(in.identifier() == "dp");
  in.expect("=");
  CHECK(in.integer() == -12);
  CHECK(in.at_end());
  detail::Scanner big("99999999999999999999", "test");
  SHARDALG_CHECK_THROWS_CONTAINING(big.integer(), OverflowError, "does not fit in int64");
  detail::Scanner bad("x", "test");
  SHARDALG_CHECK_THROWS_CONTAINING(bad.integer(), ParseError, "test 'x': expected an integer at position 0");
}
