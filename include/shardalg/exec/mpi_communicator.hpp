// MpiCommunicator: the engine's communicator over MPI point-to-point messages (needs <mpi.h> and
// linking MPI; MPI must be initialized). Works on a duplicate of the given communicator, with
// errors returned rather than fatal, so that every failing call becomes an Error naming the call,
// the rank and MPI's message. Waits poll with a deadline: a peer that never sends gives a timeout
// error naming it instead of a hang. Non-contiguous messages travel as MPI derived datatypes
// (hvectors of rows, joined by a struct over absolute addresses), so MPI reads and writes the
// rows in place.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "shardalg/core/error.hpp"
#include "shardalg/exec/strided_rows.hpp"

namespace shardalg {

namespace detail {
// An MPI return code as an Error naming the call, the rank and MPI's message (and the peer, when
// there is one).
inline void check_mpi(int rc, const char* call, index_t rank, index_t peer = -1) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  std::string message(text, static_cast<std::size_t>(length));
  if (peer >= 0) fail(call, " with rank ", peer, " failed on rank ", rank, ": ", message);
  fail(call, " failed on rank ", rank, ": ", message);
}
}  // namespace detail

class MpiCommunicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD) {
    check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup", -1);
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", -1);
    int rank = 0, size = 0;
    check(MPI_Comm_rank(comm_, &rank), "MPI_Comm_rank", -1);
    check(MPI_Comm_size(comm_, &size), "MPI_Comm_size", -1);
    rank_ = rank;
    size_ = size;
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  // Requests still pending (after a timeout) are cancelled, so MPI can shut down.
  ~MpiCommunicator() {
    for (std::vector<MPI_Request>* requests : {&sends_, &receives_})
      for (MPI_Request& request : *requests)
        if (request != MPI_REQUEST_NULL) {
          MPI_Cancel(&request);
          MPI_Request_free(&request);
        }
    MPI_Comm_free(&comm_);
  }

  index_t rank() const { return rank_; }
  index_t size() const { return size_; }
  MPI_Comm comm() const { return comm_; }

  index_t all_max(index_t value) {
    long long in = value, out = 0;
    check(MPI_Allreduce(&in, &out, 1, MPI_LONG_LONG, MPI_MAX, comm_), "MPI_Allreduce", -1);
    return static_cast<index_t>(out);
  }
  void all_max(std::span<index_t> values) {
    static_assert(sizeof(index_t) == sizeof(long long));
    check(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_LONG_LONG, MPI_MAX, comm_), "MPI_Allreduce", -1);
  }
  index_t all_sum(index_t value) {
    long long in = value, out = 0;
    check(MPI_Allreduce(&in, &out, 1, MPI_LONG_LONG, MPI_SUM, comm_), "MPI_Allreduce", -1);
    return static_cast<index_t>(out);
  }

  void post_receive(std::byte* data, std::size_t bytes, index_t peer, int tag) {
    receives_.emplace_back();
    receive_peers_.push_back(peer);
    check(MPI_Irecv(data, count(bytes), MPI_BYTE, peer_of(peer), tag, comm_, &receives_.back()), "MPI_Irecv", peer);
  }
  void post_send(const std::byte* data, std::size_t bytes, index_t peer, int tag) {
    sends_.emplace_back();
    send_peers_.push_back(peer);
    check(MPI_Isend(data, count(bytes), MPI_BYTE, peer_of(peer), tag, comm_, &sends_.back()), "MPI_Isend", peer);
  }

  void post_receive_strided(std::span<const StridedRows<std::byte>> rows, index_t peer, int tag) {
    receives_.emplace_back();
    receive_peers_.push_back(peer);
    MPI_Datatype type = datatype_of(rows);
    int rc = MPI_Irecv(MPI_BOTTOM, 1, type, peer_of(peer), tag, comm_, &receives_.back());
    MPI_Type_free(&type);  // MPI keeps it until the receive completes
    check(rc, "MPI_Irecv", peer);
  }
  void post_send_strided(std::span<const StridedRows<const std::byte>> rows, index_t peer, int tag) {
    sends_.emplace_back();
    send_peers_.push_back(peer);
    MPI_Datatype type = datatype_of(rows);
    int rc = MPI_Isend(MPI_BOTTOM, 1, type, peer_of(peer), tag, comm_, &sends_.back());
    MPI_Type_free(&type);
    check(rc, "MPI_Isend", peer);
  }

  // Index (in posting order since the last wait_sends) of a receive that completed.
  std::size_t wait_receive(double timeout_seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
    while (true) {
      int index = MPI_UNDEFINED, flag = 0;
      check(MPI_Testany(static_cast<int>(receives_.size()), receives_.data(), &index, &flag, MPI_STATUS_IGNORE), "MPI_Testany", -1);
      if (flag && index != MPI_UNDEFINED) return static_cast<std::size_t>(index);
      if (flag) detail::fail("MPI: rank ", rank_, " waited for a receive, but none is pending");
      if (std::chrono::steady_clock::now() > deadline) timeout("a message from rank", receives_, receive_peers_, timeout_seconds);
      std::this_thread::yield();
    }
  }

  // Waits for every posted send; then a new batch starts.
  void wait_sends(double timeout_seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
    while (true) {
      int flag = 0;
      check(MPI_Testall(static_cast<int>(sends_.size()), sends_.data(), &flag, MPI_STATUSES_IGNORE), "MPI_Testall", -1);
      if (flag) break;
      if (std::chrono::steady_clock::now() > deadline) timeout("rank", sends_, send_peers_, timeout_seconds, " to receive a message");
      std::this_thread::yield();
    }
    sends_.clear();
    send_peers_.clear();
    receives_.clear();
    receive_peers_.clear();
  }

 private:
  int count(std::size_t bytes) const {
    if (bytes > static_cast<std::size_t>(std::numeric_limits<int>::max()))
      detail::fail("MPI: rank ", rank_, " message of ", bytes, " bytes exceeds MPI's int count");
    return static_cast<int>(bytes);
  }
  // One datatype for all the rows, in order: per block an hvector per outer dim around a
  // contiguous row, the blocks joined by a struct at their absolute addresses (from MPI_BOTTOM).
  template <class Byte>
  MPI_Datatype datatype_of(std::span<const StridedRows<Byte>> rows) const {
    std::vector<MPI_Datatype> types;
    std::vector<MPI_Aint> addresses;
    for (const StridedRows<Byte>& block : rows) {
      MPI_Datatype type = MPI_DATATYPE_NULL;
      check(MPI_Type_contiguous(count(static_cast<std::size_t>(block.row_bytes)), MPI_BYTE, &type), "MPI_Type_contiguous", -1);
      for (std::size_t d = block.shape.size(); d-- > 0;) {
        if (block.shape[d] == 1) continue;
        MPI_Datatype outer = MPI_DATATYPE_NULL;
        check(MPI_Type_create_hvector(count(static_cast<std::size_t>(block.shape[d])), 1, block.strides[d], type, &outer), "MPI_Type_create_hvector", -1);
        MPI_Type_free(&type);
        type = outer;
      }
      MPI_Aint address = 0;
      check(MPI_Get_address(block.data, &address), "MPI_Get_address", -1);
      types.push_back(type);
      addresses.push_back(address);
    }
    std::vector<int> ones(types.size(), 1);
    MPI_Datatype message = MPI_DATATYPE_NULL;
    check(MPI_Type_create_struct(static_cast<int>(types.size()), ones.data(), addresses.data(), types.data(), &message), "MPI_Type_create_struct", -1);
    for (MPI_Datatype& type : types) MPI_Type_free(&type);
    check(MPI_Type_commit(&message), "MPI_Type_commit", -1);
    return message;
  }
  int peer_of(index_t peer) const {
    if (peer < 0 || peer >= size_) detail::fail("MPI: rank ", rank_, " addresses rank ", peer, ", outside the communicator of ", size_, " ranks");
    return static_cast<int>(peer);
  }
  void check(int rc, const char* call, index_t peer) const { detail::check_mpi(rc, call, rank_, peer); }
  [[noreturn]] void timeout(const char* waiting, std::vector<MPI_Request>& requests, const std::vector<index_t>& peers, double seconds,
                            const char* after = "") const {
    index_t peer = -1;
    for (std::size_t i = 0; i < requests.size(); ++i)
      if (requests[i] != MPI_REQUEST_NULL) peer = peers[i];
    detail::fail("MPI: rank ", rank_, " timed out after ", seconds, " s waiting for ", waiting, " ", peer, after);
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  index_t rank_ = 0, size_ = 0;
  std::vector<MPI_Request> sends_, receives_;
  std::vector<index_t> send_peers_, receive_peers_;
};

}  // namespace shardalg
