// Expert-parallel layouts (docs/semantics.md section 8): which experts an EP rank owns, AutoEP-style metadata, and the layouts
// of stacked expert weights [num_experts, ...] (experts over EP, then FSDP/ZeRO over the
// expert-replica group).
#pragma once

#include "shardalg/layout/composed_flat_layout.hpp"
#include "shardalg/mesh/parallel_groups.hpp"

namespace shardalg {

// Experts split evenly over EP ranks: EP rank e holds [e*L, (e+1)*L) with L = num_experts / E.
struct ExpertOwnership {
  index_t num_experts;
  index_t ep_size;

  ExpertOwnership(index_t experts, index_t ep) : num_experts(experts), ep_size(ep) {
    if (experts <= 0) detail::fail("number of experts ", experts, " must be positive");
    if (ep <= 0) detail::fail("EP size ", ep, " must be positive");
    if (experts % ep != 0) detail::fail("EP size ", ep, " does not divide the ", experts, " experts");
  }
  index_t num_local() const { return num_experts / ep_size; }
  // [first, end) of the global experts EP rank `ep_rank` holds.
  std::pair<index_t, index_t> experts_of(index_t ep_rank) const {
    if (ep_rank < 0 || ep_rank >= ep_size) detail::fail("EP rank ", ep_rank, " is out of range for EP size ", ep_size);
    return {ep_rank * num_local(), (ep_rank + 1) * num_local()};
  }
};

// The record an AutoEP-style engine keeps per rank.
struct ExpertMetadata {
  index_t num_experts, num_local_experts, ep_size, ep_rank, edp_rank, edp_size, global_expert_start, global_expert_end;
  friend bool operator==(const ExpertMetadata&, const ExpertMetadata&) = default;
};

namespace detail {
inline ExpertMetadata expert_record(index_t num_experts, index_t ep_rank, index_t ep_size, index_t edp_rank, index_t edp_size) {
  ExpertOwnership own(num_experts, ep_size);
  auto [first, end] = own.experts_of(ep_rank);
  return ExpertMetadata{num_experts, own.num_local(), ep_size, ep_rank, edp_rank, edp_size, first, end};
}
}  // namespace detail

// Metadata of `rank` under a convention whose groups have "ep" and "edp" families.
inline ExpertMetadata expert_metadata(const ParallelGroups& groups, index_t num_experts, index_t rank) {
  const auto& ep = groups.group_of("ep", rank);
  const auto& edp = groups.group_of("edp", rank);
  index_t ep_rank = std::find(ep.begin(), ep.end(), rank) - ep.begin();
  index_t edp_rank = std::find(edp.begin(), edp.end(), rank) - edp.begin();
  return detail::expert_record(num_experts, ep_rank, static_cast<index_t>(ep.size()), edp_rank, static_cast<index_t>(edp.size()));
}

// The metadata of every rank, indexed by rank: one pass over the "ep" and "edp" groups (where
// expert_metadata searches them per rank). Error when a rank is in no group of either family.
// Example: autoep, world 8, ep 4, tp 2, 16 experts: entry 5 is EP rank 1 of (4..7), experts [4, 8).
inline std::vector<ExpertMetadata> expert_metadata_of_ranks(const ParallelGroups& groups, index_t num_experts) {
  auto family = [&](const char* name) -> const RankGroups& {
    auto it = groups.families.find(name);
    if (it == groups.families.end()) detail::fail(groups.convention, " has no group family '", name, "'");
    return it->second;
  };
  // (position in the group, group size) of each rank, or -1 before a group holds it.
  auto positions = [](const RankGroups& list) {
    std::vector<std::pair<index_t, index_t>> of_rank;
    for (const auto& group : list)
      for (std::size_t i = 0; i < group.size(); ++i) {
        std::size_t rank = static_cast<std::size_t>(group[i]);
        if (rank >= of_rank.size()) of_rank.resize(rank + 1, {-1, 0});
        of_rank[rank] = {static_cast<index_t>(i), static_cast<index_t>(group.size())};
      }
    return of_rank;
  };
  const auto ep = positions(family("ep")), edp = positions(family("edp"));
  std::vector<ExpertMetadata> result;
  result.reserve(ep.size());
  for (std::size_t rank = 0; rank < std::max(ep.size(), edp.size()); ++rank) {
    for (const auto* list : {&ep, &edp})
      if (rank >= list->size() || (*list)[rank].first < 0)
        detail::fail("rank ", rank, " is in no ", list == &ep ? "ep" : "edp", " group of ", groups.convention);
    result.push_back(detail::expert_record(num_experts, ep[rank].first, ep[rank].second, edp[rank].first, edp[rank].second));
  }
  return result;
}

// Stacked experts Shard(0) over the mesh dim `ep_dim`, Replicate elsewhere.
inline MeshLayout expert_parallel_layout(const DeviceMesh& mesh, std::string_view ep_dim, const Dims& stacked_shape) {
  if (stacked_shape.empty()) detail::fail("stacked expert weights need a leading expert dim; got shape ", stacked_shape);
  std::size_t ep = mesh.dim_index(ep_dim);
  ExpertOwnership(stacked_shape[0], mesh.size(ep));  // experts must divide evenly over EP
  std::vector<Placement> placements(mesh.ndim(), Placement::replicate());
  placements[ep] = Placement::shard(0);
  return MeshLayout(mesh, placements, stacked_shape);
}

// torchtitan's stacked expert weights on its sparse mesh (pp, dp_replicate, efsdp, ep): experts
// Shard(0) over ep, then FSDP2 over efsdp on dim 0 after EP (shard order [ep, efsdp]) when
// efsdp*ep <= num_experts, else on dim 1 (torchtitan's Shard(1) choice).
inline MeshLayout torchtitan_expert_layout(const DeviceMesh& sparse, const Dims& stacked_shape) {
  MeshLayout ep_only = expert_parallel_layout(sparse, "ep", stacked_shape);
  std::size_t ep = sparse.dim_index("ep"), efsdp = sparse.dim_index("efsdp");
  std::vector<Placement> placements = ep_only.placements();
  if (sparse.size(efsdp) * sparse.size(ep) <= stacked_shape[0]) {
    placements[efsdp] = Placement::shard(0);
    return MeshLayout(sparse, placements, stacked_shape,
                      ShardOrder{{0, {static_cast<index_t>(ep), static_cast<index_t>(efsdp)}}});
  }
  if (stacked_shape.size() < 2) detail::fail("torchtitan experts: Shard(1) needs a 2-d or larger stack; got ", stacked_shape);
  placements[efsdp] = Placement::shard(1);
  return MeshLayout(sparse, placements, stacked_shape);
}

// DeepSpeed / Megatron expert weights: experts over `ep_dim`, then a ZeRO or distributed-optimizer
// partition over the expert-replica dim `edp_dim`.
inline ComposedFlatLayout expert_flat_layout(const DeviceMesh& mesh, std::string_view ep_dim, const std::string& edp_dim,
                                             const std::vector<std::pair<std::string, Dims>>& stacked, FlatSchemeOptions options) {
  std::vector<NamedMeshLayout> tensors;
  for (const auto& [name, shape] : stacked) tensors.push_back(NamedMeshLayout{name, expert_parallel_layout(mesh, ep_dim, shape)});
  return ComposedFlatLayout(std::move(tensors), edp_dim, std::move(options));
}

}  // namespace shardalg
