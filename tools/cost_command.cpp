#include <iostream>
#include <memory>

#include "commands.hpp"
#include "plan_options.hpp"

namespace shardalg::cli {
namespace {

struct CostCommandOptions : LayoutOptions {
  CostOptions cost;
  PlanBounds bounds;
  bool json = false;
};

void run(const CLI::App& cmd, const CostCommandOptions& o) {
  ModelReshardPlan plan = plan_from(cmd, o);
  require_countable(plan, o.bounds);
  CostModel model = cost_model_from(o.cost);
  CommunicationVolume volume = CommunicationVolume::of_plan(plan, model);
  auto rank_of_max = [](const Eigen::VectorXd& v) {
    Eigen::Index at = 0;
    if (v.size()) v.maxCoeff(&at);
    return static_cast<index_t>(at);
  };
  if (o.json) {
    nlohmann::ordered_json out{{"ranks", volume.ranks()},
                               {"bytes_moved", byte_count(volume.moved_bytes())},
                               {"bytes_local", byte_count(volume.local_bytes())},
                               {"messages", volume.messages()},
                               {"max_peers", volume.max_peers()},
                               {"max_sent", byte_count(volume.max_sent())},
                               {"max_sent_rank", rank_of_max(volume.sent())},
                               {"max_received", byte_count(volume.max_received())},
                               {"max_received_rank", rank_of_max(volume.received())},
                               {"lower_bound_total", byte_count(volume.lower_bound_total())},
                               {"lower_bound_max", byte_count(volume.lower_bound_max())},
                               {"p2p_cost_us", volume.point_to_point_us()}};
    std::cout << out.dump() << "\n";
    return;
  }
  std::cout << "ranks                        " << volume.ranks() << "\n"
            << "bytes moved between ranks    " << byte_count(volume.moved_bytes()) << "\n"
            << "bytes kept local             " << byte_count(volume.local_bytes()) << "\n"
            << "messages (rank pairs)        " << volume.messages() << "\n"
            << "most peers of one rank       " << volume.max_peers() << "\n"
            << "max bytes sent by a rank     " << byte_count(volume.max_sent()) << " (rank " << rank_of_max(volume.sent()) << ")\n"
            << "max bytes received           " << byte_count(volume.max_received()) << " (rank " << rank_of_max(volume.received()) << ")\n"
            << "receive lower bound          " << byte_count(volume.lower_bound_total()) << " in all, " << byte_count(volume.lower_bound_max())
            << " at most per rank\n"
            << "point-to-point time estimate " << volume.point_to_point_us() << " us (" << model.ranks_per_node << " ranks per node)\n";
}

}  // namespace

void add_cost_command(CLI::App& app) {
  auto o = std::make_shared<CostCommandOptions>();
  CLI::App* cmd = app.add_subcommand("cost", "Communication-volume summary and alpha-beta time of a plan (any layouts)");
  add_layout_options(*cmd, *o);
  o->bounds.add_to(*cmd);
  add_cost_options(*cmd, o->cost);
  cmd->add_flag("--json", o->json, "Print the summary as JSON");
  cmd->callback([o, cmd] { run(*cmd, *o); });
}

}  // namespace shardalg::cli
