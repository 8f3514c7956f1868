// Source tiles for tests of lowered programs: a numbered tensor scattered by the layout. Under
// Partial placements each rank's values are offset by its coordinates on the Partial mesh dims
// (replicas, which differ on other dims, hold equal values), so every reduction is visible.
#pragma once

#include "shardalg/exec/host/host_simulator.hpp"

namespace shardalg::testing {

template <class T>
RankBuffers<T> partial_source_tiles(const MeshLayout& src) {
  std::vector<T> global(static_cast<std::size_t>(volume(src.global_shape())));
  for (std::size_t i = 0; i < global.size(); ++i) global[i] = static_cast<T>(static_cast<std::int64_t>(i % 97) * 3 + 1);
  RankBuffers<T> buffers = scatter_to_ranks(TensorLayout(src), global);
  for (auto& [rank, values] : buffers) {
    Dims coord = *src.mesh().coordinate_of(rank);
    std::int64_t offset = 0;
    for (std::size_t m = 0; m < coord.size(); ++m)
      if (src.placements()[m].is_partial()) offset = offset * 7 + coord[m] + 1;
    for (T& v : values) v = static_cast<T>(v + static_cast<T>(offset * 100));
  }
  return buffers;
}

}  // namespace shardalg::testing
