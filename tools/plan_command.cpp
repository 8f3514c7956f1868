#include <chrono>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <span>
#include <string_view>

#include "checkpoint_json.hpp"
#include "commands.hpp"
#include "plan_options.hpp"
#include "plan_support.hpp"

namespace shardalg::cli {
namespace {

struct PlanOptions : LayoutOptions {
  index_t rank = -1, relabel_exact_limit = 256;
  bool json = false, summary = false, simulate = false, lower = false, relabel = false, read_items = false, strict = false;
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

// The DCP read items that load the source, as DCP would have saved it, into the destination:
// each source rank saved its boxes as chunks (replicas once, by the first rank holding them) in
// __<rank>_0.distcp, and each destination rank reads every overlap of its pieces with them
// (offsets within the saved chunk and within the rank's piece, as DCP's ReadItem records them).
void print_read_items(const ModelReshardPlan& plan, const PlanOptions& o) {
  const CheckpointLayout saved = dcp_saved_layout(plan.source());
  std::vector<index_t> ranks = o.rank >= 0 ? std::vector<index_t>{o.rank} : plan.destination().ranks();
  if (o.json) std::cout << "{\"read_items\":[";
  bool first = true;
  std::optional<index_t> listed;  // the rank whose heading is printed
  auto heading_up_to = [&](std::optional<index_t> rank) {  // ranks before `rank` (all, when none) that read nothing say so
    for (index_t r : ranks) {
      if (rank && r >= *rank) break;
      if (!listed || r > *listed) std::cout << "rank " << r << ": nothing to read\n";
    }
  };
  for_each_dcp_read_item(saved, plan.destination(), ranks, [&](index_t rank, const CheckpointRead& r, const Box& piece) {
    if (o.json) {
      std::cout << (first ? "" : ",") << dcp_read_item_json(saved, rank, r, piece).dump();
      first = false;
      return;
    }
    if (listed != rank) {
      heading_up_to(rank);
      std::cout << "rank " << rank << ":\n";
      listed = rank;
    }
    const StoredChunk& chunk = saved.tensors[r.tensor].chunks[r.chunk];
    std::cout << "  " << saved.tensors[r.tensor].name << "  from " << saved.files[chunk.file] << " chunk "
              << format_box(Box(chunk.box.offsets, chunk.box.sizes)) << "  storage at " << r.storage_offsets << "  into chunk "
              << format_box(piece) << " at " << r.dest_offsets << "  lengths " << r.lengths << "\n";
  });
  if (o.json) std::cout << "]}\n";
  else heading_up_to(std::nullopt);
}


// One side of a transfer in a flat (ZeRO/Megatron) partition: the rank's flattened shard and
// where the box's first element is, in the shard and in the partition.
struct FlatSide {
  const FlatTensor* shard;
  Dims shard_offset;         // the box's first element in the shard's coordinates
  index_t partition_offset;  // ... in the rank's partition
};

std::optional<FlatSide> flat_side(const TensorLayout& layout, index_t rank, const Box& global, const Dims& address) {
  if (!layout.is_flat()) return std::nullopt;
  const FlatTensor& shard = layout.flat_layout()->flat_layout_of(rank).tensors()[layout.flat_tensor()];
  Dims local;
  for (std::size_t d = 0; d < global.ndim(); ++d) local.push_back(*shard.tile.dim(d).local_of(global.offset[d]));
  return FlatSide{&shard, local, address[0]};
}

// A transfer with a flat side prints flat ranges: for each run of the box contiguous in every
// flat side's shard (the dims after the last one a flat side holds only part of), the partition
// range and the parameter (shard) offset of a flat side, the local coordinate of a tile side.
void print_flat_runs(const Transfer& t, const std::optional<FlatSide>& src, const std::optional<FlatSide>& dst, std::string_view indent) {
  const std::size_t ndim = t.global.ndim();
  std::size_t split = 0;  // the last dim a flat side holds only part of: runs vary it and the dims after
  for (const std::optional<FlatSide>* side : {&src, &dst})
    if (*side)
      for (std::size_t d = 0; d < ndim; ++d)
        if (t.global.shape[d] != (*side)->shard->shape[d]) split = std::max(split, d);
  index_t run = 1;
  for (std::size_t d = split; d < ndim; ++d) run *= t.global.shape[d];
  Dims outer(std::span<const index_t>(t.global.shape.begin(), t.global.shape.begin() + static_cast<std::ptrdiff_t>(split)));
  auto describe = [&](const char* which, const std::optional<FlatSide>& side, const Dims& tile_local, const Dims& step) {
    std::string text = detail::concat("  ", which);
    if (!side) {
      Dims at = tile_local;
      for (std::size_t d = 0; d < step.size(); ++d) at[d] += step[d];
      return text + detail::concat(" at ", at);
    }
    Dims strides = row_major_strides(side->shard->shape);
    index_t first = 0, here = 0;
    for (std::size_t d = 0; d < ndim; ++d) {
      first += side->shard_offset[d] * strides[d];
      here += (side->shard_offset[d] + (d < step.size() ? step[d] : 0)) * strides[d];
    }
    index_t partition = side->partition_offset + (here - first);
    return text + detail::concat(" partition [", partition, ",", partition + run, ") param [", here, ",", here + run, ")");
  };
  for (index_t i = 0; i < volume(outer); ++i) {
    Dims step = outer.empty() ? Dims{} : row_major_coordinate(outer, i);
    std::cout << indent << "    " << run << " elements" << describe("src", src, t.src_local, step) << describe("dst", dst, t.dst_local, step) << "\n";
  }
}

// One transfer, its lines after the first (flat runs) under `indent` too.
void print_transfer(const ModelReshardPlan& plan, const TransferList& transfers, std::size_t i, std::string_view indent = "") {
  const Transfer t = transfers[i];
  std::cout << indent << (t.src_rank == t.dst_rank ? "local " : "send  ") << t.src_rank << " -> " << t.dst_rank;
  if (plan.size() != 1) std::cout << "  " << plan.source()[static_cast<std::size_t>(t.tensor)].name;
  auto tensor = static_cast<std::size_t>(t.tensor);
  std::optional<FlatSide> src = flat_side(plan.source()[tensor].layout, t.src_rank, t.global, t.src_local);
  std::optional<FlatSide> dst = flat_side(plan.destination()[plan.destination_index(tensor)].layout, t.dst_rank, t.global, t.dst_local);
  std::cout << "  global " << format_box(t.global);
  if (!src && !dst) {
    std::cout << "  src at " << t.src_local << "  dst at " << t.dst_local << (t.contributors > 1 ? "  (reduce)" : "") << "\n";
    return;
  }
  std::cout << (t.contributors > 1 ? "  (reduce)" : "") << "\n";
  print_flat_runs(t, src, dst, indent);
}

// Each flat partition's padding per rank (all ranks, or `only`), once per partition.
void print_padding(const ModelLayout& layout, const char* side, std::optional<index_t> only) {
  std::vector<bool> listed(layout.buffer_count(), false);
  for (std::size_t t = 0; t < layout.size(); ++t) {
    const ComposedFlatLayout* flat = layout[t].layout.flat_layout();
    std::size_t buffer = layout.buffer_of(t);
    if (!flat || listed[buffer]) continue;
    listed[buffer] = true;
    std::cout << "padding  " << side << " " << layout.buffer_name(buffer) << ":";
    for (index_t rank : flat->mesh().devices())
      if (!only || rank == *only) std::cout << "  rank " << rank << " " << flat->flat_layout_of(rank).padding(rank);
    std::cout << "\n";
  }
}

// The layouts of a one-tensor plan, and the padding of each flat partition (of `rank` alone, when given).
void print_header(const ModelReshardPlan& plan, std::optional<index_t> rank = std::nullopt) {
  if (plan.size() == 1)
    std::cout << "source       " << plan.source()[0].layout.to_string() << "\ndestination  "
              << plan.destination()[plan.destination_index(0)].layout.to_string() << "\n";
  print_padding(plan.source(), "source", rank);
  print_padding(plan.destination(), "destination", rank);
  std::cout << "\n";
}

void print_transfers(const ModelReshardPlan& plan, const TransferList& transfers) {
  print_header(plan);
  for (std::size_t i = 0; i < transfers.size(); ++i) print_transfer(plan, transfers, i);
}

// One rank's part: what it keeps (local copies), receives and sends, each under its heading, or
// that it has nothing to do.
void print_rank_transfers(const ModelReshardPlan& plan, const TransferList& transfers, index_t rank) {
  print_header(plan, rank);
  if (transfers.size() == 0) {
    std::cout << "rank " << rank << " has nothing to do: it keeps, receives and sends nothing\n";
    return;
  }
  auto section = [&](const char* heading, auto&& belongs) {
    std::size_t count = 0;
    for (std::size_t i = 0; i < transfers.size(); ++i) count += belongs(transfers[i]) ? 1 : 0;
    std::cout << "rank " << rank << " " << heading << " (" << count << ")" << (count ? ":" : "") << "\n";
    for (std::size_t i = 0; i < transfers.size(); ++i)
      if (belongs(transfers[i])) print_transfer(plan, transfers, i, "  ");
  };
  section("keeps", [](const Transfer& t) { return t.src_rank == t.dst_rank; });
  section("receives", [&](const Transfer& t) { return t.dst_rank == rank && t.src_rank != rank; });
  section("sends", [&](const Transfer& t) { return t.src_rank == rank && t.dst_rank != rank; });
}

void run(const CLI::App& cmd, const PlanOptions& o, std::vector<std::string>& warnings) {
  auto start = std::chrono::steady_clock::now();
  ModelReshardPlan plan = plan_from(cmd, o);
  // After the bounds (a refused request is refused alone): explicit mesh layouts only, recipes
  // follow their frameworks' conventions.
  auto lint = [&] {
    if (!o.src_layout.empty()) return;
    add_lint_warnings(warnings, *plan.source()[0].layout.mesh_layout(), o.strict, "source");
    add_lint_warnings(warnings, *plan.destination()[0].layout.mesh_layout(), o.strict, "destination");
  };
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  if (o.summary && o.rank < 0 && !o.json && !o.simulate) {  // counted rank by rank, never listed
    require_countable(plan, o.bounds);
    lint();
    CommunicationVolume volume = CommunicationVolume::of_plan(plan);
    return print_summary(volume, elapsed());
  }
  if (o.rank < 0) require_plannable(plan, o.bounds, o.json ? 112.0 : 96.0, o.simulate);  // JSON: an entry number per transfer more
  lint();
  if (o.lower) return print_lowering(plan, o);
  if (o.relabel) return print_relabeling(plan, o);
  if (o.read_items) {
    if (o.rank >= 0 && !std::binary_search(plan.destination().ranks().begin(), plan.destination().ranks().end(), o.rank))
      detail::fail("--rank ", o.rank, " is not a rank of the destination layout (--read-items lists a destination rank's reads)");
    return print_read_items(plan, o);
  }
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
    if (o.rank >= 0) print_rank_transfers(plan, transfers, o.rank);
    else print_transfers(plan, transfers);
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
  add_strict_option(*cmd, o->strict);
  cmd->add_flag("--summary", o->summary, "Print bytes moved and kept, messages, per-rank maxima, the lower bound and plan time");
  auto* simulate = cmd->add_flag("--simulate", o->simulate,
                                 "Run the plan in the host simulator at each tensor's dtype (Partial sources too) and check every element");
  auto* lower = cmd->add_flag("--lower", o->lower, "Lower a one-mesh reshard to collectives (or say why point-to-point is better)");
  auto* relabel = cmd->add_flag("--relabel", o->relabel, "The destination rank relabeling that moves the fewest bytes");
  cmd->add_option("--relabel-exact-limit", o->relabel_exact_limit, "Largest world solved exactly; greedy above")
      ->capture_default_str()
      ->needs(relabel)->check(within(0, 1024, "the exact solver's cubic time passes a few seconds above 1024 ranks; larger worlds use the greedy method"));
  auto* read_items = cmd->add_flag("--read-items", o->read_items,
                                   "Print DCP read items: each destination rank's reads of the chunks DCP saved of the source (one per "
                                   "source rank's box, replicas once), with --rank one rank's");
  add_cost_options(*cmd, o->cost, lower);
  lower->excludes(relabel);
  for (auto* other : {simulate, cmd->get_option("--summary"), cmd->get_option("--rank")}) {
    lower->excludes(other);
    relabel->excludes(other);
  }
  for (auto* other : {simulate, cmd->get_option("--summary"), lower, relabel}) read_items->excludes(other);
  cmd->callback([o, cmd] {
    std::vector<std::string> warnings;
    run(*cmd, *o, warnings);
    print_warnings(warnings);
  });
}

}  // namespace shardalg::cli
