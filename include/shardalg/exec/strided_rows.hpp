// StridedRows: rows of `row_bytes` contiguous bytes at data + dot(coordinate, strides), the row
// coordinates running row-major over `shape`: a message's bytes in place, for communicators that
// send and receive non-contiguous data themselves (MPI derived datatypes, shared memory) instead
// of the engine packing it into staging.
//
// Example: rows 2..3 of an fp32 [4, 2] tile: {tile + 16, shape {2}, strides {8}, row_bytes 8}.
#pragma once

#include <cstddef>
#include <span>

#include "shardalg/core/dims.hpp"

namespace shardalg {

template <class Byte>
struct StridedRows {
  Byte* data = nullptr;
  Dims shape;    // outer dims (empty: one row)
  Dims strides;  // byte strides of the outer dims
  index_t row_bytes = 0;

  index_t rows() const { return volume(shape); }
  index_t bytes() const { return rows() * row_bytes; }

  // Calls f(row pointer) for each row, in row-major order of the coordinates.
  template <class F>
  void for_each_row(F&& f) const {
    if (rows() == 0) return;
    Dims coordinate(shape.size(), 0);
    index_t offset = 0;
    do f(data + offset);
    while (next_coordinate(coordinate, shape, strides, offset));
  }
};

// Bytes of a message given as blocks of rows.
template <class Byte>
index_t message_bytes(std::span<const StridedRows<Byte>> blocks) {
  index_t bytes = 0;
  for (const StridedRows<Byte>& block : blocks) bytes += block.bytes();
  return bytes;
}

}  // namespace shardalg
