// Reshard plans: transfers as numpy columns (no Python object per transfer), summaries,
// verification, lowering to collectives and relabeling.
#include "bindings.hpp"

namespace shardalg::python {
namespace {

// A column of a TransferList as an int32 or int64 array.
template <class T, class F>
py::array_t<T> column(const TransferList& list, F&& value) {
  py::array_t<T> out(static_cast<py::ssize_t>(list.size()));
  T* at = out.mutable_data();
  for (std::size_t i = 0; i < list.size(); ++i) at[i] = static_cast<T>(value(i));
  return out;
}

// A coordinate field as an [n, width] int64 array, rows shorter than the widest padded with `fill`.
template <class F>
py::array_t<index_t> coordinates(const TransferList& list, F&& field, index_t fill) {
  std::size_t width = 0;
  for (std::size_t i = 0; i < list.size(); ++i) width = std::max(width, field(i).size());
  py::array_t<index_t> out({static_cast<py::ssize_t>(list.size()), static_cast<py::ssize_t>(width)});
  index_t* at = out.mutable_data();
  for (std::size_t i = 0; i < list.size(); ++i) {
    std::span<const index_t> values = field(i);
    for (std::size_t k = 0; k < width; ++k) at[i * width + k] = k < values.size() ? values[k] : fill;
  }
  return out;
}

py::dict summary_of(const CommunicationVolume& volume) {
  py::dict out;
  out["bytes_moved"] = volume.moved_bytes();
  out["bytes_local"] = volume.local_bytes();
  out["messages"] = volume.messages();
  out["max_bytes_sent"] = volume.max_sent();
  out["max_bytes_received"] = volume.max_received();
  out["max_peers"] = volume.max_peers();
  out["lower_bound_bytes"] = volume.lower_bound_total();
  out["transfers"] = volume.transfers();
  return out;
}

}  // namespace

void bind_plans(py::module_& m) {
  py::class_<Transfer>(m, "Transfer", "One box of global elements moved from a source rank's buffer to a destination rank's.")
      .def_readonly("src_rank", &Transfer::src_rank)
      .def_readonly("dst_rank", &Transfer::dst_rank)
      .def_property_readonly("offset", [](const Transfer& t) { return t.global.offset; })
      .def_property_readonly("shape", [](const Transfer& t) { return t.global.shape; })
      .def_readonly("src_local", &Transfer::src_local, "Where the box starts in the source buffer (tile coordinates, or (partition position,)).")
      .def_readonly("dst_local", &Transfer::dst_local)
      .def_readonly("contributors", &Transfer::contributors)
      .def_readonly("tensor", &Transfer::tensor)
      .def(py::self == py::self)
      .def("__repr__", [](const Transfer& t) {
        return detail::concat("<shardalg.Transfer ", t.src_rank, " -> ", t.dst_rank, " tensor ", t.tensor, " ", format_box(t.global), ">");
      });
  py::class_<TransferList>(m, "TransferList",
                           "Many transfers, stored compactly; read them as numpy columns (src_rank, dst_rank, tensor, contributors, "
                           "volume; offset, shape, src_local, dst_local as [n, width] arrays) or one by one.")
      .def("__len__", &TransferList::size)
      .def("__getitem__", [](const TransferList& l, py::ssize_t i) {
        if (i < 0) i += static_cast<py::ssize_t>(l.size());
        if (i < 0 || static_cast<std::size_t>(i) >= l.size()) throw py::index_error("transfer index out of range");
        return l[static_cast<std::size_t>(i)];
      })
      .def_property_readonly("src_rank", [](const TransferList& l) { return column<std::int32_t>(l, [&](std::size_t i) { return l.src_rank(i); }); })
      .def_property_readonly("dst_rank", [](const TransferList& l) { return column<std::int32_t>(l, [&](std::size_t i) { return l.dst_rank(i); }); })
      .def_property_readonly("tensor", [](const TransferList& l) { return column<std::int32_t>(l, [&](std::size_t i) { return l.tensor(i); }); })
      .def_property_readonly("contributors", [](const TransferList& l) { return column<std::int32_t>(l, [&](std::size_t i) { return l.contributors(i); }); })
      .def_property_readonly("volume", [](const TransferList& l) { return column<index_t>(l, [&](std::size_t i) { return l.volume(i); }); },
                             "Elements per transfer.")
      .def_property_readonly("offset", [](const TransferList& l) { return coordinates(l, [&](std::size_t i) { return l.offset(i); }, 0); })
      .def_property_readonly("shape", [](const TransferList& l) { return coordinates(l, [&](std::size_t i) { return l.shape(i); }, 1); },
                             "Box shapes (rows of tensors with fewer dims padded with 1).")
      .def_property_readonly("src_local", [](const TransferList& l) { return coordinates(l, [&](std::size_t i) { return l.src_local(i); }, 0); })
      .def_property_readonly("dst_local", [](const TransferList& l) { return coordinates(l, [&](std::size_t i) { return l.dst_local(i); }, 0); })
      .def(py::self == py::self)
      .def("__repr__", [](const TransferList& l) { return detail::concat("<shardalg.TransferList of ", l.size(), " transfers>"); });

  py::class_<ModelReshardPlan>(m, "ModelReshardPlan",
                               "Moving a whole model state from one ModelLayout to another (tensors matched by name). Each rank plans "
                               "its own part (transfers_to / transfers_from) without planning the rest.")
      .def(py::init<ModelLayout, ModelLayout>(), py::arg("source"), py::arg("destination"),
           py::call_guard<py::gil_scoped_release>())
      .def_static("for_tensor",
                  [](const MeshLayout& source, const MeshLayout& destination, std::string_view dtype, const std::string& name) {
                    DType d = parse_dtype(dtype);
                    return ModelReshardPlan(ModelLayout({NamedTensorLayout{name, d, source}}), ModelLayout({NamedTensorLayout{name, d, destination}}));
                  },
                  py::arg("source"), py::arg("destination"), py::arg("dtype") = "fp32", py::arg("name") = "tensor",
                  "A one-tensor plan between two mesh layouts.")
      .def_property_readonly("source", &ModelReshardPlan::source)
      .def_property_readonly("destination", &ModelReshardPlan::destination)
      .def("__len__", &ModelReshardPlan::size)
      .def("transfers_to", &ModelReshardPlan::transfers_to, py::arg("rank"), py::call_guard<py::gil_scoped_release>(),
           "Everything `rank` receives, tensor by tensor (`tensor`: the source index).")
      .def("transfers_from", &ModelReshardPlan::transfers_from, py::arg("rank"), py::call_guard<py::gil_scoped_release>(),
           "Everything `rank` sends, local copies included.")
      .def("all_transfers", &ModelReshardPlan::all_transfers, py::call_guard<py::gil_scoped_release>())
      .def("reduce_ops", [](const ModelReshardPlan& plan) {
             std::vector<std::optional<std::string>> ops;
             for (std::size_t t = 0; t < plan.size(); ++t) {
               auto op = plan.tensor_plan(t).reduce_op();
               ops.push_back(op ? std::optional<std::string>(std::string(to_string(*op))) : std::nullopt);
             }
             return ops;
           }, "Per source tensor, the reduce op of its Partial source ('sum', 'avg', ...), or None.")
      .def("lower_bound_bytes", &ModelReshardPlan::lower_bound_bytes, py::arg("rank"),
           "Bytes `rank` must receive from other ranks at least.")
      .def("summary", [](const ModelReshardPlan& plan, std::optional<TransferList> transfers) {
             if (transfers) return summary_of(CommunicationVolume(plan, *transfers));
             std::optional<CommunicationVolume> volume;
             {
               py::gil_scoped_release release;
               volume.emplace(CommunicationVolume::of_plan(plan));
             }
             return summary_of(*volume);
           }, py::arg("transfers") = py::none(),
           "Totals as `shardalg plan --summary` prints them: bytes moved and kept local, messages, the largest rank's bytes, the lower bound. "
           "Without `transfers`, each destination rank's part is planned, verified and counted in turn, never listed whole.")
      .def("__repr__", [](const ModelReshardPlan& plan) {
        return detail::concat("<shardalg.ModelReshardPlan of ", plan.size(), " tensors>");
      });
  m.def("verify_plan", [](const ModelReshardPlan& plan, std::optional<TransferList> transfers) {
          py::gil_scoped_release release;
          verify_plan(plan, transfers ? *transfers : plan.all_transfers());
        },
        py::arg("plan"), py::arg("transfers") = py::none(),
        "Checks that every destination element is written exactly once, from a source rank that holds it; Error naming the first violation.");
  m.def("verify_destination", [](const ModelReshardPlan& plan, index_t rank, const TransferList& part) {
          py::gil_scoped_release release;
          verify_destination(plan, rank, part);
        },
        py::arg("plan"), py::arg("rank"), py::arg("part"),
        "verify_plan's checks on one destination rank's part (everything it receives, as plan.transfers_to(rank) gives it), "
        "looking up only the ranks it names; Error naming the tensor and the first violation.");

  py::class_<CostModel>(m, "CostModel", "Alpha-beta link costs: NVLink within a node, InfiniBand between nodes.")
      .def(py::init<>())
      .def_readwrite("ranks_per_node", &CostModel::ranks_per_node);
  py::class_<LoweredStep>(m, "LoweredStep")
      .def_property_readonly("kind", [](const LoweredStep& s) { return std::string(to_string(s.kind)); })
      .def_readonly("mesh_dims", &LoweredStep::mesh_dims)
      .def_readonly("tensor_dim", &LoweredStep::tensor_dim)
      .def_readonly("split_dim", &LoweredStep::split_dim)
      .def_readonly("bytes", &LoweredStep::bytes)
      .def_readonly("cost_us", &LoweredStep::cost_us)
      .def("__repr__", [](const LoweredStep& s) {
        return detail::concat("<shardalg.LoweredStep ", to_string(s.kind), " over mesh dims ", Dims(s.mesh_dims), ", tensor dim ", s.tensor_dim, ">");
      });
  py::class_<CollectiveProgram>(m, "CollectiveProgram")
      .def_readonly("steps", &CollectiveProgram::steps)
      .def_readonly("states", &CollectiveProgram::states)
      .def_readonly("cost_us", &CollectiveProgram::cost_us)
      .def_readonly("bytes", &CollectiveProgram::bytes)
      .def("collectives", &CollectiveProgram::collectives);
  py::class_<LoweredProgram>(m, "LoweredProgram", "The collectives to run, or point-to-point when that is cheaper (`reason` says why).")
      .def_property_readonly("choice", [](const LoweredProgram& p) { return p.choice == LoweringChoice::collectives ? "collectives" : "p2p"; })
      .def_readonly("collectives", &LoweredProgram::collectives)
      .def_readonly("p2p_bytes", &LoweredProgram::p2p_bytes)
      .def_readonly("p2p_us", &LoweredProgram::p2p_us)
      .def_readonly("reason", &LoweredProgram::reason);
  m.def("lower_reshard", &lower_reshard, py::arg("source"), py::arg("destination"), py::arg("element_bytes"), py::arg("cost_model") = CostModel{},
        py::call_guard<py::gil_scoped_release>(),
        "The cheapest program of collectives (all-gather, reduce-scatter, all-reduce, all-to-all on mesh-dim groups) between two layouts of one "
        "mesh, or point-to-point.");

  py::class_<Relabeling>(m, "Relabeling", "Which process takes each destination rank so that the fewest bytes move.")
      .def_readonly("roles", &Relabeling::roles)
      .def_readonly("process_of_role", &Relabeling::process_of_role)
      .def_readonly("bytes_needed", &Relabeling::bytes_needed)
      .def_readonly("moved_before", &Relabeling::moved_before)
      .def_readonly("moved_after", &Relabeling::moved_after)
      .def_readonly("moved_bound", &Relabeling::moved_bound)
      .def_readonly("exact", &Relabeling::exact)
      .def("saved", &Relabeling::saved)
      .def("process_of", &Relabeling::process_of, py::arg("role"));
  m.def("relabel_destination", &relabel_destination, py::arg("plan"), py::arg("exact_limit") = 256, py::call_guard<py::gil_scoped_release>(),
        "The assignment of destination ranks to processes that moves the fewest bytes (exact up to `exact_limit` ranks).");
}

}  // namespace shardalg::python
