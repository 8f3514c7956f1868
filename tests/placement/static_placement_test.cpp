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
