// Layout recipes: how frameworks turn a tensor's role into a layout, by name.
//
//   replicated [ranks=N]              every tensor whole on ranks 0..N-1 (default 1: consolidated)
//   fsdp dp=N                         FSDP2: Shard(0) over N ranks
//   fsdp-tp dp=N,tp=M                 Megatron-style TP on mesh (dp, tp), FSDP2 on top; where both
//                                     split dim 0, TP splits first (FSDP2-over-TP's bytes)
//   zero1|zero2|zero3 dp=N[,tp=M]     TP as above, then a DeepSpeed ZeRO partition over dp
//   megatron-distopt dp=N,tp=M[,bucket=B]
//                                     TP, then Megatron's distributed-optimizer buffer over dp
//   ep ep=E,dp=N[,experts=K][,dense=K]
//                                     stacked experts Shard(0) over E EP ranks, then K over each
//                                     expert-replica group of N/E ranks (fsdp: torchtitan's
//                                     layout; zero1|zero2|zero3: DeepSpeed's); dense tensors by
//                                     `K dp=N` (default: the experts' K)
//
// TP by role: column_parallel and vocab_parallel split dim 0, row_parallel dim 1, stacked experts
// their intermediate dim (w1, w3: dim 1; w2: dim 2); replicated and router tensors are whole.
// Flat schemes (zero1/2/3, megatron-distopt) keep one flat partition per dtype (zero1/2/3: per
// param group and dtype). Optimizer states (model/optimizer_state.hpp) are laid out as their
// parameters are; in flat schemes, in partitions of their own with the parameters' geometry.
#pragma once

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "shardalg/layout/expert_layout.hpp"
#include "shardalg/layout/fsdp_over_tp.hpp"
#include "shardalg/layout/model_layout.hpp"
#include "shardalg/model/optimizer_state.hpp"

namespace shardalg {

// A parsed recipe: its kind and its key=value options.
struct LayoutRecipe {
  std::string text;
  std::string kind;
  std::map<std::string, std::string> options;

  // "zero3 dp=8,tp=2" -> kind "zero3", options {dp: 8, tp: 2}. Errors name the text.
  static LayoutRecipe parse(std::string_view text) {
    LayoutRecipe recipe{std::string(text), {}, {}};
    std::size_t begin = text.find_first_not_of(' ');
    if (begin == std::string_view::npos) detail::fail<ParseError>("layout recipe '", text, "' is empty");
    std::size_t end = text.find(' ', begin);
    recipe.kind = std::string(text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin));
    static constexpr std::string_view kinds[] = {"replicated", "fsdp", "fsdp-tp", "zero1", "zero2", "zero3", "megatron-distopt", "ep"};
    if (std::find(std::begin(kinds), std::end(kinds), recipe.kind) == std::end(kinds))
      detail::fail<ParseError>("layout recipe '", text, "': unknown kind '", recipe.kind,
                               "' (replicated, fsdp, fsdp-tp, zero1, zero2, zero3, megatron-distopt, ep)");
    std::string_view rest = end == std::string_view::npos ? std::string_view{} : text.substr(end);
    if (rest.find_first_not_of(' ') == std::string_view::npos) return recipe;
    auto trim = [](std::string_view v) {
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
      return v;
    };
    for (std::size_t start = 0; start <= rest.size();) {
      std::size_t comma = rest.find(',', start);
      std::string_view item = trim(rest.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
      std::size_t eq = item.find('=');
      std::string key(trim(item.substr(0, eq))), value(eq == std::string_view::npos ? "" : trim(item.substr(eq + 1)));
      if (eq == std::string_view::npos || key.empty() || value.empty())
        detail::fail<ParseError>("layout recipe '", text, "': expected key=value, got '", item, "'");
      if (!recipe.options.emplace(key, value).second) detail::fail<ParseError>("layout recipe '", text, "': option '", key, "' is given twice");
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return recipe;
  }

  // The options must be among `known`; `required` must be present.
  void check_options(std::initializer_list<std::string_view> known, std::initializer_list<std::string_view> required) const {
    for (const auto& [key, value] : options)
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::string list;
        for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        detail::fail("layout recipe '", text, "': unknown option '", key, "' for ", kind, " (options: ", list, ")");
      }
    for (std::string_view key : required)
      if (!options.count(std::string(key))) detail::fail("layout recipe '", text, "': ", kind, " needs ", key, "=N");
  }

  // A positive integer option, or `fallback` when absent.
  index_t positive(const std::string& key, index_t fallback) const {
    auto it = options.find(key);
    if (it == options.end()) return fallback;
    index_t value = 0;
    auto [ptr, error] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), value);
    if (error != std::errc() || ptr != it->second.data() + it->second.size() || value <= 0)
      detail::fail("layout recipe '", text, "': ", key, "=", it->second, " is not a positive integer");
    return value;
  }

  std::string word(const std::string& key, const std::string& fallback) const {
    auto it = options.find(key);
    return it == options.end() ? fallback : it->second;
  }
};

namespace detail {

// The tensor dim TP splits for a role, if any (and if the tensor has that dim).
inline std::optional<index_t> tp_dim(TensorRole role, const Dims& shape) {
  std::optional<index_t> dim;
  switch (role) {
    case TensorRole::column_parallel:
    case TensorRole::vocab_parallel: dim = 0; break;
    case TensorRole::row_parallel:
    case TensorRole::expert_w1:
    case TensorRole::expert_w3: dim = 1; break;
    case TensorRole::expert_w2: dim = 2; break;
    case TensorRole::replicated:
    case TensorRole::router: break;
  }
  if (dim && *dim >= static_cast<index_t>(shape.size())) dim.reset();
  return dim;
}

// Mesh (dp, tp) with TP by role and Replicate on dp: the layout a flat scheme flattens.
inline MeshLayout tp_layout(const DeviceMesh& mesh, const ModelTensor& t) {
  std::vector<Placement> placements(2, Placement::replicate());
  if (auto d = tp_dim(t.role, t.shape)) placements[1] = Placement::shard(*d);
  return MeshLayout(mesh, placements, t.shape);
}

// FSDP2 (Shard(0) over dp) on top of TP by role; 0-d tensors are replicated.
inline MeshLayout fsdp_tp_layout(const DeviceMesh& mesh, const ModelTensor& t) {
  if (t.shape.empty()) return MeshLayout(mesh, std::vector<Placement>(2, Placement::replicate()), t.shape);
  auto d = tp_dim(t.role, t.shape);
  if (d && *d == 0) return fsdp_over_tp_physical(mesh, "dp", "tp", t.shape, 0);
  return MeshLayout(mesh, {Placement::shard(0), d ? Placement::shard(*d) : Placement::replicate()}, t.shape);
}

inline FlatSchemeOptions flat_options(const LayoutRecipe& recipe, std::string_view kind) {
  FlatSchemeOptions options;
  if (kind == "zero3") options.scheme = FlatScheme::zero3;
  else if (kind == "zero1" || kind == "zero2") options.scheme = FlatScheme::zero12;
  else if (kind == "megatron-distopt") {
    options.scheme = FlatScheme::megatron;
    if (recipe.options.count("bucket")) options.megatron.bucket_size = recipe.positive("bucket", 1);
  } else {
    fail("layout recipe '", recipe.text, "': '", kind, "' is not a flat scheme (zero1, zero2, zero3)");
  }
  return options;
}

// Flattens `tensors` (indices into model.tensors, each laid out by `place` before flattening
// over `flat_dim`) into flat layouts, appended to `out`. The frameworks keep one flat buffer per
// dtype (Megatron one per (param, grad) dtype; DeepSpeed one per optimizer param group and dtype,
// flattened with torch.cat); each optimizer state gets buffers of the same geometry as its
// parameters', so a rank's state partition covers the elements of its parameter partition.
// Scalars (Adam's step) are not flattened: they stay whole on every rank of their mesh.
template <class Place>
void flat_layouts(const ModelSpec& model, const std::vector<std::size_t>& tensors, std::string_view flat_dim, const FlatSchemeOptions& options,
                  Place&& place, std::map<std::size_t, NamedTensorLayout>& out) {
  std::unordered_map<std::string_view, DType> parameter_dtype;
  for (const ModelTensor& t : model.tensors)
    if (!t.is_state()) parameter_dtype.emplace(t.name, t.dtype);
  struct BufferKey {
    std::string_view group, state;
    DType parameter_dtype;
    bool operator==(const BufferKey&) const = default;
  };
  auto key_of = [&](const ModelTensor& t) {
    auto p = parameter_dtype.find(t.is_state() ? std::string_view(t.parameter) : std::string_view(t.name));
    if (p == parameter_dtype.end()) fail("model '", model.name, "': state '", t.name, "' belongs to parameter '", t.parameter, "', which the model lacks");
    return BufferKey{options.scheme == FlatScheme::megatron ? std::string_view{} : std::string_view(t.group), t.state, p->second};
  };
  std::vector<BufferKey> keys;
  std::vector<std::vector<std::size_t>> members;  // per key, its tensors in model order
  for (std::size_t t : tensors) {
    const ModelTensor& tensor = model.tensors[t];
    if (tensor.shape.empty()) {
      out.emplace(t, NamedTensorLayout{tensor.name, tensor.dtype, TensorLayout(place(tensor))});
      continue;
    }
    BufferKey key = key_of(tensor);
    auto k = static_cast<std::size_t>(std::find(keys.begin(), keys.end(), key) - keys.begin());
    if (k == keys.size()) {
      keys.push_back(key);
      members.emplace_back();
    }
    members[k].push_back(t);
  }
  for (const std::vector<std::size_t>& group : members) {
    std::vector<NamedMeshLayout> placed;
    for (std::size_t t : group) placed.push_back(NamedMeshLayout{model.tensors[t].name, place(model.tensors[t])});
    auto flat = std::make_shared<const ComposedFlatLayout>(std::move(placed), std::string(flat_dim), options);
    for (std::size_t k = 0; k < group.size(); ++k)
      out.emplace(group[k], NamedTensorLayout{model.tensors[group[k]].name, model.tensors[group[k]].dtype, TensorLayout(flat, k)});
  }
}

// Lays out `tensors` (indices into model.tensors) with a dense recipe kind over dp x tp; appends
// to `out` in model order.
inline void dense_layouts(const ModelSpec& model, const std::vector<std::size_t>& tensors, const LayoutRecipe& recipe,
                          std::string_view kind, index_t dp, index_t tp, std::map<std::size_t, NamedTensorLayout>& out) {
  if (tensors.empty()) return;
  DeviceMesh mesh({"dp", "tp"}, Dims{dp, tp});
  if (kind == "replicated") {
    for (std::size_t t : tensors)
      out.emplace(t, NamedTensorLayout{model.tensors[t].name, model.tensors[t].dtype, full_layout(model.tensors[t].shape, iota_ranks(dp))});
    return;
  }
  if (kind == "fsdp" || kind == "fsdp-tp") {
    for (std::size_t t : tensors)
      out.emplace(t, NamedTensorLayout{model.tensors[t].name, model.tensors[t].dtype, fsdp_tp_layout(mesh, model.tensors[t])});
    return;
  }
  flat_layouts(model, tensors, "dp", flat_options(recipe, kind), [&](const ModelTensor& t) { return tp_layout(mesh, t); }, out);
}

}  // namespace detail

// The layout of every tensor of `model` under a recipe (see the top of this file).
// Example: layout_model(llama3_8b, "zero3 dp=8") puts all 291 tensors in one ZeRO-3 partition
// per rank; layout_model(llama3_8b, "fsdp-tp dp=4,tp=2") gives q_proj Shard(0) on tp then
// Shard(0) on dp (shard order [tp, dp]) and o_proj Shard(0) on dp, Shard(1) on tp.
inline ModelLayout layout_model(const ModelSpec& model, std::string_view recipe_text) {
  LayoutRecipe recipe = LayoutRecipe::parse(recipe_text);
  if (model.tensors.empty()) detail::fail("model '", model.name, "' has no tensors");
  std::vector<std::size_t> all(model.tensors.size()), experts, dense;
  for (std::size_t t = 0; t < all.size(); ++t) {
    all[t] = t;
    (is_expert(model.tensors[t].role) ? experts : dense).push_back(t);
  }
  std::map<std::size_t, NamedTensorLayout> layouts;
  const std::string& kind = recipe.kind;
  if (kind == "replicated") {
    recipe.check_options({"ranks"}, {});
    detail::dense_layouts(model, all, recipe, kind, recipe.positive("ranks", 1), 1, layouts);
  } else if (kind == "fsdp") {
    recipe.check_options({"dp"}, {"dp"});
    detail::dense_layouts(model, all, recipe, kind, recipe.positive("dp", 1), 1, layouts);
  } else if (kind == "fsdp-tp" || kind == "megatron-distopt") {
    recipe.check_options({"dp", "tp", "bucket"}, {"dp", "tp"});
    if (kind == "fsdp-tp" && recipe.options.count("bucket")) detail::fail("layout recipe '", recipe.text, "': bucket= applies to megatron-distopt");
    detail::dense_layouts(model, all, recipe, kind, recipe.positive("dp", 1), recipe.positive("tp", 1), layouts);
  } else if (kind == "zero1" || kind == "zero2" || kind == "zero3") {
    recipe.check_options({"dp", "tp"}, {"dp"});
    detail::dense_layouts(model, all, recipe, kind, recipe.positive("dp", 1), recipe.positive("tp", 1), layouts);
  } else {  // ep
    recipe.check_options({"ep", "dp", "experts", "dense"}, {"ep", "dp"});
    index_t ep = recipe.positive("ep", 1), dp = recipe.positive("dp", 1);
    if (dp % ep != 0) detail::fail("layout recipe '", recipe.text, "': ep=", ep, " does not divide dp=", dp);
    std::string expert_kind = recipe.word("experts", "fsdp"), dense_kind = recipe.word("dense", expert_kind);
    if (expert_kind != "fsdp" && expert_kind != "zero1" && expert_kind != "zero2" && expert_kind != "zero3")
      detail::fail("layout recipe '", recipe.text, "': experts=", expert_kind, " (fsdp, zero1, zero2, zero3)");
    if (dense_kind != "replicated" && dense_kind != "fsdp" && dense_kind != "zero1" && dense_kind != "zero2" && dense_kind != "zero3")
      detail::fail("layout recipe '", recipe.text, "': dense=", dense_kind, " (replicated, fsdp, zero1, zero2, zero3)");
    detail::dense_layouts(model, dense, recipe, dense_kind, dp, 1, layouts);
    if (expert_kind == "fsdp") {
      DeviceMesh sparse({"efsdp", "ep"}, Dims{dp / ep, ep});
      for (std::size_t t : experts)
        layouts.emplace(t, NamedTensorLayout{model.tensors[t].name, model.tensors[t].dtype, torchtitan_expert_layout(sparse, model.tensors[t].shape)});
    } else if (!experts.empty()) {
      DeviceMesh sparse({"edp", "ep"}, Dims{dp / ep, ep});
      detail::flat_layouts(model, experts, "edp", detail::flat_options(recipe, expert_kind),
                           [&](const ModelTensor& t) { return expert_parallel_layout(sparse, "ep", t.shape); }, layouts);
    }
  }
  std::vector<NamedTensorLayout> ordered;
  for (auto& [t, layout] : layouts) ordered.push_back(std::move(layout));
  return ModelLayout(std::move(ordered));
}

}  // namespace shardalg
