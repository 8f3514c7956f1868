#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("expert ownership and AutoEP metadata") {
  ExpertOwnership own(256, 64);
  CHECK(own.num_local() == 4);
  CHECK(own.experts_of(3) == std::pair<index_t, index_t>{12, 16});
  ParallelGroups groups = autoep_groups(8, 4, 2);
  ExpertMetadata m = expert_metadata(groups, 16, 5);  // EP (4..7), EDP (1,5)
  CHECK(m == ExpertMetadata{16, 4, 4, 1, 1, 2, 4, 8});
  SHARDALG_CHECK_THROWS_CONTAINING(ExpertOwnership(10, 4), Error, "EP size 4 does not divide the 10 experts");
  SHARDALG_CHECK_THROWS_CONTAINING(own.experts_of(64), Error, "EP rank 64 is out of range");
}

TEST_CASE("every rank's expert metadata in one pass equals each rank's own") {
  for (const ParallelGroups& groups : {deepspeed_groups(8, 2), autoep_groups(8, 4, 2), deepspeed_tp_groups(16, 2, 2, 2),
                                       megatron_groups(16, MegatronSizes{2, 1, 4, 2, std::nullopt}, "tp-cp-ep-dp-pp"),
                                       torchtitan_groups(16, TorchtitanSizes{1, 2, 4, 1, 2, 4})}) {
    CAPTURE(groups.convention);
    std::vector<ExpertMetadata> all = expert_metadata_of_ranks(groups, 16);
    REQUIRE(all.size() == static_cast<std::size_t>(groups.dense.size()));
    for (std::size_t rank = 0; rank < all.size(); ++rank) CHECK(all[rank] == expert_metadata(groups, 16, static_cast<index_t>(rank)));
  }
  SHARDALG_CHECK_THROWS_CONTAINING(expert_metadata_of_ranks(autoep_groups(8, 4, 2), 6), Error, "EP size 4 does not divide the 6 experts");
  ParallelGroups no_edp = autoep_groups(8, 4, 2);
  no_edp.families.erase("edp");
  SHARDALG_CHECK_THROWS_CONTAINING(expert_metadata_of_ranks(no_edp, 16), Error, "has no group family 'edp'");
  ParallelGroups gap = autoep_groups(8, 4, 2);
  gap.families["edp"].pop_back();  // the last edp group's ranks belong to none
  SHARDALG_CHECK_THROWS_CONTAINING(expert_metadata_of_ranks(gap, 16), Error, "is in no edp group of autoep");
}

TEST_CASE("torchtitan stacked experts: Shard(0) after EP when experts suffice, else Shard(1)") {
  ParallelGroups many = torchtitan_groups(8, TorchtitanSizes{1, 1, 8, 1, 1, 4});  // efsdp 2, ep 4
  MeshLayout w1 = torchtitan_expert_layout(*many.expert, Dims{16, 6, 4});
  CHECK(w1.placements()[2] == Placement::shard(0));
  CHECK(w1.application_order().has_value());
  // EP rank 1 holds experts [4, 8); efsdp 1 then holds [6, 8).
  Dims coord{0, 0, 1, 1};
  CHECK(w1.tile_at(coord).dim(0) == IndexMap::contiguous(6, 2));
  MeshLayout few = torchtitan_expert_layout(*many.expert, Dims{4, 6, 4});  // 2*4 > 4 experts
  CHECK(few.placements()[2] == Placement::shard(1));
  CHECK(few.tile_at(coord).dim(0) == IndexMap::contiguous(1, 1));
  CHECK(few.tile_at(coord).dim(1) == IndexMap::contiguous(3, 3));
}

TEST_CASE("DeepSpeed experts: EP then ZeRO-3 over EDP") {
  ParallelGroups ds = deepspeed_groups(8, 2);
  ComposedFlatLayout layout = expert_flat_layout(ds.dense, "ep", "edp", {{"w1", Dims{4, 3, 2}}}, FlatSchemeOptions{});
  FlatLayout flat = layout.flat_layout_of(3);  // EP rank 1 (experts 2, 3), EDP group [1,3,5,7]
  CHECK(flat.group() == std::vector<index_t>{1, 3, 5, 7});
  auto fragments = flat.fragments(3);  // local 12 elements, P = 3, position 1: [3, 6)
  REQUIRE(fragments.size() == 1);
  CHECK(flat.global_boxes(fragments[0]) == std::vector<Box>{Box(Dims{2, 1, 1}, Dims{1, 1, 1}), Box(Dims{2, 2, 0}, Dims{1, 1, 2})});
}
