// Laws of index maps: composition and intersection.
#include "generators.hpp"

using namespace shardalg;
using namespace shardalg::testing;

TEST_CASE("properties of index maps") {
  SHARDALG_PROPERTY("composition is associative and the full selection is its identity", [] {
    IndexMap a = *gen_index_map(40);
    IndexMap b = *gen_index_map(a.size());
    IndexMap c = *gen_index_map(b.size());
    RC_ASSERT(a.compose(b).compose(c) == a.compose(b.compose(c)));
    RC_ASSERT(a.compose(IndexMap::contiguous(0, a.size())) == a);
    RC_ASSERT(IndexMap::contiguous(0, 40).compose(a) == a);
  });

  SHARDALG_PROPERTY("composition maps each selected local position through the map", [] {
    IndexMap a = *gen_index_map(40);
    IndexMap b = *gen_index_map(a.size());
    IndexMap composed = a.compose(b);
    RC_ASSERT(composed.size() == b.size());
    for (index_t i = 0; i < b.size(); ++i) RC_ASSERT(composed.global_at(i) == a.global_at(b.global_at(i)));
  });

  SHARDALG_PROPERTY("intersection segments are exactly the shared positions, with both local positions", [] {
    IndexMap a = *gen_index_map(40);
    IndexMap b = *gen_index_map(40);
    std::vector<index_t> shared;
    for (const Segment& s : intersect(a, b))
      for (index_t i = 0; i < s.length; ++i) {
        RC_ASSERT(a.global_at(s.local_a + i) == s.global + i);
        RC_ASSERT(b.global_at(s.local_b + i) == s.global + i);
        shared.push_back(s.global + i);
      }
    std::vector<index_t> expected;
    for (index_t g = 0; g < 40; ++g)
      if (a.contains(g) && b.contains(g)) expected.push_back(g);
    RC_ASSERT(shared == expected);
    auto swapped = intersect(b, a);
    auto forward = intersect(a, b);
    RC_ASSERT(swapped.size() == forward.size());
    for (std::size_t i = 0; i < forward.size(); ++i) {
      RC_ASSERT(swapped[i].local_a == forward[i].local_b);
      RC_ASSERT(swapped[i].local_b == forward[i].local_a);
    }
  });
}
