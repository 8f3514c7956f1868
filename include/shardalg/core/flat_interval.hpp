// A flat (row-major) interval of a tensor as boxes.
#pragma once

#include <vector>

#include "shardalg/core/box.hpp"

namespace shardalg {

// The elements [begin, begin + length) of a row-major tensor of `shape`, as at most 2*ndim-1
// boxes in flat order. Each box is the largest that starts at the current position: whole rows
// (or planes) once the position is aligned to them.
// Example: shape [3, 4], [2, 10) -> [0,1)x[2,4), [1,2)x[0,4), [2,3)x[0,2).
// Precondition (checked): 0 <= begin, begin + length <= volume(shape).
inline std::vector<Box> flat_interval_boxes(const Dims& shape, index_t begin, index_t length) {
  index_t total = volume(shape);
  if (begin < 0 || length < 0 || checked_add(begin, length) > total)
    detail::fail("flat interval [", begin, ", ", begin + length, ") is outside a tensor of shape ", shape, " (", total,
                 " elements)");
  std::size_t ndim = shape.size();
  Dims strides = row_major_strides(shape);
  std::vector<Box> boxes;
  if (ndim == 0) {
    if (length > 0) boxes.push_back(Box(Dims{}, Dims{}));
    return boxes;
  }
  index_t position = begin, end = begin + length;
  while (position < end) {
    for (std::size_t k = 0; k < ndim; ++k) {  // outermost dim whose stride the position is aligned to
      if (position % strides[k] != 0) continue;
      index_t coord_k = (position / strides[k]) % shape[k];
      index_t count = std::min((end - position) / strides[k], shape[k] - coord_k);
      if (count == 0) continue;
      Dims offset = row_major_coordinate(shape, position);
      Dims extent(ndim, 1);
      extent[k] = count;
      for (std::size_t d = k + 1; d < ndim; ++d) extent[d] = shape[d];
      boxes.emplace_back(offset, extent);
      position += count * strides[k];
      break;
    }
  }
  return boxes;
}

}  // namespace shardalg
