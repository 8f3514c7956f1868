// NcclCommunicator: one rank of an NCCL communicator, made non-blocking so that every wait has a
// deadline: creating it, splitting it, ending a group and waiting for a stream poll NCCL's
// asynchronous state and give up after a timeout, aborting the communicator (NCCL's only way
// out of a collective a peer never joins) and throwing an Error that names the call and the
// rank. CUDA and NCCL return codes become Errors the same way. Needs <nccl.h> and the CUDA
// runtime (link NCCL::nccl and CUDA::cudart); plain C++, no kernels.
//
// Example (one process per GPU; the id travels by any side channel, MPI here):
//   ncclUniqueId id;
//   if (rank == 0) ncclGetUniqueId(&id);
//   MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
//   cudaSetDevice(local_rank);
//   NcclCommunicator comm(id, world_size, rank);
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "shardalg/core/checked.hpp"
#include "shardalg/core/deadline.hpp"
#include "shardalg/core/error.hpp"

namespace shardalg {

namespace detail {

inline void check_cuda(cudaError_t rc, std::string_view call, index_t rank) {
  if (rc != cudaSuccess) fail(call, " failed on rank ", rank, ": ", cudaGetErrorString(rc));
}

inline void check_nccl(ncclResult_t rc, std::string_view call, index_t rank, ncclComm_t comm = nullptr) {
  if (rc == ncclSuccess || rc == ncclInProgress) return;
  const char* detail = comm ? ncclGetLastError(comm) : "";
  fail(call, " failed on rank ", rank, ": ", ncclGetErrorString(rc), detail && *detail ? std::string(" (") + detail + ")" : std::string());
}

}  // namespace detail

class NcclCommunicator {
 public:
  // Collective over the `size` processes that pass the same id, each with its own `rank`; uses
  // the current CUDA device. Errors: a rank outside [0, size), NCCL's errors, or a peer that does
  // not join within `timeout_seconds`.
  NcclCommunicator(const ncclUniqueId& id, index_t size, index_t rank, double timeout_seconds = 300) : rank_(rank), size_(size) {
    if (size < 1 || rank < 0 || rank >= size) detail::fail("NCCL: rank ", rank, " is outside a communicator of ", size, " ranks");
    checked_timeout(timeout_seconds);  // before joining: a bad timeout must not leave a half-made communicator
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    detail::check_nccl(ncclCommInitRankConfig(&comm_, static_cast<int>(size), id, static_cast<int>(rank), &config), "ncclCommInitRankConfig", rank);
    settle("ncclCommInitRankConfig", timeout_seconds);
  }

  // A communicator of this process alone (one rank), for local reshards and tests.
  static NcclCommunicator single(double timeout_seconds = 300) {
    ncclUniqueId id;
    detail::check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId", 0);
    return NcclCommunicator(id, 1, 0, timeout_seconds);
  }

  NcclCommunicator(NcclCommunicator&& other) noexcept
      : comm_(std::exchange(other.comm_, nullptr)), rank_(other.rank_), size_(other.size_), aborted_(other.aborted_) {}
  NcclCommunicator& operator=(NcclCommunicator&& other) noexcept {
    std::swap(comm_, other.comm_);
    std::swap(rank_, other.rank_);
    std::swap(size_, other.size_);
    std::swap(aborted_, other.aborted_);
    return *this;
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;
  ~NcclCommunicator() {
    if (comm_ && !aborted_) ncclCommDestroy(comm_);
  }

  // Collective over this communicator (ncclCommSplit): the ranks passing the same color form a
  // new communicator, ordered by key; a rank passing no color (std::nullopt) gets none.
  std::optional<NcclCommunicator> split(std::optional<int> color, int key, double timeout_seconds = 300) {
    checked_timeout(timeout_seconds);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclComm_t sub = nullptr;
    detail::check_nccl(ncclCommSplit(comm_, color.value_or(NCCL_SPLIT_NOCOLOR), key, &sub, &config), "ncclCommSplit", rank_, comm_);
    settle("ncclCommSplit", timeout_seconds);
    if (!color) return std::nullopt;
    return NcclCommunicator(sub, rank_, timeout_seconds);
  }

  index_t rank() const { return rank_; }
  index_t size() const { return size_; }
  ncclComm_t get() const { return comm_; }

  // Waits until NCCL's non-blocking state of this communicator leaves "in progress" (after
  // ncclGroupEnd, init, split); `call` names what is awaited in errors.
  void settle(std::string_view call, double timeout_seconds) {
    auto deadline = deadline_after(timeout_seconds);
    while (true) {
      ncclResult_t state = ncclSuccess;
      detail::check_nccl(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", rank_, comm_);
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) fail_and_abort(call, ncclGetErrorString(state));
      if (std::chrono::steady_clock::now() > deadline) fail_and_abort(call, timed_out(timeout_seconds));
      std::this_thread::yield();
    }
  }

  // Waits until the work queued on `stream` is done, checking NCCL's asynchronous errors; a
  // collective that a peer never joins ends in a timeout error naming `what`.
  void wait(cudaStream_t stream, double timeout_seconds, std::string_view what) {
    auto deadline = deadline_after(timeout_seconds);
    while (true) {
      cudaError_t rc = cudaStreamQuery(stream);
      if (rc == cudaSuccess) return;
      if (rc != cudaErrorNotReady) detail::check_cuda(rc, std::string(what), rank_);
      ncclResult_t state = ncclSuccess;
      detail::check_nccl(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", rank_, comm_);
      if (state != ncclSuccess && state != ncclInProgress) fail_and_abort(what, ncclGetErrorString(state));
      if (std::chrono::steady_clock::now() > deadline) fail_and_abort(what, timed_out(timeout_seconds));
      std::this_thread::yield();
    }
  }

  // Element-wise max of `values` over all ranks, in place (ncclAllReduce on `stream`, waited for).
  void all_max(std::span<index_t> values, cudaStream_t stream, double timeout_seconds) {
    void* device = nullptr;
    std::size_t bytes = values.size_bytes();
    detail::check_cuda(cudaMallocAsync(&device, bytes, stream), "cudaMallocAsync", rank_);
    detail::check_cuda(cudaMemcpyAsync(device, values.data(), bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync", rank_);
    detail::check_nccl(ncclAllReduce(device, device, values.size(), ncclInt64, ncclMax, comm_, stream), "ncclAllReduce", rank_, comm_);
    settle("ncclAllReduce", timeout_seconds);
    detail::check_cuda(cudaMemcpyAsync(values.data(), device, bytes, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync", rank_);
    detail::check_cuda(cudaFreeAsync(device, stream), "cudaFreeAsync", rank_);
    wait(stream, timeout_seconds, "ncclAllReduce (every rank's agreement)");
  }
  index_t all_max(index_t value, cudaStream_t stream, double timeout_seconds) {
    all_max(std::span<index_t>(&value, 1), stream, timeout_seconds);
    return value;
  }

  bool aborted() const { return aborted_; }

 private:
  // A communicator made by ncclCommSplit on parent rank `parent_rank`: settled, then asked for
  // its rank and size.
  NcclCommunicator(ncclComm_t comm, index_t parent_rank, double timeout_seconds) : comm_(comm), rank_(parent_rank) {
    settle("ncclCommSplit", timeout_seconds);
    int rank = 0, size = 0;
    detail::check_nccl(ncclCommUserRank(comm_, &rank), "ncclCommUserRank", -1, comm_);
    detail::check_nccl(ncclCommCount(comm_, &size), "ncclCommCount", rank, comm_);
    rank_ = rank;
    size_ = size;
  }

  std::string timed_out(double seconds) const { return detail::concat("timed out after ", seconds, " s (a peer did not join; communicator aborted)"); }

  [[noreturn]] void fail_and_abort(std::string_view call, std::string_view why) {
    if (!aborted_) ncclCommAbort(comm_);
    aborted_ = true;
    detail::fail("NCCL: ", call, " on rank ", rank_, ": ", why);
  }

  ncclComm_t comm_ = nullptr;
  index_t rank_ = 0, size_ = 0;
  bool aborted_ = false;
};

}  // namespace shardalg
