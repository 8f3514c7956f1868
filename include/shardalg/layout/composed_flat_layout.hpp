// Flat partitions of mesh-sharded tensors: tensors are first placed by mesh layouts (TP, EP,
// strided...), then every group along one mesh dim (the data-parallel dim) flattens its members'
// local tiles with a ZeRO or Megatron scheme. A fragment maps through the tile to global boxes.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>

#include "shardalg/layout/megatron_buffer.hpp"
#include "shardalg/layout/mesh_layout.hpp"
#include "shardalg/layout/zero_partitions.hpp"

namespace shardalg {

enum class FlatScheme { zero3, zero12, megatron };

// The schemes' names, indexed by the enum's value: "zero3", "zero12", "megatron".
inline constexpr std::array<std::string_view, 3> flat_scheme_names{"zero3", "zero12", "megatron"};

constexpr std::string_view to_string(FlatScheme scheme) { return flat_scheme_names[static_cast<std::size_t>(scheme)]; }

// The scheme named `text`; Error listing the names otherwise.
inline FlatScheme parse_flat_scheme(std::string_view text) {
  for (std::size_t i = 0; i < flat_scheme_names.size(); ++i)
    if (flat_scheme_names[i] == text) return static_cast<FlatScheme>(i);
  detail::fail("unknown flat scheme '", text, "' (zero3, zero12, megatron)");
}

struct FlatSchemeOptions {
  FlatScheme scheme = FlatScheme::zero3;
  index_t alignment_factor = 2;        // zero12
  MegatronBufferOptions megatron = {};  // megatron
};

inline FlatLayout make_flat_layout(const FlatSchemeOptions& options, std::vector<FlatTensor> tensors, std::vector<index_t> group) {
  switch (options.scheme) {
    case FlatScheme::zero3: return zero3_layout(std::move(tensors), std::move(group));
    case FlatScheme::zero12: return zero12_layout(std::move(tensors), std::move(group), options.alignment_factor);
    case FlatScheme::megatron: return megatron_layout(std::move(tensors), std::move(group), options.megatron);
  }
  detail::fail("unknown flat scheme");
}

struct NamedMeshLayout {
  std::string name;
  MeshLayout layout;
};

class ComposedFlatLayout {
 public:
  // All layouts must share one mesh and Replicate on `flat_dim` (the flat scheme shards there).
  ComposedFlatLayout(std::vector<NamedMeshLayout> tensors, const std::string& flat_dim, FlatSchemeOptions options)
      : tensors_(std::move(tensors)), options_(std::move(options)) {
    if (tensors_.empty()) detail::fail("composed flat layout: no tensors");
    const DeviceMesh& mesh = tensors_.front().layout.mesh();
    flat_dim_ = mesh.dim_index(flat_dim);
    for (const NamedMeshLayout& t : tensors_) {
      if (!(t.layout.mesh() == mesh))
        detail::fail("composed flat layout: tensor '", t.name, "' is on ", t.layout.mesh().to_string(), ", not ", mesh.to_string());
      const Placement& p = t.layout.placements()[flat_dim_];
      if (!p.is_replicate())
        detail::fail("composed flat layout: tensor '", t.name, "' has ", to_string(p), " on the flat dim '", flat_dim,
                     "'; it must be Replicate there");
      for (const Placement& q : t.layout.placements())
        if (q.is_partial())
          detail::fail("composed flat layout: tensor '", t.name, "' has ", to_string(q), "; flat partitions hold reduced values");
    }
    // The group leaders (flat coordinate 0) form a mesh with the flat dim of size 1; a tensor's
    // layout on it answers "which groups hold this box" without visiting every group member.
    leader_shape_ = mesh.shape();
    leader_shape_[flat_dim_] = 1;
    std::vector<index_t> leaders;
    for (index_t g = 0; g < volume(leader_shape_); ++g) leaders.push_back(mesh.rank_at(row_major_coordinate(leader_shape_, g)));
    DeviceMesh leader_mesh(mesh.names(), leader_shape_, std::move(leaders));
    cache_ = std::make_shared<GroupCache>(static_cast<std::size_t>(volume(leader_shape_)));
    for (const NamedMeshLayout& t : tensors_)
      leader_layouts_.push_back(t.layout.application_order()
                                    ? MeshLayout(leader_mesh, t.layout.placements(), t.layout.global_shape(), *t.layout.application_order())
                                    : MeshLayout(leader_mesh, t.layout.placements(), t.layout.global_shape()));
    check_every_group_holds_every_tensor();
  }

  const DeviceMesh& mesh() const { return tensors_.front().layout.mesh(); }
  std::size_t flat_dim() const { return flat_dim_; }
  const std::vector<NamedMeshLayout>& tensors() const { return tensors_; }
  const FlatSchemeOptions& options() const { return options_; }
  index_t group_count() const { return mesh().size() / mesh().size(flat_dim_); }

  // The group (along the flat dim) a rank belongs to, numbered row-major over the other mesh
  // dims; nothing for a rank outside the mesh.
  std::optional<index_t> group_index(index_t rank) const {
    auto coord = mesh().coordinate_of(rank);
    if (!coord) return std::nullopt;
    (*coord)[flat_dim_] = 0;
    return row_major_position(leader_shape_, *coord);
  }

  // The flat layout of one group, over the tiles its members hold. Built on first use, then
  // shared (thread-safe).
  const FlatLayout& flat_layout_of_group(index_t group) const {
    if (group < 0 || group >= group_count())
      detail::fail("composed flat layout: group ", group, " is out of range for ", group_count(), " groups");
    std::size_t g = static_cast<std::size_t>(group);
    std::call_once(cache_->built[g], [&] {
      Dims coord = row_major_coordinate(leader_shape_, group);
      std::vector<FlatTensor> flat;
      for (const NamedMeshLayout& t : tensors_) {
        Tile tile = t.layout.tile_at(coord);
        Dims shape = tile.shape();
        flat.push_back(FlatTensor{t.name, shape, std::move(tile), t.layout.global_shape()});
      }
      cache_->layouts[g] = std::make_unique<const FlatLayout>(
          make_flat_layout(options_, std::move(flat), mesh().group_of(flat_dim_, mesh().rank_at(coord))));
    });
    return *cache_->layouts[g];
  }

  // The flat layout of a rank's group along the flat dim.
  const FlatLayout& flat_layout_of(index_t rank) const {
    auto group = group_index(rank);
    if (!group) detail::fail("rank ", rank, " is not in ", mesh().to_string());
    return flat_layout_of_group(*group);
  }

  // The groups whose tiles of tensor `t` meet a global box, ascending.
  std::vector<index_t> groups_holding(std::size_t t, const Box& box) const {
    if (t >= tensors_.size()) detail::fail("composed flat layout: tensor index ", t, " is out of range for ", tensors_.size(), " tensors");
    if (group_count() == 1) return {0};  // one group (pure ZeRO): it holds the whole tensor
    std::vector<index_t> groups;
    for (index_t leader : leader_layouts_[t].ranks_holding(box)) groups.push_back(*group_index(leader));
    std::sort(groups.begin(), groups.end());
    return groups;
  }

 private:
  // Each group's flat layout, built once on first use (thread-safe, no lock after that).
  struct GroupCache {
    explicit GroupCache(std::size_t groups) : built(groups), layouts(groups) {}
    std::vector<std::once_flag> built;
    std::vector<std::unique_ptr<const FlatLayout>> layouts;
  };

  // ZeRO and Megatron partitions need every tensor to have elements in every group (a TP split
  // of 4 rows 12 ways leaves TP ranks 4-11 without that tensor). Checked here, at construction,
  // rather than when a group's partition is first built, deep inside planning or execution.
  void check_every_group_holds_every_tensor() const {
    for (std::size_t t = 0; t < tensors_.size(); ++t) {
      const MeshLayout& layout = leader_layouts_[t];
      bool splits = std::any_of(layout.placements().begin(), layout.placements().end(), [](const Placement& p) { return p.splits_tensor(); });
      for (index_t g = 0; g < (splits ? volume(leader_shape_) : 1); ++g) {
        Dims coord = row_major_coordinate(leader_shape_, g);
        if (layout.tile_at(coord).volume() > 0) continue;
        detail::fail("composed flat layout: tensor '", tensors_[t].name, "' of shape ", layout.global_shape(), " with placements (",
                     format_placements(layout.placements()), ") holds no element at mesh coordinate ", coord, " of ",
                     mesh().to_string(), "; every tensor of a flat partition needs elements in every group");
      }
    }
  }

  std::vector<NamedMeshLayout> tensors_;
  FlatSchemeOptions options_;
  std::size_t flat_dim_ = 0;
  Dims leader_shape_;                       // the mesh shape with the flat dim set to 1
  std::vector<MeshLayout> leader_layouts_;  // per tensor, on the group leaders
  std::shared_ptr<GroupCache> cache_;
};

}  // namespace shardalg
