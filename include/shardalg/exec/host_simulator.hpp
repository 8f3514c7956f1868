// The host simulator: runs a reshard plan over in-memory buffers of all ranks in one process.
// The reference executor: the MPI and NCCL backends must produce the same bytes.
#pragma once

#include <algorithm>
#include <limits>
#include <map>
#include <vector>

#include "shardalg/plan/plan_verification.hpp"

namespace shardalg {

// Each rank's local tensor, row-major over its tile.
template <class T>
using RankBuffers = std::map<index_t, std::vector<T>>;

// Splits a global row-major tensor into every rank's local tensor under `layout`.
template <class T>
RankBuffers<T> scatter_to_ranks(const MeshLayout& layout, const std::vector<T>& global) {
  if (static_cast<index_t>(global.size()) != volume(layout.global_shape()))
    detail::fail("scatter: the global buffer has ", global.size(), " elements, the shape ", layout.global_shape(), " has ",
                 volume(layout.global_shape()));
  RankBuffers<T> buffers;
  for (index_t rank : layout.mesh().devices()) {
    Tile tile = layout.tile(rank);
    std::vector<T>& local = buffers[rank];
    local.reserve(static_cast<std::size_t>(tile.volume()));
    if (tile.empty()) continue;
    for (index_t i = 0; i < tile.volume(); ++i) {
      Dims coord = row_major_coordinate(tile.shape(), i);
      for (std::size_t d = 0; d < coord.size(); ++d) coord[d] = tile.dim(d).global_at(coord[d]);
      local.push_back(global[static_cast<std::size_t>(row_major_position(layout.global_shape(), coord))]);
    }
  }
  return buffers;
}

// Reassembles the global tensor from the ranks' local tensors (any holder of an element).
template <class T>
std::vector<T> gather_from_ranks(const MeshLayout& layout, const RankBuffers<T>& buffers) {
  std::vector<T> global(static_cast<std::size_t>(volume(layout.global_shape())));
  for (index_t rank : layout.mesh().devices()) {
    Tile tile = layout.tile(rank);
    auto it = buffers.find(rank);
    if (it == buffers.end() || static_cast<index_t>(it->second.size()) != tile.volume())
      detail::fail("gather: rank ", rank, " needs a buffer of ", tile.volume(), " elements");
    for (index_t i = 0; i < tile.volume(); ++i) {
      Dims coord = row_major_coordinate(tile.shape(), i);
      for (std::size_t d = 0; d < coord.size(); ++d) coord[d] = tile.dim(d).global_at(coord[d]);
      global[static_cast<std::size_t>(row_major_position(layout.global_shape(), coord))] = it->second[static_cast<std::size_t>(i)];
    }
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

// Verifies the plan, checks every source buffer against its tile, then runs every transfer.
// Returns the destination ranks' local tensors. Nothing runs after an error.
template <class T>
RankBuffers<T> simulate(const ReshardPlan& plan, const std::vector<Transfer>& transfers, const RankBuffers<T>& sources) {
  verify_plan(plan, transfers);
  const MeshLayout& src = plan.source();
  const MeshLayout& dst = plan.destination();
  std::map<index_t, Dims> src_shapes, dst_shapes;
  for (index_t rank : src.mesh().devices()) {
    Dims shape = src.tile(rank).shape();
    auto it = sources.find(rank);
    if (it == sources.end() || static_cast<index_t>(it->second.size()) != volume(shape))
      detail::fail("simulate: source rank ", rank, " needs a buffer of ", volume(shape), " elements (tile ", shape, "), got ",
                   it == sources.end() ? 0 : it->second.size());
    src_shapes[rank] = shape;
  }
  RankBuffers<T> out;
  T initial = plan.reduce_op() ? detail::reduce_identity<T>(*plan.reduce_op()) : T(0);
  for (index_t rank : dst.mesh().devices()) {
    dst_shapes[rank] = dst.tile(rank).shape();
    out[rank].assign(static_cast<std::size_t>(volume(dst_shapes[rank])), initial);
  }
  for (const Transfer& t : transfers) {
    const std::vector<T>& from = sources.at(t.src_rank);
    std::vector<T>& to = out[t.dst_rank];
    const Dims& sshape = src_shapes[t.src_rank];
    const Dims& dshape = dst_shapes[t.dst_rank];
    std::size_t last = t.global.ndim() - 1;
    index_t rows = t.global.volume() / (t.global.ndim() ? t.global.shape[last] : 1);
    index_t row_length = t.global.ndim() ? t.global.shape[last] : 1;
    Dims row_shape = t.global.shape;
    if (t.global.ndim()) row_shape[last] = 1;
    for (index_t r = 0; r < rows; ++r) {  // copy one innermost row at a time
      Dims delta = row_major_coordinate(row_shape, r);
      Dims s = t.src_local, d = t.dst_local;
      for (std::size_t k = 0; k < delta.size(); ++k) {
        s[k] += delta[k];
        d[k] += delta[k];
      }
      auto sbegin = from.begin() + row_major_position(sshape, s);
      auto dbegin = to.begin() + row_major_position(dshape, d);
      if (!plan.reduce_op()) {
        std::copy_n(sbegin, row_length, dbegin);
      } else {
        for (index_t i = 0; i < row_length; ++i) detail::reduce_into(dbegin[i], sbegin[i], *plan.reduce_op(), t.contributors);
      }
    }
  }
  return out;
}

}  // namespace shardalg
