#include "../test_support.hpp"

using namespace shardalg;
using shardalg::testing::positions;
using V = std::vector<index_t>;

TEST_CASE("physical FSDP-over-TP bytes are chunk(chunk(n, T)[t], D)[d]") {
  DeviceMesh mesh = DeviceMesh::parse("dp=3,tp=2");
  MeshLayout physical = fsdp_over_tp_physical(mesh, "dp", "tp", Dims{7});
  // tp=0 holds rows 0..3 of 7; dp splits that 2,2,0.
  CHECK(positions(physical.tile(mesh.rank_at(Dims{0, 0})).dim(0)) == V{0, 1});
  CHECK(positions(physical.tile(mesh.rank_at(Dims{1, 0})).dim(0)) == V{2, 3});
  CHECK(physical.tile(mesh.rank_at(Dims{2, 0})).empty());
  CHECK(positions(physical.tile(mesh.rank_at(Dims{2, 1})).dim(0)) == V{6});
}

TEST_CASE("the label (_S(0, T), S(0)) says row 6 where the physical layout holds nothing") {
  DeviceMesh mesh = DeviceMesh::parse("dp=3,tp=2");
  MeshLayout label = fsdp_over_tp_label(mesh, "dp", "tp", Dims{7});
  CHECK(label.placements() == parse_placements("_S(0,2),S(0)"));
  CHECK(positions(label.tile(mesh.rank_at(Dims{2, 0})).dim(0)) == V{6});
  CHECK(label.shard_info(mesh.rank_at(Dims{2, 0})) == ShardInfo{{1}, {6}});
}

TEST_CASE("label and physical layout agree when the dim divides evenly") {
  DeviceMesh mesh = DeviceMesh::parse("dp=4,tp=2");
  for (index_t n : {8, 16, 14336}) {
    CHECK(compare_layouts(fsdp_over_tp_physical(mesh, "dp", "tp", Dims{n, 3}),
                          fsdp_over_tp_label(mesh, "dp", "tp", Dims{n, 3}))
              .equivalent());
  }
  SHARDALG_CHECK_THROWS_CONTAINING(fsdp_over_tp_physical(mesh, "dp", "dp", Dims{8}), Error, "must be different mesh dims");
}
