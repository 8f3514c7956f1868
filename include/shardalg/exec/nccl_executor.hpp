// execute_nccl: one rank's part of a model reshard plan on GPU buffers, over NCCL, everything
// queued on the caller's stream. The same part, rounds and checks as the host engine
// (exec/engine.hpp), with the byte moves done by CUDA kernels over BoxCopy descriptors:
//
//   checks    buffers (count, bytes, dtype, null) and every box against its buffer, then one
//             NCCL all-max so that every rank fails together before anything moves
//   identity  Partial destinations start at the op's identity (a fill kernel)
//   local     local copies on a second stream, overlapping the packing and the messages, joined
//             before the first unpack (reductions may meet in the same elements)
//   rounds    per round: one pack kernel (all staged sends), one NCCL group of ncclRecv/ncclSend
//             (contiguous messages straight from / into the buffers), one unpack kernel, and one
//             reduction kernel per (dtype, op, contributors) of Partial sources
//
// The schedule (exec/device_schedule.hpp: descriptors of all rounds, messages per round) is
// built on the host and its descriptors uploaded once, so no round waits for the host. Staging is capped by the memory limit as in the host engine (pieces of limit / (most
// peers) bytes, the smallest over ranks). Needs the kernels of exec/cuda_kernels.cuh linked in
// (CMake: shardalg::cuda) and NCCL.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <functional>
#include <span>

#include "shardalg/exec/cuda_launch.hpp"
#include "shardalg/exec/device_buffer.hpp"
#include "shardalg/exec/device_schedule.hpp"
#include "shardalg/exec/nccl_communicator.hpp"

namespace shardalg {

struct DeviceExecuteOptions {
  cudaStream_t stream = nullptr;  // every kernel, copy and NCCL call is queued here
  index_t memory_limit = 0;       // staging bytes per rank (0: no limit)
  double timeout_seconds = 300;
  // Wait (bounded) for the work before returning; otherwise the caller waits on the stream, e.g.
  // with NcclCommunicator::wait.
  bool synchronize = true;
  // After each round, (bytes received so far, bytes to receive); setting it makes each round wait.
  std::function<void(index_t, index_t)> progress;
  DeviceBuffer* arena = nullptr;  // staging to reuse across calls (on the same stream)
};

namespace detail {

inline void run_launch(const LaunchList& list, std::size_t i, const DeviceBuffer& descriptors, cudaStream_t stream, index_t rank) {
  const LaunchList::Launch& l = list[i];
  const BoxCopy* copies = reinterpret_cast<const BoxCopy*>(descriptors.data()) + l.first;
  auto count = static_cast<std::int64_t>(l.count);
  switch (l.kind) {
    case LaunchList::Kind::copy: return check_cuda(cuda::launch_copies(copies, count, l.units, stream), "copy kernel launch", rank);
    case LaunchList::Kind::reduce:
      return check_cuda(cuda::launch_reductions(copies, count, l.units, l.dtype, l.op, l.contributors, stream), "reduction kernel launch", rank);
    case LaunchList::Kind::fill: return check_cuda(cuda::launch_fill_identity(copies, count, l.units, l.dtype, l.op, stream), "fill kernel launch", rank);
  }
}

// A CUDA stream and two events, released when the call returns (CUDA frees them once the work
// queued on them is done).
struct SideStream {
  cudaStream_t stream = nullptr;
  cudaEvent_t forked = nullptr, done = nullptr;
  explicit SideStream(index_t rank) {
    check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags", rank);
    check_cuda(cudaEventCreateWithFlags(&forked, cudaEventDisableTiming), "cudaEventCreateWithFlags", rank);
    check_cuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreateWithFlags", rank);
  }
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;
  ~SideStream() {
    cudaEventDestroy(forked);
    cudaEventDestroy(done);
    cudaStreamDestroy(stream);
  }
};

}  // namespace detail

// Runs `part` (this rank's part of `plan`) from device `sources` into device `destinations`
// (one buffer per buffer of the source / destination ModelLayout, as for execute). Errors: bad
// buffers on any rank (before any communication; the bad rank names its buffer), a dtype with no
// device arithmetic in a Partial plan, CUDA and NCCL errors naming the call and the rank,
// timeouts (the communicator is aborted then). On an error, destinations may be partly written.
inline ExecuteStats execute_nccl(const ModelReshardPlan& plan, const RankPart& part, std::span<const SourceBuffer> sources,
                                 std::span<const DestinationBuffer> destinations, NcclCommunicator& comm, const DeviceExecuteOptions& options = {}) {
  const index_t rank = part.rank();
  cudaStream_t stream = options.stream;
  // 1. Local checks, then agreement that every rank passed.
  std::string failure;
  try {
    if (comm.rank() != rank) detail::fail("execute_nccl: the communicator's rank ", comm.rank(), " is not the part's rank ", rank);
    detail::check_part(plan, part, sources, destinations, options.memory_limit);
    for (std::size_t t = 0; t < plan.size(); ++t)
      if (plan.tensor_plan(t).reduce_op()) device_dtype(plan.source()[t].dtype);
  } catch (const Error& e) {
    failure = e.what();
  }
  detail::Agreement::Values proposal = detail::Agreement::propose(part, options.memory_limit, !failure.empty());
  comm.all_max(std::span<index_t>(proposal), stream, options.timeout_seconds);
  detail::Agreement agreed(proposal);
  if (!failure.empty()) throw Error(failure);
  if (agreed.failed_rank() >= 0) detail::fail("execute_nccl: rank ", agreed.failed_rank(), " failed its checks; nothing was sent");

  // 2. Pieces, staging and the schedule; its descriptors uploaded at once.
  index_t piece = agreed.piece();
  DeviceBuffer call_arena;
  DeviceBuffer& arena = options.arena ? *options.arena : call_arena;
  index_t staging = device_staging_bytes(plan, part, piece);
  arena.reserve(static_cast<std::size_t>(staging), stream, rank);
  DeviceSchedule schedule = make_device_schedule(plan, part, sources, destinations, piece, arena.data());
  const LaunchList& list = schedule.launches;
  DeviceBuffer descriptors(list.descriptors().size() * sizeof(BoxCopy), stream, rank);  // freed in stream order
  if (descriptors.size())
    detail::check_cuda(cudaMemcpyAsync(descriptors.data(), list.descriptors().data(), descriptors.size(), cudaMemcpyHostToDevice, stream),
                       "cudaMemcpyAsync of descriptors", rank);

  // 3. Identities, local copies on a side stream, rounds.
  ExecuteStats stats;
  stats.rounds = static_cast<index_t>(schedule.rounds.size());
  stats.peak_staging = staging;
  for (const Message& m : part.sends()) stats.bytes_sent += m.bytes;
  for (const LocalCopy& copy : part.local_copies()) stats.bytes_local += copy.from.bytes();
  index_t to_receive = 0;
  for (const Message& m : part.receives()) to_receive += m.bytes;
  for (std::size_t l : schedule.fills) detail::run_launch(list, l, descriptors, stream, rank);
  detail::SideStream side(rank);
  detail::check_cuda(cudaEventRecord(side.forked, stream), "cudaEventRecord", rank);
  detail::check_cuda(cudaStreamWaitEvent(side.stream, side.forked, 0), "cudaStreamWaitEvent", rank);
  for (std::size_t l : schedule.locals) detail::run_launch(list, l, descriptors, side.stream, rank);
  detail::check_cuda(cudaEventRecord(side.done, side.stream), "cudaEventRecord", rank);
  auto join_side = [&] { detail::check_cuda(cudaStreamWaitEvent(stream, side.done, 0), "cudaStreamWaitEvent", rank); };
  for (std::size_t i = 0; i < schedule.rounds.size(); ++i) {
    const DeviceRound& r = schedule.rounds[i];
    if (r.pack) detail::run_launch(list, *r.pack, descriptors, stream, rank);
    detail::check_nccl(ncclGroupStart(), "ncclGroupStart", rank, comm.get());
    for (const auto& t : r.receives)
      detail::check_nccl(ncclRecv(t.data, static_cast<std::size_t>(t.bytes), ncclUint8, static_cast<int>(t.peer), comm.get(), stream),
                         detail::concat("ncclRecv from rank ", t.peer), rank, comm.get());
    for (const auto& t : r.sends)
      detail::check_nccl(ncclSend(t.data, static_cast<std::size_t>(t.bytes), ncclUint8, static_cast<int>(t.peer), comm.get(), stream),
                         detail::concat("ncclSend to rank ", t.peer), rank, comm.get());
    detail::check_nccl(ncclGroupEnd(), "ncclGroupEnd", rank, comm.get());
    comm.settle(detail::concat("ncclGroupEnd of round ", i), options.timeout_seconds);
    if (i == 0) join_side();  // reductions of local and received contributions may meet
    for (std::size_t l : r.unpack) detail::run_launch(list, l, descriptors, stream, rank);
    for (const auto& t : r.receives) stats.bytes_received += t.bytes;
    if (options.progress) {
      comm.wait(stream, options.timeout_seconds, detail::concat("round ", i, " of the reshard"));
      options.progress(stats.bytes_received, to_receive);
    }
  }
  if (schedule.rounds.empty()) join_side();
  if (options.synchronize) comm.wait(stream, options.timeout_seconds, "the reshard's kernels and messages");
  return stats;
}

}  // namespace shardalg
