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
  CheckpointLayout whole;  // every tensor in one chunk: what the saved layout's boxes are cut from
  for (std::size_t t = 0; t < plan.source().size(); ++t) {
    const NamedTensorLayout& tensor = plan.source()[t];
    Dims shape = tensor.layout.global_shape();
    whole.tensors.push_back(StoredTensor{tensor.name, tensor.dtype, shape, {StoredChunk{ChunkMeta{Dims(shape.size(), 0), shape}}}});
  }
  const CheckpointLayout saved = plan_dcp_output(whole, plan.source(), DcpFlavor::torch_2).layout;
  CheckpointReadPlanner planner(saved, plan.destination());
  std::vector<index_t> ranks = o.rank >= 0 ? std::vector<index_t>{o.rank} : plan.destination().ranks();
  if (o.json) std::cout << "{\"read_items\":[";
  bool first = true;
  for (index_t rank : ranks) {
    std::vector<Piece> pieces;  // the rank's pieces of the tensor last listed
    std::size_t pieces_of = plan.destination().size();
    const std::vector<CheckpointRead> reads = planner.plan(rank, false).reads;  // DCP: every rank reads all it wants itself
    if (!o.json) std::cout << "rank " << rank << (reads.empty() ? ": nothing to read\n" : ":\n");
    for (const CheckpointRead& r : reads) {
      const StoredTensor& tensor = saved.tensors[r.tensor];
      const StoredChunk& chunk = tensor.chunks[r.chunk];
      std::size_t d = *plan.destination().find(tensor.name);
      if (d != pieces_of) pieces = plan.destination()[d].layout.pieces(rank), pieces_of = d;
      const Box& piece = pieces[r.wanted].global;
      if (o.json) {
        std::cout << (first ? "" : ",")
                  << nlohmann::ordered_json{{"rank", rank}, {"tensor", tensor.name}, {"file", saved.files[chunk.file]},
                                            {"storage_chunk_offsets", to_json(chunk.box.offsets)}, {"storage_chunk_sizes", to_json(chunk.box.sizes)},
                                            {"dest_chunk_offsets", to_json(piece.offset)}, {"dest_chunk_sizes", to_json(piece.shape)},
                                            {"storage_offsets", to_json(r.storage_offsets)}, {"dest_offsets", to_json(r.dest_offsets)},
                                            {"lengths", to_json(r.lengths)}}
                         .dump();
        first = false;
      } else {
        std::cout << "  " << tensor.name << "  from " << saved.files[chunk.file] << " chunk " << format_box(Box(chunk.box.offsets, chunk.box.sizes))
                  << "  storage at " << r.storage_offsets << "  into chunk " << format_box(piece) << " at " << r.dest_offsets << "  lengths "
                  << r.lengths << "\n";
      }
    }
  }
  if (o.json) std::cout << "]}\n";
}

void print_header(const ModelReshardPlan& plan) {
  if (plan.size() == 1)
    std::cout << "source       " << plan.source()[0].layout.to_string() << "\ndestination  "
              << plan.destination()[plan.destination_index(0)].layout.to_string() << "\n\n";
}

void print_transfer(const ModelReshardPlan& plan, const TransferList& transfers, std::size_t i) {
  const Transfer t = transfers[i];
  std::cout << (t.src_rank == t.dst_rank ? "local " : "send  ") << t.src_rank << " -> " << t.dst_rank;
  if (plan.size() != 1) std::cout << "  " << plan.source()[static_cast<std::size_t>(t.tensor)].name;
  std::cout << "  global " << format_box(t.global) << "  src at " << t.src_local << "  dst at " << t.dst_local << (t.contributors > 1 ? "  (reduce)" : "") << "\n";
}

void print_transfers(const ModelReshardPlan& plan, const TransferList& transfers) {
  print_header(plan);
  for (std::size_t i = 0; i < transfers.size(); ++i) print_transfer(plan, transfers, i);
}

// One rank's part: what it keeps (local copies), receives and sends, each under its heading, or
// that it has nothing to do.
void print_rank_transfers(const ModelReshardPlan& plan, const TransferList& transfers, index_t rank) {
  print_header(plan);
  if (transfers.size() == 0) {
    std::cout << "rank " << rank << " has nothing to do: it keeps, receives and sends nothing\n";
    return;
  }
  auto section = [&](const char* heading, auto&& belongs) {
    std::size_t count = 0;
    for (std::size_t i = 0; i < transfers.size(); ++i) count += belongs(transfers[i]) ? 1 : 0;
    std::cout << "rank " << rank << " " << heading << " (" << count << ")" << (count ? ":" : "") << "\n";
    for (std::size_t i = 0; i < transfers.size(); ++i)
      if (belongs(transfers[i])) {
        std::cout << "  ";
        print_transfer(plan, transfers, i);
      }
  };
  section("keeps", [](const Transfer& t) { return t.src_rank == t.dst_rank; });
  section("receives", [&](const Transfer& t) { return t.dst_rank == rank && t.src_rank != rank; });
  section("sends", [&](const Transfer& t) { return t.src_rank == rank && t.dst_rank != rank; });
}

void run(const CLI::App& cmd, const PlanOptions& o) {
  auto start = std::chrono::steady_clock::now();
  ModelReshardPlan plan = plan_from(cmd, o);
  if (o.src_layout.empty()) {  // explicit mesh layouts (recipes follow their frameworks' conventions)
    report_lint(*plan.source()[0].layout.mesh_layout(), o.strict, "source");
    report_lint(*plan.destination()[0].layout.mesh_layout(), o.strict, "destination");
  }
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  if (o.summary && o.rank < 0 && !o.json && !o.simulate) {  // counted rank by rank, never listed
    require_countable(plan, o.bounds);
    CommunicationVolume volume = CommunicationVolume::of_plan(plan);
    return print_summary(volume, elapsed());
  }
  if (o.rank < 0) require_plannable(plan, o.bounds, o.json ? 112.0 : 96.0, o.simulate);  // JSON: an entry number per transfer more
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
  cmd->callback([o, cmd] { run(*cmd, *o); });
}

}  // namespace shardalg::cli
