// Options shared by the commands that take a plan's layouts: a whole model or one tensor under
// recipes, or one tensor between explicit mesh layouts.
#pragma once

#include <charconv>
#include <string>
#include <vector>

#include "memory_bound.hpp"
#include "plan_support.hpp"

namespace shardalg::cli {

// The options that describe a plan's two layouts (shardalg plan, shardalg run).
struct LayoutOptions {
  std::string shape, role = "column_parallel", model, src_layout, dst_layout;
  std::string src_mesh, src_placements, src_devices, dst_mesh, dst_placements, dst_devices, dtype = "fp32", optimizer = "none";
  std::string src_shard_order, dst_shard_order;
  std::vector<std::string> tensors;
  index_t scale_down_factor = 1, src_stack = -1, dst_stack = -1;
};

// The bound on planning every rank at once (shardalg plan, shardalg cost; `run` plans each
// process's part alone).
struct PlanBounds {
  MemoryBound memory;

  void add_to(CLI::App& cmd) { memory.add_to(cmd); }
};

// What listing every rank's transfers will need, estimated before the work, refused with one
// line when over the bound: the transfers' memory (`bytes_per_transfer` with what the command
// builds from them; per tensor, its destination ranks times the most transfers of its first,
// middle and last destination rank, each planned alone, or at least one per rank) and a
// simulation's buffers (every element each source and destination rank holds).
// Example: S(0),R on dp=4096,tp=4096 of [4] to R,R: each destination rank receives 4 boxes, so
// 67,108,864 transfers of 96 bytes, 6 GiB: refused under --max-memory 4GiB (naming the option).
inline void require_plannable(const ModelReshardPlan& plan, const PlanBounds& bounds, double bytes_per_transfer, bool simulate) {
  double transfers = 0, simulated_bytes = 0;
  for (std::size_t t = 0; t < plan.size(); ++t) {
    const ReshardPlan& part = plan.tensor_plan(t);
    const MeshLayout &src = part.source().placement_layout(), &dst = part.destination().placement_layout();
    const std::vector<index_t>& ranks = dst.mesh().devices();
    std::size_t per_rank = 1;
    if (ranks.size() >= 4096)  // smaller meshes cannot outgrow the bound; larger ones are sampled
      for (std::size_t at : {std::size_t{0}, ranks.size() / 2, ranks.size() - 1}) per_rank = std::max(per_rank, part.transfers_to(ranks[at]).size());
    transfers += static_cast<double>(ranks.size()) * static_cast<double>(per_rank);
    double elements = static_cast<double>(volume(src.global_shape()));
    simulated_bytes += elements * static_cast<double>(element_bytes(plan.source()[t].dtype)) *
                       static_cast<double>(src.replication_factor() + dst.replication_factor());
  }
  bounds.memory.require(transfers * bytes_per_transfer, "planning every rank", detail::concat(byte_count(transfers).dump(), " transfers, ", bytes_per_transfer, " bytes each"));
  if (simulate) bounds.memory.require(simulated_bytes, "--simulate", "every element each source and destination rank holds");
}

// What counting a plan rank by rank (CommunicationVolume::of_plan) will need: its totals per
// rank, refused with one line when over the bound.
inline void require_countable(const ModelReshardPlan& plan, const PlanBounds& bounds) {
  constexpr double bytes_per_rank = 64;  // CommunicationVolume's per-rank totals
  double ranks = 0;
  for (const ModelLayout* layout : {&plan.source(), &plan.destination()})
    if (!layout->ranks().empty()) ranks = std::max(ranks, static_cast<double>(layout->ranks().back() + 1));
  bounds.memory.require(ranks * bytes_per_rank, "counting every rank's bytes", detail::concat(byte_count(ranks).dump(), " ranks, ", bytes_per_rank, " bytes each"));
}

// The plan between the two model layouts the options describe: a whole model or one tensor
// under recipes, or one tensor between explicit mesh layouts.
inline ModelReshardPlan plan_from(const CLI::App& cmd, const LayoutOptions& o) {
  const std::vector<std::string> mesh_flags{"--src-mesh",       "--src-placements", "--src-devices", "--src-shard-order", "--src-stack",
                                            "--dst-mesh",       "--dst-placements", "--dst-devices", "--dst-shard-order", "--dst-stack"};
  DType dtype = parse_dtype(o.dtype);
  bool recipes = !o.src_layout.empty() || !o.dst_layout.empty() || !o.model.empty();
  if (recipes) {
    if (o.src_layout.empty() || o.dst_layout.empty()) detail::fail("recipes need both --src-layout and --dst-layout");
    for (const std::string& flag : mesh_flags)
      if (cmd.count(flag)) detail::fail("option ", flag, " does not apply with --src-layout/--dst-layout");
    if (o.model.empty() == o.shape.empty()) detail::fail("give exactly one of --model and --shape");
    ModelSpec model;
    if (o.model.empty()) {
      model.name = "tensor";
      model.tensors.push_back(ModelTensor{"tensor", parse_shape(o.shape), parse_tensor_role(o.role), dtype});
    } else {
      model = select_tensors(load_model(o.model), o.tensors);
    }
    if (!o.model.empty() && cmd.count("--dtype"))
      for (ModelTensor& t : model.tensors) t.dtype = dtype;
    model = with_optimizer(scale_down(std::move(model), o.scale_down_factor), o.optimizer);
    return ModelReshardPlan(layout_model(model, o.src_layout), layout_model(model, o.dst_layout));
  }
  for (const char* flag : {"--role", "--tensor", "--scale-down", "--optimizer"})
    if (cmd.count(flag)) detail::fail("option ", flag, " applies to recipes (--src-layout/--dst-layout)");
  if (o.shape.empty() || o.src_mesh.empty() || o.src_placements.empty() || o.dst_placements.empty())
    detail::fail("give --shape, --src-mesh, --src-placements and --dst-placements (or --src-layout and --dst-layout)");
  Dims shape = parse_shape(o.shape);
  MeshLayout src = layout_from(DeviceMesh::parse(o.src_mesh, o.src_devices), parse_placements(o.src_placements), shape, o.src_shard_order,
                               o.src_stack, "--src-stack");
  std::string dst_mesh = o.dst_mesh.empty() ? o.src_mesh : o.dst_mesh;
  std::string dst_devices = o.dst_mesh.empty() && o.dst_devices.empty() ? o.src_devices : o.dst_devices;
  MeshLayout dst = layout_from(DeviceMesh::parse(dst_mesh, dst_devices), parse_placements(o.dst_placements), shape, o.dst_shard_order,
                               o.dst_stack, "--dst-stack");
  std::vector<NamedTensorLayout> source, destination;
  source.push_back(NamedTensorLayout{"tensor", dtype, TensorLayout(std::move(src))});
  destination.push_back(NamedTensorLayout{"tensor", dtype, TensorLayout(std::move(dst))});
  return ModelReshardPlan(ModelLayout(std::move(source)), ModelLayout(std::move(destination)));
}

// The one tensor's mesh layouts, for lowering. Errors: several tensors, flat layouts.
inline std::pair<const MeshLayout*, const MeshLayout*> single_mesh_tensor(const ModelReshardPlan& plan) {
  if (plan.size() != 1)
    detail::fail("--lower lowers one tensor; the plan has ", plan.size(), " (choose one with --tensor, or give --shape)");
  const MeshLayout* src = plan.source()[0].layout.mesh_layout();
  const MeshLayout* dst = plan.destination()[plan.destination_index(0)].layout.mesh_layout();
  if (!src || !dst) detail::fail("--lower needs mesh layouts; tensor '", plan.source()[0].name, "' has a flat (ZeRO/Megatron) layout");
  return {src, dst};
}

// The cost model's settings as given on the command line: links as "ALPHA_US,GBPS".
struct CostOptions {
  std::string intra_node, inter_node;
  index_t ranks_per_node = CostModel{}.ranks_per_node;
};

// "3,150": 3 us latency, 150 GB/s. Errors name the flag and the text.
inline LinkParameters parse_link(const std::string& text, const char* flag) {
  auto number = [&](std::string_view part, const char* what) {
    double value = 0;
    auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (part.empty() || error != std::errc{} || end != part.data() + part.size())
      detail::fail(flag, " '", text, "': ", what, " '", part, "' is not a number (expected ALPHA_US,GBPS, e.g. 3,150)");
    return value;
  };
  std::size_t comma = text.find(',');
  if (comma == std::string::npos) detail::fail(flag, " '", text, "': expected ALPHA_US,GBPS, e.g. 3,150");
  LinkParameters link{number(std::string_view(text).substr(0, comma), "latency"), number(std::string_view(text).substr(comma + 1), "bandwidth")};
  if (!link.valid())
    detail::fail(flag, " '", text, "': latency must be finite and >= 0 us, bandwidth finite and > 0 GB/s");
  return link;
}

inline CostModel cost_model_from(const CostOptions& o) {
  CostModel model;
  if (!o.intra_node.empty()) model.intra_node = parse_link(o.intra_node, "--intra-node");
  if (!o.inter_node.empty()) model.inter_node = parse_link(o.inter_node, "--inter-node");
  model.ranks_per_node = o.ranks_per_node;
  model.validate();
  return model;
}

// `only_with`: the flag without which the cost model is unused (given alone, the options are an
// error rather than silently ignored).
inline void add_cost_options(CLI::App& cmd, CostOptions& o, CLI::Option* only_with = nullptr) {
  CostModel defaults;
  std::vector<CLI::Option*> options = {
      cmd.add_option("--intra-node", o.intra_node,
                     detail::concat("Intra-node link as ALPHA_US,GBPS (default ", defaults.intra_node.alpha_us, ",",
                                    defaults.intra_node.gigabytes_per_second, ": NVLink)")),
      cmd.add_option("--inter-node", o.inter_node,
                     detail::concat("Inter-node link as ALPHA_US,GBPS (default ", defaults.inter_node.alpha_us, ",",
                                    defaults.inter_node.gigabytes_per_second, ": InfiniBand)")),
      cmd.add_option("--ranks-per-node", o.ranks_per_node, "Consecutive ranks sharing a node")->capture_default_str()->check(within(1, max_ranks))};
  if (only_with)
    for (CLI::Option* option : options) option->needs(only_with);
}

inline void add_layout_options(CLI::App& cmd, LayoutOptions& o) {
  cmd.add_option("--shape", o.shape, "Global shape of one tensor, e.g. 4096,4096");
  cmd.add_option("--model", o.model, "A whole model: llama3-8b, llama3-70b, llama3-405b, deepseek-v3, or a JSON model file");
  cmd.add_option("--src-layout", o.src_layout, "Source recipe, e.g. \"zero3 dp=8\" (see docs/resharding.md)");
  cmd.add_option("--dst-layout", o.dst_layout, "Destination recipe, e.g. \"fsdp-tp dp=4,tp=2\"");
  cmd.add_option("--role", o.role, "Role of the --shape tensor under recipes (column_parallel, row_parallel, ...)")->capture_default_str();
  cmd.add_option("--tensor", o.tensors, "Plan only this tensor of the model (repeatable)");
  cmd.add_option("--scale-down", o.scale_down_factor, "Divide every dimension of the model by K, rounding up")->capture_default_str()->check(within(1, index_t{1} << 62));
  add_optimizer_option(cmd, o.optimizer);
  cmd.add_option("--src-mesh", o.src_mesh, "Source mesh, e.g. dp=8");
  cmd.add_option("--src-placements", o.src_placements, "Source placements, e.g. \"S(0)\"");
  cmd.add_option("--src-devices", o.src_devices, "Source mesh ranks (XLA form or list; default row-major 0..N-1)");
  cmd.add_option("--dst-mesh", o.dst_mesh, "Destination mesh (default: the source mesh)");
  cmd.add_option("--dst-placements", o.dst_placements, "Destination placements, e.g. \"S(0),S(1)\"");
  cmd.add_option("--dst-devices", o.dst_devices, "Destination mesh ranks (default row-major 0..N-1)");
  cmd.add_option("--src-shard-order", o.src_shard_order, "Source: apply Shard placements in this order per tensor dim, e.g. \"0:[tp,dp]\"");
  cmd.add_option("--dst-shard-order", o.dst_shard_order, "Destination: apply Shard placements in this order per tensor dim");
  add_stack_option(cmd, "--src-stack", o.src_stack, " of the source");
  add_stack_option(cmd, "--dst-stack", o.dst_stack, " of the destination");
  cmd.add_option("--dtype", o.dtype, "Element type (" + dtype_names() + "); overrides a model's")
      ->capture_default_str();
}

}  // namespace shardalg::cli
