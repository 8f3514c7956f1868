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
