#include <chrono>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "plan_options.hpp"
#include "plan_support.hpp"

namespace shardalg::cli {
namespace {

struct PlanOptions : LayoutOptions {
  index_t rank = -1;
  bool json = false, summary = false, simulate = false;
};

void print_transfers(const ModelReshardPlan& plan, const TransferList& transfers) {
  bool one = plan.size() == 1;
  if (one)
    std::cout << "source       " << plan.source()[0].layout.to_string() << "\ndestination  "
              << plan.destination()[plan.destination_index(0)].layout.to_string() << "\n\n";
  for (const Transfer& t : transfers) {
    std::cout << (t.src_rank == t.dst_rank ? "local " : "send  ") << t.src_rank << " -> " << t.dst_rank;
    if (!one) std::cout << "  " << plan.source()[static_cast<std::size_t>(t.tensor)].name;
    std::cout << "  global ";
    for (std::size_t d = 0; d < t.global.ndim(); ++d) std::cout << (d ? "x" : "") << '[' << t.global.offset[d] << ',' << t.global.end(d) << ')';
    std::cout << "  src at " << t.src_local << "  dst at " << t.dst_local << (t.contributors > 1 ? "  (reduce)" : "") << "\n";
  }
}

void run(const CLI::App& cmd, const PlanOptions& o) {
  auto start = std::chrono::steady_clock::now();
  ModelReshardPlan plan = plan_from(cmd, o);
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
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.json) {
    nlohmann::ordered_json out;
    out["transfers"] = transfers_json(plan, transfers);
    std::cout << out.dump() << "\n";
  } else if (!o.summary && !o.simulate) {
    print_transfers(plan, transfers);
  }
  if (o.summary) print_summary(summarize(plan, transfers), seconds);
  if (o.simulate && simulate_and_check(plan, transfers) > 0) detail::fail("simulation found mismatches");
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* cmd = app.add_subcommand("plan", "Resharding plan of one tensor or a whole model between two layouts (any meshes)");
  add_layout_options(*cmd, *o);
  cmd->add_option("--rank", o->rank, "Only this rank's receives and sends, planned without the rest");
  cmd->add_flag("--json", o->json, "Print the transfers as JSON");
  cmd->add_flag("--summary", o->summary, "Print bytes moved and kept, messages, per-rank maxima, the lower bound and plan time");
  cmd->add_flag("--simulate", o->simulate, "Run the plan in the host simulator on numbered data and check every element");
  cmd->callback([o, cmd] { run(*cmd, *o); });
}

}  // namespace shardalg::cli
