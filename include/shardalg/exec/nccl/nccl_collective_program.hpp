// NcclCollectiveProgram: runs this rank's part of a lowered collective program on the GPU with
// NCCL collectives, one sub-communicator per group of mesh dims (ncclCommSplit, made once), all
// on the caller's stream. The steps do what exec/host/program_simulator.hpp does (the reference) and
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
// Needs the kernels of exec/nccl/cuda_kernels.cuh linked in (CMake: shardalg::cuda) and NCCL.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shardalg/core/deadline.hpp"
#include "shardalg/exec/agreement.hpp"
#include "shardalg/exec/collective_step.hpp"
#include "shardalg/exec/nccl/copy_batch.hpp"
#include "shardalg/exec/nccl/cuda_launch.hpp"
#include "shardalg/exec/nccl/device_buffer.hpp"
#include "shardalg/exec/nccl/nccl_communicator.hpp"

namespace shardalg {

// A rank's tile in device memory: `bytes` of `buffer` (which may be larger).
struct DeviceTile {
  DeviceBuffer buffer;
  std::size_t bytes = 0;
};

namespace detail {

inline ncclDataType_t nccl_dtype(DType dtype) {
  switch (dtype) {
    case DType::fp32: return ncclFloat32;
    case DType::fp64: return ncclFloat64;
    case DType::fp16: return ncclFloat16;
    case DType::bf16: return ncclBfloat16;
    case DType::int32: return ncclInt32;
    case DType::int64: return ncclInt64;
    case DType::int8: return ncclInt8;
    case DType::int16: fail("NCCL reductions of dtype 'int16' are not supported (NCCL has no 16-bit integer type)");
    case DType::fp8:
    case DType::bytes:
    case DType::boolean:
    case DType::complex64:
    case DType::complex128: break;
  }
  fail("NCCL reductions of dtype '", dtype, "' are not supported (no arithmetic on it)");
}

inline ncclRedOp_t nccl_op(ReduceOp op, DType dtype) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::product: return ncclProd;
    case ReduceOp::min: return ncclMin;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::avg:
      if (is_integer(dtype))
        fail("NCCL collective program: avg of integer dtype '", dtype, "' is not supported (NCCL rounds the mean); use the point-to-point executor");
      return ncclAvg;
  }
  fail("NCCL collective program: unknown reduce op");
}

// `slice` of the tensor at `src` of byte shape `shape` into a dense tensor at `dst`.
inline void add_slice(CopyBatch& batch, const std::byte* src, const Dims& shape, SliceAlong slice, std::byte* dst) {
  AroundDim a(shape, slice.dim);
  batch.add(src + slice.begin * a.inner, dst, Dims{a.outer}, Dims{a.extent * a.inner}, Dims{slice.count * a.inner}, slice.count * a.inner);
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
      auto membership = group_membership(program_.states.front().mesh(), step.mesh_dims, world_.rank());
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
  DeviceTile run(const std::byte* source, std::size_t bytes, DType dtype, cudaStream_t stream) {
    index_t rank = world_.rank(), element = element_bytes(dtype);
    const MeshLayout& first = program_.states.front();
    bool inside = first.mesh().contains(rank);
    index_t expected = inside ? first.tile(rank).volume() * element : 0;
    ReduceOp op = ReduceOp::sum;
    check_on_every_rank(
        rank, "NCCL collective program",
        [&] {
          std::optional<ReduceOp> reduces = source_reduce_op(first.placements(), "NCCL collective program");
          op = reduces.value_or(ReduceOp::sum);
          if (static_cast<index_t>(bytes) != expected)
            detail::fail("NCCL collective program: rank ", rank, " source buffer has ", bytes, " bytes, its tile needs ", expected, " (", dtype, ")");
          if (reduces) detail::nccl_op(op, dtype), detail::nccl_dtype(dtype);
        },
        [&](index_t vote) { return world_.all_max(vote, stream, timeout_); });
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

  // This rank's side of each kind of step: slices and joins are copy kernels, the exchange one
  // NCCL collective on the group's communicator, all queued on `stream`.
  struct Transport {
    NcclCollectiveProgram& self;
    NcclCommunicator& comm;
    const DeviceTile& in;
    DType dtype;
    index_t element;
    ReduceOp op;
    cudaStream_t stream;

    DeviceTile local(const CollectiveStep& step) const {
      DeviceTile out = output(step, static_cast<std::size_t>(step.out_bytes));
      CopyBatch batch;
      detail::add_slice(batch, in.buffer.data(), step.shape, step.sends.front(), out.buffer.data());
      self.copy(batch, stream);
      return out;
    }
    DeviceTile all_gather(const CollectiveStep& step) const {
      DeviceTile out = output(step, static_cast<std::size_t>(step.out_bytes));
      index_t slot = 0;
      for (const Dims& part : step.receives) slot = std::max(slot, volume(part));
      DeviceBuffer send(static_cast<std::size_t>(slot), stream, rank()), received(static_cast<std::size_t>(slot) * step.members.size(), stream, rank());
      if (in.bytes)
        detail::check_cuda(cudaMemcpyAsync(send.data(), in.buffer.data(), in.bytes, cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync", rank());
      self.check(ncclAllGather(send.data(), received.data(), static_cast<std::size_t>(slot), ncclUint8, comm.get(), stream), "ncclAllGather", comm, step.index);
      join(step, received, slot, out);
      return out;
    }
    DeviceTile all_to_all(const CollectiveStep& step) const {
      DeviceTile out = output(step, static_cast<std::size_t>(step.out_bytes));
      auto e = step.sends.front().dim;
      index_t slot = 0;  // the largest chunk any member sends any member: equal on every member
      for (const Tile& from : step.tiles->before)
        for (const Tile& to : step.tiles->after) slot = std::max(slot, from.volume() / std::max<index_t>(1, from.dim(e).size()) * to.dim(e).size() * element);
      DeviceBuffer send = chunks(step, slot), received(static_cast<std::size_t>(slot) * step.members.size(), stream, rank());
      self.check(ncclAlltoAll(send.data(), received.data(), static_cast<std::size_t>(slot), ncclUint8, comm.get(), stream), "ncclAlltoAll", comm, step.index);
      join(step, received, slot, out);
      return out;
    }
    DeviceTile reduce_scatter(const CollectiveStep& step) const {
      index_t slot = 0;
      for (const Tile& t : step.tiles->after) slot = std::max(slot, t.volume() * element);
      DeviceBuffer send = chunks(step, slot);
      DeviceTile out = output(step, static_cast<std::size_t>(slot));  // NCCL writes a whole slot
      self.check(ncclReduceScatter(send.data(), out.buffer.data(), static_cast<std::size_t>(slot / element), detail::nccl_dtype(dtype),
                                   detail::nccl_op(op, dtype), comm.get(), stream),
                 "ncclReduceScatter", comm, step.index);
      return out;
    }
    DeviceTile all_reduce(const CollectiveStep& step) const {
      DeviceTile out = output(step, static_cast<std::size_t>(step.out_bytes));
      self.check(ncclAllReduce(in.buffer.data(), out.buffer.data(), in.bytes / static_cast<std::size_t>(element), detail::nccl_dtype(dtype),
                               detail::nccl_op(op, dtype), comm.get(), stream),
                 "ncclAllReduce", comm, step.index);
      return out;
    }

   private:
    index_t rank() const { return self.world_.rank(); }
    // The step's result: out_bytes of a buffer of `capacity` bytes.
    DeviceTile output(const CollectiveStep& step, std::size_t capacity) const {
      return DeviceTile{DeviceBuffer(capacity, stream, rank()), static_cast<std::size_t>(step.out_bytes)};
    }
    // Member j's chunk of this rank's tile into slot j of a new buffer.
    DeviceBuffer chunks(const CollectiveStep& step, index_t slot) const {
      DeviceBuffer send(static_cast<std::size_t>(slot) * step.members.size(), stream, rank());
      CopyBatch batch;
      for (std::size_t j = 0; j < step.sends.size(); ++j)
        detail::add_slice(batch, in.buffer.data(), step.shape, step.sends[j], send.data() + static_cast<index_t>(j) * slot);
      self.copy(batch, stream);
      return send;
    }
    // The received parts (member j's in slot j) joined along the step's join dim into `out`.
    void join(const CollectiveStep& step, const DeviceBuffer& received, index_t slot, DeviceTile& out) const {
      CopyBatch batch;
      index_t at = 0, total = 0;
      for (const Dims& part : step.receives) total += part[step.join_dim];
      for (std::size_t j = 0; j < step.receives.size(); ++j) {
        detail::add_join(batch, received.data() + static_cast<index_t>(j) * slot, step.receives[j], step.join_dim, at, total, out.buffer.data());
        at += step.receives[j][step.join_dim];
      }
      self.copy(batch, stream);
    }
  };

  DeviceTile run_step(std::size_t i, DeviceTile in, DType dtype, index_t element, ReduceOp op, cudaStream_t stream) {
    Group& group = groups_.at(program_.steps[i].mesh_dims);
    Transport transport{*this, *group.comm, in, dtype, element, op, stream};
    return run_collective_step(describe_collective_step(program_, i, group.members, group_tiles(program_, i, group.members), world_.rank(), element),
                               transport, "NCCL collective program");
  }

  CollectiveProgram program_;
  NcclCommunicator& world_;
  double timeout_;
  std::map<std::vector<index_t>, Group> groups_;
};

}  // namespace shardalg
