#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("a slice map lists every rank's tile, PyTorch info and pieces with local offsets") {
  MeshLayout layout = MeshLayout::parse("dp=4,tp=2", "_S(0,2),S(0)", Dims{15, 5});
  SliceMap map(layout);
  REQUIRE(map.ranks().size() == 8);
  const RankSlice& r1 = map.ranks()[1];
  CHECK(r1.rank == 1);
  CHECK(r1.coordinate == Dims{0, 1});
  CHECK(r1.info == layout.shard_info(1));
  // dp=0 holds rows {0,1} u {8,9}; tp=1 keeps the second half: rows 8,9.
  auto pieces = r1.pieces();
  REQUIRE(pieces.size() == 1);
  CHECK(pieces[0].global == Box(Dims{8, 0}, Dims{2, 5}));
  CHECK(pieces[0].local == Dims{0, 0});
  MeshLayout strided = MeshLayout::parse("dp=4", "_S(0,2)", Dims{9, 2});
  auto r0 = SliceMap(strided).ranks()[0].pieces();
  REQUIRE(r0.size() == 2);
  CHECK(r0[1].global == Box(Dims{5, 0}, Dims{1, 2}));
  CHECK(r0[1].local == Dims{2, 0});
}

TEST_CASE("slice maps follow the mesh's device order") {
  MeshLayout layout(DeviceMesh::parse("dp=2,tp=2", "[4]<=[2,2]T(1,0)"), parse_placements("S(0),S(1)"), Dims{4, 4});
  SliceMap map(layout);
  CHECK(map.ranks()[1].rank == 2);
  CHECK(map.ranks()[1].tile == layout.tile(2));
  CHECK(map.ranks()[1].info.global_offset == Dims{0, 2});
}
