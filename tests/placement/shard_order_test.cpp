#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("shard order to strided placements (docs/semantics.md section 2)") {
  ShardOrder order{{0, {2, 0, 1}}};
  auto placements = placements_from_shard_order(Dims{4, 3, 2}, order);
  CHECK(placements == std::vector{Placement::strided_shard(0, 2), Placement::strided_shard(0, 2), Placement::shard(0)});
  auto back = shard_order_from_placements(Dims{4, 3, 2}, placements);
  REQUIRE(back.has_value());
  CHECK(*back == order);
  // FSDP2 over TP on (dp=D, tp=T): [tp, dp] is (_S(0, T), S(0)).
  CHECK(placements_from_shard_order(Dims{3, 2}, ShardOrder{{0, {1, 0}}}) ==
        std::vector{Placement::strided_shard(0, 2), Placement::shard(0)});
  // Two tensor dims, and unlisted mesh dims are Replicate.
  auto two = placements_from_shard_order(Dims{2, 2, 2}, ShardOrder{{0, {2}}, {1, {1}}});
  CHECK(two == std::vector{Placement::replicate(), Placement::shard(1), Placement::shard(0)});
  SHARDALG_CHECK_THROWS_CONTAINING(placements_from_shard_order(Dims{2, 2}, ShardOrder{{0, {0, 0}}}), Error, "listed twice");
  SHARDALG_CHECK_THROWS_CONTAINING(placements_from_shard_order(Dims{2, 2}, ShardOrder{{0, {5}}}), Error, "mesh dim 5 is out of range");
}

TEST_CASE("placements that express no shard order are 'not convertible'") {
  Dims mesh{4, 8};
  CHECK_FALSE(shard_order_from_placements(mesh, std::vector{Placement::strided_shard(0, 2), Placement::strided_shard(1, 2)}));
  CHECK_FALSE(shard_order_from_placements(mesh, std::vector{Placement::strided_shard(0, 2), Placement::shard(1)}));
  CHECK_FALSE(shard_order_from_placements(mesh, std::vector{Placement::strided_shard(1, 16), Placement::shard(1)}));
  CHECK_FALSE(shard_order_from_placements(mesh, std::vector{Placement::strided_shard(1, 8, StridedSemantics::legacy),
                                                            Placement::shard(1)}));
  auto plain = shard_order_from_placements(mesh, std::vector{Placement::shard(1), Placement::shard(1)});
  REQUIRE(plain.has_value());
  CHECK(*plain == ShardOrder{{1, {0, 1}}});
  CHECK(default_shard_order(std::vector{Placement::shard(1), Placement::shard(1)}) == *plain);
}

TEST_CASE("shard order text form") {
  ShardOrder order{{0, {2, 0, 1}}, {1, {3}}};
  CHECK(format_shard_order(order) == "0:[2,0,1];1:[3]");
  CHECK(parse_shard_order("1:[3]; 0:[2,0,1]") == order);
  std::vector<std::string> names{"dp", "tp"};
  CHECK(parse_shard_order("0:[tp,dp]", names) == ShardOrder{{0, {1, 0}}});
  SHARDALG_CHECK_THROWS_CONTAINING(parse_shard_order("0:[ep]", names), ParseError, "unknown mesh dim 'ep'");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_shard_order("0:[1];0:[2]"), ParseError, "tensor dim 0 appears twice");
}
