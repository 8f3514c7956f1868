#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("a flat interval is at most 2*ndim-1 boxes in flat order") {
  auto boxes = flat_interval_boxes(Dims{3, 4}, 2, 8);
  REQUIRE(boxes.size() == 3);
  CHECK(boxes[0] == Box(Dims{0, 2}, Dims{1, 2}));
  CHECK(boxes[1] == Box(Dims{1, 0}, Dims{1, 4}));
  CHECK(boxes[2] == Box(Dims{2, 0}, Dims{1, 2}));
  CHECK(flat_interval_boxes(Dims{3, 4}, 0, 12) == std::vector<Box>{Box(Dims{0, 0}, Dims{3, 4})});
  CHECK(flat_interval_boxes(Dims{3, 4}, 4, 0).empty());
  auto cube = flat_interval_boxes(Dims{4, 3, 5}, 7, 40);  // [0,1,2] .. [3,0,1]
  CHECK(cube.size() <= 5);
  index_t total = 0;
  for (const Box& b : cube) total += b.volume();
  CHECK(total == 40);
  CHECK(flat_interval_boxes(Dims{}, 0, 1).size() == 1);
  SHARDALG_CHECK_THROWS_CONTAINING(flat_interval_boxes(Dims{3, 4}, 10, 3), Error, "[10, 13) is outside a tensor of shape [3, 4]");
}

TEST_CASE("local boxes map through a strided tile to several global boxes") {
  IndexMap rows;
  rows.append(0, 2);
  rows.append(5, 1);
  Tile tile(SmallVector<IndexMap, 4>{rows, IndexMap::contiguous(0, 5)});
  auto global = tile.global_boxes(Box(Dims{1, 0}, Dims{2, 2}));
  REQUIRE(global.size() == 2);
  CHECK(global[0] == Box(Dims{1, 0}, Dims{1, 2}));
  CHECK(global[1] == Box(Dims{5, 0}, Dims{1, 2}));
}
