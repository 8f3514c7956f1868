#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("tile shape, positions and maximal boxes in local order") {
  IndexMap rows;
  rows.append(0, 2);
  rows.append(5, 1);
  Tile tile(SmallVector<IndexMap, 4>{rows, IndexMap::contiguous(0, 5)});
  CHECK(tile.shape() == Dims{3, 5});
  CHECK(tile.volume() == 15);
  CHECK(tile.local_position(Dims{5, 4}) == 14);
  CHECK(tile.local_position(Dims{1, 0}) == 5);
  CHECK_FALSE(tile.local_position(Dims{2, 0}).has_value());
  auto boxes = tile.boxes();
  REQUIRE(boxes.size() == 2);
  CHECK(boxes[0] == Box(Dims{0, 0}, Dims{2, 5}));
  CHECK(boxes[1] == Box(Dims{5, 0}, Dims{1, 5}));
  CHECK(Tile::nothing(2).boxes().empty());
  CHECK(Tile::nothing(2).empty());
  CHECK(Tile::whole(Dims{}).boxes().size() == 1);  // a scalar is one element
}

TEST_CASE("tile intersection is separable") {
  Tile a = Tile::whole(Dims{4, 4});
  IndexMap rows;
  rows.append(1, 1);
  rows.append(3, 2);
  Tile b(SmallVector<IndexMap, 4>{rows, IndexMap::contiguous(2, 4)});
  TileOverlap overlap = intersect(a, b);
  REQUIRE(overlap.dims.size() == 2);
  CHECK(overlap.dims[0].size() == 2);  // rows 1 and 3 (row 4 is outside a)
  CHECK(overlap.volume() == 2 * 2);
  CHECK(intersect(a, Tile::nothing(2)).empty());
}

TEST_CASE("a 0-d tile holds the scalar, and Tile::nothing(0) does not") {
  Tile scalar = Tile::whole(Dims{});
  Tile none = Tile::nothing(0);
  CHECK(scalar.volume() == 1);
  CHECK_FALSE(scalar.empty());
  CHECK(scalar.contains(Dims{}));
  CHECK(scalar.local_position(Dims{}) == index_t{0});
  CHECK(scalar.boxes().size() == 1);
  CHECK(none.volume() == 0);
  CHECK(none.empty());
  CHECK_FALSE(none.contains(Dims{}));
  CHECK_FALSE(none.local_position(Dims{}).has_value());
  CHECK(none.boxes().empty());
  CHECK(none.global_boxes(Box(Dims{}, Dims{})).empty());
  CHECK_FALSE(scalar == none);
  CHECK(tile_key(scalar) != tile_key(none));
  CHECK(intersect(scalar, scalar).volume() == 1);
  CHECK(intersect(scalar, none).volume() == 0);
  CHECK(intersect(none, scalar).empty());
  // With dims, "nothing" is empty index maps, as before.
  CHECK(Tile::nothing(2) == Tile(SmallVector<IndexMap, 4>(2, IndexMap())));
  CHECK(Tile::nothing(2).volume() == 0);
}
