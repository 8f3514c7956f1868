#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("str and repr forms match PyTorch's") {
  CHECK(to_string(Placement::replicate()) == "R");
  CHECK(to_string(Placement::shard(0)) == "S(0)");
  CHECK(to_string(Placement::strided_shard(0, 2)) == "_S(0, 2)");
  CHECK(to_string(Placement::partial()) == "P(sum)");
  CHECK(to_repr(Placement::replicate()) == "Replicate()");
  CHECK(to_repr(Placement::shard(1)) == "Shard(dim=1)");
  CHECK(to_repr(Placement::strided_shard(0, 2)) == "_StridedShard(dim=0, sf=2)");
  CHECK(to_repr(Placement::partial(ReduceOp::avg)) == "Partial(avg)");
  CHECK(to_string(Placement::strided_shard(0, 2, StridedSemantics::legacy)) == "_S(0, 2, legacy)");
}

TEST_CASE("every written form parses") {
  CHECK(parse_placement("R") == Placement::replicate());
  CHECK(parse_placement("Replicate()") == Placement::replicate());
  CHECK(parse_placement("S(0)") == Placement::shard(0));
  CHECK(parse_placement("Shard(dim=3)") == Placement::shard(3));
  CHECK(parse_placement("Shard(2)") == Placement::shard(2));
  CHECK(parse_placement("_S(0,2)") == Placement::strided_shard(0, 2));
  CHECK(parse_placement(" _S( 1 , 4 ) ") == Placement::strided_shard(1, 4));
  CHECK(parse_placement("_StridedShard(dim=0, sf=2)") == Placement::strided_shard(0, 2));
  CHECK(parse_placement("_StridedShard(dim=0, split_factor=2)") == Placement::strided_shard(0, 2));
  CHECK(parse_placement("_S(0,2,legacy)") == Placement::strided_shard(0, 2, StridedSemantics::legacy));
  CHECK(parse_placement("P") == Placement::partial());
  CHECK(parse_placement("P(max)") == Placement::partial(ReduceOp::max));
  CHECK(parse_placement("Partial(product)") == Placement::partial(ReduceOp::product));
  CHECK(parse_placement("Partial(reduce_op='min')") == Placement::partial(ReduceOp::min));
  CHECK(parse_placements("_S(0,2),S(0)") == std::vector{Placement::strided_shard(0, 2), Placement::shard(0)});
  CHECK(parse_placements("[Shard(dim=0), Replicate()]") == std::vector{Placement::shard(0), Placement::replicate()});
  CHECK(parse_placements("(R, P(avg))") == std::vector{Placement::replicate(), Placement::partial(ReduceOp::avg)});
  std::vector<Placement> all = {Placement::replicate(), Placement::shard(2), Placement::strided_shard(1, 3),
                                Placement::partial(ReduceOp::avg)};
  CHECK(parse_placements(format_placements(all)) == all);
}

TEST_CASE("malformed placements are parse errors naming the text") {
  SHARDALG_CHECK_THROWS_CONTAINING(parse_placement("Q(1)"), ParseError, "unknown placement 'Q'");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_placement("S(-1)"), ParseError, "shard dim -1 must be non-negative");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_placement("_S(0,0)"), ParseError, "split factor 0 must be >= 1");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_placement("S(0"), ParseError, "expected ')'");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_placement("P(mean)"), ParseError, "unknown reduce op 'mean'");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_placement("Shard(d=0)"), ParseError, "unexpected argument name 'd'");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_placements(""), ParseError, "expected at least one placement");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_placements("S(0),"), ParseError, "placements 'S(0),'");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_placement("S(99999999999999999999)"), OverflowError, "does not fit in int64");
}

TEST_CASE("block-cyclic text forms") {
  CHECK(to_string(Placement::block_cyclic(0, 64)) == "BC(0, 64)");
  CHECK(to_string(Placement::block_cyclic(1, 2, 1)) == "BC(1, 2, 1)");
  CHECK(to_repr(Placement::block_cyclic(1, 2, 1)) == "BlockCyclic(dim=1, block=2, src=1)");
  CHECK(parse_placement("BC(0,64)") == Placement::block_cyclic(0, 64));
  CHECK(parse_placement("BlockCyclic(dim=1, block=2, src=1)") == Placement::block_cyclic(1, 2, 1));
  CHECK(parse_placements("BC(0,2),BC(1,2)") == std::vector{Placement::block_cyclic(0, 2), Placement::block_cyclic(1, 2)});
  CHECK(Placement::block_cyclic(0, 2) != Placement::block_cyclic(0, 2, 1));
  CHECK(Placement::block_cyclic(0, 2).splits_tensor());
  SHARDALG_CHECK_THROWS_CONTAINING(parse_placement("BC(0,0)"), ParseError, "block size 0 must be >= 1");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_placement("BC(0,2,-1)"), ParseError, "source coordinate -1");
  SHARDALG_CHECK_THROWS_CONTAINING(parse_placement("BC(0)"), ParseError, "expected ','");
  SHARDALG_CHECK_THROWS_CONTAINING(Placement::block_cyclic(0, 0), Error, "block size must be >= 1");
}
