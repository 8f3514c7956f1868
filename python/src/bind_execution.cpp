// Execution over memory Python owns (numpy arrays, torch tensors): buffers arrive as
// (address, bytes, dtype) triples the Python layer took from the arrays, which it keeps alive;
// nothing is copied into shardalg. execute_local runs every rank in this process; _execute runs
// one rank's part with the engine over a Python communicator (shardalg.torch: torch.distributed).
#include "bindings.hpp"

namespace shardalg::python {
namespace {

using RawBuffer = std::tuple<std::uintptr_t, std::size_t, std::string>;

template <class Buffer>
std::vector<Buffer> buffers_from(const std::vector<RawBuffer>& raw) {
  std::vector<Buffer> out;
  for (const auto& [address, bytes, dtype] : raw) {
    using Byte = std::remove_pointer_t<decltype(Buffer::data)>;
    out.push_back(Buffer{reinterpret_cast<Byte*>(address), bytes, parse_dtype(dtype)});
  }
  return out;
}

template <class Buffer>
std::map<index_t, std::vector<Buffer>> rank_buffers_from(const std::map<index_t, std::vector<RawBuffer>>& raw) {
  std::map<index_t, std::vector<Buffer>> out;
  for (const auto& [rank, buffers] : raw) out.emplace(rank, buffers_from<Buffer>(buffers));
  return out;
}

py::dict stats_dict(const ExecuteStats& stats) {
  py::dict out;
  out["bytes_sent"] = stats.bytes_sent;
  out["bytes_received"] = stats.bytes_received;
  out["bytes_local"] = stats.bytes_local;
  out["rounds"] = stats.rounds;
  out["peak_staging"] = stats.peak_staging;
  return out;
}

// The engine's Communicator over a Python object with the methods rank, all_max(values, timeout)
// -> values, post_receive(view, peer, tag), post_send(view, peer, tag), wait_receive(timeout) ->
// index, wait_sends(timeout). Views are writable memoryviews over the engine's memory, valid
// until the batch's wait_sends returns; a send's view is only read (torch.frombuffer wants a
// writable buffer).
class PythonCommunicator {
 public:
  PythonCommunicator(py::object impl, index_t rank) : impl_(std::move(impl)), rank_(rank) {}
  index_t rank() const { return rank_; }
  void all_max(std::span<index_t> values, double timeout_seconds) {
    py::list in;
    for (index_t v : values) in.append(v);
    py::sequence out = impl_.attr("all_max")(in, timeout_seconds);
    if (out.size() != values.size()) detail::fail("communicator: all_max returned ", out.size(), " values for ", values.size());
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = out[i].cast<index_t>();
  }
  void post_receive(std::byte* data, std::size_t bytes, index_t peer, int tag) {
    impl_.attr("post_receive")(py::memoryview::from_memory(data, static_cast<py::ssize_t>(bytes)), peer, tag);
  }
  void post_send(const std::byte* data, std::size_t bytes, index_t peer, int tag) {
    impl_.attr("post_send")(py::memoryview::from_memory(const_cast<std::byte*>(data), static_cast<py::ssize_t>(bytes)), peer, tag);
  }
  std::size_t wait_receive(double timeout_seconds) { return impl_.attr("wait_receive")(timeout_seconds).cast<std::size_t>(); }
  void wait_sends(double timeout_seconds) { impl_.attr("wait_sends")(timeout_seconds); }

 private:
  py::object impl_;
  index_t rank_;
};
static_assert(Communicator<PythonCommunicator>);

// Copies what `rank` holds of tensor `name` between the whole tensor and the rank's buffer,
// row by row. Both memories are checked against the layout first.
void copy_held(const ModelLayout& layout, const std::string& name, index_t rank, const RawBuffer& whole, const RawBuffer& buffer,
               bool to_buffer) {
  auto t = layout.find(name);
  if (!t) detail::fail("model layout: no tensor '", name, "'");
  const NamedTensorLayout& tensor = layout[*t];
  index_t element = element_bytes(tensor.dtype);
  index_t whole_bytes = checked_mul(volume(tensor.layout.global_shape()), element);
  if (static_cast<index_t>(std::get<1>(whole)) != whole_bytes)
    detail::fail("tensor '", name, "' has ", std::get<1>(whole), " bytes; its shape ", tensor.layout.global_shape(), " at ", tensor.dtype,
                 " needs ", whole_bytes);
  index_t held = tensor.layout.mesh().contains(rank) ? tensor.layout.buffer_elements(rank) : 0;
  if (static_cast<index_t>(std::get<1>(buffer)) != checked_mul(held, element))
    detail::fail("rank ", rank, "'s buffer for tensor '", name, "' has ", std::get<1>(buffer), " bytes; the layout needs ", held * element);
  if (held == 0) return;
  auto* whole_data = reinterpret_cast<std::byte*>(std::get<0>(whole));
  auto* buffer_data = reinterpret_cast<std::byte*>(std::get<0>(buffer));
  py::gil_scoped_release release;
  detail::for_each_held_row(tensor.layout, rank, [&](index_t local, index_t global, index_t count) {
    std::byte* a = buffer_data + local * element;
    std::byte* b = whole_data + global * element;
    if (to_buffer)
      std::memcpy(a, b, static_cast<std::size_t>(count * element));
    else
      std::memcpy(b, a, static_cast<std::size_t>(count * element));
  });
}

// A rank's part with the staging memory its runs reuse: a framework that reshards every step
// builds it once, and staging is allocated (and its pages faulted in) once, not on every run.
struct PreparedPart : RankPart {
  PreparedPart(const ModelReshardPlan& plan, index_t rank) : RankPart(plan, rank) {}
  StagingArena arena;
};

// One rank's reshard over a Python communicator, prepared (checked, agreed) once and run as
// often as needed: the engine's PreparedReshard with the communicator and buffers it refers to.
struct TorchReshard {
  TorchReshard(const ModelReshardPlan& plan, PreparedPart& part, const std::vector<RawBuffer>& sources, const std::vector<RawBuffer>& destinations,
               py::object communicator, double timeout_seconds, index_t memory_limit, std::function<void(index_t, index_t)> progress)
      : comm(std::move(communicator), part.rank()), in(buffers_from<SourceBuffer>(sources)), out(buffers_from<DestinationBuffer>(destinations)) {
    ExecuteOptions options;
    options.timeout_seconds = timeout_seconds;
    options.memory_limit = memory_limit;
    options.progress = std::move(progress);
    options.arena = &part.arena;
    reshard.emplace(plan, part, std::span<const SourceBuffer>(in), std::span<const DestinationBuffer>(out), comm, std::move(options));
  }
  PythonCommunicator comm;
  std::vector<SourceBuffer> in;
  std::vector<DestinationBuffer> out;
  std::optional<PreparedReshard<PythonCommunicator>> reshard;
};

// LocalExecution::run over buffers bound once (their addresses taken once).
struct BoundLocalExecution {
  const LocalExecution& execution;
  LocalSources sources;
  LocalDestinations destinations;
};

}  // namespace

void bind_execution(py::module_& m) {
  py::class_<LocalExecution>(m, "LocalExecution",
                              "Every rank's part of a plan, prepared once and run in this process as often as needed: run(sources, "
                              "destinations) checks the buffers and moves each byte once, source box to destination box.")
      .def(py::init<const ModelReshardPlan&, unsigned>(), py::arg("plan"), py::arg("threads") = 0, py::keep_alive<1, 2>(),
           py::call_guard<py::gil_scoped_release>(), "Builds each rank's part; `threads`: 0 for one per core.")
      .def_property_readonly("plan", &LocalExecution::plan, py::return_value_policy::reference_internal)
      .def_property_readonly("ranks", &LocalExecution::ranks)
      .def("_run", [](const LocalExecution& execution, const std::map<index_t, std::vector<RawBuffer>>& sources,
                      const std::map<index_t, std::vector<RawBuffer>>& destinations) {
             LocalSources in = rank_buffers_from<SourceBuffer>(sources);
             LocalDestinations out = rank_buffers_from<DestinationBuffer>(destinations);
             ExecuteStats stats;
             {
               py::gil_scoped_release release;
               stats = execution.run(in, out);
             }
             return stats_dict(stats);
           }, py::arg("sources"), py::arg("destinations"))
      .def("_bind", [](const LocalExecution& execution, const std::map<index_t, std::vector<RawBuffer>>& sources,
                       const std::map<index_t, std::vector<RawBuffer>>& destinations) {
             return BoundLocalExecution{execution, rank_buffers_from<SourceBuffer>(sources), rank_buffers_from<DestinationBuffer>(destinations)};
           }, py::arg("sources"), py::arg("destinations"), py::keep_alive<0, 1>());
  py::class_<BoundLocalExecution>(m, "BoundLocalExecution", py::dynamic_attr(),
                                  "A LocalExecution bound to buffers (LocalExecution.bind): run() moves the bytes they hold now, with the "
                                  "checks but without converting the buffers again. The arrays must not be resized or freed meanwhile.")
      .def("run", [](const BoundLocalExecution& bound) {
        ExecuteStats stats;
        {
          py::gil_scoped_release release;
          stats = bound.execution.run(bound.sources, bound.destinations);
        }
        return stats_dict(stats);
      }, "Runs every rank's part over the bound buffers; returns byte counts.");
  // The reference executor over copies of the buffers (bytes per rank, in buffer order): what
  // execute_local must equal.
  m.def("_host_simulate", [](const ModelReshardPlan& plan, const std::map<index_t, std::vector<py::bytes>>& sources) {
    ModelBuffers<std::byte> in(plan.source().buffer_count());
    for (const auto& [rank, buffers] : sources) {
      if (buffers.size() != in.size()) detail::fail("host simulator: rank ", rank, " gave ", buffers.size(), " buffers; the source has ", in.size());
      for (std::size_t b = 0; b < buffers.size(); ++b) {
        std::string_view bytes(buffers[b]);
        auto* first = reinterpret_cast<const std::byte*>(bytes.data());
        in[b][rank].assign(first, first + bytes.size());
      }
    }
    ModelBuffers<std::byte> out;
    {
      py::gil_scoped_release release;
      out = simulate_model(plan, plan.all_transfers(), in);
    }
    std::map<index_t, std::vector<py::bytes>> result;
    for (std::size_t b = 0; b < out.size(); ++b)
      for (const auto& [rank, bytes] : out[b]) {
        auto& buffers = result[rank];
        buffers.resize(out.size());
        buffers[b] = py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      }
    return result;
  }, py::arg("plan"), py::arg("sources"));
  m.def("_copy_held", &copy_held, py::arg("layout"), py::arg("tensor"), py::arg("rank"), py::arg("whole"), py::arg("buffer"), py::arg("to_buffer"));

  py::class_<PreparedPart>(m, "RankPart",
                       "One rank's part of a model plan, as an executor runs it: a byte stream per peer and local copies. Build it once "
                       "and pass it to shardalg.torch.reshard when the same plan runs repeatedly.")
      .def(py::init<const ModelReshardPlan&, index_t>(), py::arg("plan"), py::arg("rank"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("rank", &RankPart::rank)
      .def_property_readonly("sends", [](const PreparedPart& p) {
        std::vector<std::pair<index_t, index_t>> out;
        for (const Message& message : p.sends()) out.emplace_back(message.peer, message.bytes);
        return out;
      }, "(peer, stream bytes) of each message this rank sends.")
      .def_property_readonly("receives", [](const PreparedPart& p) {
        std::vector<std::pair<index_t, index_t>> out;
        for (const Message& message : p.receives()) out.emplace_back(message.peer, message.bytes);
        return out;
      }, "(peer, stream bytes) of each message this rank receives.")
      .def("contiguous_messages", [](const PreparedPart& p) {
        std::pair<int, int> out{0, 0};
        for (const Message& message : p.sends()) out.first += message.contiguous() != nullptr;
        for (const Message& message : p.receives()) out.second += message.contiguous() != nullptr;
        return out;
      }, "(sends, receives) that are one contiguous range of a buffer: moved without staging copies.")
      .def("_boxes", [](const PreparedPart& p) {
        py::dict out;
        out["sends"] = messages_list(p.sends());
        out["receives"] = messages_list(p.receives());
        py::list local;
        for (const LocalCopy& copy : p.local_copies()) local.append(py::make_tuple(box_tuple(copy.from), box_tuple(copy.to)));
        out["local"] = local;
        py::list identity;
        for (const BoxRows& box : p.identity_boxes()) identity.append(box_tuple(box));
        out["identity"] = identity;
        return out;
      }, "The part's messages (peer, stream bytes, boxes, box stream offsets), local copies and identity boxes, for executors written "
         "with tensor operations (shardalg.torch on devices).")
      .def("local_bytes", [](const PreparedPart& p) {
        index_t bytes = 0;
        for (const LocalCopy& copy : p.local_copies()) bytes += copy.from.bytes();
        return bytes;
      })
      .def("__repr__", [](const PreparedPart& p) {
        return detail::concat("<shardalg.RankPart rank ", p.rank(), ": ", p.sends().size(), " sends, ", p.receives().size(), " receives, ",
                              p.local_copies().size(), " local copies>");
      });
  m.def("_check_part",
        [](const PreparedPart& part, const std::vector<RawBuffer>& sources, const std::vector<RawBuffer>& destinations) {
          detail::check_part(part, buffers_from<SourceBuffer>(sources), buffers_from<DestinationBuffer>(destinations), 0);
        },
        py::arg("part"), py::arg("sources"), py::arg("destinations"));
  py::class_<TorchReshard>(m, "_TorchReshard", py::dynamic_attr())
      .def(py::init<const ModelReshardPlan&, PreparedPart&, const std::vector<RawBuffer>&, const std::vector<RawBuffer>&, py::object, double,
                    index_t, std::function<void(index_t, index_t)>>(),
           py::arg("plan"), py::arg("part"), py::arg("sources"), py::arg("destinations"), py::arg("communicator"), py::arg("timeout"),
           py::arg("memory_limit"), py::arg("progress") = py::none(), py::keep_alive<1, 2>(), py::keep_alive<1, 3>())
      .def("run", [](TorchReshard& r) { return stats_dict(r.reshard->run()); });
}

}  // namespace shardalg::python
