#include "../test_support.hpp"

using namespace shardalg;
using shardalg::testing::holders_by_element;
using shardalg::testing::positions;
using V = std::vector<index_t>;

TEST_CASE("Shard on a 1-d mesh matches PyTorch's local shapes and offsets") {
  MeshLayout layout = MeshLayout::parse("dp=4", "S(0)", Dims{10});
  std::vector<ShardInfo> expected = {{{3}, {0}}, {{3}, {3}}, {{3}, {6}}, {{1}, {9}}};
  for (index_t r = 0; r < 4; ++r) CHECK(layout.shard_info(r) == expected[static_cast<std::size_t>(r)]);
  MeshLayout empty = MeshLayout::parse("dp=4", "S(0)", Dims{2});
  CHECK(empty.shard_info(2) == ShardInfo{{0}, {2}});  // an empty shard's offset is the dim size
  CHECK(empty.shard_info(3) == ShardInfo{{0}, {2}});
}

TEST_CASE("several mesh dims on one tensor dim compose (a shard of a shard)") {
  MeshLayout layout = MeshLayout::parse("dp=2,tp=2", "S(0),S(0)", Dims{6, 4});
  CHECK(layout.shard_info(0) == ShardInfo{{2, 4}, {0, 0}});
  CHECK(layout.shard_info(1) == ShardInfo{{1, 4}, {2, 0}});
  CHECK(layout.shard_info(2) == ShardInfo{{2, 4}, {3, 0}});
  CHECK(layout.shard_info(3) == ShardInfo{{1, 4}, {5, 0}});
  // An empty first-level shard stays empty with offset = dim size; so does an empty second level.
  MeshLayout uneven = MeshLayout::parse("dp=4,tp=2", "S(0),S(0)", Dims{3});
  CHECK(uneven.shard_info(6) == ShardInfo{{0}, {3}});
  CHECK(uneven.shard_info(7) == ShardInfo{{0}, {3}});
  CHECK(uneven.shard_info(1) == ShardInfo{{0}, {3}});
  CHECK(uneven.shard_info(0) == ShardInfo{{1}, {0}});
}

TEST_CASE("PyTorch's _StridedShard docstring example: FSDP2 + TP on [8, 8]") {
  MeshLayout layout = MeshLayout::parse("dp=2,tp=2", "_S(0,2),S(0)", Dims{8, 8});
  CHECK(positions(layout.tile(0).dim(0)) == V{0, 1});
  CHECK(positions(layout.tile(1).dim(0)) == V{4, 5});
  CHECK(positions(layout.tile(2).dim(0)) == V{2, 3});
  CHECK(positions(layout.tile(3).dim(0)) == V{6, 7});
  // Plain Shard(0), Shard(0) is left to right instead.
  MeshLayout plain = MeshLayout::parse("dp=2,tp=2", "S(0),S(0)", Dims{8, 8});
  CHECK(positions(plain.tile(1).dim(0)) == V{2, 3});
}

TEST_CASE("strided shards hold several runs; local shape is their total") {
  MeshLayout layout = MeshLayout::parse("dp=4", "_S(0,2)", Dims{9, 3});
  CHECK(positions(layout.tile(0).dim(0)) == V{0, 1, 5});
  CHECK(layout.shard_info(0) == ShardInfo{{3, 3}, {0, 0}});
  CHECK(layout.shard_info(3) == ShardInfo{{1, 3}, {8, 0}});
  MeshLayout legacy = MeshLayout::parse("dp=2", "_S(0,2,legacy)", Dims{6});
  CHECK(positions(legacy.tile(0).dim(0)) == V{0, 1, 4, 5});
}

TEST_CASE("Replicate and Partial do not change shapes; replica groups are equal tiles") {
  MeshLayout layout = MeshLayout::parse("dp=2,tp=2", "S(0),R", Dims{4, 2});
  CHECK(layout.replication_factor() == 2);
  CHECK(layout.replica_groups() == std::vector<V>{{0, 1}, {2, 3}});
  MeshLayout partial = MeshLayout::parse("dp=2,tp=2", "P(sum),S(1)", Dims{4, 2});
  CHECK(partial.shard_info(2) == ShardInfo{{4, 1}, {0, 0}});
  CHECK(partial.replica_groups() == std::vector<V>{{0, 2}, {1, 3}});
}

TEST_CASE("ranks outside the mesh hold nothing") {
  MeshLayout layout(DeviceMesh({"dp"}, Dims{2}, {4, 6}), {Placement::shard(0)}, Dims{4});
  CHECK(layout.tile(0).empty());
  CHECK(layout.shard_info(5) == ShardInfo{{0}, {0}});
  CHECK(layout.shard_info(6) == ShardInfo{{2}, {2}});
}

TEST_CASE("ranks_holding agrees with a brute-force scan") {
  for (auto [mesh, placements, shape] : std::vector<std::tuple<std::string, std::string, Dims>>{
           {"dp=4,tp=2", "_S(0,2),S(0)", Dims{15, 5}},
           {"a=2,b=3,c=2", "S(1),S(0),R", Dims{7, 5}},
           {"a=3,b=2", "S(0),_S(0,3)", Dims{11}},
           {"a=2,b=2", "P(sum),S(1)", Dims{3, 3}},
           {"p=2,q=3", "BC(0,2),BC(1,2,1)", Dims{9, 11}},
           {"a=2,b=2", "S(0),BC(0,1)", Dims{9}}}) {
    MeshLayout layout = MeshLayout::parse(mesh, placements, shape);
    auto holders = holders_by_element(layout);
    for (index_t e = 0; e < volume(shape); ++e) {
      Dims point = row_major_coordinate(shape, e);
      Box single(point, Dims(shape.size(), 1));
      INFO(layout.to_string() << " element " << point);
      CHECK(layout.ranks_holding(single) == holders[static_cast<std::size_t>(e)]);
    }
    CHECK(layout.ranks_holding(Box::whole(shape)).size() == static_cast<std::size_t>(layout.mesh().size()) -
                                                                [&] {
                                                                  std::size_t empty = 0;
                                                                  for (index_t r : layout.mesh().devices())
                                                                    empty += layout.tile(r).empty();
                                                                  return empty;
                                                                }());
  }
  MeshLayout layout = MeshLayout::parse("dp=4", "S(0)", Dims{8});
  CHECK(layout.ranks_holding(Box(Dims{20}, Dims{3})).empty());
  SHARDALG_CHECK_THROWS_CONTAINING(layout.ranks_holding(Box::whole(Dims{2, 2})), Error, "has rank 2 but the tensor has rank 1");
}

TEST_CASE("one_replica_holding lists one rank per replica set, the one chosen") {
  // S(0),R on dp=2,tp=4 of [8] on a permuted mesh: replicas differ on tp only.
  MeshLayout layout(DeviceMesh({"dp", "tp"}, Dims{2, 4}, {7, 6, 5, 4, 3, 2, 1, 0}), {Placement::shard(0), Placement::replicate()}, Dims{8});
  auto last_tp = [](Dims& coord) { coord[1] = 3; };
  CHECK(layout.one_replica_holding(Box::whole(Dims{8}), last_tp) == V{0, 4});   // (0,3) is rank 4, (1,3) rank 0
  CHECK(layout.one_replica_holding(Box(Dims{5}, Dims{1}), last_tp) == V{0});   // only dp=1 holds element 5
  // Partial dims are every contributor's: one rank per partial coordinate.
  MeshLayout partial = MeshLayout::parse("a=2,b=3", "P(sum),R", Dims{4});
  CHECK(partial.one_replica_holding(Box::whole(Dims{4}), [](Dims& coord) { coord[1] = 1; }) == V{1, 4});
  // Its answer is ranks_holding's with the Replicate dims fixed: every rank once over all choices.
  V all;
  for (index_t tp = 0; tp < 4; ++tp) {
    V part = layout.one_replica_holding(Box::whole(Dims{8}), [&](Dims& coord) { coord[1] = tp; });
    all.insert(all.end(), part.begin(), part.end());
  }
  std::sort(all.begin(), all.end());
  CHECK(all == layout.ranks_holding(Box::whole(Dims{8})));
}

TEST_CASE("ranks_holding on a large mesh returns only the holders") {
  MeshLayout layout = MeshLayout::parse("pp=4,dp=64,tp=8", "R,S(0),S(1)", Dims{128256, 4096});
  auto ranks = layout.ranks_holding(Box(Dims{0, 0}, Dims{2004, 512}));
  CHECK(ranks.size() == 4);  // one dp shard, one tp shard, all of pp
  CHECK(ranks == V{0, 512, 1024, 1536});
}

TEST_CASE("bad layouts are errors naming the value") {
  SHARDALG_CHECK_THROWS_CONTAINING(MeshLayout::parse("dp=4,tp=2", "S(0)", Dims{8}), Error,
                                   "1 placements (S(0)) for mesh");
  SHARDALG_CHECK_THROWS_CONTAINING(MeshLayout::parse("dp=4", "S(3)", Dims{8}), Error, "placement S(3) shards dim 3 of a 1-d shape [8]");
  SHARDALG_CHECK_THROWS_CONTAINING(MeshLayout::parse("dp=4", "S(0)", Dims{-8}), Error, "negative extent -8");
  SHARDALG_CHECK_THROWS_CONTAINING(MeshLayout::parse("dp=4", "S(0)", Dims{index_t{1} << 40, index_t{1} << 40}),
                                   OverflowError, "product of [1099511627776, 1099511627776]");
  DeviceMesh mesh = DeviceMesh::parse("dp=2,tp=2");
  SHARDALG_CHECK_THROWS_CONTAINING(
      MeshLayout(mesh, {Placement::strided_shard(0, 2), Placement::shard(0)}, Dims{8}, ShardOrder{{0, {1, 0}}}), Error,
      "an explicit shard order needs Shard placements");
  SHARDALG_CHECK_THROWS_CONTAINING(
      MeshLayout(mesh, {Placement::shard(0), Placement::shard(0)}, Dims{8}, ShardOrder{{0, {1}}}), Error,
      "shard order 0:[1]: tensor dim 0 must list mesh dims [0, 1] once each");
  SHARDALG_CHECK_THROWS_CONTAINING(
      MeshLayout(mesh, {Placement::shard(0), Placement::shard(0)}, Dims{8}, ShardOrder{{0, {1, 1}}}), Error,
      "tensor dim 0 must list mesh dims [0, 1] once each");
  SHARDALG_CHECK_THROWS_CONTAINING(
      MeshLayout(mesh, {Placement::shard(0), Placement::shard(0)}, Dims{8}, ShardOrder{{0, {1, 0}}, {0, {0, 1}}}), Error,
      "tensor dim 0 has two entries");
  SHARDALG_CHECK_THROWS_CONTAINING(
      MeshLayout(mesh, {Placement::shard(0), Placement::replicate()}, Dims{8, 4}, ShardOrder{{1, {}}}), Error,
      "tensor dim 1 lists no mesh dim");
  SHARDALG_CHECK_THROWS_CONTAINING(
      MeshLayout(mesh, {Placement::shard(0), Placement::replicate()}, Dims{8}, ShardOrder{{0, {1, 0}}}), Error,
      "mesh dim 1 does not shard tensor dim 0");
}

TEST_CASE("a shard order may leave out tensor dims; they keep the default order") {
  DeviceMesh mesh = DeviceMesh::parse("a=3,b=4,c=3,d=2");
  std::vector<Placement> placements = {Placement::shard(0), Placement::replicate(), Placement::shard(1), Placement::shard(1)};
  MeshLayout partial(mesh, placements, Dims{24, 7}, parse_shard_order("1:[d,c]", mesh.names()));
  MeshLayout full(mesh, placements, Dims{24, 7}, parse_shard_order("0:[a];1:[d,c]", mesh.names()));
  CHECK(format_shard_order(*partial.application_order()) == "0:[0];1:[3,2]");
  for (index_t rank = 0; rank < mesh.size(); ++rank) CHECK(partial.tile(rank) == full.tile(rank));
  // d first: d = 0 holds [0, 4) of dim 1, and c = 1 the middle chunk [2, 4) of that (c first: [3, 5)).
  CHECK(partial.shard_info(mesh.rank_at(Dims{0, 0, 1, 0})).global_offset == Dims{0, 2});
  CHECK(partial.shard_info(mesh.rank_at(Dims{0, 0, 1, 0})).local_shape == Dims{8, 2});
}

TEST_CASE("the full layout holds the whole tensor on each listed rank") {
  MeshLayout one = full_layout(Dims{4, 3});
  CHECK(one.tile(0) == Tile::whole(Dims{4, 3}));
  CHECK(one.tile(1).empty());
  MeshLayout replicated = full_layout(Dims{4, 3}, {2, 5});
  CHECK(replicated.replication_factor() == 2);
  CHECK(replicated.tile(5) == Tile::whole(Dims{4, 3}));
  SHARDALG_CHECK_THROWS_CONTAINING(full_layout(Dims{4}, {}), Error, "no ranks given");
}

TEST_CASE("2-D block-cyclic matrices on a process grid, as ScaLAPACK distributes them") {
  // 5 x 5 in 2 x 2 blocks on a 2 x 2 grid: process (p, q) holds row blocks p, p+2 and column blocks q, q+2.
  MeshLayout layout = MeshLayout::parse("p=2,q=2", "BC(0,2),BC(1,2)", Dims{5, 5});
  Tile t00 = layout.tile_at(Dims{0, 0});
  CHECK(shardalg::testing::positions(t00.dim(0)) == std::vector<index_t>{0, 1, 4});
  CHECK(shardalg::testing::positions(t00.dim(1)) == std::vector<index_t>{0, 1, 4});
  CHECK(layout.shard_info(3).local_shape == Dims{2, 2});
  CHECK(layout.replication_factor() == 1);
  SHARDALG_CHECK_THROWS_CONTAINING(MeshLayout::parse("p=2,q=2", "BC(0,2,2),R", Dims{5}), Error,
                                   "placement BC(0, 2, 2) starts at coordinate 2 but mesh dim 0 (p) has size 2");
  // Block-cyclic to block (ScaLAPACK redistribution, pdgemr2d's job) plans and verifies.
  ReshardPlan plan(layout, MeshLayout::parse("p=2,q=2", "S(0),S(1)", Dims{5, 5}));
  verify_plan(plan, plan.all_transfers());
}
