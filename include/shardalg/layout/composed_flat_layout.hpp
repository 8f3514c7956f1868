// Flat partitions of mesh-sharded tensors: tensors are first placed by mesh layouts (TP, EP,
// strided...), then every group along one mesh dim (the data-parallel dim) flattens its members'
// local tiles with a ZeRO or Megatron scheme. A fragment maps through the tile to global boxes.
#pragma once

#include <utility>

#include "shardalg/layout/megatron_buffer.hpp"
#include "shardalg/layout/mesh_layout.hpp"
#include "shardalg/layout/zero_partitions.hpp"

namespace shardalg {

enum class FlatScheme { zero3, zero12, megatron };

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
  ComposedFlatLayout(std::vector<NamedMeshLayout> tensors, std::string flat_dim, FlatSchemeOptions options)
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
    }
  }

  const DeviceMesh& mesh() const { return tensors_.front().layout.mesh(); }
  std::size_t flat_dim() const { return flat_dim_; }
  const std::vector<NamedMeshLayout>& tensors() const { return tensors_; }

  // The flat layout of a rank's group along the flat dim, over the tiles the group holds.
  FlatLayout flat_layout_of(index_t rank) const {
    auto coord = mesh().coordinate_of(rank);
    if (!coord) detail::fail("rank ", rank, " is not in ", mesh().to_string());
    std::vector<FlatTensor> flat;
    for (const NamedMeshLayout& t : tensors_) {
      Tile tile = t.layout.tile_at(*coord);
      Dims shape = tile.shape();
      flat.push_back(FlatTensor{t.name, shape, std::move(tile), t.layout.global_shape()});
    }
    return make_flat_layout(options_, std::move(flat), mesh().group_of(flat_dim_, rank));
  }

 private:
  std::vector<NamedMeshLayout> tensors_;
  FlatSchemeOptions options_;
  std::size_t flat_dim_ = 0;
};

}  // namespace shardalg
