// Checkpoint folders (PyTorch DCP, safetensors) from Python: inspect, verify, read plans, and a
// rank's part loaded straight into numpy arrays or torch tensors (shardalg/__init__.py adds
// Checkpoint.load and read_tensor over _load).
#include "../../tools/checkpoint_json.hpp"
#include "bindings.hpp"

namespace shardalg::python {
namespace {

py::object json_to_python(const nlohmann::ordered_json& value) {
  return py::module_::import("json").attr("loads")(value.dump());
}

// A byte size given as an int or as text ("256MiB", "5GB").
std::uint64_t byte_size(const py::object& value, std::string_view what) {
  if (py::isinstance<py::str>(value)) return parse_byte_size(value.cast<std::string>(), what);
  long long bytes = value.cast<long long>();
  if (bytes < 0) detail::fail(what, " ", bytes, " is negative");
  return static_cast<std::uint64_t>(bytes);
}

// Writes `output` from `ck` with the GIL released, this process's share of the files when
// `processes` > 1; `progress(done, total)` and `agree(failure) -> str` (if not None) are called
// with the GIL held. Returns a summary dict.
py::dict write_output(const Checkpoint& ck, const CheckpointOutput& output, const std::string& destination, unsigned threads, const py::object& memory_limit,
                      const py::object& progress, index_t process, index_t processes, const py::object& agree) {
  WriteOptions options;
  options.threads = threads;
  options.memory_limit = byte_size(memory_limit, "memory_limit");
  options.share = ProcessShare{process, processes};
  if (processes > 1 && agree.is_none()) detail::fail("writing as process ", process, " of ", processes, " needs agree (e.g. shardalg.torch.agreement())");
  if (!progress.is_none())
    options.progress = [&progress](std::uint64_t done, std::uint64_t total) {
      py::gil_scoped_acquire hold;
      progress(done, total);
    };
  if (!agree.is_none())
    options.agree = [&agree](const std::string& failure) {
      py::gil_scoped_acquire hold;
      return agree(failure).cast<std::string>();
    };
  {
    py::gil_scoped_release release;
    write_checkpoint(ck, output, destination, options);
  }
  py::dict d;
  d["format"] = std::string(to_string(output.layout.format));
  d["files"] = output.layout.files;
  d["tensors"] = output.layout.tensors.size();
  d["chunks"] = output.layout.chunk_count();
  d["entries"] = output.layout.entries.size();
  d["bytes"] = output.total_bytes();
  return d;
}

}  // namespace

void bind_checkpoints(py::module_& m) {
  py::class_<Checkpoint>(m, "Checkpoint",
                         "A checkpoint folder (PyTorch DCP or safetensors), opened without executing anything in it: its .metadata "
                         "pickle is read by a restricted reader that refuses any class but DCP's record types.")
      .def(py::init([](const std::string& folder) { return Checkpoint::open(folder); }), py::arg("folder"))
      .def_property_readonly("format", [](const Checkpoint& ck) { return std::string(to_string(ck.layout().format)); })
      .def_property_readonly("files", [](const Checkpoint& ck) { return ck.layout().files; })
      .def_property_readonly("tensor_names", [](const Checkpoint& ck) {
        std::vector<std::string> names;
        for (const StoredTensor& t : ck.layout().tensors) names.push_back(t.name);
        return names;
      })
      .def_property_readonly("entry_names", [](const Checkpoint& ck) {
        std::vector<std::string> names;
        for (const StoredEntry& e : ck.layout().entries) names.push_back(e.name);
        return names;
      })
      .def("inspect", [](const Checkpoint& ck) { return json_to_python(cli::checkpoint_inspection(ck)); },
           "Format, tensors (dtype, shape, chunks with file, byte_offset, bytes), non-tensor entries and total bytes, as a dict "
           "(the JSON of `shardalg checkpoint inspect --json`).")
      .def("verify", [](const Checkpoint& ck, bool check_bytes, const std::optional<ModelSpec>& model, const std::optional<std::string>& layout) {
             if (model.has_value() != layout.has_value()) detail::fail("verify: model and layout go together (the model and the recipe it was saved under)");
             CheckpointVerification report = verify_checkpoint(ck, check_bytes);
             py::dict d;
             if (model) {
               ModelMatch match = match_model(ck.layout(), *model, *layout);
               report.problems.insert(report.problems.end(), match.problems.begin(), match.problems.end());
               d["layout_matches"] = match.matches();
               d["tensors_differing"] = match.differing;
             }
             d["problems"] = report.problems;
             d["tensors"] = report.tensors;
             d["chunks"] = report.chunks;
             d["bytes"] = report.bytes;
             return d;
           }, py::arg("check_bytes") = true, py::arg("model") = py::none(), py::arg("layout") = py::none(),
           "Every problem (each naming tensor, chunk and file) in a dict with counts; no problems means verified. With a model and "
           "the recipe it was saved under, also the model's tensors checked and whether the saved chunks are the recipe's "
           "(layout_matches, tensors_differing).")
      .def("model", [](const Checkpoint& ck) { return checkpoint_model(ck.layout()); },
           "The model the checkpoint holds: each tensor's name, shape and dtype (for layout_model).")
      .def("read_entry", [](const Checkpoint& ck, const std::string& name) {
             for (std::size_t e = 0; e < ck.layout().entries.size(); ++e)
               if (ck.layout().entries[e].name == name) {
                 std::vector<std::byte> bytes = ck.read_entry(e);
                 return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
               }
             detail::fail("checkpoint: no non-tensor entry '", name, "'");
           }, py::arg("name"), "The stored bytes of a non-tensor entry (DCP: a torch.save archive of the value).")
      .def("read_plan", [](const Checkpoint& ck, const ModelLayout& layout, index_t rank, bool share_replicas) {
             CheckpointReadPlanner planner(ck.layout(), layout);
             RankReadPlan plan = planner.plan(rank, share_replicas);
             nlohmann::ordered_json reads = nlohmann::ordered_json::array(), sends = reads, receives = reads;
             for (const CheckpointRead& r : plan.reads) reads.push_back(cli::read_json(ck, rank, r));
             for (const CheckpointForward& f : plan.sends) sends.push_back(cli::forward_json(ck.layout(), f));
             for (const CheckpointForward& f : plan.receives) receives.push_back(cli::forward_json(ck.layout(), f));
             return json_to_python(nlohmann::ordered_json{{"reads", std::move(reads)}, {"sends", std::move(sends)}, {"receives", std::move(receives)}});
           }, py::arg("layout"), py::arg("rank"), py::arg("share_replicas") = true,
           "One rank's reads (DCP read-item semantics) and, where ranks replicate a tensor, the forwards that let each stored "
           "byte be read once per job.")
      .def("reshard", [](const Checkpoint& ck, const std::string& destination, const ModelLayout& layout, const std::string& format,
                         const std::optional<std::string>& torch_version, bool skip_entries, unsigned threads, const py::object& memory_limit,
                         const py::object& progress, index_t process, index_t processes, const py::object& agree) {
             CheckpointOutput output = plan_reshard_output(ck.layout(), layout, format, torch_version.value_or(""), skip_entries);
             return write_output(ck, output, destination, threads, memory_limit, progress, process, processes, agree);
           }, py::arg("destination"), py::arg("layout"), py::arg("format") = "dcp", py::arg("torch") = py::none(), py::arg("skip_entries") = false,
           py::arg("threads") = 4, py::arg("memory_limit") = "256MiB", py::arg("progress") = py::none(), py::kw_only(), py::arg("process") = 0,
           py::arg("processes") = 1, py::arg("agree") = py::none(),
           "Writes the checkpoint as a new folder `destination` laid out as `layout` (each box a rank holds saved once, in its "
           "rank's file), whole or not at all: built in a hidden partial folder and renamed when synced. format: 'dcp' (torch: "
           "'1.13' or '2', the module paths of the torch that will load it; default: the source's) or 'safetensors' (per rank, "
           "as torch's HuggingFaceStorageWriter(save_sharded=True) writes them; non-tensor entries refused unless skip_entries). "
           "progress(done, total) is called as bytes are written (this process's). Several processes (e.g. torch.distributed ranks) "
           "share the work with process=rank, processes=world and agree=shardalg.torch.agreement(): each writes the files "
           "its share gives it, and a failure anywhere fails all, leaving nothing. Returns a summary dict.")
      .def("consolidate", [](const Checkpoint& ck, const std::string& destination, const py::object& max_shard_size, bool skip_entries, unsigned threads,
                             const py::object& memory_limit, const py::object& progress, index_t process, index_t processes, const py::object& agree) {
             CheckpointOutput output = plan_safetensors_output(ck.layout(), byte_size(max_shard_size, "max_shard_size"), skip_entries);
             return write_output(ck, output, destination, threads, memory_limit, progress, process, processes, agree);
           }, py::arg("destination"), py::arg("max_shard_size") = "5GB", py::arg("skip_entries") = false, py::arg("threads") = 4,
           py::arg("memory_limit") = "256MiB", py::arg("progress") = py::none(), py::kw_only(), py::arg("process") = 0,
           py::arg("processes") = 1, py::arg("agree") = py::none(),
           "Writes every tensor whole as Hugging Face safetensors (model.safetensors, or model-0000k-of-0000n.safetensors files of "
           "at most max_shard_size with model.safetensors.index.json), dtypes kept, in bounded memory. Non-tensor entries are "
           "refused unless skip_entries. process, processes, agree: shared by several processes, as reshard.")
      .def("compare", [](const Checkpoint& ck, const Checkpoint& other, bool entries, unsigned threads, const py::object& memory_limit) {
             std::uint64_t limit = byte_size(memory_limit, "memory_limit");
             CheckpointComparison result;
             {
               py::gil_scoped_release release;
               result = compare_checkpoints(ck, other, threads, limit, entries);
             }
             py::dict d;
             d["equal"] = result.equal();
             d["tensors"] = result.tensors;
             d["entries"] = result.entries;
             d["bytes"] = result.bytes;
             d["differences"] = result.differences;
             return d;
           }, py::arg("other"), py::arg("entries") = true, py::arg("threads") = 4, py::arg("memory_limit") = "256MiB",
           "Compares every tensor (and, with entries, every non-tensor entry) of this checkpoint with `other` element by element, whatever their formats and "
           "layouts: a dict with equal, counts and the differences (the first differing element of each tensor).")
      .def("_load", [](const Checkpoint& ck, const ModelLayout& layout, index_t rank, const std::vector<std::tuple<std::uintptr_t, std::size_t, std::string>>& raw,
                       unsigned threads, std::uint64_t memory_limit, bool share_replicas) {
             // One plan for both: the rank's reads, performed here, and its forwards (none when
             // it loads alone), returned as messages for shardalg.torch.load_checkpoint.
             CheckpointReadPlanner planner(ck.layout(), layout);
             RankReadPlan plan = planner.plan(rank, share_replicas);
             std::vector<std::span<std::byte>> buffers;
             for (std::size_t b = 0; b < raw.size(); ++b) {
               auto& [address, bytes, dtype] = raw[b];
               buffers.emplace_back(reinterpret_cast<std::byte*>(address), bytes);
             }
             for (std::size_t d = 0; d < layout.size(); ++d)
               if (layout.buffer_of(d) < raw.size() && parse_dtype(std::get<2>(raw[layout.buffer_of(d)])) != layout[d].dtype)
                 detail::fail("load: tensor '", layout[d].name, "' is ", layout[d].dtype, " but its buffer is ", std::get<2>(raw[layout.buffer_of(d)]));
             std::uint64_t bytes = 0;
             for (const CheckpointRead& r : plan.reads)
               bytes += static_cast<std::uint64_t>(checked_mul(volume(r.lengths), element_bytes(ck.layout().tensors[r.tensor].dtype)));
             ForwardMessages forwards = forward_messages(planner, plan);
             {
               py::gil_scoped_release release;
               load_reads(ck, planner, plan, buffers, LoadOptions{threads, memory_limit});
             }
             py::dict out;
             out["bytes_read"] = bytes;
             out["sends"] = messages_list(forwards.sends);
             out["receives"] = messages_list(forwards.receives);
             return out;
           }, py::arg("layout"), py::arg("rank"), py::arg("buffers"), py::arg("threads"), py::arg("memory_limit"), py::arg("share_replicas") = false);
  m.def("dcp_read_items", [](const ModelReshardPlan& plan, std::optional<index_t> rank) {
        const std::vector<index_t>& ranks = plan.destination().ranks();
        if (rank && !std::binary_search(ranks.begin(), ranks.end(), *rank))
          detail::fail("dcp_read_items: rank ", *rank, " is not a rank of the destination layout");
        const CheckpointLayout saved = dcp_saved_layout(plan.source());
        nlohmann::ordered_json items = nlohmann::ordered_json::array();
        cli::for_each_dcp_read_item(saved, plan.destination(), rank ? std::vector<index_t>{*rank} : ranks,
                                    [&](index_t r, const CheckpointRead& read, const Box& piece) { items.push_back(cli::dcp_read_item_json(saved, r, read, piece)); });
        return json_to_python(items);
      }, py::arg("plan"), py::arg("rank") = py::none(),
      "The read items DCP issues to load the plan's source, as DCP would have saved it (each rank's boxes in __<rank>_0.distcp, "
      "a replica once), into its destination: dicts with rank, tensor, file, storage_chunk_offsets/sizes, dest_chunk_offsets/sizes, "
      "storage_offsets, dest_offsets, lengths (every rank's, or `rank`'s).");
}

}  // namespace shardalg::python
