// shardalg checkpoint inspect | verify | read-plan | reshard | consolidate: real checkpoint
// folders (PyTorch DCP, safetensors), read without executing anything in them, converted
// between topologies and formats.
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "checkpoint_json.hpp"
#include "model_file.hpp"
#include "checkpoint_writing.hpp"
#include "plan_support.hpp"
#include "shardalg/core/byte_size.hpp"
#include "shardalg/storage/checkpoint_loading.hpp"

namespace shardalg::cli {
namespace {

struct CheckpointOptions {
  std::string folder, model, layout, optimizer = "none";
  std::optional<index_t> rank;
  bool json = false, summary = false;
  // reshard and consolidate
  std::string destination, format = "dcp", torch_version, memory_limit = "256MiB", max_shard_size = "5GB";
  unsigned threads = 4;
  bool check = false, quiet = false, skip_entries = false;
};

void inspect(const CheckpointOptions& o) {
  Checkpoint ck = Checkpoint::open(o.folder);
  const CheckpointLayout& layout = ck.layout();
  if (o.json) {
    std::cout << checkpoint_inspection(ck).dump() << "\n";
    return;
  }
  std::cout << "format   " << to_string(layout.format) << "\nfiles    " << layout.files.size() << "\ntensors  " << layout.tensors.size() << " ("
            << layout.chunk_count() << " chunks, " << layout.tensor_bytes() << " bytes)\nentries  " << layout.entries.size() << "\n";
  for (const StoredTensor& tensor : layout.tensors) {
    std::cout << "  " << tensor.name << "  " << tensor.dtype << " " << tensor.shape << "  " << tensor.chunks.size() << (tensor.chunks.size() == 1 ? " chunk" : " chunks");
    for (std::size_t c = 0; c < tensor.chunks.size() && c < 4; ++c) {
      const StoredChunk& chunk = tensor.chunks[c];
      std::cout << (c ? ", " : ": ") << chunk.box.offsets << "+" << chunk.box.sizes << " in " << (chunk.file == no_file ? "(no file)" : layout.files[chunk.file]);
    }
    std::cout << (tensor.chunks.size() > 4 ? ", ..." : "") << "\n";
  }
  for (const StoredEntry& e : layout.entries)
    std::cout << "  " << e.name << "  (non-tensor, " << e.bytes << " bytes in " << (e.file == no_file ? "(no file)" : layout.files[e.file]) << ")\n";
}

// The model the options name (built-in or JSON file) with its optimizer's states.
ModelSpec named_model(const CheckpointOptions& o) { return with_optimizer(load_model(o.model), o.optimizer); }

// The destination: a model under the recipe, or the recipe over every tensor of the checkpoint.
ModelLayout destination(const CheckpointOptions& o, const CheckpointLayout& layout) {
  return layout_model(o.model.empty() ? checkpoint_model(layout) : named_model(o), o.layout);
}

int verify(const CheckpointOptions& o) {
  Checkpoint ck = Checkpoint::open(o.folder);
  CheckpointVerification report = verify_checkpoint(ck);
  const CheckpointLayout& layout = ck.layout();
  if (o.model.empty() != o.layout.empty()) detail::fail("verify: --model and --layout go together (the model and the recipe it was saved under)");
  if (!o.model.empty()) {
    ModelMatch match = match_model(layout, named_model(o), o.layout);
    report.problems.insert(report.problems.end(), match.problems.begin(), match.problems.end());
    if (match.problems.empty())
      std::cout << (match.matches() ? "layout: the saved chunks match '" + o.layout + "'"
                                    : detail::concat("layout: the saved chunks do not match '", o.layout, "' (", match.differing,
                                                     " tensors differ, first '", match.first_differing, "')"))
                << "\n";
  }
  if (!report.ok()) {
    for (const std::string& p : report.problems) std::cout << "problem: " << p << "\n";
    std::cout << "not verified: " << report.problems.size() << (report.problems.size() == 1 ? " problem" : " problems") << "\n";
    return 1;
  }
  std::cout << "verified: " << report.tensors << " tensors, " << report.chunks << " chunks, " << report.bytes << " bytes\n";
  return 0;
}

void read_plan(const CheckpointOptions& o) {
  Checkpoint ck = Checkpoint::open(o.folder);
  const CheckpointLayout& layout = ck.layout();
  ModelLayout want = destination(o, layout);
  CheckpointReadPlanner planner(layout, want);
  std::vector<index_t> ranks = o.rank ? std::vector<index_t>{*o.rank} : want.ranks();
  if (o.rank && !std::binary_search(want.ranks().begin(), want.ranks().end(), *o.rank))
    detail::fail("read-plan: rank ", *o.rank, " is not in layout '", o.layout, "' (ranks 0..", want.ranks().back(), ")");
  auto bytes_of = [&](std::size_t t, const Dims& lengths) { return static_cast<std::uint64_t>(volume(lengths) * element_bytes(layout.tensors[t].dtype)); };
  // One rank's forwards: what it sends, and with --rank what it receives too (part of its plan).
  auto forwards_of = [&](const RankReadPlan& plan) {
    std::vector<const CheckpointForward*> out;
    for (const CheckpointForward& f : plan.sends) out.push_back(&f);
    if (o.rank)
      for (const CheckpointForward& f : plan.receives) out.push_back(&f);
    return out;
  };
  if (o.json && !o.summary) {  // written as planned, rank by rank: reads, then forwards (planned again)
    std::cout << "{\"reads\":[";
    bool first = true;
    for (index_t rank : ranks)
      for (const CheckpointRead& r : planner.plan(rank).reads) {
        std::cout << (first ? "" : ",") << read_json(ck, rank, r).dump();
        first = false;
      }
    std::cout << "],\"forwards\":[";
    first = true;
    for (index_t rank : ranks) {
      RankReadPlan plan = planner.plan(rank);
      for (const CheckpointForward* f : forwards_of(plan)) {
        std::cout << (first ? "" : ",") << forward_json(layout, *f).dump();
        first = false;
      }
    }
    std::cout << "]}\n";
    return;
  }
  std::uint64_t max_read = 0, total_read = 0, forwarded = 0;
  index_t max_rank = ranks.empty() ? 0 : ranks.front();
  std::vector<std::pair<index_t, std::uint64_t>> per_rank;
  for (index_t rank : ranks) {
    RankReadPlan plan = planner.plan(rank);
    std::uint64_t read = 0;
    for (const CheckpointRead& r : plan.reads) {
      read += bytes_of(r.tensor, r.lengths);
      if (o.summary) continue;
      const StoredChunk& chunk = layout.tensors[r.tensor].chunks[r.chunk];
      std::cout << "rank " << rank << " reads " << layout.tensors[r.tensor].name << " chunk " << chunk.box.offsets << " from " << layout.files[chunk.file]
                << ": storage " << r.storage_offsets << " -> dest " << r.dest_offsets << " lengths " << r.lengths << "\n";
    }
    for (const CheckpointForward& f : plan.sends) forwarded += bytes_of(f.tensor, f.lengths);
    if (!o.summary)
      for (const CheckpointForward* f : forwards_of(plan)) {
        if (f->from == rank) std::cout << "rank " << f->from << " forwards " << layout.tensors[f->tensor].name << " " << f->src_offsets << " lengths " << f->lengths << " to rank " << f->to << "\n";
        else std::cout << "rank " << f->to << " receives " << layout.tensors[f->tensor].name << " " << f->dest_offsets << " lengths " << f->lengths << " from rank " << f->from << "\n";
      }
    total_read += read;
    per_rank.emplace_back(rank, read);
    if (read > max_read) {
      max_read = read;
      max_rank = rank;
    }
  }
  if (!o.summary) return;
  if (o.json) {
    nlohmann::ordered_json ranks_json = nlohmann::ordered_json::array();
    for (auto [rank, read] : per_rank) ranks_json.push_back({{"rank", rank}, {"bytes_read", read}});
    std::cout << nlohmann::ordered_json{{"ranks", std::move(ranks_json)}, {"bytes_read", total_read}, {"max_bytes_read", max_read}, {"max_rank", max_rank},
                                        {"bytes_forwarded", forwarded}, {"bytes_stored", layout.tensor_bytes()}}.dump()
              << "\n";
    return;
  }
  for (auto [rank, read] : per_rank) std::cout << "rank " << rank << " reads " << read << " bytes\n";
  std::cout << "bytes read      " << total_read << " (stored: " << layout.tensor_bytes() << ")\nmost by a rank  " << max_read << " (rank " << max_rank
            << ")\nbytes forwarded " << forwarded << "\n";
}

WriteSettings settings(const CheckpointOptions& o) {
  return WriteSettings{o.threads, parse_byte_size(o.memory_limit, "--memory-limit"), o.check, o.quiet, !o.skip_entries};
}

// Opens the source and plans the output on every process of the team (agreeing on failure), then
// writes it, the files divided among the processes.
template <class Plan>
int convert(const CheckpointOptions& o, std::string_view verb, Plan&& plan) {
  WriteTeam team;
  std::optional<Checkpoint> source;
  std::optional<CheckpointOutput> output;
  team.step([&] {
    source.emplace(Checkpoint::open(o.folder));
    output.emplace(plan(source->layout()));
  });
  return write_and_check(team, *source, *output, o.destination, settings(o), verb);
}

int reshard(const CheckpointOptions& o) {
  return convert(o, "resharded", [&](const CheckpointLayout& layout) {
    return plan_reshard_output(layout, destination(o, layout), o.format, o.torch_version, o.skip_entries);
  });
}

int consolidate(const CheckpointOptions& o) {
  return convert(o, "consolidated", [&](const CheckpointLayout& layout) {
    return plan_safetensors_output(layout, parse_byte_size(o.max_shard_size, "--max-shard-size"), o.skip_entries);
  });
}

}  // namespace

void add_checkpoint_command(CLI::App& app, int& exit_code) {
  CLI::App* cmd = app.add_subcommand("checkpoint", "Read real checkpoint folders (PyTorch DCP, safetensors): inspect, verify, plan every rank's reads");
  cmd->require_subcommand(1);
  auto o = std::make_shared<CheckpointOptions>();
  CLI::App* inspect_cmd = cmd->add_subcommand("inspect", "Format, tensors, dtypes, shapes, chunks, files and bytes of a checkpoint");
  inspect_cmd->add_option("folder", o->folder, "Checkpoint folder")->required();
  inspect_cmd->add_flag("--json", o->json, "Print JSON");
  inspect_cmd->callback([o] { inspect(*o); });
  CLI::App* verify_cmd = cmd->add_subcommand("verify", "Check every chunk, file, archive and byte; exit 1 listing every problem");
  verify_cmd->add_option("folder", o->folder, "Checkpoint folder")->required();
  // --model, and --optimizer (the states of the model's parameters), which needs it.
  auto add_model_options = [&](CLI::App* c, const std::string& help) {
    CLI::Option* model = c->add_option("--model", o->model, help);
    add_optimizer_option(*c, o->optimizer)->needs(model);
  };
  add_model_options(verify_cmd, "Also check the checkpoint holds exactly this model's tensors (built-in name or JSON file)");
  verify_cmd->add_option("--layout", o->layout, "With --model: the recipe the checkpoint is expected to be saved under");
  verify_cmd->callback([o, &exit_code] { exit_code = verify(*o); });
  CLI::App* plan_cmd = cmd->add_subcommand("read-plan", "Every rank's reads (and forwards of replicated data) to load a checkpoint into a layout");
  plan_cmd->add_option("folder", o->folder, "Checkpoint folder")->required();
  plan_cmd->add_option("--layout", o->layout, "Destination recipe, e.g. \"fsdp dp=8\" (without --model: over every tensor of the checkpoint)")->required();
  add_model_options(plan_cmd, "Destination model (built-in name or JSON file)");
  plan_cmd->add_option("--rank", o->rank, "Only this rank's reads, sends and receives")->check(within(0, max_ranks - 1));
  plan_cmd->add_flag("--json", o->json, "Print JSON");
  plan_cmd->add_flag("--summary", o->summary, "Bytes read per rank, the maximum, and bytes forwarded");
  plan_cmd->callback([o] { read_plan(*o); });
  auto add_writing_options = [&](CLI::App* c) {
    c->add_option("--memory-limit", o->memory_limit, "Buffers of all threads together, e.g. 256MiB (default), 1GB");
    c->add_option("--threads", o->threads, "Copying threads (default 4)")->check(CLI::Range(1u, 256u));
    c->add_flag("--check", o->check, "Re-read the output, verify it and compare it with the source element by element");
    c->add_flag("--quiet", o->quiet, "No progress output");
  };
  CLI::App* reshard_cmd = cmd->add_subcommand("reshard", "Convert a checkpoint to another layout (N ranks' files to M ranks' files), written whole or not at all");
  reshard_cmd->add_option("source", o->folder, "Checkpoint folder to read")->required();
  reshard_cmd->add_option("destination", o->destination, "Folder to create (must not exist)")->required();
  reshard_cmd->add_option("--layout", o->layout, "Destination recipe, e.g. \"fsdp dp=3\" (without --model: over every tensor of the checkpoint)")->required();
  add_model_options(reshard_cmd, "Destination model (built-in name or JSON file)");
  reshard_cmd->add_option("--format", o->format, "Output format: dcp (PyTorch Distributed Checkpoint, default) or safetensors (per rank, torch's sharded Hugging Face files)");
  reshard_cmd->add_flag("--skip-entries", o->skip_entries, "With --format safetensors: leave out non-tensor entries");
  reshard_cmd->add_option("--torch", o->torch_version, "DCP module paths for this torch: 1.13 or 2 (default: the source's, else 2)")->check(CLI::IsMember({"1.13", "2"}));
  add_writing_options(reshard_cmd);
  reshard_cmd->callback([o, &exit_code] { exit_code = reshard(*o); });
  CLI::App* consolidate_cmd = cmd->add_subcommand("consolidate", "Whole tensors as Hugging Face safetensors files (dtypes kept), in bounded memory");
  consolidate_cmd->add_option("source", o->folder, "Checkpoint folder to read")->required();
  consolidate_cmd->add_option("destination", o->destination, "Folder to create (must not exist)")->required();
  consolidate_cmd->add_option("--max-shard-size", o->max_shard_size, "Largest file, e.g. 5GB (default), 500MB, 2GiB");
  consolidate_cmd->add_flag("--skip-entries", o->skip_entries, "Leave out non-tensor entries (safetensors holds tensors only)");
  add_writing_options(consolidate_cmd);
  consolidate_cmd->callback([o, &exit_code] { exit_code = consolidate(*o); });
}

}  // namespace shardalg::cli
