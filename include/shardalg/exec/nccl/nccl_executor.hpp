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
// The schedule (exec/nccl/device_schedule.hpp: descriptors of all rounds, messages per round) is
// built on the host and its descriptors uploaded once, so no round waits for the host;
// PreparedNcclReshard keeps it (and the checks and agreement) for any number of runs. Staging is
// capped by the memory limit as in the host engine (rounds of limit / (most peers) bytes, the
// smallest over ranks). Needs the kernels of exec/nccl/cuda_kernels.cuh linked in (CMake:
// shardalg::cuda) and NCCL.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "shardalg/core/deadline.hpp"
#include "shardalg/exec/nccl/cuda_launch.hpp"
#include "shardalg/exec/nccl/device_buffer.hpp"
#include "shardalg/exec/nccl/device_schedule.hpp"
#include "shardalg/exec/nccl/nccl_communicator.hpp"

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

// A CUDA stream and two events, released with their owner (CUDA frees them once the work queued
// on them is done).
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

// One rank's part on GPU buffers, checked, agreed and scheduled once, run any number of times:
// the NCCL form of PreparedReshard (exec/engine.hpp), for a framework that moves the same device
// buffers every step. Construction (collective over the communicator, as execute_nccl): the
// checks and one NCCL all-max (the same errors as execute_nccl, before anything moves), the
// staging reserved, the schedule built and its descriptors uploaded (queued on options.stream).
// run() queues identity fills, local copies on a side stream, and the rounds on options.stream.
//
// Pre: `comm` and the buffers outlive the object (the plan and the part are needed only while it
// is constructed) and the buffers keep their addresses and sizes; options.arena, if given, is
// not reserved by other calls meanwhile (its address is in the descriptors: a run finding it
// moved fails saying so). Every rank runs as often as the others.
class PreparedNcclReshard {
 public:
  PreparedNcclReshard(const ModelReshardPlan& plan, const RankPart& part, std::span<const SourceBuffer> sources,
                      std::span<const DestinationBuffer> destinations, NcclCommunicator& comm, DeviceExecuteOptions options = {})
      : comm_(comm), options_(std::move(options)), rank_(part.rank()) {
    cudaStream_t stream = options_.stream;
    // 0. The bound of every wait, the agreement's included: a bad one fails at once, on this rank.
    checked_timeout(options_.timeout_seconds);
    // 1. Local checks, then agreement that every rank passed.
    detail::Agreement agreed = detail::Agreement::reach(
        part, options_.memory_limit, "execute_nccl",
        [&] {
          if (comm.rank() != rank_) detail::fail("execute_nccl: the communicator's rank ", comm.rank(), " is not the part's rank ", rank_);
          detail::check_part(part, sources, destinations, options_.memory_limit);
          for (std::size_t t = 0; t < plan.size(); ++t)
            if (plan.tensor_plan(t).reduce_op()) arithmetic_dtype(plan.source()[t].dtype);
          side_.emplace(rank_);
        },
        [&](std::span<index_t> values) { comm.all_max(values, stream, options_.timeout_seconds); });

    // 2. Round size, staging and the schedule; its descriptors uploaded at once.
    index_t round_bytes = agreed.round_bytes();
    DeviceBuffer& arena = staging();
    fixed_.peak_staging = device_staging_bytes(plan, part, round_bytes);
    arena.reserve(static_cast<std::size_t>(fixed_.peak_staging), stream, rank_);
    staging_at_ = arena.data();
    schedule_ = make_device_schedule(plan, part, sources, destinations, round_bytes, arena.data());
    const LaunchList& list = schedule_.launches;
    descriptors_.reserve(list.descriptors().size() * sizeof(BoxCopy), stream, rank_);
    if (descriptors_.size())
      detail::check_cuda(cudaMemcpyAsync(descriptors_.data(), list.descriptors().data(), descriptors_.size(), cudaMemcpyHostToDevice, stream),
                         "cudaMemcpyAsync of descriptors", rank_);
    fixed_.rounds = static_cast<index_t>(schedule_.rounds.size());
    for (const Message& m : part.sends()) fixed_.bytes_sent += m.bytes;
    for (const LocalCopy& copy : part.local_copies()) fixed_.bytes_local += copy.from.bytes();
    for (const Message& m : part.receives()) to_receive_ += m.bytes;
  }

  // Queues one run on options.stream (waits for it, bounded, with options.synchronize). Errors:
  // CUDA and NCCL errors naming the call and the rank, timeouts (the communicator is aborted
  // then); after an error later runs refuse to start.
  ExecuteStats run() {
    if (failed_) detail::fail("execute_nccl: a previous run of this prepared reshard failed; make a new communicator and reshard");
    if (staging().data() != staging_at_)
      detail::fail("execute_nccl: the staging arena moved since the reshard was prepared (reserved by another call?)");
    failed_ = true;
    ExecuteStats stats = queue_run();
    failed_ = false;
    return stats;
  }

 private:
  DeviceBuffer& staging() { return options_.arena ? *options_.arena : own_staging_; }

  // run()'s work: identities, local copies on the side stream, rounds.
  ExecuteStats queue_run() {
    cudaStream_t stream = options_.stream;
    const LaunchList& list = schedule_.launches;
    ExecuteStats stats = fixed_;
    for (std::size_t l : schedule_.fills) detail::run_launch(list, l, descriptors_, stream, rank_);
    detail::check_cuda(cudaEventRecord(side_->forked, stream), "cudaEventRecord", rank_);
    detail::check_cuda(cudaStreamWaitEvent(side_->stream, side_->forked, 0), "cudaStreamWaitEvent", rank_);
    for (std::size_t l : schedule_.locals) detail::run_launch(list, l, descriptors_, side_->stream, rank_);
    detail::check_cuda(cudaEventRecord(side_->done, side_->stream), "cudaEventRecord", rank_);
    auto join_side = [&] { detail::check_cuda(cudaStreamWaitEvent(stream, side_->done, 0), "cudaStreamWaitEvent", rank_); };
    for (std::size_t i = 0; i < schedule_.rounds.size(); ++i) {
      const DeviceRound& r = schedule_.rounds[i];
      if (r.pack) detail::run_launch(list, *r.pack, descriptors_, stream, rank_);
      detail::check_nccl(ncclGroupStart(), "ncclGroupStart", rank_, comm_.get());
      for (const auto& t : r.receives)
        detail::check_nccl(ncclRecv(t.data, static_cast<std::size_t>(t.bytes), ncclUint8, static_cast<int>(t.peer), comm_.get(), stream),
                           detail::concat("ncclRecv from rank ", t.peer), rank_, comm_.get());
      for (const auto& t : r.sends)
        detail::check_nccl(ncclSend(t.data, static_cast<std::size_t>(t.bytes), ncclUint8, static_cast<int>(t.peer), comm_.get(), stream),
                           detail::concat("ncclSend to rank ", t.peer), rank_, comm_.get());
      detail::check_nccl(ncclGroupEnd(), "ncclGroupEnd", rank_, comm_.get());
      comm_.settle(detail::concat("ncclGroupEnd of round ", i), options_.timeout_seconds);
      if (i == 0) join_side();  // reductions of local and received contributions may meet
      for (std::size_t l : r.unpack) detail::run_launch(list, l, descriptors_, stream, rank_);
      for (const auto& t : r.receives) stats.bytes_received += t.bytes;
      if (options_.progress) {
        comm_.wait(stream, options_.timeout_seconds, detail::concat("round ", i, " of the reshard"));
        options_.progress(stats.bytes_received, to_receive_);
      }
    }
    if (schedule_.rounds.empty()) join_side();
    if (options_.synchronize) comm_.wait(stream, options_.timeout_seconds, "the reshard's kernels and messages");
    return stats;
  }

  NcclCommunicator& comm_;
  DeviceExecuteOptions options_;
  index_t rank_;
  std::optional<detail::SideStream> side_;  // the local copies' stream, kept between runs
  DeviceBuffer own_staging_, descriptors_;
  std::byte* staging_at_ = nullptr;  // the staging address the descriptors hold
  DeviceSchedule schedule_;
  ExecuteStats fixed_;  // what every run reports alike: rounds, staging, bytes sent and local
  index_t to_receive_ = 0;
  bool failed_ = false;
};

// Runs `part` (this rank's part of `plan`) once from device `sources` into device `destinations`
// (one buffer per buffer of the source / destination ModelLayout, as for execute): a
// PreparedNcclReshard run once. Errors: bad buffers on any rank (before any communication; the
// bad rank names its buffer), a dtype with no device arithmetic in a Partial plan, CUDA and NCCL
// errors naming the call and the rank, timeouts (the communicator is aborted then). On an error,
// destinations may be partly written.
inline ExecuteStats execute_nccl(const ModelReshardPlan& plan, const RankPart& part, std::span<const SourceBuffer> sources,
                                 std::span<const DestinationBuffer> destinations, NcclCommunicator& comm, const DeviceExecuteOptions& options = {}) {
  return PreparedNcclReshard(plan, part, sources, destinations, comm, options).run();
}

}  // namespace shardalg
