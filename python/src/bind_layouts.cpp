// Meshes, placements, mesh layouts and tiles, flat partitions, process groups, expert metadata
// and scale factors. Docstrings follow the C++ header comments.
#include "bindings.hpp"

namespace shardalg::python {
namespace {

// The global indices a tile holds along each dim, as int64 arrays (numpy's fancy indexing:
// tensor[np.ix_(*arrays)] is the rank's local tile).
py::list index_arrays(const Tile& tile) {
  py::list out;
  for (std::size_t d = 0; d < tile.ndim(); ++d) {
    const IndexMap& map = tile.dim(d);
    py::array_t<index_t> indices(static_cast<py::ssize_t>(map.size()));
    index_t* at = indices.mutable_data();
    for (const Run& run : map.runs())
      for (index_t i = 0; i < run.length; ++i) *at++ = run.global_begin + i;
    out.append(std::move(indices));
  }
  return out;
}

// The tile as one Python slice per dim; Error naming the first dim that is not one range.
py::tuple tile_slices(const Tile& tile) {
  py::tuple out(tile.ndim());
  for (std::size_t d = 0; d < tile.ndim(); ++d) {
    const IndexMap& map = tile.dim(d);
    if (!map.is_contiguous())
      detail::fail("tile dim ", d, " holds ", map.runs().size(), " separate ranges (", map, "), not one slice; use index_arrays()");
    index_t begin = map.empty() ? 0 : map.first();
    out[d] = py::slice(py::int_(begin), py::int_(begin + map.size()), py::none());
  }
  return out;
}

// A torch.distributed.tensor placement (Replicate, Shard, _StridedShard, Partial), by duck typing:
// its class name and its fields, so any torch version that has them works and none is imported.
Placement placement_from_torch(const py::handle& object) {
  std::string kind = py::type::handle_of(object).attr("__name__").cast<std::string>();
  auto field = [&](const char* name) {
    if (!py::hasattr(object, name)) detail::fail("placement ", py::repr(object).cast<std::string>(), " has no '", name, "'");
    return object.attr(name);
  };
  if (kind == "Replicate") return Placement::replicate();
  if (kind == "Shard") return Placement::shard(field("dim").cast<index_t>());
  if (kind == "_StridedShard") return Placement::strided_shard(field("dim").cast<index_t>(), field("split_factor").cast<index_t>());
  if (kind == "Partial" || kind == "_Partial") {
    // reduce_op is a string in torch 2.x ("sum"), a c10d ReduceOp in older versions ("ReduceOp.SUM").
    std::string op = py::str(field("reduce_op")).cast<std::string>();
    std::transform(op.begin(), op.end(), op.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (auto dot = op.rfind('.'); dot != std::string::npos) op = op.substr(dot + 1);
    return parse_placement("P(" + op + ")");
  }
  detail::fail("placement ", py::repr(object).cast<std::string>(), " of type ", kind,
               " is not a Placement, its text form, or a torch Replicate / Shard / _StridedShard / Partial");
}

// Placements from text ("S(0),R"), or a sequence of Placement objects, text forms, or
// torch.distributed.tensor placement objects.
std::vector<Placement> placements_from(const py::handle& value) {
  if (py::isinstance<py::str>(value)) return parse_placements(value.cast<std::string>());
  std::vector<Placement> out;
  for (py::handle item : value.cast<py::sequence>()) {
    if (py::isinstance<Placement>(item))
      out.push_back(item.cast<Placement>());
    else if (py::isinstance<py::str>(item))
      out.push_back(parse_placement(item.cast<std::string>()));
    else
      out.push_back(placement_from_torch(item));
  }
  return out;
}

DeviceMesh mesh_from(const py::handle& value) {
  if (py::isinstance<DeviceMesh>(value)) return value.cast<DeviceMesh>();
  if (py::isinstance<py::str>(value)) return DeviceMesh::parse(value.cast<std::string>());
  detail::fail("mesh ", py::repr(value).cast<std::string>(), " is neither a DeviceMesh nor a spec like 'dp=4,tp=2'");
}

// The spec alone when the devices are the default 0..N-1, row-major.
std::string mesh_repr(const DeviceMesh& mesh) {
  if (mesh == DeviceMesh(mesh.names(), mesh.shape())) return "shardalg.DeviceMesh.parse(" + repr_of(mesh.spec_string()) + ")";
  return "shardalg.DeviceMesh.parse(" + repr_of(mesh.spec_string()) + ", " + repr_of(mesh.devices_string()) + ")";
}

}  // namespace

void bind_layouts(py::module_& m) {
  // --- meshes
  py::class_<DeviceMesh>(m, "DeviceMesh",
                         "Named mesh dims over a list of devices (ranks), row-major: PyTorch's DeviceMesh. The device list may be "
                         "given in XLA's compact form '[4,2]<=[2,4]T(1,0)' or as explicit ranks.")
      .def(py::init([](std::vector<std::string> names, Dims shape, std::optional<std::vector<index_t>> devices) {
             return devices ? DeviceMesh(std::move(names), std::move(shape), std::move(*devices)) : DeviceMesh(names, shape);
           }),
           py::arg("names"), py::arg("shape"), py::arg("devices") = py::none(),
           "Mesh dims `names` of sizes `shape` over `devices` (default 0..N-1, row-major).")
      .def_static("parse", &DeviceMesh::parse, py::arg("spec"), py::arg("devices") = "",
                  "Reads 'dp=4,tp=2'; `devices` optionally in XLA's compact form ('[8]<=[2,4]T(1,0)') or a list '[0,2,4,...]'.")
      .def_property_readonly("names", &DeviceMesh::names)
      .def_property_readonly("shape", &DeviceMesh::shape)
      .def_property_readonly("devices", &DeviceMesh::devices)
      .def_property_readonly("ndim", &DeviceMesh::ndim)
      .def("size", py::overload_cast<>(&DeviceMesh::size, py::const_), "Number of devices.")
      .def("dim_size", [](const DeviceMesh& mesh, const std::string& name) { return mesh.size(mesh.dim_index(name)); }, py::arg("name"))
      .def("dim_index", &DeviceMesh::dim_index, py::arg("name"))
      .def("__contains__", &DeviceMesh::contains, py::arg("rank"))
      .def("coordinate_of", [](const DeviceMesh& mesh, index_t rank) {
             auto coordinate = mesh.coordinate_of(rank);
             if (!coordinate) detail::fail("rank ", rank, " is not in ", mesh.to_string());
             return *coordinate;
           }, py::arg("rank"), "The rank's coordinate (one per mesh dim); Error for a rank outside the mesh.")
      .def("rank_at", &DeviceMesh::rank_at, py::arg("coordinate"))
      .def("groups", [](const DeviceMesh& mesh, const std::string& name) { return mesh.groups(mesh.dim_index(name)); }, py::arg("dim"),
           "The process groups along mesh dim `dim`: ranks that differ only in that coordinate.")
      .def("group_of", [](const DeviceMesh& mesh, const std::string& name, index_t rank) { return mesh.group_of(mesh.dim_index(name), rank); },
           py::arg("dim"), py::arg("rank"))
      .def("slice", &DeviceMesh::slice, py::arg("dims"), py::arg("rank"), "The sub-mesh of `dims` that contains `rank`.")
      .def("flatten", &DeviceMesh::flatten, py::arg("dims"), py::arg("name") = "", "Adjacent dims merged into one.")
      .def("unflatten", &DeviceMesh::unflatten, py::arg("dim"), py::arg("sizes"), py::arg("names"))
      .def("permute", &DeviceMesh::permute, py::arg("dims"))
      .def("spec", &DeviceMesh::spec_string, "'dp=4,tp=2'")
      .def("devices_string", &DeviceMesh::devices_string, "The device list in XLA's compact form where possible.")
      .def("__str__", &DeviceMesh::to_string)
      .def("__repr__", &mesh_repr)
      .def(py::self == py::self)
      .def("__hash__", &DeviceMesh::hash);

  // --- placements
  py::enum_<ReduceOp>(m, "ReduceOp")
      .value("sum", ReduceOp::sum).value("avg", ReduceOp::avg).value("min", ReduceOp::min).value("max", ReduceOp::max)
      .value("product", ReduceOp::product);
  py::class_<Placement>(m, "Placement",
                        "How one mesh dim places a tensor: Replicate (R), Shard(d) (S(d)), _StridedShard (_S(d,sf)), Partial (P(op)), "
                        "BlockCyclic (ScaLAPACK). Printed and parsed in PyTorch's text forms.")
      .def_static("parse", &parse_placement, py::arg("text"), "'S(0)', 'Shard(dim=0)', 'R', '_S(0,2)', 'P(sum)', ...")
      .def_static("from_torch", &placement_from_torch, py::arg("placement"),
                  "A torch.distributed.tensor placement object (Replicate, Shard, _StridedShard, Partial), read by duck typing.")
      .def_static("replicate", &Placement::replicate)
      .def_static("shard", &Placement::shard, py::arg("dim"))
      .def_static("strided_shard", [](index_t dim, index_t split_factor) { return Placement::strided_shard(dim, split_factor); },
                  py::arg("dim"), py::arg("split_factor"))
      .def_static("partial", &Placement::partial, py::arg("op") = ReduceOp::sum)
      .def_static("block_cyclic", &Placement::block_cyclic, py::arg("dim"), py::arg("block"), py::arg("source") = 0)
      .def_property_readonly("kind", [](const Placement& p) {
        static constexpr const char* names[] = {"replicate", "shard", "strided_shard", "partial", "block_cyclic"};
        return names[static_cast<int>(p.kind())];
      })
      .def_property_readonly("dim", &Placement::dim)
      .def_property_readonly("split_factor", &Placement::split_factor)
      .def_property_readonly("reduce_op", &Placement::reduce_op)
      .def_property_readonly("block_size", &Placement::block_size)
      .def("is_replicate", &Placement::is_replicate)
      .def("is_shard", &Placement::is_shard)
      .def("is_strided_shard", &Placement::is_strided_shard)
      .def("is_partial", &Placement::is_partial)
      .def("__str__", [](const Placement& p) { return to_string(p); })
      .def("__repr__", [](const Placement& p) { return "shardalg.Placement.parse(" + repr_of(to_string(p)) + ")"; })
      .def(py::self == py::self)
      .def("__hash__", [](const Placement& p) { return py::hash(py::str(to_string(p))); });
  m.def("parse_placements", &parse_placements, py::arg("text"), "'_S(0,2),S(0)' -> [Placement, Placement]");
  m.def("format_placements", [](const std::vector<Placement>& p) { return format_placements(p); }, py::arg("placements"));

  // --- tiles and mesh layouts
  py::class_<ShardInfo>(m, "ShardInfo", "PyTorch's compute_local_shape_and_global_offset for one rank.")
      .def(py::init([](Dims local_shape, Dims global_offset) { return ShardInfo{std::move(local_shape), std::move(global_offset)}; }),
           py::arg("local_shape"), py::arg("global_offset"))
      .def_readonly("local_shape", &ShardInfo::local_shape)
      .def_readonly("global_offset", &ShardInfo::global_offset)
      .def(py::self == py::self)
      .def("__repr__", [](const ShardInfo& s) {
        return detail::concat("shardalg.ShardInfo(local_shape=", py::repr(py::cast(s.local_shape)).cast<std::string>(),
                              ", global_offset=", py::repr(py::cast(s.global_offset)).cast<std::string>(), ")");
      });
  py::class_<Tile>(m, "Tile", "Exactly which global indices a rank holds along each tensor dim (its local tile is their product).")
      .def_property_readonly("shape", &Tile::shape)
      .def_property_readonly("ndim", &Tile::ndim)
      .def("volume", &Tile::volume)
      .def("empty", &Tile::empty)
      .def("is_contiguous", [](const Tile& t) {
        for (std::size_t d = 0; d < t.ndim(); ++d)
          if (!t.dim(d).is_contiguous()) return false;
        return true;
      }, "Every dim one range: the tile is a slice of the tensor.")
      .def("index_arrays", &index_arrays, "Global indices per dim (int64 arrays): tensor[numpy.ix_(*tile.index_arrays())] is the local tile.")
      .def("slices", &tile_slices, "One slice per dim (tensor[tile.slices()] is the local tile); Error when a dim is not one range.")
      .def("ranges", [](const Tile& t) {
        std::vector<std::vector<std::pair<index_t, index_t>>> out;
        for (std::size_t d = 0; d < t.ndim(); ++d) {
          out.emplace_back();
          for (const Run& run : t.dim(d).runs()) out.back().emplace_back(run.global_begin, run.global_end());
        }
        return out;
      }, "Per dim, the [begin, end) ranges of global indices held.")
      .def("contains", &Tile::contains, py::arg("index"))
      .def(py::self == py::self)
      .def("__repr__", [](const Tile& t) { return detail::concat("<shardalg.Tile ", t, ">"); });

  py::class_<MeshLayout>(m, "MeshLayout", "A tensor of `shape` placed on a mesh: PyTorch's DTensorSpec (mesh, placements, global shape).")
      .def(py::init([](const py::handle& mesh, const py::handle& placements, Dims shape) {
             return MeshLayout(mesh_from(mesh), placements_from(placements), std::move(shape));
           }),
           py::arg("mesh"), py::arg("placements"), py::arg("shape"))
      .def_static("parse", [](const py::handle& mesh, const py::handle& placements, Dims shape, std::string_view devices) {
                    DeviceMesh device_mesh = py::isinstance<py::str>(mesh) ? DeviceMesh::parse(mesh.cast<std::string>(), devices) : mesh_from(mesh);
                    return MeshLayout(std::move(device_mesh), placements_from(placements), std::move(shape));
                  },
                  py::arg("mesh"), py::arg("placements"), py::arg("shape"), py::arg("devices") = "",
                  "MeshLayout.parse('dp=4,tp=2', '_S(0,2),S(0)', (14336, 4096)). `placements`: text, or a list of Placement or text.")
      .def_property_readonly("mesh", &MeshLayout::mesh)
      .def_property_readonly("placements", &MeshLayout::placements)
      .def_property_readonly("shape", &MeshLayout::global_shape)
      .def("shard_info", &MeshLayout::shard_info, py::arg("rank"), "The rank's local shape and global offset, as PyTorch computes them.")
      .def("tile", &MeshLayout::tile, py::arg("rank"), "Exactly which global indices the rank holds (nothing for a rank outside the mesh).")
      .def("ranks_holding", [](const MeshLayout& l, Dims offset, Dims shape) { return l.ranks_holding(Box(std::move(offset), std::move(shape))); },
           py::arg("offset"), py::arg("shape"), "The ranks holding any element of the box, sorted.")
      .def("stack", &MeshLayout::stack, py::arg("count"),
           "A new dim 0 of extent `count`, each placement following its dim (TransformerEngine's stacked GroupedLinear weights).")
      .def("unsqueeze", &MeshLayout::unsqueeze, py::arg("dim"), "A new dim of extent 1 at `dim`.")
      .def("squeeze", &MeshLayout::squeeze, py::arg("dim"), "Dim `dim` (extent 1, not split) removed.")
      .def("transpose", &MeshLayout::transpose, py::arg("dim0"), py::arg("dim1"), "Two dims swapped, with the placements that split them.")
      .def("replication_factor", &MeshLayout::replication_factor)
      .def("replica_groups", &MeshLayout::replica_groups)
      .def("__str__", &MeshLayout::to_string)
      .def("__repr__", [](const MeshLayout& l) {
        if (l.application_order()) return l.to_string();
        return detail::concat("shardalg.MeshLayout(", mesh_repr(l.mesh()), ", ", repr_of(format_placements(l.placements())), ", ",
                              py::repr(py::cast(l.global_shape())).cast<std::string>(), ")");
      })
      .def(py::self == py::self);
  m.def("fsdp_over_tp_physical", &fsdp_over_tp_physical, py::arg("mesh"), py::arg("dp"), py::arg("tp"), py::arg("shape"), py::arg("tensor_dim") = 0,
        "The bytes FSDP2 really holds over a TP-sharded dim 0: chunk(chunk(n, T)[t], D)[d].");
  m.def("fsdp_over_tp_label", &fsdp_over_tp_label, py::arg("mesh"), py::arg("dp"), py::arg("tp"), py::arg("shape"), py::arg("tensor_dim") = 0,
        "The placements FSDP2 labels such a tensor with (_StridedShard(0, T), Shard(0)).");

  py::class_<TileDifference>(m, "TileDifference", "An element one of two tiles holds and the other does not.")
      .def_readonly("held_by_a", &TileDifference::held_by_a)
      .def_readonly("element", &TileDifference::element, "Its global index.")
      .def_readonly("local_position", &TileDifference::local_position, "Row-major, in the tile that holds it.")
      .def("__repr__", [](const TileDifference& d) {
        return detail::concat("<shardalg.TileDifference element ", d.element, " held by ", d.held_by_a ? "a" : "b", " at ", d.local_position, ">");
      });
  m.def("first_difference", &first_difference, py::arg("a"), py::arg("b"),
        "The first element one tile holds and the other does not, or None when both hold the same elements.");
  py::class_<RankHoldings>(m, "RankHoldings")
      .def_readonly("rank", &RankHoldings::rank)
      .def_readonly("in_a", &RankHoldings::in_a)
      .def_readonly("in_b", &RankHoldings::in_b)
      .def("same", &RankHoldings::same)
      .def("difference", &RankHoldings::difference, "An element the rank holds under one layout and not the other, or None.")
      .def("__repr__", [](const RankHoldings& r) { return detail::concat("<shardalg.RankHoldings rank ", r.rank, ": ", r.in_a, " vs ", r.in_b, ">"); });
  py::class_<LayoutComparison>(m, "LayoutComparison")
      .def_readonly("ranks", &LayoutComparison::ranks)
      .def("equivalent", &LayoutComparison::equivalent)
      .def("differences", &LayoutComparison::differences)
      .def("__bool__", &LayoutComparison::equivalent);
  m.def("compare_layouts", &compare_layouts, py::arg("a"), py::arg("b"),
        "Rank by rank, whether two layouts of one tensor put the same elements on every rank.");
  py::class_<LintFinding>(m, "LintFinding", "Something valid but suspicious about a layout.")
      .def_readonly("kind", &LintFinding::kind, "empty_shards, strided_without_order or label_differs_from_bytes")
      .def_readonly("message", &LintFinding::message)
      .def("__repr__", [](const LintFinding& f) { return detail::concat("<shardalg.LintFinding ", f.kind, ": ", f.message, ">"); });
  m.def("lint_layout", &lint_layout, py::arg("layout"),
        "What is valid about a mesh layout but likely not meant: empty shards on some ranks, strided placements that express no shard "
        "order, a strided label that is not the bytes of its shard order.");

  // --- flat partitions
  py::class_<FlatFragment>(m, "FlatFragment", "numel elements of tensor `tensor` from its flat position tensor_offset, at partition_offset.")
      .def_readonly("tensor", &FlatFragment::tensor)
      .def_readonly("tensor_offset", &FlatFragment::tensor_offset)
      .def_readonly("partition_offset", &FlatFragment::partition_offset)
      .def_readonly("numel", &FlatFragment::numel)
      .def(py::self == py::self)
      .def("__repr__", [](const FlatFragment& f) {
        return detail::concat("shardalg.FlatFragment(tensor=", f.tensor, ", tensor_offset=", f.tensor_offset, ", partition_offset=",
                              f.partition_offset, ", numel=", f.numel, ")");
      });
  py::class_<FlatLayout>(m, "FlatLayout", "A flat partition of whole tensors over a data-parallel group (ZeRO-1/2/3, Megatron's buffer).")
      .def_property_readonly("scheme", &FlatLayout::scheme)
      .def_property_readonly("group", &FlatLayout::group)
      .def_property_readonly("tensor_names", [](const FlatLayout& l) {
        std::vector<std::string> names;
        for (const FlatTensor& t : l.tensors()) names.push_back(t.name);
        return names;
      })
      .def_property_readonly("partition_size", &FlatLayout::partition_size, "Elements of each rank's partition, padding included.")
      .def_property_readonly("buffer_size", &FlatLayout::buffer_size)
      .def("tensor_begin", &FlatLayout::tensor_begin, py::arg("tensor"), "Where tensor `tensor` starts in the flat buffer.")
      .def("fragments", &FlatLayout::fragments, py::arg("rank"), "What the rank's partition holds, in partition order.")
      .def("padding", &FlatLayout::padding, py::arg("rank"))
      .def("__repr__", [](const FlatLayout& l) {
        return detail::concat("<shardalg.FlatLayout ", l.scheme(), " over ", l.group_size(), " ranks, ", l.tensors().size(),
                              " tensors, partition ", l.partition_size(), ">");
      });
  m.def("partition",
        [](std::string_view scheme, const std::vector<Dims>& shapes, index_t world, const std::vector<std::string>& names,
           index_t alignment, std::optional<index_t> bucket_size, std::vector<index_t> own_bucket, bool pad_nccl_busbw) {
          if (world <= 0) detail::fail("partition: world ", world, " must be positive");
          if (!names.empty() && names.size() != shapes.size()) detail::fail("partition: ", names.size(), " names for ", shapes.size(), " shapes");
          std::vector<FlatTensor> tensors = flat_tensors_from_shapes(shapes);
          for (std::size_t i = 0; i < names.size(); ++i) tensors[i].name = names[i];
          FlatSchemeOptions options{parse_flat_scheme(scheme), alignment, {}};
          options.megatron.bucket_size = bucket_size;
          options.megatron.own_bucket_params.insert(own_bucket.begin(), own_bucket.end());
          options.megatron.pad_for_high_nccl_busbw = pad_nccl_busbw;
          return make_flat_layout(options, std::move(tensors), iota_ranks(world));
        },
        py::arg("scheme"), py::arg("shapes"), py::arg("world"), py::arg("names") = std::vector<std::string>{}, py::arg("alignment") = 2,
        py::arg("bucket_size") = py::none(), py::arg("own_bucket") = std::vector<index_t>{}, py::arg("pad_nccl_busbw") = false,
        "The flat partition of whole tensors of `shapes` over ranks 0..world-1: scheme 'zero3', 'zero12' (alignment) or 'megatron' "
        "(bucket_size, own_bucket: shared-embedding params, pad_nccl_busbw).");

  // --- process groups, experts, scale factors
  py::class_<ParallelGroups>(m, "ParallelGroups", "A framework's process groups: families of rank groups ('dp', 'ep', 'edp', ...).")
      .def_readonly("convention", &ParallelGroups::convention)
      .def_readonly("dense", &ParallelGroups::dense)
      .def_readonly("expert", &ParallelGroups::expert)
      .def_readonly("families", &ParallelGroups::families)
      .def("group_of", &ParallelGroups::group_of, py::arg("family"), py::arg("rank"))
      .def("__repr__", [](const ParallelGroups& g) { return "<shardalg.ParallelGroups " + g.convention + ">"; });
  m.def("deepspeed_groups", &deepspeed_groups, py::arg("world"), py::arg("ep"), py::arg("pp") = 1, "DeepSpeed MoE groups (expert-major).");
  m.def("deepspeed_dbe_groups", &deepspeed_dbe_groups, py::arg("world"), py::arg("ep"), py::arg("pp") = 1,
        "DeepSpeed MoE groups with data-before-expert ordering.");
  m.def("deepspeed_tp_groups", &deepspeed_tp_groups, py::arg("world"), py::arg("ep"), py::arg("tp"), py::arg("pp") = 1);
  m.def("autoep_groups", &autoep_groups, py::arg("world"), py::arg("ep"), py::arg("tp") = 1, py::arg("pp") = 1,
        "AutoEP + ZeRO-3 groups.");
  m.def("megatron_groups",
        [](index_t world, index_t tp, index_t cp, index_t ep, index_t pp, std::optional<index_t> etp, const std::string& order) {
          return megatron_groups(world, MegatronSizes{tp, cp, ep, pp, etp}, order);
        },
        py::arg("world"), py::arg("tp") = 1, py::arg("cp") = 1, py::arg("ep") = 1, py::arg("pp") = 1, py::arg("etp") = py::none(),
        py::arg("order") = "tp-cp-ep-dp-pp", "Megatron-LM's groups (first token of `order` varies fastest).");
  m.def("torchtitan_groups",
        [](index_t world, index_t pp, index_t dp_replicate, index_t dp_shard, index_t cp, index_t tp, index_t ep) {
          return torchtitan_groups(world, TorchtitanSizes{pp, dp_replicate, dp_shard, cp, tp, ep});
        },
        py::arg("world"), py::arg("pp") = 1, py::arg("dp_replicate") = 1, py::arg("dp_shard") = 1, py::arg("cp") = 1, py::arg("tp") = 1,
        py::arg("ep") = 1, "torchtitan's dense and sparse meshes.");
  py::class_<ExpertMetadata>(m, "ExpertMetadata", "The record an AutoEP-style engine keeps per rank.")
      .def_readonly("num_experts", &ExpertMetadata::num_experts)
      .def_readonly("num_local_experts", &ExpertMetadata::num_local_experts)
      .def_readonly("ep_size", &ExpertMetadata::ep_size)
      .def_readonly("ep_rank", &ExpertMetadata::ep_rank)
      .def_readonly("edp_rank", &ExpertMetadata::edp_rank)
      .def_readonly("edp_size", &ExpertMetadata::edp_size)
      .def_readonly("expert_data_parallel_rank", &ExpertMetadata::edp_rank, "DeepSpeed's name for edp_rank.")
      .def_readonly("expert_data_parallel_world_size", &ExpertMetadata::edp_size, "DeepSpeed's name for edp_size.")
      .def_readonly("global_expert_start", &ExpertMetadata::global_expert_start)
      .def_readonly("global_expert_end", &ExpertMetadata::global_expert_end)
      .def(py::self == py::self)
      .def("__repr__", [](const ExpertMetadata& e) {
        return detail::concat("<shardalg.ExpertMetadata experts [", e.global_expert_start, ", ", e.global_expert_end, ") of ", e.num_experts,
                              ", ep_rank ", e.ep_rank, "/", e.ep_size, ", edp_rank ", e.edp_rank, "/", e.edp_size, ">");
      });
  m.def("expert_metadata", &expert_metadata, py::arg("groups"), py::arg("num_experts"), py::arg("rank"),
        "The rank's experts and its EP / EDP ranks under groups with 'ep' and 'edp' families.");
  m.def("expert_metadata_of_ranks", &expert_metadata_of_ranks, py::arg("groups"), py::arg("num_experts"),
        "Every rank's expert metadata, indexed by rank, in one pass over the 'ep' and 'edp' groups.");
  m.def("expert_parallel_layout", &expert_parallel_layout, py::arg("mesh"), py::arg("ep_dim"), py::arg("stacked_shape"),
        "Stacked experts [E, ...] Shard(0) over mesh dim `ep_dim`, Replicate elsewhere.");

  py::enum_<Collective>(m, "Collective").value("sum", Collective::sum).value("avg", Collective::avg).value("premul_sum", Collective::premul_sum);
  py::class_<ScaleFactors>(m, "ScaleFactors", "What makes a gradient average right: divide before (pre_divide) and after (post_divide).")
      .def_readonly("reduce_group_size", &ScaleFactors::reduce_group_size)
      .def_readonly("average_over", &ScaleFactors::average_over)
      .def_readonly("pre_divide", &ScaleFactors::pre_divide)
      .def_readonly("post_divide", &ScaleFactors::post_divide)
      .def_readonly("scale", &ScaleFactors::scale)
      .def_readonly("collective", &ScaleFactors::collective)
      .def("__repr__", [](const ScaleFactors& s) {
        return detail::concat("<shardalg.ScaleFactors group ", s.reduce_group_size, ", average over ", s.average_over, ", pre ", s.pre_divide,
                              ", post ", s.post_divide, ", ", to_string(s.collective), ">");
      });
  m.def("zero3_autoep_scale", &zero3_autoep_scale, py::arg("world"), py::arg("ep"), py::arg("expert"));
  m.def("deepspeed_scale", &deepspeed_scale, py::arg("dp"), py::arg("ep"), py::arg("expert"), py::arg("predivide_factor") = 1.0,
        py::arg("prescale") = false, py::arg("tp") = 1,
        "DeepSpeed's factors over the dense data-parallel size `dp`; experts reduce over the EDP group (dp*tp/ep ranks: AutoEP "
        "folds over AutoTP when tp > 1) and divide by dp.");
  m.def("fsdp1_scale", &fsdp1_scale, py::arg("world"), py::arg("divide_factor") = py::none());
  m.def("fsdp2_scale", &fsdp2_scale, py::arg("world"), py::arg("divide_factor") = py::none(), py::arg("low_precision") = false);
  m.def("megatron_scale", &megatron_scale, py::arg("dp_cp"), py::arg("edp"), py::arg("expert"), py::arg("average_in_collective"));
  m.def("torchtitan_scale", &torchtitan_scale, py::arg("dense_dp"), py::arg("expert_dp"), py::arg("expert"), py::arg("low_precision") = false);
}

}  // namespace shardalg::python
