#include <chrono>
#include <set>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>

#include "cli_support.hpp"
#include "commands.hpp"

namespace shardalg::cli {
namespace {

struct PlanOptions {
  std::string shape, src_mesh, src_placements, src_devices, dst_mesh, dst_placements, dst_devices, dtype = "fp32";
  index_t rank = -1;
  bool json = false, summary = false, simulate = false;
};

index_t dtype_bytes(const std::string& dtype) {
  if (dtype == "fp32") return 4;
  if (dtype == "fp16" || dtype == "bf16") return 2;
  if (dtype == "int64" || dtype == "fp64") return 8;
  if (dtype == "bytes" || dtype == "int8" || dtype == "fp8") return 1;
  detail::fail("unknown dtype '", dtype, "' (fp32, fp16, bf16, fp64, int64, int8, fp8, bytes)");
}

nlohmann::ordered_json transfers_json(const std::vector<Transfer>& transfers) {
  // One entry per (src, dst) pair, its boxes in plan order.
  std::map<std::pair<index_t, index_t>, nlohmann::ordered_json> by_pair;
  std::vector<std::pair<index_t, index_t>> order;
  for (const Transfer& t : transfers) {
    auto key = std::make_pair(t.src_rank, t.dst_rank);
    if (!by_pair.count(key)) {
      order.push_back(key);
      by_pair[key] = nlohmann::ordered_json::array();
    }
    by_pair[key].push_back({{"offset", to_json(t.global.offset)}, {"shape", to_json(t.global.shape)},
                            {"src_offset", to_json(t.src_local)}, {"dst_offset", to_json(t.dst_local)}});
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& key : order)
    out.push_back({{"src", key.first}, {"dst", key.second}, {"tensor", "tensor"}, {"boxes", by_pair[key]}});
  return out;
}

void print_summary(const ReshardPlan& plan, const std::vector<Transfer>& transfers, index_t bytes, double seconds) {
  index_t moved = 0, local = 0, bound = 0;
  std::map<index_t, index_t> sent, received;
  std::set<std::pair<index_t, index_t>> messages;
  for (const Transfer& t : transfers) {
    index_t b = t.global.volume() * bytes;
    if (t.src_rank == t.dst_rank) {
      local += b;
      continue;
    }
    moved += b;
    sent[t.src_rank] += b;
    received[t.dst_rank] += b;
    messages.insert({t.src_rank, t.dst_rank});
  }
  for (index_t rank : plan.destination().mesh().devices()) bound += plan.lower_bound_elements(rank) * bytes;
  auto max_of = [](const std::map<index_t, index_t>& m) {
    index_t best = 0;
    for (const auto& [rank, b] : m) best = std::max(best, b);
    return best;
  };
  std::cout << "bytes moved between ranks  " << moved << "\n"
            << "bytes kept local           " << local << "\n"
            << "messages                   " << messages.size() << "\n"
            << "max bytes sent by a rank   " << max_of(sent) << "\n"
            << "max bytes received         " << max_of(received) << "\n"
            << "lower bound (bytes)        " << bound << "\n"
            << "transfers (boxes)          " << transfers.size() << "\n"
            << "plan time                  " << seconds * 1e3 << " ms\n";
}

void run(const PlanOptions& o) {
  Dims shape = parse_shape(o.shape);
  MeshLayout src(DeviceMesh::parse(o.src_mesh, o.src_devices), parse_placements(o.src_placements), shape);
  std::string dst_mesh_spec = o.dst_mesh.empty() ? o.src_mesh : o.dst_mesh;
  std::string dst_devices = o.dst_mesh.empty() && o.dst_devices.empty() ? o.src_devices : o.dst_devices;
  MeshLayout dst(DeviceMesh::parse(dst_mesh_spec, dst_devices), parse_placements(o.dst_placements), shape);
  index_t bytes = dtype_bytes(o.dtype);
  ReshardPlan plan(src, dst);
  auto start = std::chrono::steady_clock::now();
  std::vector<Transfer> transfers;
  if (o.rank >= 0) {
    if (!src.mesh().contains(o.rank) && !dst.mesh().contains(o.rank))
      detail::fail("--rank ", o.rank, " is in neither the source nor the destination mesh");
    transfers = plan.transfers_to(o.rank);
    for (Transfer& t : plan.transfers_from(o.rank))
      if (t.dst_rank != o.rank) transfers.push_back(std::move(t));
  } else {
    transfers = plan.all_transfers();
    verify_plan(plan, transfers);  // a failing plan is never shown as valid
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.json) {
    nlohmann::ordered_json out;
    out["transfers"] = transfers_json(transfers);
    std::cout << out.dump() << "\n";
  } else if (!o.summary) {
    std::cout << "source       " << src.to_string() << "\ndestination  " << dst.to_string() << "\n\n";
    for (const Transfer& t : transfers) {
      std::cout << (t.src_rank == t.dst_rank ? "local " : "send  ") << t.src_rank << " -> " << t.dst_rank << "  global ";
      for (std::size_t d = 0; d < t.global.ndim(); ++d) std::cout << (d ? "x" : "") << '[' << t.global.offset[d] << ',' << t.global.end(d) << ')';
      std::cout << "  src at " << t.src_local << "  dst at " << t.dst_local << (t.contributors > 1 ? "  (reduce)" : "") << "\n";
    }
  }
  if (o.summary) print_summary(plan, transfers, bytes, seconds);
  if (o.simulate) {
    if (o.rank >= 0) detail::fail("--simulate runs the whole plan; leave out --rank");
    if (plan.reduce_op()) detail::fail("--simulate needs sources without Partial placements (it scatters one tensor)");
    std::vector<long> data(static_cast<std::size_t>(volume(shape)));
    std::iota(data.begin(), data.end(), 1L);
    RankBuffers<long> sources = scatter_to_ranks(src, data);
    RankBuffers<long> out = simulate(plan, transfers, sources);
    RankBuffers<long> expected = scatter_to_ranks(dst, data);
    index_t mismatches = 0;
    for (const auto& [rank, values] : expected)
      for (std::size_t i = 0; i < values.size(); ++i) mismatches += out.at(rank)[i] != values[i];
    std::cout << "simulated: " << data.size() << " elements, " << mismatches << " mismatches\n";
    if (mismatches) detail::fail("simulation found ", mismatches, " mismatches");
  }
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* cmd = app.add_subcommand("plan", "Resharding plan of one tensor between two mesh layouts (any two meshes)");
  cmd->add_option("--shape", o->shape, "Global tensor shape, e.g. 4096,4096")->required();
  cmd->add_option("--src-mesh", o->src_mesh, "Source mesh, e.g. dp=8")->required();
  cmd->add_option("--src-placements", o->src_placements, "Source placements, e.g. \"S(0)\"")->required();
  cmd->add_option("--src-devices", o->src_devices, "Source mesh ranks (XLA form or list; default row-major 0..N-1)");
  cmd->add_option("--dst-mesh", o->dst_mesh, "Destination mesh (default: the source mesh)");
  cmd->add_option("--dst-placements", o->dst_placements, "Destination placements, e.g. \"S(0),S(1)\"")->required();
  cmd->add_option("--dst-devices", o->dst_devices, "Destination mesh ranks (default row-major 0..N-1)");
  cmd->add_option("--rank", o->rank, "Only this rank's receives and sends, planned without the rest");
  cmd->add_option("--dtype", o->dtype, "Element type for byte counts: fp32, fp16, bf16, fp64, int64, int8, fp8, bytes")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the transfers as JSON");
  cmd->add_flag("--summary", o->summary, "Print bytes moved and kept, messages, per-rank maxima, the lower bound and plan time");
  cmd->add_flag("--simulate", o->simulate, "Run the plan in the host simulator on a test tensor and check every element");
  cmd->callback([o] { run(*o); });
}

}  // namespace shardalg::cli
