// StridedRows: rows of `row_bytes` contiguous bytes at data + dot(coordinate, strides), the row
// coordinates running row-major over `shape`: a message's bytes in place, for communicators that
// send and receive non-contiguous data themselves (MPI derived datatypes) instead of the engine
// packing it into staging.
//
// Example: rows 2..3 of an fp32 [4, 2] tile: {tile + 16, shape {2}, strides {8}, row_bytes 8}.
#pragma once

#include "shardalg/core/dims.hpp"

namespace shardalg {

template <class Byte>
struct StridedRows {
  Byte* data = nullptr;
  Dims shape;    // outer dims (empty: one row)
  Dims strides;  // byte strides of the outer dims
  index_t row_bytes = 0;
};

}  // namespace shardalg
