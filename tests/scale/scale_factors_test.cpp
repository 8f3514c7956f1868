#include <cmath>

#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("FSDP pre/post divide factors match the reference table") {
  std::vector<std::tuple<index_t, double, double>> table = {
      {1, 1, 1}, {2, 2, 1}, {3, 2, 1.5}, {4, 2, 2}, {6, 4, 1.5}, {8, 4, 2}, {16, 4, 4},
      {24, 8, 3}, {64, 8, 8}, {128, 16, 8}, {1024, 32, 32}};
  for (const auto& [world, pre, post] : table) {
    index_t n = world;  // a variable, not a binding: doctest's INFO captures it in a lambda
    INFO("N = " << n);
    auto [p, q] = fsdp_pre_post_divide(n);
    CHECK(p == pre);
    CHECK(q == post);
  }
  ScaleFactors fsdp1 = fsdp1_scale(6);
  CHECK(fsdp1.pre_divide == 4);
  CHECK(fsdp1.post_divide == 1.5);
  CHECK(fsdp2_scale(8).collective == Collective::avg);
  CHECK(fsdp2_scale(1).collective == Collective::sum);  // no AVG on one rank
  CHECK(fsdp2_scale(8, std::nullopt, true).pre_divide == 4);
  // A user divide factor on fp32/bf16: the collective pre-multiplies by 1/16, nothing after.
  ScaleFactors user = fsdp2_scale(8, 16);
  CHECK(user.average_over == 16);
  CHECK(user.collective == Collective::premul_sum);
  CHECK(user.pre_divide == 16);
  CHECK(user.post_divide == 1);
  CHECK(fsdp2_scale(8, 16, true).collective == Collective::sum);  // fp16: the pre/post split
  CHECK(fsdp2_scale(8, 16, true).pre_divide == 4);
  CHECK(to_string(Collective::premul_sum) == "premul_sum");
}

TEST_CASE("ZeRO-3 AutoEP, DeepSpeed, Megatron and torchtitan factors") {
  ScaleFactors expert = zero3_autoep_scale(8, 2, true);
  CHECK(expert.reduce_group_size == 4);
  CHECK(expert.average_over == 8);
  CHECK(expert.scale == 0.5);
  CHECK(zero3_autoep_scale(8, 2, false).scale == 1.0);
  ScaleFactors post = deepspeed_scale(8, 2, true, 2.0);
  CHECK(post.reduce_group_size == 4);
  CHECK(post.pre_divide == 2.0);
  CHECK(post.post_divide == 4.0);
  CHECK(deepspeed_scale(8, std::nullopt, false, 1.0, true).pre_divide == 8.0);
  // AutoEP folding over AutoTP, W=8, T=2, E=4: dense DP 4; experts reduce over EDP (0,4), divided by 4.
  ScaleFactors folded = deepspeed_scale(4, 4, true, 1.0, false, 2);
  ParallelGroups groups = autoep_groups(8, 4, 2);
  CHECK(folded.reduce_group_size == static_cast<index_t>(groups.group_of("edp", 0).size()));
  CHECK(folded.average_over == static_cast<index_t>(groups.group_of("dp", 0).size()));
  CHECK(folded.scale == 0.25);  // the 2 ranks' sum over 4
  CHECK(deepspeed_scale(4, 4, false, 1.0, false, 2).reduce_group_size == 4);  // dense: the DP group
  SHARDALG_CHECK_THROWS_CONTAINING(deepspeed_scale(4, 3, true, 1.0, false, 2), Error, "EP size 3 does not divide the world (data-parallel size times TP) 8");
  ScaleFactors mega = megatron_scale(8, 2, true, true);
  CHECK(mega.collective == Collective::avg);
  CHECK(mega.scale == 0.25);  // |EDP| / |dp_cp|
  CHECK(megatron_scale(8, std::nullopt, false, false).pre_divide == 8.0);
  ScaleFactors titan = torchtitan_scale(8, 2, true);
  CHECK(titan.reduce_group_size == 2);
  CHECK(titan.average_over == 8);
  SHARDALG_CHECK_THROWS_CONTAINING(zero3_autoep_scale(8, 3, true), Error, "EP size 3 does not divide the world size 8");
  SHARDALG_CHECK_THROWS_CONTAINING(megatron_scale(8, std::nullopt, true, false), Error, "needs the expert data-parallel size");
  SHARDALG_CHECK_THROWS_CONTAINING(fsdp1_scale(0), Error, "world size 0 must be positive");
  SHARDALG_CHECK_THROWS_CONTAINING(deepspeed_scale(8, std::nullopt, false, 0.0), Error, "predivide factor 0 must be positive and finite");
  SHARDALG_CHECK_THROWS_CONTAINING(deepspeed_scale(8, std::nullopt, false, HUGE_VAL), Error, "predivide factor inf must be");
}
