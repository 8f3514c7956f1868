#include "../test_support.hpp"

using namespace shardalg;
using shardalg::testing::positions;
using V = std::vector<index_t>;

TEST_CASE("nested-chunk strided shard (current PyTorch)") {
  Placement p = Placement::strided_shard(0, 2);
  CHECK(positions(local_split(p, 9, 4, 0)) == V{0, 1, 5});
  CHECK(positions(local_split(p, 9, 4, 1)) == V{2, 3, 6});
  CHECK(positions(local_split(p, 9, 4, 2)) == V{4, 7});
  CHECK(positions(local_split(p, 9, 4, 3)) == V{8});
  CHECK(positions(local_split(p, 6, 2, 0)) == V{0, 1, 3, 4});
  CHECK(positions(local_split(p, 6, 2, 1)) == V{2, 5});
}

TEST_CASE("legacy strided shard (PyTorch before late 2025)") {
  Placement p = Placement::strided_shard(0, 2, StridedSemantics::legacy);
  CHECK(positions(local_split(p, 6, 2, 0)) == V{0, 1, 4, 5});
  CHECK(positions(local_split(p, 6, 2, 1)) == V{2, 3});
  // The two definitions agree when n % (k * sf) == 0.
  Placement nested = Placement::strided_shard(0, 2);
  for (index_t r = 0; r < 2; ++r) CHECK(local_split(p, 8, 2, r) == local_split(nested, 8, 2, r));
}

TEST_CASE("shard is one torch.chunk piece") {
  CHECK(positions(local_split(Placement::shard(0), 10, 4, 3)) == V{9});
  CHECK(local_split(Placement::shard(0), 6, 4, 3).empty());
}

TEST_CASE("block-cyclic: block k goes to coordinate (src + k) mod n (ScaLAPACK)") {
  Placement p = Placement::block_cyclic(0, 2);
  CHECK(positions(local_split(p, 10, 2, 0)) == V{0, 1, 4, 5, 8, 9});
  CHECK(positions(local_split(p, 10, 2, 1)) == V{2, 3, 6, 7});
  // n = 10, block 3, 3 processes, first block on process 1 (RSRC = 1); the last block is short.
  Placement shifted = Placement::block_cyclic(0, 3, 1);
  CHECK(positions(local_split(shifted, 10, 3, 0)) == V{6, 7, 8});
  CHECK(positions(local_split(shifted, 10, 3, 1)) == V{0, 1, 2, 9});
  CHECK(positions(local_split(shifted, 10, 3, 2)) == V{3, 4, 5});
  CHECK(local_split(p, 0, 2, 0).empty());
  // Local lengths agree with ScaLAPACK's NUMROC: blocks owned, the last one possibly partial.
  for (index_t n : {0, 1, 7, 64, 100})
    for (index_t nb : {1, 3, 8})
      for (index_t procs : {1, 2, 3, 4})
        for (index_t src = 0; src < procs; ++src) {
          index_t total = 0;
          for (index_t r = 0; r < procs; ++r) {
            index_t blocks = ceil_div(n, nb), mine = 0, length = 0;
            for (index_t k = 0; k < blocks; ++k)
              if ((src + k) % procs == r) ++mine, length += std::min(nb, n - k * nb);
            IndexMap map = local_split(Placement::block_cyclic(0, nb, src), n, procs, r);
            CHECK(map.size() == length);
            CHECK(static_cast<index_t>(map.runs().size()) <= mine);
            total += map.size();
          }
          CHECK(total == n);
        }
}

TEST_CASE("split factors beyond the length stop at the last non-empty piece") {
  // torch.chunk(16, 22222222222) gives 16 pieces of one element and empty ones after them: the
  // split is over after 16 pieces (this once walked all 2.2e10 pieces).
  index_t huge = 22222222222;
  for (StridedSemantics semantics : {StridedSemantics::nested_chunk, StridedSemantics::legacy}) {
    Placement p = Placement::strided_shard(0, huge, semantics);
    index_t total = 0;
    for (index_t r = 0; r < 4; ++r) total += local_split(p, 16, 4, r).size();
    CHECK(total == 16);
  }
  // Nested chunk: piece j is element j, and coordinate 0 of 4 keeps each one-element piece.
  CHECK(positions(local_split(Placement::strided_shard(0, huge), 3, 4, 0)) == V{0, 1, 2});
  CHECK(local_split(Placement::strided_shard(0, huge), 3, 4, 1).empty());
  MeshLayout layout = MeshLayout::parse("dp=4,tp=2", "_S(0,22222222222),S(0)", Dims{16, 8});
  index_t held = 0;
  for (index_t r = 0; r < 8; ++r) held += volume(layout.tile(r).shape());
  CHECK(held == 16 * 8);
  CHECK(layout.ranks_holding(Box(Dims{5, 0}, Dims{1, 8})).size() == 1);
}

TEST_CASE("a part of more than max_runs_per_dim runs is refused, naming the placement") {
  index_t length = index_t{1} << 40;
  SHARDALG_CHECK_THROWS_CONTAINING(local_split(Placement::block_cyclic(0, 1), length, 2, 0), Error, "BC(0, 1)");
  SHARDALG_CHECK_THROWS_CONTAINING(local_split(Placement::strided_shard(0, index_t{1} << 30), length, 2, 1), Error,
                                   "more than the limit of 16777216");
  // One run over the limit.
  SHARDALG_CHECK_THROWS_CONTAINING(local_split(Placement::block_cyclic(0, 1), 2 * max_runs_per_dim + 1, 2, 0), Error,
                                   "up to 16777217 separate runs");
}
