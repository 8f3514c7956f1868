// SliceMap: for every rank of a layout, exactly which global elements it holds and where they
// sit in its local buffer.
#pragma once

#include <vector>

#include "shardalg/layout/mesh_layout.hpp"
#include "shardalg/layout/piece.hpp"

namespace shardalg {

struct RankSlice {
  index_t rank;
  Dims coordinate;
  Tile tile;
  ShardInfo info;  // PyTorch's local shape and global offset

  // The tile's maximal boxes in local row-major order, each with its local offset.
  std::vector<Piece> pieces() const { return pieces_of(tile); }
};

class SliceMap {
 public:
  // Computes every rank's slice, in mesh (row-major coordinate) order. Time linear in ranks.
  explicit SliceMap(const MeshLayout& layout) {
    slices_.reserve(static_cast<std::size_t>(layout.mesh().size()));
    for (index_t position = 0; position < layout.mesh().size(); ++position) slices_.push_back(slice_at(layout, position));
  }

  // The slice of the rank at row-major mesh position `position` alone (what listings of huge
  // meshes compute one at a time). Pre: 0 <= position < layout.mesh().size().
  static RankSlice slice_at(const MeshLayout& layout, index_t position) {
    const DeviceMesh& mesh = layout.mesh();
    Dims coord = row_major_coordinate(mesh.shape(), position);
    Tile tile = layout.tile_at(coord);
    ShardInfo info = shard_info_of(tile, layout.global_shape());
    return RankSlice{mesh.devices()[static_cast<std::size_t>(position)], std::move(coord), std::move(tile), std::move(info)};
  }

  const std::vector<RankSlice>& ranks() const { return slices_; }

 private:
  std::vector<RankSlice> slices_;
};

}  // namespace shardalg
