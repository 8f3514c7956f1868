#include "../test_support.hpp"
#include "shardalg/exec/strided_rows.hpp"

using namespace shardalg;

TEST_CASE("box intersection, containment and volume") {
  Box a(Dims{0, 0}, Dims{8, 4});
  Box b(Dims{4, 2}, Dims{8, 4});
  Box common = intersect(a, b);
  CHECK(common == Box(Dims{4, 2}, Dims{4, 2}));
  CHECK(common.volume() == 8);
  CHECK(a.contains(common));
  CHECK(b.contains(common));
  CHECK_FALSE(a.contains(b));
  CHECK(a.contains_point(Dims{7, 3}));
  CHECK_FALSE(a.contains_point(Dims{8, 0}));
  Box disjoint = intersect(a, Box(Dims{8, 0}, Dims{2, 2}));
  CHECK(disjoint.empty());
  CHECK(disjoint.volume() == 0);
  CHECK(a.contains(disjoint));
  CHECK(Box::whole(Dims{3, 5}).volume() == 15);
}

TEST_CASE("bad boxes are errors naming the values") {
  SHARDALG_CHECK_THROWS_CONTAINING(Box(Dims{0}, Dims{1, 2}), Error, "different ranks");
  SHARDALG_CHECK_THROWS_CONTAINING(Box(Dims{-1}, Dims{2}), Error, "negative");
  SHARDALG_CHECK_THROWS_CONTAINING(Box(Dims{index_t{1} << 62}, Dims{index_t{1} << 62}), OverflowError, "a + b");
  SHARDALG_CHECK_THROWS_CONTAINING(intersect(Box::whole(Dims{2}), Box::whole(Dims{2, 2})), Error, "rank 1 and 2");
  SHARDALG_CHECK_THROWS_CONTAINING(Box::whole(Dims{index_t{1} << 40, index_t{1} << 40}).volume(), OverflowError, "product of [1099511627776, 1099511627776]");
}

TEST_CASE("next_coordinate walks a shape row-major, keeping the strided offset, and wraps after the last") {
  Dims shape{2, 3}, strides{10, 1}, coordinate{0, 0};
  index_t offset = 0;
  std::vector<index_t> offsets{offset};
  while (next_coordinate(coordinate, shape, strides, offset)) offsets.push_back(offset);
  CHECK(offsets == std::vector<index_t>{0, 1, 2, 10, 11, 12});
  CHECK(coordinate == Dims{0, 0});
  CHECK(offset == 0);
  Dims none{};  // a 0-d shape has one coordinate
  CHECK_FALSE(next_coordinate(none, Dims{}, Dims{}, offset));
  // StridedRows visits the same rows.
  std::vector<int> data(24);
  StridedRows<int> rows{data.data(), Dims{2, 3}, Dims{10, 1}, 1};
  std::vector<std::ptrdiff_t> visited;
  rows.for_each_row([&](int* row) { visited.push_back(row - data.data()); });
  CHECK(visited == std::vector<std::ptrdiff_t>{0, 1, 2, 10, 11, 12});
  // Without an offset: the same coordinates, in the same order, as row_major_coordinate.
  Dims walked{0, 0};
  index_t position = 0;
  do CHECK(walked == row_major_coordinate(shape, position++));
  while (next_coordinate(walked, shape));
  CHECK(position == 6);
  CHECK(walked == Dims{0, 0});
  CHECK_FALSE(next_coordinate(none, Dims{}));
}

TEST_CASE("format_box: half-open intervals per dim, the one form the CLI prints") {
  CHECK(format_box(Box(Dims{0, 4}, Dims{2, 2})) == "[0,2)x[4,6)");
  CHECK(format_box(Box(Dims{7}, Dims{1})) == "[7,8)");
  CHECK(format_box(Box(Dims{}, Dims{})) == "[]");  // a 0-d box: the one element of a scalar
}
