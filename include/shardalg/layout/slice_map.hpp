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
    const DeviceMesh& mesh = layout.mesh();
    slices_.reserve(static_cast<std::size_t>(mesh.size()));
    for (index_t position = 0; position < mesh.size(); ++position) {
      Dims coord = row_major_coordinate(mesh.shape(), position);
      Tile tile = layout.tile_at(coord);
      ShardInfo info = shard_info_of(tile, layout.global_shape());
      slices_.push_back(RankSlice{mesh.devices()[static_cast<std::size_t>(position)], std::move(coord),
                                  std::move(tile), std::move(info)});
    }
  }

  const std::vector<RankSlice>& ranks() const { return slices_; }

 private:
  std::vector<RankSlice> slices_;
};

}  // namespace shardalg
