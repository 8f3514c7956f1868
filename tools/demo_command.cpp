// `shardalg demo`: the main job. A real-shaped model state (parameters and, by default, Adam's
// states) moved between two layouts: the full-size plan computed, verified and summarized, then
// executed in the host simulator on a scaled-down copy with every element checked; then that
// copy's state written as a real DCP checkpoint under the source layout and resharded on disk to
// the destination layout, checked element by element.
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>

#include "checkpoint_writing.hpp"
#include "commands.hpp"
#include "plan_support.hpp"

namespace shardalg::cli {
namespace {

struct DemoOptions {
  std::string model = "llama3-8b", src_layout = "fsdp-tp dp=4,tp=2", dst_layout = "zero3 dp=6", optimizer = "adam";
  index_t scale_down_factor = 16;
  std::string checkpoint_dir;  // empty: a temporary folder, removed at the end
  bool quiet = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The model the options name, with its optimizer's states.
ModelSpec demo_model(const DemoOptions& o) { return with_optimizer(load_model(o.model), o.optimizer); }

void run(const DemoOptions& o) {
  ModelSpec model = demo_model(o);
  std::cout << "reshard " << model.name << " (" << model.tensors.size() << " tensors, " << model.parameter_count() << " parameters";
  if (!model.optimizer.empty()) std::cout << ", " << model.state_count() << " elements of " << model.optimizer << " state";
  std::cout << ") from \"" << o.src_layout << "\" to \"" << o.dst_layout << "\"\n\n";
  auto start = std::chrono::steady_clock::now();
  ModelReshardPlan plan(layout_model(model, o.src_layout), layout_model(model, o.dst_layout));
  TransferList transfers = plan.all_transfers();
  double plan_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  verify_plan(plan, transfers);
  std::cout << "full-size plan, verified in " << seconds_since(start) * 1e3 << " ms: every destination element written once, "
            << "from a source rank holding it\n";
  print_summary(CommunicationVolume(plan, transfers), plan_seconds);
  ModelSpec small = scale_down(model, o.scale_down_factor);
  std::cout << "\nexecuting on a copy scaled down " << o.scale_down_factor << "x (" << small.parameter_count() << " parameters, "
            << small.state_count() << " state elements) in the host simulator\n";
  ModelReshardPlan small_plan(layout_model(small, o.src_layout), layout_model(small, o.dst_layout));
  if (simulate_and_check(small_plan, small_plan.all_transfers()) > 0) detail::fail("simulation found mismatches");
}

// The scaled-down model's state (each element's bytes a hash of its tensor and position) as one
// safetensors file: the values the checkpoints carry.
void write_values(const std::filesystem::path& file, const ModelSpec& model) {
  std::vector<SafetensorsItem> items;
  for (const ModelTensor& t : model.tensors) items.push_back(SafetensorsItem{t.name, t.dtype, t.shape});
  std::ofstream out(file, std::ios::binary);
  out << safetensors_header_bytes(items);
  std::vector<std::uint32_t> block;
  for (std::size_t t = 0; t < model.tensors.size(); ++t) {
    auto bytes = static_cast<std::size_t>(volume(model.tensors[t].shape) * element_bytes(model.tensors[t].dtype));
    block.resize((bytes + 3) / 4);
    for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<std::uint32_t>(((t + 1) * 0x9e3779b97f4a7c15u + i * 0xbf58476d1ce4e5b9u) >> 29);
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(bytes));
  }
  if (!out) detail::fail("cannot write '", file.string(), "'");
}

// Saves the scaled-down model as DCP under the source layout, reshards it on disk to the
// destination layout with progress, and checks the result element by element. Returns the exit code.
int checkpoint_stage(const DemoOptions& o, ModelSpec small) {
  namespace fs = std::filesystem;
  bool temporary = o.checkpoint_dir.empty();
  fs::path root = temporary ? fs::temp_directory_path() / ("shardalg-demo-" + std::to_string(::getpid())) : fs::path(o.checkpoint_dir);
  if (fs::exists(root)) detail::fail("--checkpoint-dir '", root.string(), "' already exists (the demo creates it)");
  fs::create_directories(root / "values");
  struct Cleanup {
    fs::path root;
    bool remove;
    ~Cleanup() {
      std::error_code ec;
      if (remove) fs::remove_all(root, ec);
    }
  } cleanup{root, temporary};
  write_values(root / "values" / "model.safetensors", small);
  Checkpoint values = Checkpoint::open(root / "values");
  ModelLayout src_layout = layout_model(small, o.src_layout), dst_layout = layout_model(small, o.dst_layout);
  std::cout << "\nsaving it as a PyTorch DCP checkpoint under \"" << o.src_layout << "\" (" << src_layout.ranks().size() << " ranks) in " << root.string()
            << "\n";
  WriteSettings settings;
  settings.quiet = o.quiet;
  WriteTeam alone(false);  // the demo's temporary folders are this process's own
  write_and_check(alone, values, plan_dcp_output(values.layout(), src_layout, DcpFlavor::torch_2), (root / "src").string(), settings, "saved");
  Checkpoint saved = Checkpoint::open(root / "src");
  std::cout << "resharding it on disk to \"" << o.dst_layout << "\" (" << dst_layout.ranks().size() << " ranks)\n";
  settings.check = true;
  int code = write_and_check(alone, saved, plan_dcp_output(saved.layout(), dst_layout, DcpFlavor::torch_2), (root / "dst").string(), settings, "resharded");
  if (!temporary) std::cout << "checkpoints kept in " << root.string() << " (src, dst)\n";
  return code;
}

}  // namespace

void add_demo_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand("demo", "Reshard a real-shaped model: plan, verify, simulate on a scaled-down copy, summarize");
  cmd->add_option("--model", o->model, "Built-in model or JSON model file")->capture_default_str();
  cmd->add_option("--src-layout", o->src_layout, "Source recipe")->capture_default_str();
  cmd->add_option("--dst-layout", o->dst_layout, "Destination recipe")->capture_default_str();
  cmd->add_option("--scale-down", o->scale_down_factor, "Scale-down factor of the executed copy")->capture_default_str()->check(within(1, index_t{1} << 62));
  add_optimizer_option(*cmd, o->optimizer);
  cmd->add_option("--checkpoint-dir", o->checkpoint_dir, "Keep the demo's checkpoints in this new folder (default: a temporary one, removed)");
  cmd->add_flag("--quiet", o->quiet, "No progress bars");
  cmd->callback([o, &exit_code] {
    run(*o);
    exit_code = checkpoint_stage(*o, scale_down(demo_model(*o), o->scale_down_factor));
  });
}

}  // namespace shardalg::cli
