// MpiCommunicator: the engine's communicator over MPI point-to-point messages (needs <mpi.h> and
// linking MPI; MPI must be initialized). Works on a duplicate of the given communicator, with
// errors returned rather than fatal, so that every failing call becomes an Error naming the call,
// the rank and MPI's message. Waits poll with a deadline: a peer that never sends gives a timeout
// error naming it instead of a hang. Non-contiguous messages travel as MPI derived datatypes
// (hvectors of rows, joined by a struct over absolute addresses), so MPI reads and writes the
// rows in place.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "shardalg/core/deadline.hpp"
#include "shardalg/core/error.hpp"
#include "shardalg/exec/agreement.hpp"
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

  // Element-wise max (sum) over every rank, in place: a nonblocking allreduce polled until
  // `timeout_seconds`, so that a rank that never joins gives a timeout error instead of a hang.
  // A collective cannot be cancelled: after a timeout its buffer and request are abandoned (MPI
  // may still complete them when the late rank joins) and this communicator refuses further
  // all-reduces (they would pair with the abandoned one on the other ranks).
  void all_max(std::span<index_t> values, double timeout_seconds) { all_reduce(values, MPI_MAX, timeout_seconds); }
  index_t all_max(index_t value, double timeout_seconds = 300) {
    all_reduce(std::span<index_t>(&value, 1), MPI_MAX, timeout_seconds);
    return value;
  }
  index_t all_sum(index_t value, double timeout_seconds = 300) {
    all_reduce(std::span<index_t>(&value, 1), MPI_SUM, timeout_seconds);
    return value;
  }

  // A FailureAgreement over every rank: given this rank's failure ("" when it succeeded), the
  // highest failing rank's message (its first 1,024 bytes) as "process R: ...", or "" when none
  // failed. Two all-reduces, bounded by `timeout_seconds` each.
  std::string agree_on_failure(const std::string& failure, double timeout_seconds = 300) {
    index_t failed = all_max(failure_vote(failure, rank_), timeout_seconds);
    if (failed < 0) return {};
    constexpr std::size_t max_bytes = 1024;
    std::vector<index_t> text(max_bytes, 0);  // one byte per value: the all-max picks the failed rank's
    if (failed == rank_)
      for (std::size_t i = 0; i < failure.size() && i < max_bytes; ++i) text[i] = static_cast<unsigned char>(failure[i]);
    all_reduce(text, MPI_MAX, timeout_seconds);
    std::string message;
    for (index_t c : text) {
      if (c == 0) break;
      message += static_cast<char>(c);
    }
    return detail::concat("process ", failed, ": ", message);
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
    auto deadline = deadline_after(timeout_seconds);
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
    auto deadline = deadline_after(timeout_seconds);
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

  void all_reduce(std::span<index_t> values, MPI_Op op, double timeout_seconds) {
    static_assert(sizeof(index_t) == sizeof(long long));
    if (all_reduce_abandoned_)
      detail::fail("MPI: rank ", rank_, " cannot all-reduce on this communicator: an earlier all-reduce timed out; make a new communicator");
    auto deadline = deadline_after(timeout_seconds);
    auto buffer = std::make_unique<std::vector<long long>>(values.begin(), values.end());
    MPI_Request request = MPI_REQUEST_NULL;
    int n = count(values.size());  // a few values: the agreement's
    check(MPI_Iallreduce(MPI_IN_PLACE, buffer->data(), n, MPI_LONG_LONG, op, comm_, &request), "MPI_Iallreduce", -1);
    while (true) {
      int done = 0;
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test", -1);
      if (done) break;
      if (std::chrono::steady_clock::now() > deadline) {
        static std::vector<std::unique_ptr<std::vector<long long>>> abandoned;  // until the process exits
        abandoned.push_back(std::move(buffer));
        all_reduce_abandoned_ = true;
        detail::fail("MPI: rank ", rank_, " timed out after ", timeout_seconds, " s in MPI_Iallreduce (every rank's agreement): a rank did not join");
      }
      std::this_thread::yield();
    }
    std::copy(buffer->begin(), buffer->end(), values.begin());
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  index_t rank_ = 0, size_ = 0;
  std::vector<MPI_Request> sends_, receives_;
  std::vector<index_t> send_peers_, receive_peers_;
  bool all_reduce_abandoned_ = false;
};

}  // namespace shardalg
