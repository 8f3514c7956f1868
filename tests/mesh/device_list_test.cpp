#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("XLA's iota-transpose form expands like arange.reshape.transpose") {
  auto parsed = parse_device_list("[2,2]<=[2,2]T(1,0)");
  CHECK(parsed.dims == Dims{2, 2});
  CHECK(parsed.devices == std::vector<index_t>{0, 2, 1, 3});
  CHECK(parse_device_list("[8]<=[2,4]T(1,0)").devices == std::vector<index_t>{0, 4, 1, 5, 2, 6, 3, 7});
  CHECK(parse_device_list("[2,3]<=[6]").devices == std::vector<index_t>{0, 1, 2, 3, 4, 5});
  // arange(24).reshape(2,3,4).transpose(2,0,1): element [a][b][c] = 12*b + 4*c + a.
  auto three = parse_device_list("[4,2,3]<=[2,3,4]T(2,0,1)").devices;
  CHECK(three[0] == 0);
  CHECK(three[1] == 4);
  CHECK(three[3] == 12);
  CHECK(three[6] == 1);
  CHECK(parse_device_list("[3]:[5,1,9]").devices == std::vector<index_t>{5, 1, 9});
  CHECK(parse_device_list("3, 0, 2, 1").devices == std::vector<index_t>{3, 0, 2, 1});
}

TEST_CASE("device lists print in canonical compact form and parse back") {
  CHECK(format_device_list(Dims{2, 2}, {0, 2, 1, 3}) == "[2,2]<=[2,2]T(1,0)");
  CHECK(format_device_list(Dims{4, 2}, {0, 1, 2, 3, 4, 5, 6, 7}) == "[4,2]<=[8]");
  CHECK(format_device_list(Dims{8}, {0, 4, 1, 5, 2, 6, 3, 7}) == "[8]<=[2,4]T(1,0)");
  CHECK(format_device_list(Dims{3}, {5, 1, 9}) == "[3]:[5,1,9]");
  CHECK(format_device_list(Dims{4}, {0, 3, 1, 2}) == "[4]:[0,3,1,2]");
  for (std::string text : {"[4,2,3]<=[2,3,4]T(2,0,1)", "[2,3,4]<=[2,3,4]T(0,2,1)", "[6]<=[2,3]T(1,0)"}) {
    auto parsed = parse_device_list(text);
    auto again = parse_device_list(format_device_list(parsed.dims, parsed.devices));
    CHECK(again.devices == parsed.devices);
  }
  // Canonical form merges dims that stay adjacent and drops size-1 dims.
  auto canonical = IotaTranspose{Dims{2, 1, 3}, Dims{2, 1, 0}}.canonical();
  CHECK(canonical.reshape_dims == Dims{2, 3});
  CHECK(canonical.perm == Dims{1, 0});
  auto merged = IotaTranspose{Dims{2, 3, 4}, Dims{1, 2, 0}}.canonical();
  CHECK(merged.reshape_dims == Dims{2, 12});
  CHECK(merged.perm == Dims{1, 0});
  CHECK(IotaTranspose{Dims{2, 3}, Dims{0, 1}}.canonical().reshape_dims == Dims{6});
}

TEST_CASE("malformed device lists are parse errors naming the text") {
  SHARDALG_CHECK_THROWS_CONTAINING(parse_device_list("[8]<=[2,4]T(1,1)"), ParseError, "is not a permutation");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_device_list("[8]<=[2,3]"), ParseError, "hold 8 devices but reshape dims [2, 3] hold 6");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_device_list("[4]<=[2,2]T(1)"), ParseError, "does not match");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_device_list("[2]:[1,2,3]"), ParseError, "need 2 devices, got 3");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_device_list("[2,x]"), ParseError, "device list '[2,x]'");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_device_list("[0]<=[0]"), ParseError, "must be positive");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_device_list("[4294967296]<=[4294967296]"), ParseError, "4294967296 devices, over the limit 16777216");
}
