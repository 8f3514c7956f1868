#include <chrono>
#include <iostream>
#include <memory>
#include <numeric>

#include "commands.hpp"
#include "plan_options.hpp"
#include "plan_support.hpp"

namespace shardalg::cli {
namespace {

struct PlanOptions : LayoutOptions {
  index_t rank = -1, relabel_exact_limit = 256;
  bool json = false, summary = false, simulate = false, lower = false, relabel = false;
  CostOptions cost;
  PlanBounds bounds;
};

nlohmann::ordered_json step_json(const LoweredStep& step) {
  nlohmann::ordered_json out{{"op", to_string(step.kind)}, {"mesh_dims", step.mesh_dims},
                             {"bytes", byte_count(step.bytes)}, {"cost_us", step.cost_us}};
  if (step.tensor_dim >= 0) out["tensor_dim"] = step.tensor_dim;
  if (step.split_dim >= 0) out["split_dim"] = step.split_dim;
  return out;
}

std::string mesh_dim_names(const DeviceMesh& mesh, const std::vector<index_t>& dims) {
  std::string out = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) out += (i ? "," : "") + mesh.name(static_cast<std::size_t>(dims[i]));
  return out + "]";
}

void print_lowering(const ModelReshardPlan& plan, const PlanOptions& o) {
  auto [src, dst] = single_mesh_tensor(plan);
  LoweredProgram lowered = lower_reshard(*src, *dst, element_bytes(plan.source()[0].dtype), cost_model_from(o.cost));
  bool collectives = lowered.choice == LoweringChoice::collectives;
  if (o.json) {
    nlohmann::ordered_json out;
    out["choice"] = collectives ? "collectives" : "p2p";
    out["steps"] = nlohmann::ordered_json::array();
    if (collectives) {
      for (const LoweredStep& step : lowered.collectives->steps) out["steps"].push_back(step_json(step));
    } else {
      std::vector<index_t> all(src->mesh().ndim());
      std::iota(all.begin(), all.end(), index_t{0});
      out["steps"].push_back({{"op", "p2p"}, {"mesh_dims", all}, {"bytes", byte_count(lowered.p2p_bytes)}, {"cost_us", lowered.p2p_us}});
      out["reason"] = lowered.reason;
      if (lowered.collectives) {
        out["collective_steps"] = nlohmann::ordered_json::array();
        for (const LoweredStep& step : lowered.collectives->steps) out["collective_steps"].push_back(step_json(step));
      }
    }
    out["p2p_bytes"] = byte_count(lowered.p2p_bytes);
    out["p2p_cost_us"] = lowered.p2p_us;
    std::cout << out.dump() << "\n";
    return;
  }
  std::cout << "source       " << src->to_string() << "\ndestination  " << dst->to_string() << "\n\n";
  std::cout << "choice       " << (collectives ? "collectives" : "p2p") << (collectives ? "" : " (" + lowered.reason + ")") << "\n";
  if (lowered.collectives) {
    const CollectiveProgram& program = *lowered.collectives;
    std::cout << (collectives ? "program" : "best collective program (not used)") << ":\n";
    for (std::size_t i = 0; i < program.steps.size(); ++i) {
      const LoweredStep& step = program.steps[i];
      std::cout << "  " << i + 1 << ". " << to_string(step.kind) << " over " << mesh_dim_names(src->mesh(), step.mesh_dims);
      if (step.kind == CollectiveKind::all_to_all) std::cout << "  tensor dim " << step.tensor_dim << " -> " << step.split_dim;
      else if (step.tensor_dim >= 0) std::cout << "  tensor dim " << step.tensor_dim;
      std::cout << "  " << byte_count(step.bytes) << " bytes  " << step.cost_us << " us\n    -> "
                << format_placements(program.states[i + 1].placements());
      if (program.states[i + 1].application_order() && !program.states[i + 1].application_order()->empty())
        std::cout << "  order " << format_shard_order(*program.states[i + 1].application_order());
      std::cout << "\n";
    }
    std::cout << "collectives  " << program.collectives() << " collective(s), " << byte_count(program.bytes) << " bytes, " << program.cost_us << " us\n";
  }
  std::cout << "p2p          " << byte_count(lowered.p2p_bytes) << " bytes, " << lowered.p2p_us << " us\n";
}

void print_relabeling(const ModelReshardPlan& plan, const PlanOptions& o) {
  Relabeling r = relabel_destination(plan, o.relabel_exact_limit);
  if (o.json) {
    nlohmann::ordered_json out;
    out["exact"] = r.exact;
    out["roles"] = r.roles;
    out["processes"] = r.process_of_role;
    out["bytes_before"] = byte_count(r.moved_before);
    out["bytes_after"] = byte_count(r.moved_after);
    out["bytes_saved"] = byte_count(r.saved());
    out["bytes_bound"] = byte_count(r.moved_bound);
    std::cout << out.dump() << "\n";
    return;
  }
  std::cout << "relabeling   " << (r.exact ? "exact (maximum-weight assignment)" : "greedy (heaviest pairs first)") << "\n"
            << "destination rank -> process\n";
  for (std::size_t i = 0; i < r.roles.size(); ++i)
    std::cout << "  " << r.roles[i] << " -> " << r.process_of_role[i] << (r.roles[i] == r.process_of_role[i] ? "" : "  (moved)") << "\n";
  std::cout << "bytes moved before  " << byte_count(r.moved_before) << "\n"
            << "bytes moved after   " << byte_count(r.moved_after) << "\n"
            << "bytes saved         " << byte_count(r.saved()) << "\n"
            << "lower bound         " << byte_count(r.moved_bound) << (r.exact ? " (optimal)" : detail::concat(" (gap ", byte_count(r.moved_after - r.moved_bound), " bytes)")) << "\n";
}

void print_transfers(const ModelReshardPlan& plan, const TransferList& transfers) {
  bool one = plan.size() == 1;
  if (one)
    std::cout << "source       " << plan.source()[0].layout.to_string() << "\ndestination  "
              << plan.destination()[plan.destination_index(0)].layout.to_string() << "\n\n";
  for (const Transfer& t : transfers) {
    std::cout << (t.src_rank == t.dst_rank ? "local " : "send  ") << t.src_rank << " -> " << t.dst_rank;
    if (!one) std::cout << "  " << plan.source()[static_cast<std::size_t>(t.tensor)].name;
    std::cout << "  global " << format_box(t.global) << "  src at " << t.src_local << "  dst at " << t.dst_local << (t.contributors > 1 ? "  (reduce)" : "") << "\n";
  }
}

void run(const CLI::App& cmd, const PlanOptions& o) {
  auto start = std::chrono::steady_clock::now();
  ModelReshardPlan plan = plan_from(cmd, o);
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  if (o.summary && o.rank < 0 && !o.json && !o.simulate) {  // counted rank by rank, never listed
    require_countable(plan, o.bounds);
    CommunicationVolume volume = CommunicationVolume::of_plan(plan);
    return print_summary(volume, elapsed());
  }
  if (o.rank < 0) require_plannable(plan, o.bounds, o.json ? 112.0 : 96.0, o.simulate);  // JSON: an entry number per transfer more
  if (o.lower) return print_lowering(plan, o);
  if (o.relabel) return print_relabeling(plan, o);
  TransferList transfers;
  if (o.rank >= 0) {
    const auto& s = plan.source().ranks();
    const auto& d = plan.destination().ranks();
    if (!std::binary_search(s.begin(), s.end(), o.rank) && !std::binary_search(d.begin(), d.end(), o.rank))
      detail::fail("--rank ", o.rank, " is in neither the source nor the destination layout");
    if (o.simulate) detail::fail("--simulate runs the whole plan; leave out --rank");
    transfers = plan.transfers_to(o.rank);
    TransferList sends = plan.transfers_from(o.rank);
    for (std::size_t i = 0; i < sends.size(); ++i)
      if (sends.dst_rank(i) != o.rank) transfers.push_back(sends, i);
  } else {
    transfers = plan.all_transfers();
    verify_plan(plan, transfers);  // a failing plan is never shown as valid
  }
  double seconds = elapsed();
  if (o.json) {
    write_transfers_json(std::cout, plan, transfers);
  } else if (!o.summary && !o.simulate) {
    print_transfers(plan, transfers);
  }
  if (o.summary) print_summary(CommunicationVolume(plan, transfers), seconds);
  if (o.simulate && simulate_and_check(plan, transfers) > 0) detail::fail("simulation found mismatches");
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* cmd = app.add_subcommand("plan", "Resharding plan of one tensor or a whole model between two layouts (any meshes)");
  add_layout_options(*cmd, *o);
  o->bounds.add_to(*cmd);
  cmd->add_option("--rank", o->rank, "Only this rank's receives and sends, planned without the rest")->check(within(0, max_ranks - 1));
  cmd->add_flag("--json", o->json, "Print the transfers as JSON");
  cmd->add_flag("--summary", o->summary, "Print bytes moved and kept, messages, per-rank maxima, the lower bound and plan time");
  auto* simulate = cmd->add_flag("--simulate", o->simulate,
                                 "Run the plan in the host simulator at each tensor's dtype (Partial sources too) and check every element");
  auto* lower = cmd->add_flag("--lower", o->lower, "Lower a one-mesh reshard to collectives (or say why point-to-point is better)");
  auto* relabel = cmd->add_flag("--relabel", o->relabel, "The destination rank relabeling that moves the fewest bytes");
  cmd->add_option("--relabel-exact-limit", o->relabel_exact_limit, "Largest world solved exactly; greedy above")
      ->capture_default_str()
      ->needs(relabel)->check(within(0, 1024, "the exact solver's cubic time passes a few seconds above 1024 ranks; larger worlds use the greedy method"));
  add_cost_options(*cmd, o->cost, lower);
  lower->excludes(relabel);
  for (auto* other : {simulate, cmd->get_option("--summary"), cmd->get_option("--rank")}) {
    lower->excludes(other);
    relabel->excludes(other);
  }
  cmd->callback([o, cmd] { run(*cmd, *o); });
}

}  // namespace shardalg::cli
