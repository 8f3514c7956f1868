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

TEST_CASE("scanner errors echo the text escaped and shortened, the problem's values too") {
  detail::Scanner control("dp=2\nx", "mesh");
  control.identifier();
  control.expect("=");
  control.integer();
  SHARDALG_CHECK_THROWS_CONTAINING(control.expect_end(), ParseError, "mesh 'dp=2\\nx': unexpected text at position 5");  // after the newline, a space
  std::string long_name(300, 'Q');
  detail::Scanner placement(long_name, "placements");
  std::string name = placement.identifier();
  SHARDALG_CHECK_THROWS_CONTAINING(placement.fail_here("unknown placement '", name, "'"), ParseError,
                                   "... (300 characters)': unknown placement '" + std::string(100, 'Q') + "... (300 characters)' at position 300");
}
