#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("placement kinds and fields") {
  constexpr Placement s = Placement::strided_shard(1, 4);
  static_assert(s.is_strided_shard() && s.splits_tensor() && s.dim() == 1 && s.split_factor() == 4);
  CHECK(Placement::shard(0).splits_tensor());
  CHECK_FALSE(Placement::replicate().splits_tensor());
  CHECK(Placement::partial(ReduceOp::max).reduce_op() == ReduceOp::max);
  // StridedShard(d, 1) is a distinct kind from Shard(d), as in PyTorch.
  CHECK(Placement::strided_shard(0, 1) != Placement::shard(0));
  CHECK(Placement::strided_shard(0, 2) != Placement::strided_shard(0, 2, StridedSemantics::legacy));
  CHECK(Placement::partial(ReduceOp::sum) != Placement::partial(ReduceOp::avg));
  SHARDALG_CHECK_THROWS_CONTAINING(Placement::strided_shard(0, 0), Error, "sf=0): split factor must be >= 1");
  SHARDALG_CHECK_THROWS_CONTAINING(Placement::shard(-1), Error, "shard dim -1");
}

TEST_CASE("source_reduce_op: the one pending reduction of a source, mixed ops refused") {
  std::vector<Placement> sum_twice{Placement::partial(ReduceOp::sum), Placement::shard(0), Placement::partial(ReduceOp::sum)};
  CHECK(source_reduce_op(sum_twice, "test") == ReduceOp::sum);
  std::vector<Placement> none{Placement::replicate(), Placement::shard(1)};
  CHECK_FALSE(source_reduce_op(none, "test").has_value());
  std::vector<Placement> mixed{Placement::partial(ReduceOp::sum), Placement::partial(ReduceOp::max)};
  SHARDALG_CHECK_THROWS_CONTAINING(source_reduce_op(mixed, "lowering"), Error, "lowering: source mixes Partial reduce ops sum and max");
}
