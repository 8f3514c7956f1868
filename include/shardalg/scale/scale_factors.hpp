// Gradient-averaging scale factors of each framework convention (docs/semantics.md section 9).
//
// Every convention computes  result = (collective over the reduce group of (g / pre_divide)) / post_divide
// where the collective is a SUM, an AVG (average in the collective) or a pre-multiplied SUM
// (NCCL's premul_sum: the collective itself multiplies each rank's g by 1 / pre_divide). The result must equal
// the sum of the group's gradients divided by `average_over`. `scale` is the multiplier applied
// after the collective (1 / post_divide).
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <string_view>

#include "shardalg/core/checked.hpp"
#include "shardalg/core/error.hpp"

namespace shardalg {

enum class Collective { sum, avg, premul_sum };

// The collective's name, as the CLI and Python print it.
inline std::string_view to_string(Collective c) {
  switch (c) {
    case Collective::sum: return "sum";
    case Collective::avg: return "avg";
    case Collective::premul_sum: return "premul_sum";
  }
  return "?";
}

struct ScaleFactors {
  index_t reduce_group_size;
  index_t average_over;
  double pre_divide;
  double post_divide;
  double scale;  // 1 / post_divide
  Collective collective = Collective::sum;
};

namespace detail {
inline ScaleFactors make_scale(index_t group, index_t average_over, double pre, double post, Collective c = Collective::sum) {
  return ScaleFactors{group, average_over, pre, post, 1.0 / post, c};
}
inline void require_positive(std::string_view what, index_t v) {
  if (v <= 0) fail(what, " ", v, " must be positive");
}
}  // namespace detail

// FSDP's split of a divide factor N into pre and post parts, to keep low-precision sums in range:
// pre = 1; while N % pre == 0 and N / pre > pre: pre *= 2; post = N / pre.
// N: 1 -> 1/1, 2 -> 2/1, 3 -> 2/1.5, 6 -> 4/1.5, 8 -> 4/2, 24 -> 8/3, 1024 -> 32/32.
inline std::pair<double, double> fsdp_pre_post_divide(index_t n) {
  detail::require_positive("FSDP divide factor", n);
  index_t pre = 1;
  while (n % pre == 0 && n / pre > pre) pre *= 2;
  return {static_cast<double>(pre), static_cast<double>(n) / static_cast<double>(pre)};
}

// DeepSpeed ZeRO-3 with AutoEP: gradients are reduce-scattered over the partition group (the
// EDP group of W/E ranks for experts, W otherwise), pre-divided by its size P_g, then scaled by
// P_g / W. W=8, E=2, expert: group 4, average over 8, scale 0.5.
inline ScaleFactors zero3_autoep_scale(index_t world, index_t ep, bool expert) {
  detail::require_positive("world size", world);
  detail::require_positive("EP size", ep);
  if (world % ep != 0) detail::fail("EP size ", ep, " does not divide the world size ", world);
  index_t group = expert ? world / ep : world;
  return detail::make_scale(group, world, static_cast<double>(group), static_cast<double>(world) / static_cast<double>(group));
}

// DeepSpeed data-parallel averaging over D ranks. Post-scale (default): g *= 1/f, all-reduce
// sum, g *= f/D. Pre-scale: g *= 1/D, then all-reduce. Expert gradients reduce over the EDP
// group but divide by the dense D. Without TP the EDP group has D/E ranks; with AutoEP folding
// over AutoTP (`tp` T > 1, ZeRO-1/2: autoep_groups) EP blocks take the world's consecutive ranks
// across TP lanes, so the EDP group has W/E = D*T/E ranks, still divided by the dense D = W/T.
// Example: W=8, T=2, E=4: D=4, experts reduce over EDP (0,4) of 2 ranks, divided by 4.
inline ScaleFactors deepspeed_scale(index_t dp, std::optional<index_t> ep, bool expert, double predivide_factor = 1.0,
                                    bool prescale = false, index_t tp = 1) {
  detail::require_positive("data-parallel size", dp);
  detail::require_positive("TP size", tp);
  if (!(predivide_factor > 0) || !std::isfinite(predivide_factor))
    detail::fail("predivide factor ", predivide_factor, " must be positive and finite");
  index_t group = dp;
  if (expert) {
    if (!ep) detail::fail("deepspeed: --expert needs the EP size");
    detail::require_positive("EP size", *ep);
    index_t world = checked_mul(dp, tp);
    if (world % *ep != 0)
      detail::fail("EP size ", *ep, " does not divide the ", tp == 1 ? "data-parallel size " : "world (data-parallel size times TP) ", world);
    group = world / *ep;
  }
  if (prescale) return detail::make_scale(group, dp, static_cast<double>(dp), 1.0);
  return detail::make_scale(group, dp, predivide_factor, static_cast<double>(dp) / predivide_factor);
}

// FSDP1: always the pre/post split of the divide factor (the reduce world N, or the user factor).
inline ScaleFactors fsdp1_scale(index_t world, std::optional<index_t> divide_factor = std::nullopt) {
  detail::require_positive("world size", world);
  index_t factor = divide_factor.value_or(world);
  auto [pre, post] = fsdp_pre_post_divide(factor);
  return detail::make_scale(world, factor, pre, post);
}

// FSDP2 (HSDP too: N = replicate * shard ranks), the reduction it issues
// (_get_gradient_divide_factors): fp32/bf16 with factor F == N an AVG collective, but a plain
// SUM at N = 1 (NCCL's AVG is unreliable on one rank); fp32/bf16 with a user factor F != N a
// SUM pre-multiplied by 1/F (premul_sum), no division outside; low precision (fp16) the pre/post
// split of F around a SUM.
inline ScaleFactors fsdp2_scale(index_t world, std::optional<index_t> divide_factor = std::nullopt, bool low_precision = false) {
  detail::require_positive("world size", world);
  index_t factor = divide_factor.value_or(world);
  if (!low_precision && factor == world) return detail::make_scale(world, world, 1.0, 1.0, world == 1 ? Collective::sum : Collective::avg);
  if (!low_precision) return detail::make_scale(world, factor, static_cast<double>(factor), 1.0, Collective::premul_sum);
  auto [pre, post] = fsdp_pre_post_divide(factor);
  return detail::make_scale(world, factor, pre, post);
}

// Megatron-LM: dense gradients reduce over dp_cp, expert gradients over the EDP group; both are
// averaged over |dp_cp|. SUM: pre-scaled by 1/|dp_cp| (gradient_scaling_factor). Average in the
// collective: dense AVG with factor 1; experts AVG then |EDP|/|dp_cp|.
inline ScaleFactors megatron_scale(index_t dp_cp, std::optional<index_t> edp, bool expert, bool average_in_collective) {
  detail::require_positive("dp*cp size", dp_cp);
  index_t group = dp_cp;
  if (expert) {
    if (!edp) detail::fail("megatron: --expert needs the expert data-parallel size");
    detail::require_positive("expert data-parallel size", *edp);
    group = *edp;
  }
  if (!average_in_collective) return detail::make_scale(group, dp_cp, static_cast<double>(dp_cp), 1.0);
  return detail::make_scale(group, dp_cp, 1.0, static_cast<double>(dp_cp) / static_cast<double>(group), Collective::avg);
}

// torchtitan (2025): FSDP2 everywhere; expert modules reduce over their sparse-mesh DP group
// (dp_replicate * efsdp ranks) but used the dense DP divide factor dp_replicate*dp_shard*cp.
inline ScaleFactors torchtitan_scale(index_t dense_dp, std::optional<index_t> expert_dp, bool expert, bool low_precision = false) {
  detail::require_positive("dense data-parallel size", dense_dp);
  if (!expert) return fsdp2_scale(dense_dp, std::nullopt, low_precision);
  if (!expert_dp) detail::fail("torchtitan: --expert needs the expert data-parallel size");
  return fsdp2_scale(*expert_dp, dense_dp, low_precision);
}

}  // namespace shardalg
