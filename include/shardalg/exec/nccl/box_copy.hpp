// BoxCopy: the one primitive every device-side move is made of. Packing a message into a staging
// stream, unpacking it into a tile, a local copy, a slice or a concatenation of a collective step:
// each is "copy the rows of a box from one strided layout to another". A box is rows of
// `row_bytes` contiguous bytes indexed by up to `max_dims` outer dims; row r (row-major over
// `shape`) starts at src + dot(coordinate(r), src_strides) and dst + dot(coordinate(r), dst_strides).
//
// Work is cut into units of at most `unit_bytes` of one row, so that a 1-row box of gigabytes
// and a box of a million 8-byte rows both spread over the whole GPU. `copy_unit` does one unit
// with `lanes` cooperating threads (a warp on the GPU; the host tests run the same code with the
// lanes in turn), using the widest word (16, 8, 4, 2 or 1 bytes) that source and destination
// share the alignment of.
//
// This header is plain C++ that nvcc also compiles (no standard library beyond <cstdint>,
// <cstddef> and <cstring>): the same descriptor and the same unit walk on host and device.
//
// Example: pack rows 2..3 of an fp32 [4, 2] tile (row stride 8 bytes) into a 16-byte stream:
//   BoxCopy c{.src = tile + 16, .dst = stream, .ndim = 1, .shape = {2}, .src_strides = {8},
//             .dst_strides = {8}, .row_bytes = 8};   // rows(c) == 2, units(c) == 2
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "shardalg/core/host_device.hpp"

namespace shardalg {

struct BoxCopy {
  static constexpr int max_dims = 8;
  static constexpr std::int64_t unit_bytes = 4096;  // a multiple of 16: units never split an element

  const std::byte* src = nullptr;
  std::byte* dst = nullptr;
  int ndim = 0;  // outer dims in use
  std::int64_t shape[max_dims] = {};
  std::int64_t src_strides[max_dims] = {};
  std::int64_t dst_strides[max_dims] = {};
  std::int64_t row_bytes = 0;
  std::int64_t first_unit = 0;  // this copy's first unit in its batch (prefix over the batch)
};

SHARDALG_HOST_DEVICE inline std::int64_t rows_of(const BoxCopy& c) {
  std::int64_t rows = 1;
  for (int d = 0; d < c.ndim; ++d) rows *= c.shape[d];
  return rows;
}
SHARDALG_HOST_DEVICE inline std::int64_t units_per_row(const BoxCopy& c) { return (c.row_bytes + BoxCopy::unit_bytes - 1) / BoxCopy::unit_bytes; }
SHARDALG_HOST_DEVICE inline std::int64_t units_of(const BoxCopy& c) { return c.row_bytes > 0 ? rows_of(c) * units_per_row(c) : 0; }

// Where unit `unit` (of this copy) lies: its source and destination bytes and its length.
struct UnitSpan {
  const std::byte* src;
  std::byte* dst;
  std::int64_t bytes;
};
SHARDALG_HOST_DEVICE inline UnitSpan unit_span(const BoxCopy& c, std::int64_t unit) {
  std::int64_t per_row = units_per_row(c);
  std::int64_t row = unit / per_row, within = (unit % per_row) * BoxCopy::unit_bytes;
  std::int64_t src = within, dst = within;
  for (int d = c.ndim - 1; d >= 0; --d) {
    std::int64_t i = row % c.shape[d];
    row /= c.shape[d];
    src += i * c.src_strides[d];
    dst += i * c.dst_strides[d];
  }
  std::int64_t rest = c.row_bytes - within;
  return {c.src + src, c.dst + dst, rest < BoxCopy::unit_bytes ? rest : BoxCopy::unit_bytes};
}

namespace detail {

struct alignas(16) Word16 {
  std::uint64_t low, high;
};

// Lane `lane` of `lanes` copies its share of `bytes` bytes in words of W bytes; both pointers are
// W-aligned and bytes is a multiple of W.
template <int W>
SHARDALG_HOST_DEVICE inline void copy_words(const std::byte* src, std::byte* dst, std::int64_t bytes, int lane, int lanes) {
  for (std::int64_t at = static_cast<std::int64_t>(lane) * W; at < bytes; at += static_cast<std::int64_t>(lanes) * W) {
#if defined(__CUDA_ARCH__)
    if constexpr (W == 16) *reinterpret_cast<uint4*>(dst + at) = *reinterpret_cast<const uint4*>(src + at);
    else if constexpr (W == 8) *reinterpret_cast<std::uint64_t*>(dst + at) = *reinterpret_cast<const std::uint64_t*>(src + at);
    else if constexpr (W == 4) *reinterpret_cast<std::uint32_t*>(dst + at) = *reinterpret_cast<const std::uint32_t*>(src + at);
    else if constexpr (W == 2) *reinterpret_cast<std::uint16_t*>(dst + at) = *reinterpret_cast<const std::uint16_t*>(src + at);
    else dst[at] = src[at];
#else
    std::memcpy(dst + at, src + at, W);
#endif
  }
}

template <int W>
SHARDALG_HOST_DEVICE inline void copy_aligned(const std::byte* src, std::byte* dst, std::int64_t bytes, int lane, int lanes) {
  // Head bytes up to the first W-aligned source address, W-words, tail bytes.
  auto misalign = static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(src) % W);
  std::int64_t head = misalign ? W - misalign : 0;
  if (head > bytes) head = bytes;
  std::int64_t body = (bytes - head) / W * W;
  copy_words<1>(src, dst, head, lane, lanes);
  copy_words<W>(src + head, dst + head, body, lane, lanes);
  copy_words<1>(src + head + body, dst + head + body, bytes - head - body, lane, lanes);
}

}  // namespace detail

// Lane `lane` of `lanes` copies its share of unit `unit` of `c`. Precondition: 0 <= unit <
// units_of(c); source and destination bytes do not overlap.
SHARDALG_HOST_DEVICE inline void copy_unit(const BoxCopy& c, std::int64_t unit, int lane, int lanes) {
  UnitSpan span = unit_span(c, unit);
  auto s = reinterpret_cast<std::uintptr_t>(span.src), d = reinterpret_cast<std::uintptr_t>(span.dst);
  if (s % 16 == d % 16) detail::copy_aligned<16>(span.src, span.dst, span.bytes, lane, lanes);
  else if (s % 8 == d % 8) detail::copy_aligned<8>(span.src, span.dst, span.bytes, lane, lanes);
  else if (s % 4 == d % 4) detail::copy_aligned<4>(span.src, span.dst, span.bytes, lane, lanes);
  else if (s % 2 == d % 2) detail::copy_aligned<2>(span.src, span.dst, span.bytes, lane, lanes);
  else detail::copy_words<1>(span.src, span.dst, span.bytes, lane, lanes);
}

// The copy of a batch (sorted by first_unit, as copy_batch.hpp builds them) that unit `unit` of
// the batch belongs to.
SHARDALG_HOST_DEVICE inline std::int64_t copy_of_unit(const BoxCopy* copies, std::int64_t count, std::int64_t unit) {
  std::int64_t low = 0, high = count - 1;
  while (low < high) {
    std::int64_t middle = (low + high + 1) / 2;
    if (copies[middle].first_unit <= unit) low = middle;
    else high = middle - 1;
  }
  return low;
}

}  // namespace shardalg
