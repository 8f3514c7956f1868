#include "../test_support.hpp"

using namespace shardalg;
using G = RankGroups;

TEST_CASE("DeepSpeed default and data-before-expert groups (docs/semantics.md section 8)") {
  ParallelGroups ds = deepspeed_groups(8, 2);
  CHECK(ds.families.at("ep") == G{{0, 1}, {2, 3}, {4, 5}, {6, 7}});
  CHECK(ds.families.at("edp") == G{{0, 2, 4, 6}, {1, 3, 5, 7}});
  CHECK(ds.families.at("dp") == G{{0, 1, 2, 3, 4, 5, 6, 7}});
  ParallelGroups dbe = deepspeed_dbe_groups(8, 2);
  CHECK(dbe.families.at("ep") == G{{0, 4}, {1, 5}, {2, 6}, {3, 7}});
  CHECK(dbe.families.at("edp") == G{{0, 1, 2, 3}, {4, 5, 6, 7}});
  ParallelGroups staged = deepspeed_groups(8, 2, 2);  // two pipeline stages of 4
  CHECK(staged.families.at("edp") == G{{0, 2}, {1, 3}, {4, 6}, {5, 7}});
  CHECK(staged.families.at("pp") == G{{0, 4}, {2, 6}, {1, 5}, {3, 7}});  // PyTorch swapdims order
  CHECK(staged.group_of("ep", 5) == std::vector<index_t>{4, 5});
}

TEST_CASE("DeepSpeed with TP: DP groups strided by T, cut into EP runs, EDP zipped") {
  ParallelGroups g = deepspeed_tp_groups(16, 2, 2);
  CHECK(g.families.at("tp") == G{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}});
  CHECK(g.group_of("dp", 0) == std::vector<index_t>{0, 2, 4, 6, 8, 10, 12, 14});
  CHECK(g.group_of("ep", 0) == std::vector<index_t>{0, 2});
  CHECK(g.group_of("ep", 5) == std::vector<index_t>{5, 7});
  CHECK(g.group_of("edp", 0) == std::vector<index_t>{0, 4, 8, 12});
}

TEST_CASE("AutoEP folding over AutoTP") {
  ParallelGroups g = autoep_groups(8, 4, 2);
  CHECK(g.families.at("tp") == G{{0, 1}, {2, 3}, {4, 5}, {6, 7}});
  CHECK(g.families.at("dp") == G{{0, 2, 4, 6}, {1, 3, 5, 7}});
  CHECK(g.families.at("ep") == G{{0, 1, 2, 3}, {4, 5, 6, 7}});
  CHECK(g.families.at("edp") == G{{0, 4}, {1, 5}, {2, 6}, {3, 7}});
}

TEST_CASE("Megatron rank order tp-cp-ep-dp-pp and the expert grid") {
  ParallelGroups g = megatron_groups(16, MegatronSizes{2, 2, 2, 2, std::nullopt});
  CHECK(g.dense.names() == std::vector<std::string>{"pp", "dp", "cp", "tp"});
  CHECK(g.expert->names() == std::vector<std::string>{"pp", "edp", "ep", "etp"});
  CHECK(g.group_of("tp", 0) == std::vector<index_t>{0, 1});
  CHECK(g.group_of("cp", 0) == std::vector<index_t>{0, 2});
  CHECK(g.group_of("dp", 0) == std::vector<index_t>{0, 4});
  CHECK(g.group_of("pp", 0) == std::vector<index_t>{0, 8});
  CHECK(g.group_of("dp_cp", 0) == std::vector<index_t>{0, 2, 4, 6});
  CHECK(g.group_of("ep", 0) == std::vector<index_t>{0, 2});    // expert grid: etp=2, ep=2, edp=2
  CHECK(g.group_of("edp", 0) == std::vector<index_t>{0, 4});
  ParallelGroups etp1 = megatron_groups(8, MegatronSizes{2, 1, 4, 1, 1});
  CHECK(etp1.group_of("ep", 0) == std::vector<index_t>{0, 1, 2, 3});
  CHECK(etp1.group_of("edp", 0) == std::vector<index_t>{0, 4});
  ParallelGroups custom = megatron_groups(8, MegatronSizes{2, 1, 1, 2, std::nullopt}, "tp-pp-dp-cp-ep");
  CHECK(custom.group_of("pp", 0) == std::vector<index_t>{0, 2});
  SHARDALG_CHECK_THROWS_CONTAINING(megatron_groups(8, MegatronSizes{}, "tp-dp-pp"), Error, "order 'tp-dp-pp' must name");
  // What Megatron's initialize_model_parallel refuses. pp not last, edp 2 != dp 4:
  SHARDALG_CHECK_THROWS_CONTAINING(megatron_groups(16, MegatronSizes{2, 1, 2, 2, std::nullopt}, "tp-cp-ep-pp-dp"), Error,
                                   "order 'tp-cp-ep-pp-dp' does not end with pp, so Megatron requires the expert data-parallel size 2 "
                                   "(W/(etp*ep*pp)) to equal the dense one 4");
  // ... allowed with pp 1, or when the sizes agree (etp 1 makes edp = dp with ep = tp):
  CHECK_NOTHROW(megatron_groups(16, MegatronSizes{2, 1, 2, 1, std::nullopt}, "tp-cp-ep-pp-dp"));
  CHECK_NOTHROW(megatron_groups(16, MegatronSizes{2, 1, 2, 2, 1}, "tp-cp-ep-pp-dp"));
  // pp before ep, with etp != tp: the stride of pp differs between the grids (2 vs 1).
  SHARDALG_CHECK_THROWS_CONTAINING(megatron_groups(8, MegatronSizes{2, 1, 2, 2, 1}, "tp-pp-ep-dp-cp"), Error,
                                   "gives the dense and the expert grids different pipeline groups (rank 0's: [0, 2] vs [0, 1])");
  SHARDALG_CHECK_THROWS_CONTAINING(megatron_groups(8, MegatronSizes{3, 1, 1, 1, std::nullopt}), Error, "tp*cp*pp 3 does not divide");
  // Two negative sizes multiply to a positive one: each size is checked on its own.
  SHARDALG_CHECK_THROWS_CONTAINING(megatron_groups(8, MegatronSizes{-1, -1, 1, 1, std::nullopt}), Error, "TP size -1 must be positive");
  SHARDALG_CHECK_THROWS_CONTAINING(megatron_groups(8, MegatronSizes{1, 1, -1, 1, -1}), Error, "EP size -1 must be positive");
}

TEST_CASE("torchtitan dense and sparse meshes") {
  ParallelGroups g = torchtitan_groups(16, TorchtitanSizes{1, 2, 4, 1, 2, 4});
  CHECK(g.dense.shape() == Dims{1, 2, 4, 1, 2});
  CHECK(g.expert->shape() == Dims{1, 2, 2, 4});
  CHECK(g.group_of("tp", 0) == std::vector<index_t>{0, 1});
  CHECK(g.group_of("dp_shard", 0) == std::vector<index_t>{0, 2, 4, 6});
  CHECK(g.group_of("ep", 0) == std::vector<index_t>{0, 1, 2, 3});
  CHECK(g.group_of("efsdp", 0) == std::vector<index_t>{0, 4});
  CHECK(g.group_of("edp", 1) == std::vector<index_t>{1, 5, 9, 13});  // dp_replicate x efsdp: every replica of EP rank 1
  ExpertMetadata m = expert_metadata(g, 8, 13);
  CHECK(m == ExpertMetadata{8, 2, 4, 1, 3, 4, 2, 4});
  CHECK(g.group_of("dp", 0) == std::vector<index_t>{0, 2, 4, 6, 8, 10, 12, 14});
  SHARDALG_CHECK_THROWS_CONTAINING(torchtitan_groups(16, TorchtitanSizes{1, 2, 4, 1, 2, 3}), Error,
                                   "EP size 3 does not divide dp_shard*cp*tp 8");
  SHARDALG_CHECK_THROWS_CONTAINING(torchtitan_groups(12, TorchtitanSizes{1, 2, 4, 1, 2, 1}), Error, "not the world size 12");
}

TEST_CASE("bad group sizes are errors naming the value") {
  SHARDALG_CHECK_THROWS_CONTAINING(deepspeed_groups(8, 3), Error, "EP size 3 does not divide the ranks of a pipeline stage 8");
  SHARDALG_CHECK_THROWS_CONTAINING(deepspeed_groups(8, 2, 3), Error, "pipeline size 3 does not divide the world size 8");
  SHARDALG_CHECK_THROWS_CONTAINING(deepspeed_groups(index_t{1} << 32, 1), Error, "world size 4294967296 is over the limit 16777216 ranks");
  SHARDALG_CHECK_THROWS_CONTAINING(deepspeed_groups(8, 0), Error, "EP size 0 must be positive");
  SHARDALG_CHECK_THROWS_CONTAINING(deepspeed_groups(8, 2).group_of("tp", 0), Error, "no group family 'tp'");
}
