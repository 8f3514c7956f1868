// CopyBatch: BoxCopy descriptors (box_copy.hpp) built on the host for one kernel launch: local
// copies box to box, and byte ranges of a message's stream packed from, or unpacked into, the
// rank's buffers. A byte range of a box's stream is a few blocks of rows (for_each_stream_block
// in rank_part.hpp), so a round of any size stays a handful of descriptors per box.
#pragma once

#include <vector>

#include "shardalg/exec/nccl/box_copy.hpp"
#include "shardalg/exec/rank_part.hpp"

namespace shardalg {

class CopyBatch {
 public:
  // Adds the rows of `shape` (outer dims) at src / dst with the given byte strides. Dims of size
  // 1 are dropped; empty copies are skipped. Error when more than BoxCopy::max_dims outer dims
  // remain (tensors of more than max_dims + 1 dims with no unit dims).
  void add(const std::byte* src, std::byte* dst, const Dims& shape, const Dims& src_strides, const Dims& dst_strides, index_t row_bytes) {
    if (row_bytes <= 0 || volume(shape) == 0) return;
    BoxCopy c;
    c.src = src;
    c.dst = dst;
    c.row_bytes = row_bytes;
    for (std::size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;
      if (c.ndim == BoxCopy::max_dims)
        detail::fail("device copy: a box with more than ", BoxCopy::max_dims, " outer dims of size > 1 (", shape.size() + 1, "-D tensor)");
      c.shape[c.ndim] = shape[d];
      c.src_strides[c.ndim] = src_strides[d];
      c.dst_strides[c.ndim] = dst_strides[d];
      ++c.ndim;
    }
    c.first_unit = units_;
    units_ = checked_add(units_, units_of(c));
    copies_.push_back(c);
  }

  const std::vector<BoxCopy>& copies() const { return copies_; }
  index_t units() const { return units_; }
  bool empty() const { return copies_.empty(); }

 private:
  std::vector<BoxCopy> copies_;
  index_t units_ = 0;
};

namespace detail {

// Byte strides of a box's rows back to back.
inline Dims dense_strides(const BoxRows& box) {
  Dims dense(box.row_shape.size(), 0);
  index_t step = box.row_bytes;
  for (std::size_t d = dense.size(); d-- > 0;) {
    dense[d] = step;
    step *= box.row_shape[d];
  }
  return dense;
}

}  // namespace detail

// Packs bytes [from, to) of `box`'s dense stream from `buffer` (the base of the box's buffer) to
// `stream` (where stream byte `from` goes). Precondition: 0 <= from <= to <= box.bytes().
inline void add_pack(CopyBatch& batch, const BoxRows& box, const std::byte* buffer, index_t from, index_t to, std::byte* stream) {
  Dims dense = detail::dense_strides(box);
  detail::for_each_stream_block(box, from, to, [&](index_t at, index_t stream_offset, const Dims& shape, index_t row_bytes) {
    batch.add(buffer + at, stream + (stream_offset - from), shape, box.row_strides, dense, row_bytes);
  });
}

// Unpacks bytes [from, to) of `box`'s dense stream from `stream` (where stream byte `from` lies)
// into `buffer`. Precondition: as add_pack.
inline void add_unpack(CopyBatch& batch, const BoxRows& box, std::byte* buffer, index_t from, index_t to, const std::byte* stream) {
  Dims dense = detail::dense_strides(box);
  detail::for_each_stream_block(box, from, to, [&](index_t at, index_t stream_offset, const Dims& shape, index_t row_bytes) {
    batch.add(stream + (stream_offset - from), buffer + at, shape, dense, box.row_strides, row_bytes);
  });
}

// Adds a local copy: `from` in `source` (its buffer's base) to `to` in `destination`.
inline void add_box_box(CopyBatch& batch, const BoxRows& from, const std::byte* source, const BoxRows& to, std::byte* destination) {
  batch.add(source + from.base, destination + to.base, from.row_shape, from.row_strides, to.row_strides, from.row_bytes);
}

// Runs a batch on the host with the device's unit walk (the lanes of a warp in turn): the
// reference the CUDA kernel is tested against, and a host fallback.
inline void run_on_host(const CopyBatch& batch, int lanes = 32) {
  for (const BoxCopy& c : batch.copies())
    for (std::int64_t unit = 0; unit < units_of(c); ++unit)
      for (int lane = 0; lane < lanes; ++lane) copy_unit(c, unit, lane, lanes);
}

}  // namespace shardalg
