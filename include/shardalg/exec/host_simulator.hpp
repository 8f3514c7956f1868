// The host simulator: runs a reshard plan over in-memory buffers of all ranks in one process.
// The reference executor: the MPI and NCCL backends must produce the same bytes.
#pragma once

#include <algorithm>
#include <limits>
#include <map>
#include <vector>

#include "shardalg/plan/plan_verification.hpp"

namespace shardalg {

// Each rank's buffer: its local tile (mesh layouts) or its partition (flat layouts).
template <class T>
using RankBuffers = std::map<index_t, std::vector<T>>;

namespace detail {

// Calls f(buffer position, global row-major position) for every element a rank holds.
template <class F>
void for_each_held(const TensorLayout& layout, index_t rank, F&& f) {
  TensorLayout::Addressing address = layout.addressing(rank);
  Dims global_strides = row_major_strides(layout.global_shape());
  for (const Piece& piece : layout.pieces(rank)) {
    index_t base = address.base(piece.local), global_base = dot(piece.global.offset, global_strides);
    for (index_t i = 0; i < piece.global.volume(); ++i) {
      Dims delta = row_major_coordinate(piece.global.shape, i);
      f(base + dot(delta, address.strides), global_base + dot(delta, global_strides));
    }
  }
}

template <class T>
void check_buffer(const RankBuffers<T>& buffers, const TensorLayout& layout, index_t rank, std::string_view what) {
  index_t expected = layout.buffer_elements(rank);
  auto it = buffers.find(rank);
  index_t got = it == buffers.end() ? 0 : static_cast<index_t>(it->second.size());
  if (it == buffers.end() || got != expected)
    fail(what, " rank ", rank, " needs a buffer of ", expected, " elements, got ", got);
}

}  // namespace detail

// Writes a global row-major tensor into every rank's buffer under `layout`, creating missing
// buffers (zero-filled, padding included). Tensors of one flat layout share each rank's buffer:
// scatter them one after another into the same RankBuffers.
template <class T>
void scatter_into(const TensorLayout& layout, const std::vector<T>& global, RankBuffers<T>& buffers) {
  if (static_cast<index_t>(global.size()) != volume(layout.global_shape()))
    detail::fail("scatter: the global buffer has ", global.size(), " elements, the shape ", layout.global_shape(), " has ",
                 volume(layout.global_shape()));
  for (index_t rank : layout.mesh().devices()) {
    std::vector<T>& local = buffers[rank];
    if (local.empty()) local.assign(static_cast<std::size_t>(layout.buffer_elements(rank)), T{});
    detail::check_buffer(buffers, layout, rank, "scatter:");
    detail::for_each_held(layout, rank, [&](index_t at, index_t from) {
      local[static_cast<std::size_t>(at)] = global[static_cast<std::size_t>(from)];
    });
  }
}

// Every rank's buffer under `layout` for a global row-major tensor.
template <class T>
RankBuffers<T> scatter_to_ranks(const TensorLayout& layout, const std::vector<T>& global) {
  RankBuffers<T> buffers;
  scatter_into(layout, global, buffers);
  return buffers;
}

// Reassembles the global tensor from the ranks' buffers (any holder of an element).
template <class T>
std::vector<T> gather_from_ranks(const TensorLayout& layout, const RankBuffers<T>& buffers) {
  std::vector<T> global(static_cast<std::size_t>(volume(layout.global_shape())));
  for (index_t rank : layout.mesh().devices()) {
    detail::check_buffer(buffers, layout, rank, "gather:");
    const std::vector<T>& local = buffers.at(rank);
    detail::for_each_held(layout, rank, [&](index_t at, index_t to) {
      global[static_cast<std::size_t>(to)] = local[static_cast<std::size_t>(at)];
    });
  }
  return global;
}

namespace detail {
template <class T>
T reduce_identity(ReduceOp op) {
  switch (op) {
    case ReduceOp::product: return T(1);
    case ReduceOp::min: return std::numeric_limits<T>::max();
    case ReduceOp::max: return std::numeric_limits<T>::lowest();
    default: return T(0);
  }
}
template <class T>
void reduce_into(T& target, T value, ReduceOp op, index_t contributors) {
  switch (op) {
    case ReduceOp::sum: target += value; break;
    case ReduceOp::avg: target += value / static_cast<T>(contributors); break;
    case ReduceOp::product: target *= value; break;
    case ReduceOp::min: target = std::min(target, value); break;
    case ReduceOp::max: target = std::max(target, value); break;
  }
}
}  // namespace detail

// Verifies the plan, checks every source and destination buffer against the layouts, then runs
// every transfer into `destinations` (which hold the elements a transfer does not write, such as
// padding or other tensors of a shared partition). Nothing runs after an error.
template <class T>
void simulate_into(const ReshardPlan& plan, const std::vector<Transfer>& transfers, const RankBuffers<T>& sources,
                   RankBuffers<T>& destinations) {
  verify_plan(plan, transfers);
  const TensorLayout& src = plan.source();
  const TensorLayout& dst = plan.destination();
  std::map<index_t, TensorLayout::Addressing> src_address, dst_address;
  for (index_t rank : src.mesh().devices()) {
    detail::check_buffer(sources, src, rank, "simulate: source");
    src_address.emplace(rank, src.addressing(rank));
  }
  for (index_t rank : dst.mesh().devices()) {
    detail::check_buffer(destinations, dst, rank, "simulate: destination");
    dst_address.emplace(rank, dst.addressing(rank));
  }
  if (plan.reduce_op()) {  // reductions start from the op's identity
    T initial = detail::reduce_identity<T>(*plan.reduce_op());
    for (index_t rank : dst.mesh().devices())
      detail::for_each_held(dst, rank, [&](index_t at, index_t) { destinations[rank][static_cast<std::size_t>(at)] = initial; });
  }
  for (const Transfer& t : transfers) {
    const std::vector<T>& from = sources.at(t.src_rank);
    std::vector<T>& to = destinations[t.dst_rank];
    const TensorLayout::Addressing& sa = src_address.at(t.src_rank);
    const TensorLayout::Addressing& da = dst_address.at(t.dst_rank);
    std::size_t ndim = t.global.ndim();
    index_t row_length = ndim ? t.global.shape[ndim - 1] : 1;
    Dims row_shape = t.global.shape;
    if (ndim) row_shape[ndim - 1] = 1;
    index_t sbase = sa.base(t.src_local), dbase = da.base(t.dst_local);
    for (index_t r = 0; r < volume(row_shape); ++r) {  // one innermost row at a time (stride 1 on both sides)
      Dims delta = row_major_coordinate(row_shape, r);
      auto sbegin = from.begin() + (sbase + dot(delta, sa.strides));
      auto dbegin = to.begin() + (dbase + dot(delta, da.strides));
      if (!plan.reduce_op()) {
        std::copy_n(sbegin, row_length, dbegin);
      } else {
        for (index_t i = 0; i < row_length; ++i) detail::reduce_into(dbegin[i], sbegin[i], *plan.reduce_op(), t.contributors);
      }
    }
  }
}

// As simulate_into, with zero-filled destination buffers. Returns the destination buffers.
template <class T>
RankBuffers<T> simulate(const ReshardPlan& plan, const std::vector<Transfer>& transfers, const RankBuffers<T>& sources) {
  RankBuffers<T> out;
  for (index_t rank : plan.destination().mesh().devices())
    out[rank].assign(static_cast<std::size_t>(plan.destination().buffer_elements(rank)), T{});
  simulate_into(plan, transfers, sources, out);
  return out;
}

}  // namespace shardalg
