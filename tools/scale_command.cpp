#include <iostream>
#include <memory>

#include "cli_support.hpp"
#include "commands.hpp"

namespace shardalg::cli {
namespace {

struct ScaleOptions {
  std::string convention;
  index_t world = 0, ep = 1, divide_factor = 0, edp = 0, tp = 1;
  double predivide_factor = 1.0;
  bool expert = false, prescale = false, low_precision = false, average_in_collective = false, json = false;
};

const std::vector<std::string> kScaleOptionalFlags = {"--ep", "--expert", "--predivide-factor", "--prescale", "--divide-factor",
                                                 "--low-precision", "--average-in-collective", "--edp", "--tp"};

ScaleFactors compute(const CLI::App& cmd, const ScaleOptions& o) {
  const std::string& c = o.convention;
  std::string choice = "--convention " + c;
  std::optional<index_t> factor;
  if (cmd.count("--divide-factor")) factor = o.divide_factor;
  if (c == "zero3-autoep") {
    if (cmd.count("--tp"))  // a framework's refusal, not a missing feature: say whose and why
      detail::fail("--convention zero3-autoep: --tp ", o.tp, " is refused, as DeepSpeed refuses AutoEP with AutoTP under ZeRO-3 "
                   "(no such run has factors to compute)");
    require_applicable(cmd, kScaleOptionalFlags, {"--ep", "--expert"}, choice);
    return zero3_autoep_scale(o.world, o.ep, o.expert);
  }
  if (c == "deepspeed") {
    require_applicable(cmd, kScaleOptionalFlags, {"--ep", "--expert", "--predivide-factor", "--prescale", "--tp"}, choice);
    return deepspeed_scale(o.world, cmd.count("--ep") ? std::optional<index_t>(o.ep) : std::nullopt, o.expert, o.predivide_factor,
                           o.prescale, o.tp);
  }
  if (c == "fsdp1") {
    require_applicable(cmd, kScaleOptionalFlags, {"--divide-factor"}, choice);
    return fsdp1_scale(o.world, factor);
  }
  if (c == "fsdp2") {
    require_applicable(cmd, kScaleOptionalFlags, {"--divide-factor", "--low-precision"}, choice);
    return fsdp2_scale(o.world, factor, o.low_precision);
  }
  if (c == "megatron") {
    require_applicable(cmd, kScaleOptionalFlags, {"--ep", "--expert", "--edp", "--average-in-collective"}, choice);
    std::optional<index_t> edp;
    if (cmd.count("--edp")) edp = o.edp;
    else if (o.expert) {
      if (o.ep <= 0 || o.world % o.ep != 0) detail::fail("EP size ", o.ep, " does not divide the dp*cp size ", o.world);
      edp = o.world / o.ep;
    }
    return megatron_scale(o.world, edp, o.expert, o.average_in_collective);
  }
  require_applicable(cmd, kScaleOptionalFlags, {"--ep", "--expert", "--tp", "--low-precision"}, choice);
  std::optional<index_t> expert_dp;
  if (o.expert) {
    index_t borrowed = checked_mul(o.world, o.tp);
    if (o.ep <= 0 || borrowed % o.ep != 0) detail::fail("EP size ", o.ep, " does not divide the dense DP size times TP ", borrowed);
    expert_dp = borrowed / o.ep;
  }
  return torchtitan_scale(o.world, expert_dp, o.expert, o.low_precision);
}

void run(const CLI::App& cmd, const ScaleOptions& o) {
  ScaleFactors s = compute(cmd, o);
  const std::string_view collective = to_string(s.collective);
  if (o.json) {
    nlohmann::ordered_json out = {{"reduce_group_size", s.reduce_group_size}, {"average_over", s.average_over},
                                  {"pre_divide", s.pre_divide}, {"post_divide", s.post_divide}, {"scale", s.scale},
                                  {"collective", collective}};
    std::cout << out.dump() << "\n";
    return;
  }
  std::cout << o.convention << (o.expert ? " (expert parameter)" : "") << "\n"
            << "reduce group size  " << s.reduce_group_size << "\n"
            << "average over       " << s.average_over << "\n"
            << "pre-divide         " << s.pre_divide
            << (s.collective == Collective::premul_sum ? "   (in the collective: each rank's g *= 1/" : "   (each rank: g /= ") << s.pre_divide << ")\n"
            << "collective         " << collective << " over the reduce group\n"
            << "post-divide        " << s.post_divide << "   (after the collective: g *= " << s.scale << ")\n";
}

}  // namespace

void add_scale_command(CLI::App& app) {
  auto o = std::make_shared<ScaleOptions>();
  CLI::App* cmd = app.add_subcommand("scale", "Gradient-averaging scale factors of a framework convention");
  cmd->add_option("--convention", o->convention, "zero3-autoep, deepspeed, fsdp1, fsdp2, megatron or torchtitan")
      ->required()
      ->check(CLI::IsMember({"zero3-autoep", "deepspeed", "fsdp1", "fsdp2", "megatron", "torchtitan"}));
  cmd->add_option("--world", o->world,
                  "Data-parallel size: the DP world (deepspeed, zero3-autoep), the reduce world N (fsdp1/2), |dp*cp| (megatron), "
                  "dp_replicate*dp_shard*cp (torchtitan)")
      ->required()->check(within(1, max_ranks));
  cmd->add_option("--ep", o->ep, "Expert-parallel size")->check(within(1, max_ranks));
  cmd->add_flag("--expert", o->expert, "The parameter is an expert parameter");
  cmd->add_option("--predivide-factor", o->predivide_factor, "deepspeed: gradient_predivide_factor f");
  cmd->add_flag("--prescale", o->prescale, "deepspeed: prescale_gradients (divide by D before the all-reduce)");
  cmd->add_option("--divide-factor", o->divide_factor, "fsdp1/fsdp2: user gradient divide factor (replaces N)")->check(within(1, index_t{1} << 53));
  cmd->add_flag("--low-precision", o->low_precision, "fsdp2/torchtitan: fp16 reduction (pre/post split instead of AVG)");
  cmd->add_flag("--average-in-collective", o->average_in_collective, "megatron: average_in_collective");
  cmd->add_option("--edp", o->edp, "megatron: expert data-parallel size (default: --world / --ep)")->check(within(1, max_ranks));
  cmd->add_option("--tp", o->tp, "deepspeed: AutoTP size (AutoEP folds over it: EDP = world*tp/ep); torchtitan: TP size (experts borrow dp_shard*cp*tp)")
      ->check(within(1, max_ranks));
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([cmd, o] { run(*cmd, *o); });
}

}  // namespace shardalg::cli
