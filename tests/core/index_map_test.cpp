#include "../test_support.hpp"

using namespace shardalg;
using shardalg::testing::positions;

TEST_CASE("runs stay maximal and ordered") {
  IndexMap map;
  map.append(0, 2);
  map.append(2, 3);  // adjacent: extends
  map.append(7, 0);  // empty: skipped
  map.append(9, 1);
  CHECK(map.runs().size() == 2);
  CHECK(map.size() == 6);
  CHECK(positions(map) == std::vector<index_t>{0, 1, 2, 3, 4, 9});
  CHECK(map.first() == 0);
  CHECK(map.global_end() == 10);
  CHECK(map.global_at(5) == 9);
  CHECK(map.local_of(9) == 5);
  CHECK_FALSE(map.local_of(6).has_value());
  CHECK_FALSE(map.contains(10));
  SHARDALG_CHECK_THROWS_CONTAINING(map.append(3, 1), Error, "is not after the previous end 10");
  SHARDALG_CHECK_THROWS_CONTAINING(map.append(-1, 1), Error, "negative run");
}

TEST_CASE("composition selects local positions (a shard of a shard)") {
  IndexMap map;
  map.append(10, 4);
  map.append(20, 4);
  IndexMap picked = map.compose(IndexMap::contiguous(2, 4));
  CHECK(positions(picked) == std::vector<index_t>{12, 13, 20, 21});
  IndexMap strided;
  strided.append(0, 1);
  strided.append(5, 2);
  CHECK(positions(map.compose(strided)) == std::vector<index_t>{10, 21, 22});
  CHECK(map.compose(IndexMap()).empty());
  SHARDALG_CHECK_THROWS_CONTAINING(map.compose(IndexMap::contiguous(6, 3)), Error, "selection reaches 9 but the map has 8");
}

TEST_CASE("intersection gives shared segments with both local positions") {
  IndexMap a = IndexMap::contiguous(0, 6);
  IndexMap b;
  b.append(4, 4);
  b.append(10, 2);
  auto segments = intersect(a, b);
  REQUIRE(segments.size() == 1);
  CHECK(segments[0] == Segment{4, 0, 4, 2});
  IndexMap c;
  c.append(1, 2);
  c.append(5, 6);
  auto more = intersect(b, c);
  REQUIRE(more.size() == 2);
  CHECK(more[0] == Segment{1, 2, 5, 3});
  CHECK(more[1] == Segment{4, 7, 10, 1});
  CHECK(intersect(a, IndexMap()).empty());
  CHECK(positions(b.restrict_to(5, 11)) == std::vector<index_t>{5, 6, 7, 10});
}

TEST_CASE("local_of_range: a range held in one run, with its local start") {
  IndexMap map;
  map.append(0, 4);
  map.append(8, 2);
  CHECK(map.local_of_range(2, 2) == 2);
  CHECK_FALSE(map.local_of_range(2, 3).has_value());  // position 4 is not held
  CHECK(map.local_of_range(8, 2) == 4);
  CHECK_FALSE(map.local_of_range(3, 6).has_value());  // both ends held, the middle not
  CHECK_FALSE(map.local_of_range(10, 1).has_value());
  CHECK_FALSE(map.local_of_range(5, 1).has_value());
  // The same answer as checking both ends, for every range of this map.
  for (index_t g = 0; g < 11; ++g)
    for (index_t n = 1; g + n <= 11; ++n) {
      auto first = map.local_of(g), last = map.local_of(g + n - 1);
      bool ends_contiguous = first && last && *last - *first == n - 1;
      CHECK(map.local_of_range(g, n).has_value() == ends_contiguous);
      if (ends_contiguous) CHECK(map.local_of_range(g, n) == first);
    }
}
