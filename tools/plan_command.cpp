#include <chrono>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "plan_support.hpp"

namespace shardalg::cli {
namespace {

struct PlanOptions {
  std::string shape, role = "column_parallel", model, src_layout, dst_layout;
  std::string src_mesh, src_placements, src_devices, dst_mesh, dst_placements, dst_devices, dtype = "fp32";
  std::vector<std::string> tensors;
  index_t rank = -1, scale_down_factor = 1;
  bool json = false, summary = false, simulate = false;
};

// The plan between the two model layouts the options describe: a whole model or one tensor
// under recipes, or one tensor between explicit mesh layouts.
ModelReshardPlan plan_from(const CLI::App& cmd, const PlanOptions& o) {
  const std::vector<std::string> mesh_flags{"--src-mesh", "--src-placements", "--src-devices", "--dst-mesh", "--dst-placements", "--dst-devices"};
  bool recipes = !o.src_layout.empty() || !o.dst_layout.empty() || !o.model.empty();
  if (recipes) {
    if (o.src_layout.empty() || o.dst_layout.empty()) detail::fail("recipes need both --src-layout and --dst-layout");
    for (const std::string& flag : mesh_flags)
      if (cmd.count(flag)) detail::fail("option ", flag, " does not apply with --src-layout/--dst-layout");
    if (o.model.empty() == o.shape.empty()) detail::fail("give exactly one of --model and --shape");
    ModelSpec model;
    if (o.model.empty()) {
      model.name = "tensor";
      model.tensors.push_back(ModelTensor{"tensor", parse_shape(o.shape), parse_tensor_role(o.role), o.dtype});
    } else {
      model = select_tensors(load_model(o.model), o.tensors);
    }
    if (!o.model.empty() && cmd.count("--dtype"))
      for (ModelTensor& t : model.tensors) t.dtype = o.dtype;
    model = scale_down(std::move(model), o.scale_down_factor);
    return ModelReshardPlan(layout_model(model, o.src_layout), layout_model(model, o.dst_layout));
  }
  for (const char* flag : {"--role", "--tensor", "--scale-down"})
    if (cmd.count(flag)) detail::fail("option ", flag, " applies to recipes (--src-layout/--dst-layout)");
  if (o.shape.empty() || o.src_mesh.empty() || o.src_placements.empty() || o.dst_placements.empty())
    detail::fail("give --shape, --src-mesh, --src-placements and --dst-placements (or --src-layout and --dst-layout)");
  Dims shape = parse_shape(o.shape);
  dtype_bytes(o.dtype);
  MeshLayout src(DeviceMesh::parse(o.src_mesh, o.src_devices), parse_placements(o.src_placements), shape);
  std::string dst_mesh = o.dst_mesh.empty() ? o.src_mesh : o.dst_mesh;
  std::string dst_devices = o.dst_mesh.empty() && o.dst_devices.empty() ? o.src_devices : o.dst_devices;
  MeshLayout dst(DeviceMesh::parse(dst_mesh, dst_devices), parse_placements(o.dst_placements), shape);
  std::vector<NamedTensorLayout> source, destination;
  source.push_back(NamedTensorLayout{"tensor", o.dtype, TensorLayout(std::move(src))});
  destination.push_back(NamedTensorLayout{"tensor", o.dtype, TensorLayout(std::move(dst))});
  return ModelReshardPlan(ModelLayout(std::move(source)), ModelLayout(std::move(destination)));
}

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
  cmd->add_option("--shape", o->shape, "Global shape of one tensor, e.g. 4096,4096");
  cmd->add_option("--model", o->model, "A whole model: llama3-8b, llama3-70b, llama3-405b, deepseek-v3, or a JSON model file");
  cmd->add_option("--src-layout", o->src_layout, "Source recipe, e.g. \"zero3 dp=8\" (see docs/resharding.md)");
  cmd->add_option("--dst-layout", o->dst_layout, "Destination recipe, e.g. \"fsdp-tp dp=4,tp=2\"");
  cmd->add_option("--role", o->role, "Role of the --shape tensor under recipes (column_parallel, row_parallel, ...)")->capture_default_str();
  cmd->add_option("--tensor", o->tensors, "Plan only this tensor of the model (repeatable)");
  cmd->add_option("--scale-down", o->scale_down_factor, "Divide every dimension of the model by K, rounding up")->capture_default_str();
  cmd->add_option("--src-mesh", o->src_mesh, "Source mesh, e.g. dp=8");
  cmd->add_option("--src-placements", o->src_placements, "Source placements, e.g. \"S(0)\"");
  cmd->add_option("--src-devices", o->src_devices, "Source mesh ranks (XLA form or list; default row-major 0..N-1)");
  cmd->add_option("--dst-mesh", o->dst_mesh, "Destination mesh (default: the source mesh)");
  cmd->add_option("--dst-placements", o->dst_placements, "Destination placements, e.g. \"S(0),S(1)\"");
  cmd->add_option("--dst-devices", o->dst_devices, "Destination mesh ranks (default row-major 0..N-1)");
  cmd->add_option("--rank", o->rank, "Only this rank's receives and sends, planned without the rest");
  cmd->add_option("--dtype", o->dtype, "Element type (fp32, bf16, fp16, fp64, int64, int32, fp8, int8, bytes); overrides a model's")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the transfers as JSON");
  cmd->add_flag("--summary", o->summary, "Print bytes moved and kept, messages, per-rank maxima, the lower bound and plan time");
  cmd->add_flag("--simulate", o->simulate, "Run the plan in the host simulator on numbered data and check every element");
  cmd->callback([o, cmd] { run(*cmd, *o); });
}

}  // namespace shardalg::cli
