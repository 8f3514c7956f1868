// NcclCollectiveProgram: runs this rank's part of a lowered collective program on the GPU with
// NCCL collectives, one sub-communicator per group of mesh dims (ncclCommSplit, made once), all
// on the caller's stream. The steps do what exec/program_simulator.hpp does (the reference) and
// what MpiCollectiveProgram does on the host:
//   local           a slice of the tile (copy kernel)
//   all_gather      ncclAllGather, then the members' tiles joined along the tensor dim
//   all_to_all      ncclAlltoAll of each member's chunk, joined along the gathered dim
//   reduce_scatter  ncclReduceScatter of each member's chunk
//   all_reduce      ncclAllReduce
// NCCL's collectives move equal counts, so uneven tiles travel in slots of the group's largest
// chunk (the padding is never read). Slices and joins are BoxCopy batches (box_copy.hpp).
// Reductions use NCCL's arithmetic: sum, avg, min, max, product of fp32, fp64, fp16, bf16, int32,
// int64, int8 (avg of integers is refused: NCCL rounds the mean, the host engine each share).
// Needs the kernels of exec/cuda_kernels.cuh linked in (CMake: shardalg::cuda) and NCCL.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shardalg/core/deadline.hpp"
#include "shardalg/exec/copy_batch.hpp"
#include "shardalg/exec/cuda_launch.hpp"
#include "shardalg/exec/device_buffer.hpp"
#include "shardalg/exec/nccl_communicator.hpp"
#include "shardalg/exec/program_simulator.hpp"

namespace shardalg {

// A rank's tile in device memory: `bytes` of `buffer` (which may be larger).
struct DeviceTile {
  DeviceBuffer buffer;
  std::size_t bytes = 0;
};

namespace detail {

inline ncclDataType_t nccl_dtype(std::string_view dtype) {
  if (dtype == "fp32") return ncclFloat32;
  if (dtype == "fp64") return ncclFloat64;
  if (dtype == "fp16") return ncclFloat16;
  if (dtype == "bf16") return ncclBfloat16;
  if (dtype == "int32") return ncclInt32;
  if (dtype == "int64") return ncclInt64;
  if (dtype == "int8") return ncclInt8;
  dtype_bytes(dtype);  // names an unknown dtype
  fail("NCCL reductions of dtype '", dtype, "' are not supported (no arithmetic on it)");
}

inline ncclRedOp_t nccl_op(ReduceOp op, std::string_view dtype) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::product: return ncclProd;
    case ReduceOp::min: return ncclMin;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::avg:
      if (dtype.starts_with("int"))
        fail("NCCL collective program: avg of integer dtype '", dtype, "' is not supported (NCCL rounds the mean); use the point-to-point executor");
      return ncclAvg;
  }
  fail("NCCL collective program: unknown reduce op");
}

// Rows of a dense row-major tensor of byte shape `shape` (the element's bytes innermost), split
// around dim d: (outer, extent of d, inner bytes).
struct AroundDim {
  index_t outer = 1, extent = 1, inner = 1;
  AroundDim(const Dims& shape, std::size_t d) : extent(shape[d]) {
    for (std::size_t i = 0; i < d; ++i) outer *= shape[i];
    for (std::size_t i = d + 1; i < shape.size(); ++i) inner *= shape[i];
  }
};

// Positions [begin, begin + count) of dim d of the tensor at `src` into a dense tensor at `dst`.
inline void add_slice(CopyBatch& batch, const std::byte* src, const Dims& shape, std::size_t d, index_t begin, index_t count, std::byte* dst) {
  AroundDim a(shape, d);
  batch.add(src + begin * a.inner, dst, Dims{a.outer}, Dims{a.extent * a.inner}, Dims{count * a.inner}, count * a.inner);
}

// The tensor at `src` of byte shape `shape` into positions [at, at + shape[d]) of dim d of a
// dense tensor of `total` positions along d at `dst`.
inline void add_join(CopyBatch& batch, const std::byte* src, const Dims& shape, std::size_t d, index_t at, index_t total, std::byte* dst) {
  AroundDim a(shape, d);
  batch.add(src, dst + at * a.inner, Dims{a.outer}, Dims{a.extent * a.inner}, Dims{total * a.inner}, a.extent * a.inner);
}

}  // namespace detail

class NcclCollectiveProgram {
 public:
  // Collective over `world` (every rank calls it, ranks outside the mesh too); its rank is the
  // mesh rank. Keeps a copy of the program; `world` must outlive this object.
  NcclCollectiveProgram(const CollectiveProgram& program, NcclCommunicator& world, double timeout_seconds = 600)
      : program_(program), world_(world), timeout_(checked_timeout(timeout_seconds)) {
    if (program_.states.size() != program_.steps.size() + 1)
      detail::fail("NCCL collective program: ", program_.states.size(), " states for ", program_.steps.size(), " steps");
    for (const LoweredStep& step : program_.steps) {
      if (groups_.count(step.mesh_dims)) continue;
      auto membership = detail::group_of(program_.states.front().mesh(), step.mesh_dims, world_.rank());
      std::optional<int> color;
      int key = 0;
      std::vector<index_t> members;
      if (membership) {
        color = static_cast<int>(membership->leader);
        key = static_cast<int>(membership->position);
        members = std::move(membership->members);
      }
      groups_.emplace(step.mesh_dims, Group{world_.split(color, key, timeout_), std::move(members)});
    }
  }

  // This rank's tile of the first state (device memory, elements of `dtype`) in, its tile of the
  // last state out, queued on `stream` and waited for (bounded). Collective over the world.
  // Errors, before any data moves: a source of the wrong size on any rank (that rank names its
  // buffer, the others name that rank); unsupported reductions; CUDA / NCCL errors; timeouts.
  DeviceTile run(const std::byte* source, std::size_t bytes, std::string_view dtype, cudaStream_t stream) {
    index_t rank = world_.rank(), element = dtype_bytes(dtype);
    const MeshLayout& first = program_.states.front();
    bool inside = first.mesh().contains(rank);
    index_t expected = inside ? first.tile(rank).volume() * element : 0;
    ReduceOp op = ReduceOp::sum;
    bool reduces = false;
    for (const Placement& p : first.placements())
      if (p.is_partial()) op = p.reduce_op(), reduces = true;
    std::string failure;
    try {
      if (static_cast<index_t>(bytes) != expected)
        detail::fail("NCCL collective program: rank ", rank, " source buffer has ", bytes, " bytes, its tile needs ", expected, " (", dtype, ")");
      if (reduces) detail::nccl_op(op, dtype), detail::nccl_dtype(dtype);
    } catch (const Error& e) {
      failure = e.what();
    }
    index_t worst = world_.all_max(failure.empty() ? -1 : rank, stream, timeout_);
    if (!failure.empty()) throw Error(failure);
    if (worst >= 0) detail::fail("NCCL collective program: rank ", worst, " failed its checks; nothing was sent");
    DeviceTile tile{DeviceBuffer(bytes, stream, rank), bytes};
    if (!inside) return tile;
    if (bytes) detail::check_cuda(cudaMemcpyAsync(tile.buffer.data(), source, bytes, cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync", rank);
    for (std::size_t i = 0; i < program_.steps.size(); ++i) tile = run_step(i, std::move(tile), dtype, element, op, stream);
    world_.wait(stream, timeout_, "the collective program");
    return tile;
  }

 private:
  struct Group {
    std::optional<NcclCommunicator> comm;
    std::vector<index_t> members;  // ranks in flattened order
  };

  // Uploads `batch`'s descriptors and runs them on `stream`.
  void copy(const CopyBatch& batch, cudaStream_t stream) const {
    if (batch.empty()) return;
    index_t rank = world_.rank();
    DeviceBuffer descriptors(batch.copies().size() * sizeof(BoxCopy), stream, rank);
    detail::check_cuda(cudaMemcpyAsync(descriptors.data(), batch.copies().data(), descriptors.size(), cudaMemcpyHostToDevice, stream),
                       "cudaMemcpyAsync of descriptors", rank);
    detail::check_cuda(cuda::launch_copies(reinterpret_cast<const BoxCopy*>(descriptors.data()), static_cast<std::int64_t>(batch.copies().size()),
                                           batch.units(), stream),
                       "copy kernel launch", rank);
  }

  void check(ncclResult_t rc, const char* call, NcclCommunicator& comm, std::size_t i) {
    detail::check_nccl(rc, detail::concat(call, " of step ", i), world_.rank(), comm.get());
    comm.settle(detail::concat(call, " of step ", i), timeout_);
  }

  DeviceTile run_step(std::size_t i, DeviceTile in, std::string_view dtype, index_t element, ReduceOp op, cudaStream_t stream) {
    const LoweredStep& step = program_.steps[i];
    Group& group = groups_.at(step.mesh_dims);
    index_t rank = world_.rank();
    auto n = group.members.size();
    auto d = static_cast<std::size_t>(step.tensor_dim);
    detail::StepTiles tiles(program_, i, group.members, rank, element);
    const Tile &mine_before = tiles.mine_before, &mine_after = tiles.mine_after;
    const std::vector<Tile>&before_tiles = tiles.before, &after_tiles = tiles.after;
    const Dims& shape = tiles.shape;
    auto out_bytes = static_cast<std::size_t>(mine_after.volume() * element);
    // The step's result: out_bytes of a buffer of `capacity` bytes.
    auto output = [&](std::size_t capacity) { return DeviceTile{DeviceBuffer(capacity, stream, rank), out_bytes}; };
    CopyBatch batch;
    NcclCommunicator& comm = *group.comm;
    switch (step.kind) {
      case CollectiveKind::local: {
        DeviceTile out = output(out_bytes);
        detail::add_slice(batch, in.buffer.data(), shape, d, detail::local_begin(mine_before, mine_after, d), mine_after.dim(d).size(), out.buffer.data());
        copy(batch, stream);
        return out;
      }
      case CollectiveKind::all_gather: {
        DeviceTile out = output(out_bytes);
        index_t slot = 0;
        for (const Tile& t : before_tiles) slot = std::max(slot, t.volume() * element);
        DeviceBuffer send(static_cast<std::size_t>(slot), stream, rank), received(static_cast<std::size_t>(slot) * n, stream, rank);
        if (in.bytes) detail::check_cuda(cudaMemcpyAsync(send.data(), in.buffer.data(), in.bytes, cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync", rank);
        check(ncclAllGather(send.data(), received.data(), static_cast<std::size_t>(slot), ncclUint8, comm.get(), stream), "ncclAllGather", comm, i);
        index_t at = 0, total = mine_after.dim(d).size();
        for (std::size_t j = 0; j < n; ++j) {
          Dims part = detail::byte_shape(before_tiles[j], element);
          detail::add_join(batch, received.data() + static_cast<index_t>(j) * slot, part, d, at, total, out.buffer.data());
          at += part[d];
        }
        copy(batch, stream);
        return out;
      }
      case CollectiveKind::all_to_all: {
        DeviceTile out = output(out_bytes);
        auto e = static_cast<std::size_t>(step.split_dim);
        index_t slot = 0;  // the largest chunk any member sends any member
        for (const Tile& from : before_tiles)
          for (const Tile& to : after_tiles) slot = std::max(slot, from.volume() / std::max<index_t>(1, from.dim(e).size()) * to.dim(e).size() * element);
        DeviceBuffer send(static_cast<std::size_t>(slot) * n, stream, rank), received(static_cast<std::size_t>(slot) * n, stream, rank);
        for (std::size_t j = 0; j < n; ++j)
          detail::add_slice(batch, in.buffer.data(), shape, e, detail::local_begin(mine_before, after_tiles[j], e), after_tiles[j].dim(e).size(),
                            send.data() + static_cast<index_t>(j) * slot);
        copy(batch, stream);
        check(ncclAlltoAll(send.data(), received.data(), static_cast<std::size_t>(slot), ncclUint8, comm.get(), stream), "ncclAlltoAll", comm, i);
        CopyBatch join;
        index_t at = 0, total = mine_after.dim(d).size();
        for (std::size_t j = 0; j < n; ++j) {
          Dims part = detail::byte_shape(before_tiles[j], element);
          part[e] = mine_after.dim(e).size();
          detail::add_join(join, received.data() + static_cast<index_t>(j) * slot, part, d, at, total, out.buffer.data());
          at += part[d];
        }
        copy(join, stream);
        return out;
      }
      case CollectiveKind::reduce_scatter: {
        index_t slot = 0;
        for (const Tile& t : after_tiles) slot = std::max(slot, t.volume() * element);
        DeviceBuffer send(static_cast<std::size_t>(slot) * n, stream, rank);
        DeviceTile out = output(static_cast<std::size_t>(slot));  // NCCL writes a whole slot
        for (std::size_t j = 0; j < n; ++j)
          detail::add_slice(batch, in.buffer.data(), shape, d, detail::local_begin(mine_before, after_tiles[j], d), after_tiles[j].dim(d).size(),
                            send.data() + static_cast<index_t>(j) * slot);
        copy(batch, stream);
        check(ncclReduceScatter(send.data(), out.buffer.data(), static_cast<std::size_t>(slot / element), detail::nccl_dtype(dtype), detail::nccl_op(op, dtype),
                                comm.get(), stream),
              "ncclReduceScatter", comm, i);
        return out;
      }
      case CollectiveKind::all_reduce: {
        DeviceTile out = output(out_bytes);
        check(ncclAllReduce(in.buffer.data(), out.buffer.data(), in.bytes / static_cast<std::size_t>(element), detail::nccl_dtype(dtype),
                            detail::nccl_op(op, dtype), comm.get(), stream),
              "ncclAllReduce", comm, i);
        return out;
      }
      case CollectiveKind::p2p: break;
    }
    detail::fail("NCCL collective program: step ", i, " is a p2p step; run point-to-point plans with execute_nccl");
  }

  CollectiveProgram program_;
  NcclCommunicator& world_;
  double timeout_;
  std::map<std::vector<index_t>, Group> groups_;
};

}  // namespace shardalg
