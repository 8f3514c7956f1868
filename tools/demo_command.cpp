// `shardalg demo`: the main job. A real-shaped model moved between two layouts: the full-size
// plan computed, verified and summarized, then executed in the host simulator on a scaled-down
// copy with every element checked.
#include <chrono>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "plan_support.hpp"

namespace shardalg::cli {
namespace {

struct DemoOptions {
  std::string model = "llama3-8b", src_layout = "fsdp-tp dp=4,tp=2", dst_layout = "zero3 dp=6";
  index_t scale_down_factor = 16;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void run(const DemoOptions& o) {
  ModelSpec model = load_model(o.model);
  std::cout << "reshard " << model.name << " (" << model.tensors.size() << " tensors, " << model.parameter_count()
            << " parameters) from \"" << o.src_layout << "\" to \"" << o.dst_layout << "\"\n\n";
  auto start = std::chrono::steady_clock::now();
  ModelReshardPlan plan(layout_model(model, o.src_layout), layout_model(model, o.dst_layout));
  TransferList transfers = plan.all_transfers();
  double plan_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  verify_plan(plan, transfers);
  std::cout << "full-size plan, verified in " << seconds_since(start) * 1e3 << " ms: every destination element written once, "
            << "from a source rank holding it\n";
  print_summary(plan, transfers, plan_seconds);
  ModelSpec small = scale_down(model, o.scale_down_factor);
  std::cout << "\nexecuting on a copy scaled down " << o.scale_down_factor << "x (" << small.parameter_count()
            << " parameters) in the host simulator\n";
  ModelReshardPlan small_plan(layout_model(small, o.src_layout), layout_model(small, o.dst_layout));
  if (simulate_and_check(small_plan, small_plan.all_transfers()) > 0) detail::fail("simulation found mismatches");
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand("demo", "Reshard a real-shaped model: plan, verify, simulate on a scaled-down copy, summarize");
  cmd->add_option("--model", o->model, "Built-in model or JSON model file")->capture_default_str();
  cmd->add_option("--src-layout", o->src_layout, "Source recipe")->capture_default_str();
  cmd->add_option("--dst-layout", o->dst_layout, "Destination recipe")->capture_default_str();
  cmd->add_option("--scale-down", o->scale_down_factor, "Scale-down factor of the executed copy")->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace shardalg::cli
