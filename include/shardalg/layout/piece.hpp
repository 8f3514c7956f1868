// Piece: a box of global elements a rank holds and where they sit in its buffer; every layout
// (mesh or flat) describes a rank's holding as a list of pieces.
#pragma once

#include <vector>

#include "shardalg/core/tile.hpp"

namespace shardalg {

// A box of global elements a rank holds and where they sit in its buffer.
// Mesh layouts: `local` is the box start's coordinate in the local tile (`strides` empty).
// Flat layouts: `local` is {the box start's position in the partition}; moving one step along
// global dim d moves `strides[d]` positions.
// Example (flat): a [2,3] tensor, window holding flat elements [2, 6) at partition position 10:
// piece [0,1)x[2,3) at {10}, piece [1,2)x[0,3) at {11}, both with strides [3, 1].
struct Piece {
  Box global;
  Dims local;
  Dims strides;

  // Where a global point of the box sits, in the same form as `local`.
  Dims local_at(const Dims& point) const {
    if (strides.empty()) {
      Dims result = local;
      for (std::size_t d = 0; d < result.size(); ++d) result[d] += point[d] - global.offset[d];
      return result;
    }
    index_t position = local[0];
    for (std::size_t d = 0; d < strides.size(); ++d) position += (point[d] - global.offset[d]) * strides[d];
    return Dims{position};
  }
};

// A tile's maximal boxes in local row-major order, each with its local coordinates.
inline std::vector<Piece> pieces_of(const Tile& tile) {
  std::vector<Piece> result;
  for (Box& box : tile.boxes()) {
    Dims local;
    for (std::size_t d = 0; d < box.ndim(); ++d) local.push_back(*tile.dim(d).local_of(box.offset[d]));
    result.push_back(Piece{std::move(box), std::move(local), {}});
  }
  return result;
}

}  // namespace shardalg
