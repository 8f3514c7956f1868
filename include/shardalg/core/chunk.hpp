// torch.chunk arithmetic: the basic split of one dimension among ranks (docs/semantics.md section 1).
#pragma once

#include <algorithm>

#include "shardalg/core/checked.hpp"

namespace shardalg {

// The part of a dimension that one chunk covers, relative to the dimension being split.
struct Chunk {
  index_t offset;
  index_t size;
  friend constexpr bool operator==(const Chunk&, const Chunk&) = default;
};

// Chunk `index` of a dimension of `length` split into `num_chunks` with torch.chunk semantics:
// chunk size c = ceil(length / num_chunks), chunk i covers [i*c, min((i+1)*c, length)).
// This is not a balanced split, and trailing chunks may be empty; an empty chunk reports offset
// `length` (PyTorch's convention).
// Precondition: length >= 0, num_chunks >= 1, 0 <= index < num_chunks.
// Example: length 6, 4 chunks -> (0,2) (2,2) (4,2) (6,0).
constexpr Chunk chunk_of(index_t length, index_t num_chunks, index_t index) {
  if (length % num_chunks == 0) {
    index_t size = length / num_chunks;
    return {size * index, size};
  }
  index_t full = ceil_div(length, num_chunks);
  // Compared before multiplying, and the size taken from what is left, so that lengths near the
  // index type's maximum do not overflow.
  if (index >= ceil_div(length, full)) return {length, 0};
  index_t start = full * index;
  return {start, std::min(full, length - start)};
}

// The chunk index holding position `position` of a dimension of `length` split into num_chunks.
// Precondition: 0 <= position < length.
constexpr index_t chunk_holding(index_t length, index_t num_chunks, index_t position) {
  return position / ceil_div(length, num_chunks);
}

}  // namespace shardalg
