// Process-group conventions of DeepSpeed, Megatron-LM and torchtitan (docs/semantics.md section 8),
// each expressed as device meshes unflattened from the world plus an axis order, never as
// ad-hoc rank lists. Every family of groups (tp, dp, ep, edp, ...) is the groups of a mesh dim
// or of a flattened set of dims.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shardalg/mesh/device_mesh.hpp"

namespace shardalg {

using RankGroups = std::vector<std::vector<index_t>>;

struct ParallelGroups {
  std::string convention;
  DeviceMesh dense;                  // the mesh of dense (non-expert) parameters
  std::optional<DeviceMesh> expert;  // the mesh of expert parameters, when it differs
  std::map<std::string, RankGroups> families;

  // The group of `family` that contains `rank`; Error naming the family or the rank.
  const std::vector<index_t>& group_of(const std::string& family, index_t rank) const {
    auto it = families.find(family);
    if (it == families.end()) detail::fail(convention, " has no group family '", family, "'");
    for (const auto& group : it->second)
      if (std::find(group.begin(), group.end(), rank) != group.end()) return group;
    detail::fail("rank ", rank, " is in no ", family, " group of ", convention);
  }
};

namespace detail {

inline void add_family(ParallelGroups& groups, const std::string& family, const DeviceMesh& mesh,
                       const std::vector<std::string>& dims) {
  if (dims.size() == 1) {
    groups.families[family] = mesh.groups(mesh.dim_index(dims[0]));
  } else {
    DeviceMesh flat = mesh.flatten(dims, family);
    groups.families[family] = flat.groups(flat.dim_index(family));
  }
}

inline void require_divides(std::string_view what, index_t divisor, std::string_view of, index_t value) {
  if (divisor <= 0) fail(what, " ", divisor, " must be positive");
  if (value % divisor != 0) fail(what, " ", divisor, " does not divide ", of, " ", value);
}

// The world unflattened row-major into (pp, rest...).
inline DeviceMesh world_mesh(index_t world, const std::vector<std::string>& names, const Dims& sizes) {
  if (world <= 0) fail("world size ", world, " must be positive");
  if (world > max_ranks) fail("world size ", world, " is over the limit ", max_ranks, " ranks");
  if (volume(sizes) != world) fail("group sizes ", sizes, " multiply to ", volume(sizes), ", not the world size ", world);
  return DeviceMesh::parse(detail::concat("world=", world)).unflatten("world", sizes, names);
}

// DeepSpeed's expert groups without TP: the stage unflattened into (edp, ep) or, data before
// expert, (ep, edp); dp is the whole stage.
inline ParallelGroups deepspeed_stage_groups(std::string convention, index_t world, index_t ep, index_t pp, bool data_before_expert) {
  require_divides("pipeline size", pp, "the world size", world);
  index_t stage = world / pp;
  require_divides("EP size", ep, "the ranks of a pipeline stage", stage);
  std::vector<std::string> inner = data_before_expert ? std::vector<std::string>{"ep", "edp"} : std::vector<std::string>{"edp", "ep"};
  Dims sizes = data_before_expert ? Dims{pp, ep, stage / ep} : Dims{pp, stage / ep, ep};
  DeviceMesh mesh = world_mesh(world, {"pp", inner[0], inner[1]}, sizes);
  ParallelGroups g{std::move(convention), mesh, std::nullopt, {}};
  add_family(g, "pp", mesh, {"pp"});
  add_family(g, "ep", mesh, {"ep"});
  add_family(g, "edp", mesh, {"edp"});
  add_family(g, "dp", mesh, inner);
  return g;
}
}  // namespace detail

// DeepSpeed's default: per pipeline stage of S = W/pp ranks, EP groups are consecutive runs of
// E, EDP groups range(i, S, E). Mesh (pp, edp, ep). W=8, E=2: EP [0,1][2,3]..., EDP [0,2,4,6][1,3,5,7].
inline ParallelGroups deepspeed_groups(index_t world, index_t ep, index_t pp = 1) {
  return detail::deepspeed_stage_groups("deepspeed", world, ep, pp, false);
}

// DeepSpeed data-before-expert: EDP groups are contiguous blocks of S/E, EP groups
// range(i, S, S/E). Mesh (pp, ep, edp). W=8, E=2: EP [0,4][1,5][2,6][3,7], EDP [0..3][4..7].
inline ParallelGroups deepspeed_dbe_groups(index_t world, index_t ep, index_t pp = 1) {
  return detail::deepspeed_stage_groups("deepspeed-dbe", world, ep, pp, true);
}

// DeepSpeed with tensor parallelism T: DP groups range(i, S, T); each DP group is cut into
// consecutive runs of E (EP groups); EDP groups zip those runs position by position.
// Mesh (pp, edp, ep, tp).
inline ParallelGroups deepspeed_tp_groups(index_t world, index_t ep, index_t tp, index_t pp = 1) {
  detail::require_divides("pipeline size", pp, "the world size", world);
  index_t stage = world / pp;
  detail::require_divides("TP size", tp, "the ranks of a pipeline stage", stage);
  detail::require_divides("EP size", ep, "the data-parallel size", stage / tp);
  DeviceMesh mesh = detail::world_mesh(world, {"pp", "edp", "ep", "tp"}, Dims{pp, stage / tp / ep, ep, tp});
  ParallelGroups g{"deepspeed-tp", mesh, std::nullopt, {}};
  detail::add_family(g, "pp", mesh, {"pp"});
  detail::add_family(g, "tp", mesh, {"tp"});
  detail::add_family(g, "ep", mesh, {"ep"});
  detail::add_family(g, "edp", mesh, {"edp"});
  detail::add_family(g, "dp", mesh, {"edp", "ep"});
  return g;
}

// AutoEP folding over AutoTP: TP contiguous blocks of T, dense DP stage[lane::T]; EP contiguous
// blocks of E (folding over TP), EDP position-wise across EP blocks. Dense mesh (pp, dp, tp),
// expert mesh (pp, edp, ep). W=8, T=2, E=4: EP (0..3)(4..7), EDP (0,4)(1,5)(2,6)(3,7).
inline ParallelGroups autoep_groups(index_t world, index_t ep, index_t tp, index_t pp = 1) {
  detail::require_divides("pipeline size", pp, "the world size", world);
  index_t stage = world / pp;
  detail::require_divides("TP size", tp, "the ranks of a pipeline stage", stage);
  detail::require_divides("EP size", ep, "the ranks of a pipeline stage", stage);
  DeviceMesh dense = detail::world_mesh(world, {"pp", "dp", "tp"}, Dims{pp, stage / tp, tp});
  DeviceMesh expert = detail::world_mesh(world, {"pp", "edp", "ep"}, Dims{pp, stage / ep, ep});
  ParallelGroups g{"autoep", dense, expert, {}};
  detail::add_family(g, "pp", dense, {"pp"});
  detail::add_family(g, "tp", dense, {"tp"});
  detail::add_family(g, "dp", dense, {"dp"});
  detail::add_family(g, "ep", expert, {"ep"});
  detail::add_family(g, "edp", expert, {"edp"});
  return g;
}

struct MegatronSizes {
  index_t tp = 1, cp = 1, ep = 1, pp = 1;
  std::optional<index_t> etp;  // expert tensor parallelism; defaults to tp
};

// Megatron-LM: ranks ordered by `order` (first token varies fastest, default tp-cp-ep-dp-pp).
// Dense grid: the order without ep (dp = W/(tp*cp*pp)). Expert grid: tp -> etp, ep, dp -> edp =
// W/(etp*ep*pp), no cp. Refused as Megatron's initialize_model_parallel refuses them: an order
// whose last token is not pp, with pp > 1 and edp != dp; dense and expert grids whose pipeline
// groups differ (a stage would hold one layer's attention and another's experts).
// Example: W=16, tp=2, ep=2, pp=2 in order tp-cp-ep-pp-dp: dp 4, edp 2: refused.
inline ParallelGroups megatron_groups(index_t world, const MegatronSizes& sizes, const std::string& order = "tp-cp-ep-dp-pp") {
  index_t etp = sizes.etp.value_or(sizes.tp);
  std::vector<std::string> tokens;
  {
    std::string token;
    for (char c : order + "-") {
      if (c == '-') {
        tokens.push_back(token);
        token.clear();
      } else {
        token += c;
      }
    }
  }
  std::vector<std::string> sorted = tokens;
  std::sort(sorted.begin(), sorted.end());
  if (sorted != std::vector<std::string>{"cp", "dp", "ep", "pp", "tp"})
    detail::fail("megatron: order '", order, "' must name tp, cp, ep, dp and pp once each");
  for (auto [name, size] : {std::pair{"TP", sizes.tp}, {"CP", sizes.cp}, {"EP", sizes.ep}, {"PP", sizes.pp}, {"ETP", etp}})
    if (size <= 0) detail::fail("megatron: ", name, " size ", size, " must be positive");
  index_t model = checked_mul(checked_mul(sizes.tp, sizes.cp), sizes.pp);
  detail::require_divides("tp*cp*pp", model, "the world size", world);
  index_t expert_model = checked_mul(checked_mul(etp, sizes.ep), sizes.pp);
  detail::require_divides("etp*ep*pp", expert_model, "the world size", world);
  index_t dp = world / model, edp = world / expert_model;
  auto grid = [&](bool expert) {
    std::vector<std::string> names;
    Dims shape;
    for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) {  // last token varies slowest
      const std::string& t = *it;
      if (expert ? t == "cp" : t == "ep") continue;
      index_t size = t == "tp" ? (expert ? etp : sizes.tp)
                   : t == "cp" ? sizes.cp
                   : t == "ep" ? sizes.ep
                   : t == "dp" ? (expert ? edp : dp)
                               : sizes.pp;
      names.push_back(expert ? (t == "tp" ? "etp" : t == "dp" ? "edp" : t) : t);
      shape.push_back(size);
    }
    return detail::world_mesh(world, names, shape);
  };
  if (tokens.back() != "pp" && sizes.pp != 1 && edp != dp)
    detail::fail("megatron: order '", order, "' does not end with pp, so Megatron requires the expert data-parallel size ", edp,
                 " (W/(etp*ep*pp)) to equal the dense one ", dp, " (W/(tp*cp*pp)): attention and MoE layers must then have the same data-parallel size");
  DeviceMesh dense = grid(false), expert = grid(true);
  auto dense_pipelines = dense.groups(dense.dim_index("pp")), expert_pipelines = expert.groups(expert.dim_index("pp"));
  Dims dense_first(dense_pipelines.front()), expert_first(expert_pipelines.front());  // rank 0's, for the message
  std::sort(dense_pipelines.begin(), dense_pipelines.end());
  std::sort(expert_pipelines.begin(), expert_pipelines.end());
  if (dense_pipelines != expert_pipelines)
    detail::fail("megatron: order '", order, "' gives the dense and the expert grids different pipeline groups (rank 0's: ", dense_first,
                 " vs ", expert_first, "); Megatron requires them to be the same");
  ParallelGroups g{"megatron", dense, expert, {}};
  for (const char* f : {"tp", "cp", "dp", "pp"}) detail::add_family(g, f, dense, {f});
  std::vector<std::string> dp_cp;  // in mesh order
  for (const auto& n : dense.names())
    if (n == "dp" || n == "cp") dp_cp.push_back(n);
  detail::add_family(g, "dp_cp", dense, dp_cp);
  for (const char* f : {"etp", "ep", "edp"}) detail::add_family(g, f, expert, {f});
  return g;
}

struct TorchtitanSizes {
  index_t pp = 1, dp_replicate = 1, dp_shard = 1, cp = 1, tp = 1, ep = 1;
};

// torchtitan: dense mesh (pp, dp_replicate, dp_shard, cp, tp) and sparse mesh
// (pp, dp_replicate, efsdp, ep) with efsdp = dp_shard*cp*tp/ep, both row-major from the world.
// Family edp: dp_replicate x efsdp, the replicas of an EP rank's experts.
inline ParallelGroups torchtitan_groups(index_t world, const TorchtitanSizes& s) {
  Dims dense_shape{s.pp, s.dp_replicate, s.dp_shard, s.cp, s.tp};
  for (index_t v : dense_shape)
    if (v <= 0) detail::fail("torchtitan: sizes ", dense_shape, " must be positive");
  index_t borrowed = checked_mul(checked_mul(s.dp_shard, s.cp), s.tp);
  detail::require_divides("EP size", s.ep, "dp_shard*cp*tp", borrowed);
  DeviceMesh dense = detail::world_mesh(world, {"pp", "dp_replicate", "dp_shard", "cp", "tp"}, dense_shape);
  DeviceMesh sparse = detail::world_mesh(world, {"pp", "dp_replicate", "efsdp", "ep"}, Dims{s.pp, s.dp_replicate, borrowed / s.ep, s.ep});
  ParallelGroups g{"torchtitan", dense, sparse, {}};
  for (const char* f : {"pp", "dp_replicate", "dp_shard", "cp", "tp"}) detail::add_family(g, f, dense, {f});
  detail::add_family(g, "dp", dense, {"dp_replicate", "dp_shard"});
  detail::add_family(g, "dp_shard_cp", dense, {"dp_shard", "cp"});
  detail::add_family(g, "dp_cp", dense, {"dp_replicate", "dp_shard", "cp"});
  detail::add_family(g, "ep", sparse, {"ep"});
  detail::add_family(g, "efsdp", sparse, {"efsdp"});
  // The ranks holding the same experts (what the other conventions call EDP): HSDP replicas too.
  detail::add_family(g, "edp", sparse, {"dp_replicate", "efsdp"});
  return g;
}

}  // namespace shardalg
