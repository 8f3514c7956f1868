// Model specs (the zoo, model files), layout recipes and model layouts, with the buffer
// descriptions the Python layer allocates and fills.
#include "bindings.hpp"
#include "model_file.hpp"

namespace shardalg::python {
namespace {

std::string model_tensor_repr(const ModelTensor& t) {
  return detail::concat("shardalg.ModelTensor(", repr_of(t.name), ", ", py::repr(py::cast(t.shape)).cast<std::string>(), ", ",
                        repr_of(to_string(t.dtype)), ", ", repr_of(to_string(t.role)), t.group.empty() ? "" : ", group=" + repr_of(t.group),
                        t.is_state() ? ", parameter=" + repr_of(t.parameter) + ", state=" + repr_of(t.state) : "", ")");
}

std::vector<std::string> buffer_names(const ModelLayout& layout) {
  std::vector<std::string> names;
  for (std::size_t b = 0; b < layout.buffer_count(); ++b) names.push_back(layout.buffer_name(b));
  return names;
}

// Per buffer of `rank`: (dtype, shape): a tile's shape, a partition's (size,), (0,) where the
// rank holds nothing of it.
std::vector<std::pair<std::string, Dims>> buffer_shapes(const ModelLayout& layout, index_t rank) {
  std::vector<std::pair<std::string, Dims>> out(layout.buffer_count());
  std::vector<bool> done(layout.buffer_count(), false);
  for (std::size_t t = 0; t < layout.size(); ++t) {
    std::size_t b = layout.buffer_of(t);
    if (done[b]) continue;
    done[b] = true;
    const TensorLayout& tl = layout[t].layout;
    Dims shape{0};
    if (tl.mesh().contains(rank)) shape = tl.is_flat() ? Dims{tl.buffer_elements(rank)} : tl.mesh_layout()->tile(rank).shape();
    out[b] = {std::string(to_string(layout[t].dtype)), shape};
  }
  return out;
}

std::string layout_kind(const TensorLayout& tl) {
  return tl.is_flat() ? std::string(to_string(tl.flat_layout()->options().scheme)) : "mesh";
}

}  // namespace

void bind_models(py::module_& m) {
  py::class_<ParamGroup>(m, "ParamGroup", "An optimizer param group: a name and its weight decay.")
      .def(py::init([](std::string name, double weight_decay) { return ParamGroup{std::move(name), weight_decay}; }), py::arg("name"),
           py::arg("weight_decay") = 0.0)
      .def_readonly("name", &ParamGroup::name)
      .def_readonly("weight_decay", &ParamGroup::weight_decay)
      .def("__repr__", [](const ParamGroup& g) { return detail::concat("shardalg.ParamGroup(", repr_of(g.name), ", weight_decay=", g.weight_decay, ")"); });
  py::class_<ModelTensor>(m, "ModelTensor",
                          "One tensor of a model: name, global shape, dtype, role (how TP splits it) and optimizer param group; "
                          "for an optimizer state also its parameter and state name.")
      .def(py::init([](std::string name, Dims shape, std::string_view dtype, std::string_view role, std::string group) {
             return ModelTensor{std::move(name), std::move(shape), parse_tensor_role(role), parse_dtype(dtype), std::move(group)};
           }),
           py::arg("name"), py::arg("shape"), py::arg("dtype") = "bf16", py::arg("role") = "replicated", py::arg("group") = "")
      .def_readonly("name", &ModelTensor::name)
      .def_readonly("shape", &ModelTensor::shape)
      .def_property_readonly("dtype", [](const ModelTensor& t) { return std::string(to_string(t.dtype)); })
      .def_property_readonly("role", [](const ModelTensor& t) { return std::string(to_string(t.role)); })
      .def_readonly("group", &ModelTensor::group, "The optimizer param group ('' when the model has one).")
      .def_readonly("parameter", &ModelTensor::parameter, "For an optimizer state, the parameter it belongs to; '' for a parameter.")
      .def_readonly("state", &ModelTensor::state, "For an optimizer state, its name ('master', 'exp_avg', 'exp_avg_sq', 'step'); '' for a parameter.")
      .def("numel", [](const ModelTensor& t) { return volume(t.shape); })
      .def("__eq__", [](const ModelTensor& a, const ModelTensor& b) {
        return a.name == b.name && a.shape == b.shape && a.dtype == b.dtype && a.role == b.role && a.group == b.group && a.parameter == b.parameter &&
               a.state == b.state;
      })
      .def("__repr__", &model_tensor_repr);
  py::class_<ModelSpec>(m, "ModelSpec", "A model state: named tensors with shapes, dtypes and roles; optimizer states and param groups when an optimizer is named.")
      .def(py::init([](std::string name, std::vector<ModelTensor> tensors, std::vector<ParamGroup> param_groups) {
             if (tensors.empty()) detail::fail("model '", name, "' has no tensors");
             return ModelSpec{std::move(name), std::move(tensors), "", std::move(param_groups)};
           }),
           py::arg("name"), py::arg("tensors"), py::arg("param_groups") = std::vector<ParamGroup>{})
      .def_readonly("name", &ModelSpec::name)
      .def_readonly("tensors", &ModelSpec::tensors)
      .def_readonly("optimizer", &ModelSpec::optimizer, "The optimizer whose states the model holds ('' for parameters only).")
      .def_readonly("param_groups", &ModelSpec::param_groups)
      .def("parameter_count", &ModelSpec::parameter_count, "Elements of the parameters.")
      .def("state_count", &ModelSpec::state_count, "Elements of the optimizer states.")
      .def("with_optimizer", [](const ModelSpec& model, std::string_view optimizer) { return with_optimizer(model, optimizer); }, py::arg("optimizer"),
           "The model with each parameter's optimizer states added ('adam', 'adamw': fp32 master for non-fp32 parameters, "
           "exp_avg, exp_avg_sq, a scalar step), named 'optimizer.state.<parameter>.<state>'; without param groups, "
           "matrices go to 'decay' and vectors to 'no_decay'.")
      .def("scale_down", [](const ModelSpec& model, index_t factor) { return scale_down(model, factor); }, py::arg("factor"),
           "Every extent divided by `factor`, rounding up (real shapes made small enough to run on one machine).")
      .def("with_dtype", [](ModelSpec model, std::string_view dtype) {
             DType d = parse_dtype(dtype);
             for (ModelTensor& t : model.tensors) t.dtype = d;
             return model;
           }, py::arg("dtype"), "The model with every tensor of `dtype` (numpy has no bf16: 'fp32' models run over numpy arrays).")
      .def("select", [](const ModelSpec& model, const std::vector<std::string>& names) { return cli::select_tensors(model, names); },
           py::arg("names"), "Only the named tensors, in the given order; Error naming an unknown one.")
      .def("__len__", [](const ModelSpec& model) { return model.tensors.size(); })
      .def("__repr__", [](const ModelSpec& model) {
        std::string out = "shardalg.ModelSpec(" + repr_of(model.name) + ", [";
        for (std::size_t i = 0; i < model.tensors.size(); ++i) out += (i ? ", " : "") + model_tensor_repr(model.tensors[i]);
        return out + "])";
      });
  m.def("model_zoo_names", &model_zoo_names, "The built-in models.");
  m.def("model_from_zoo", [](std::string_view name, index_t scale_down_factor, std::string_view optimizer) {
          ModelSpec model = model_from_zoo(name);
          return with_optimizer(scale_down_factor == 1 ? model : scale_down(std::move(model), scale_down_factor), optimizer);
        },
        py::arg("name"), py::arg("scale_down") = 1, py::arg("optimizer") = "none",
        "A built-in model ('llama3-8b', 'llama3-70b', 'llama3-405b', 'deepseek-v3'), optionally with every extent divided by "
        "`scale_down` and with an optimizer's states ('adam', see ModelSpec.with_optimizer).");
  m.def("load_model", [](const std::string& name_or_path) { return cli::load_model(name_or_path); }, py::arg("name_or_path"),
        "A built-in model by name, or a JSON model file {\"name\", \"tensors\": [{\"name\", \"shape\", \"dtype\", \"role\", \"group\"}], "
        "\"param_groups\": [{\"name\", \"weight_decay\"}]}.");

  py::class_<NamedTensorLayout>(m, "TensorLayoutInfo", "One tensor of a ModelLayout: its name, dtype and how it is laid out.")
      .def_readonly("name", &NamedTensorLayout::name)
      .def_property_readonly("dtype", [](const NamedTensorLayout& t) { return std::string(to_string(t.dtype)); })
      .def_property_readonly("shape", [](const NamedTensorLayout& t) { return t.layout.global_shape(); })
      .def_property_readonly("kind", [](const NamedTensorLayout& t) { return layout_kind(t.layout); },
                             "'mesh' (each rank's buffer is its tile), or the flat scheme ('zero3', 'zero12', 'megatron').")
      .def_property_readonly("placement_layout", [](const NamedTensorLayout& t) { return t.layout.placement_layout(); },
                             "The mesh layout that places the tensor (for a flat layout: before flattening).")
      .def("held_elements", [](const NamedTensorLayout& t, index_t rank) { return t.layout.held_elements(rank); }, py::arg("rank"))
      .def("ranks_holding", [](const NamedTensorLayout& t, Dims offset, Dims shape) { return t.layout.ranks_holding(Box(std::move(offset), std::move(shape))); },
           py::arg("offset"), py::arg("shape"))
      .def("__repr__", [](const NamedTensorLayout& t) { return "<shardalg.TensorLayoutInfo '" + t.name + "': " + t.layout.to_string() + ">"; });

  py::class_<ModelLayout>(m, "ModelLayout", "The layouts of a whole model state, one per named tensor (layout_model builds them from recipes).")
      .def(py::init([](const std::vector<std::tuple<std::string, std::string, MeshLayout>>& tensors) {
             std::vector<NamedTensorLayout> named;
             for (const auto& [name, dtype, layout] : tensors) named.push_back(NamedTensorLayout{name, parse_dtype(dtype), layout});
             return ModelLayout(std::move(named));
           }),
           py::arg("tensors"), "From (name, dtype, MeshLayout) triples.")
      .def_property_readonly("tensors", &ModelLayout::tensors)
      .def_property_readonly("tensor_names", [](const ModelLayout& l) {
        std::vector<std::string> names;
        for (const NamedTensorLayout& t : l.tensors()) names.push_back(t.name);
        return names;
      })
      .def("__len__", &ModelLayout::size)
      .def("__getitem__", [](const ModelLayout& l, const std::string& name) -> const NamedTensorLayout& {
             auto t = l.find(name);
             if (!t) throw py::key_error(name);
             return l[*t];
           }, py::return_value_policy::reference_internal)
      .def("__contains__", [](const ModelLayout& l, const std::string& name) { return l.find(name).has_value(); })
      .def_property_readonly("ranks", &ModelLayout::ranks, "Every rank any tensor's layout uses, ascending.")
      .def_property_readonly("buffer_names", &buffer_names,
                             "Each rank's buffers, named as local_buffers keys them: a tensor's tile by the tensor, a flat partition "
                             "by scheme and first tensor ('zero3:tok_embeddings.weight').")
      .def("buffer_of", [](const ModelLayout& l, const std::string& name) {
             auto t = l.find(name);
             if (!t) detail::fail("model layout: no tensor '", name, "'");
             return buffer_names(l)[l.buffer_of(*t)];
           }, py::arg("tensor"), "The name of the buffer that holds the tensor.")
      .def("_buffer_shapes", &buffer_shapes, py::arg("rank"))
      .def("_buffer_index", [](const ModelLayout& l, const std::string& name) {
             auto t = l.find(name);
             if (!t) detail::fail("model layout: no tensor '", name, "'");
             return l.buffer_of(*t);
           }, py::arg("tensor"))
      .def("__repr__", [](const ModelLayout& l) {
        return detail::concat("<shardalg.ModelLayout ", l.size(), " tensors, ", l.buffer_count(), " buffers per rank, ranks ",
                              l.ranks().empty() ? 0 : l.ranks().front(), "..", l.ranks().empty() ? 0 : l.ranks().back(), ">");
      });
  m.def("layout_model", [](const ModelSpec& model, std::string_view recipe) { return layout_model(model, recipe); }, py::arg("model"),
        py::arg("recipe"),
        "Every tensor's layout under a recipe: 'replicated', 'fsdp dp=N', 'fsdp-tp dp=N,tp=M', 'zero1|zero2|zero3 dp=N[,tp=M]', "
        "'megatron-distopt dp=N,tp=M[,bucket=B]', 'ep ep=E,dp=N[,experts=K][,dense=K]'.");
}

}  // namespace shardalg::python
