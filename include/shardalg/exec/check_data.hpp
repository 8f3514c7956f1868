// Deterministic data for end-to-end checks of an executor: every element of every tensor has a
// value computed from (seed, tensor, global index), so each rank fills its own source buffers and
// checks its own destination buffers without anyone holding the global tensors.
//
// Moves compare bytes exactly (any bit pattern, NaNs included, must arrive unchanged). For
// Partial sources each contributor class holds its own small integer per element, chosen so that
// the reduction is exact in every supported dtype in any order; the expected value is that
// reduction computed locally.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "shardalg/exec/element_ops.hpp"
#include "shardalg/exec/host/host_simulator.hpp"

namespace shardalg {

namespace detail {

inline std::uint64_t mix64(std::uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline std::uint64_t element_hash(std::uint64_t seed, std::size_t tensor, index_t global, index_t partial_class) {
  return mix64(seed ^ mix64(tensor * 0x100000001b3ULL ^ mix64(static_cast<std::uint64_t>(global) * 31 + static_cast<std::uint64_t>(partial_class))));
}

// Writes the value of one element of `tensor` (of `dtype`, `size` bytes) for a contributor class
// (or the only value of a tensor without Partial sources) at `out`.
inline void write_value(const ReshardPlan& plan, DType dtype, index_t size, std::uint64_t seed, std::size_t tensor, index_t global,
                        index_t partial_class, std::byte* out) {
  std::uint64_t h = element_hash(seed, tensor, global, partial_class);
  if (!plan.reduce_op()) {
    std::memcpy(out, &h, static_cast<std::size_t>(size));
    return;
  }
  // Products of 1s and 2s, or multiples of the contributor count (exact averages), up to 7x it.
  index_t n = plan.partial_contributors();
  index_t value = *plan.reduce_op() == ReduceOp::product ? 1 + static_cast<index_t>(h % 2) : n * static_cast<index_t>(h % 8);
  store_integer(dtype, out, value);
}

}  // namespace detail

// This rank's source buffers of `plan` (one per source buffer), every held element set.
inline std::vector<std::vector<std::byte>> make_source_data(const ModelReshardPlan& plan, index_t rank, std::uint64_t seed) {
  const ModelLayout& src = plan.source();
  std::vector<std::vector<std::byte>> buffers(src.buffer_count());
  for (std::size_t t = 0; t < src.size(); ++t) {
    const TensorLayout& layout = src[t].layout;
    if (!layout.mesh().contains(rank)) continue;
    index_t size = element_bytes(src[t].dtype);
    std::vector<std::byte>& buffer = buffers[src.buffer_of(t)];
    buffer.resize(static_cast<std::size_t>(checked_mul(layout.buffer_elements(rank), size)));
    index_t partial_class = plan.tensor_plan(t).partial_class(rank);
    detail::for_each_held(layout, rank, [&](index_t at, index_t global) {
      detail::write_value(plan.tensor_plan(t), src[t].dtype, size, seed, t, global, partial_class, buffer.data() + at * size);
    });
  }
  return buffers;
}

// Zero-filled destination buffers of the sizes this rank's part needs.
inline std::vector<std::vector<std::byte>> make_destination_buffers(const ModelReshardPlan& plan, index_t rank) {
  const ModelLayout& dst = plan.destination();
  std::vector<std::vector<std::byte>> buffers(dst.buffer_count());
  for (std::size_t t = 0; t < dst.size(); ++t)
    if (dst[t].layout.mesh().contains(rank))
      buffers[dst.buffer_of(t)].resize(static_cast<std::size_t>(checked_mul(dst[t].layout.buffer_elements(rank), element_bytes(dst[t].dtype))));
  return buffers;
}

struct DataCheck {
  index_t elements = 0;    // destination elements checked
  index_t mismatches = 0;  // of those, how many differ from the expected value
};

// Compares every element this rank holds in the destination with the value it must have.
inline DataCheck check_destination_data(const ModelReshardPlan& plan, index_t rank, const std::vector<std::vector<std::byte>>& buffers,
                                        std::uint64_t seed) {
  const ModelLayout& dst = plan.destination();
  DataCheck result;
  for (std::size_t t = 0; t < plan.size(); ++t) {
    const ReshardPlan& tensor_plan = plan.tensor_plan(t);
    std::size_t d = plan.destination_index(t);
    const TensorLayout& layout = dst[d].layout;
    if (!layout.mesh().contains(rank)) continue;
    DType dtype = dst[d].dtype;
    index_t size = element_bytes(dtype);
    const std::vector<std::byte>& buffer = buffers.at(dst.buffer_of(d));
    std::vector<std::byte> expected(static_cast<std::size_t>(size)), value(static_cast<std::size_t>(size));
    detail::for_each_held(layout, rank, [&](index_t at, index_t global) {
      if (!tensor_plan.reduce_op()) {
        detail::write_value(tensor_plan, dtype, size, seed, t, global, 0, expected.data());
      } else {
        fill_identity(dtype, *tensor_plan.reduce_op(), expected.data(), 1);
        for (index_t c = 0; c < tensor_plan.partial_contributors(); ++c) {
          detail::write_value(tensor_plan, dtype, size, seed, t, global, c, value.data());
          reduce_bytes(dtype, *tensor_plan.reduce_op(), tensor_plan.partial_contributors(), expected.data(), value.data(), 1);
        }
      }
      ++result.elements;
      if (std::memcmp(buffer.data() + at * size, expected.data(), static_cast<std::size_t>(size)) != 0) ++result.mismatches;
    });
  }
  return result;
}

}  // namespace shardalg
