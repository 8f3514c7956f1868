#include "../test_support.hpp"

using namespace shardalg;

static_assert(StaticShard<1>::value == Placement::shard(1));
static_assert(StaticStridedShard<0, 4>::value == Placement::strided_shard(0, 4));
static_assert(StaticReplicate::value == Placement::replicate());
static_assert(StaticPartial<ReduceOp::max>::value == Placement::partial(ReduceOp::max));
static_assert(StaticPlacement<decltype(shard_c<0>)>);
static_assert(!StaticPlacement<int>);

TEST_CASE("static placements carry their run-time value") {
  CHECK(to_string(decltype(strided_shard_c<0, 2>)::value) == "_S(0, 2)");
  CHECK(to_string(decltype(partial_c<>)::value) == "P(sum)");
}

static_assert(StaticBlockCyclic<0, 64>::value == Placement::block_cyclic(0, 64));
static_assert(decltype(block_cyclic_c<1, 2, 1>)::value == Placement::block_cyclic(1, 2, 1));

TEST_CASE("a static block-cyclic placement prints as the run-time one") {
  CHECK(to_string(decltype(block_cyclic_c<0, 64>)::value) == "BC(0, 64)");
}
