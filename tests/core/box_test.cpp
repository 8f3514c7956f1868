#include "../test_support.hpp"

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
  SHARDALG_CHECK_THROWS_CONTAINING(Box::whole(Dims{index_t{1} << 40, index_t{1} << 40}).volume(), OverflowError, "a * b");
}
