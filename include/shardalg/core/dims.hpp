// Dims: a short list of extents, offsets or coordinates (one per tensor or mesh dim).
#pragma once

#include <ostream>
#include <span>
#include <string>

#include "shardalg/core/checked.hpp"
#include "shardalg/core/small_vector.hpp"

namespace shardalg {

// Inline capacity 8 covers every tensor rank and mesh rank seen in practice; more spills to the heap.
using Dims = SmallVector<index_t, 8>;

constexpr std::span<const index_t> as_span(const Dims& dims) { return {dims.data(), dims.size()}; }

// Product of the extents, overflow-checked.
constexpr index_t volume(const Dims& shape) { return checked_product(as_span(shape)); }

// Prints "[4, 2]".
inline std::ostream& operator<<(std::ostream& out, const Dims& dims) {
  out << '[';
  for (std::size_t i = 0; i < dims.size(); ++i) out << (i ? ", " : "") << dims[i];
  return out << ']';
}

inline std::string to_string(const Dims& dims) { return detail::concat(dims); }

// Row-major position of coord in shape. Precondition: 0 <= coord[i] < shape[i].
constexpr index_t row_major_position(const Dims& shape, const Dims& coord) {
  index_t position = 0;
  for (std::size_t i = 0; i < shape.size(); ++i) position = position * shape[i] + coord[i];
  return position;
}

// Inverse of row_major_position. Example: shape [2, 2, 2], position 5 -> [1, 0, 1].
constexpr Dims row_major_coordinate(const Dims& shape, index_t position) {
  Dims coord(shape.size(), 0);
  for (std::size_t i = shape.size(); i-- > 0;) {
    coord[i] = position % shape[i];
    position /= shape[i];
  }
  return coord;
}

// Row-major strides of a shape: the last dim moves by 1. Example: [3, 4, 5] -> [20, 5, 1].
constexpr Dims row_major_strides(const Dims& shape) {
  Dims strides(shape.size(), 1);
  for (std::size_t d = shape.size(); d-- > 1;) strides[d - 1] = checked_mul(strides[d], shape[d]);
  return strides;
}

// Steps a row-major coordinate of `shape` to the next one, keeping `offset` (sum of coordinate
// times stride) in step without a multiplication; returns false after the last, with the
// coordinate and offset back at the first. Example: shape [2, 3], strides [10, 1], from [0, 2]
// (offset 2) -> [1, 0] (offset 10).
constexpr bool next_coordinate(Dims& coordinate, const Dims& shape, const Dims& strides, index_t& offset) {
  for (std::size_t d = coordinate.size(); d-- > 0;) {
    offset += strides[d];
    if (++coordinate[d] < shape[d]) return true;
    offset -= coordinate[d] * strides[d];
    coordinate[d] = 0;
  }
  return false;
}

// The same walk without an offset: [0, 2] of shape [2, 3] -> [1, 0]; false after the last.
constexpr bool next_coordinate(Dims& coordinate, const Dims& shape) {
  for (std::size_t d = coordinate.size(); d-- > 0;) {
    if (++coordinate[d] < shape[d]) return true;
    coordinate[d] = 0;
  }
  return false;
}

// Sum of a[i] * b[i] (a position from coordinates and strides), overflow-checked.
constexpr index_t dot(const Dims& a, const Dims& b) {
  index_t total = 0;
  for (std::size_t i = 0; i < a.size(); ++i) total = checked_add(total, checked_mul(a[i], b[i]));
  return total;
}

}  // namespace shardalg
