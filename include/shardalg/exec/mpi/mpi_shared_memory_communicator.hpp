// MpiSharedMemoryCommunicator: the engine's communicator for ranks on one node, through POSIX
// shared memory (a segment per rank in /dev/shm, every segment mapped by every rank) instead of
// MPI messages; MPI sets it up and runs the agreement. Needs <mpi.h> and linking MPI (Linux).
//
// Why: MPI's shared-memory transport moves a non-contiguous message in small fragments that the
// sender copies only while it polls, so with more ranks than cores a receiver waits for its
// sender to be scheduled again and again. Here the sender copies (packs) each whole message into
// its own segment at once, in the order it posts them, and the receiver copies (unpacks) it
// straight into place when it arrives: two copies of every byte, as MPI's, but no rendezvous per
// fragment. Measured with 8 ranks on 2 cores (docs/benchmarks.md): faster than MpiCommunicator on
// block-cyclic redistributions of 4-64 MB per rank, slower on reshards of about 100 MB per rank.
//
// Protocol. Each rank's segment holds one slot per receiver (sequence number, offset, bytes, tag
// of the message for it), one acknowledgement per sender (the sequence number it consumed from
// that sender), and `capacity` bytes of messages. A sender packs, fills the slot, and publishes
// the sequence number (release); the receiver sees it (acquire), copies, and acknowledges. The
// next batch (after wait_sends, which waits for the acknowledgements) reuses the segment. One
// message per peer and direction per batch (the engine's rounds); a batch's sends fit in
// staging_limit() bytes, which the engine respects (it cuts messages into rounds).
//
// Errors: construction fails on every rank, naming the rank and call that failed (ranks on
// several nodes: use MpiCommunicator there; no room in /dev/shm); a message that does not fit,
// or whose size or tag disagrees with the receive, fails naming the peer; waits are bounded and
// name the peer they waited for. After a failed wait the communicator refuses further messages.
// Destruction is local (it unmaps), so a rank never waits for a failed peer to tear down.
#pragma once

#include <fcntl.h>
#include <mpi.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "shardalg/core/deadline.hpp"
#include "shardalg/core/error.hpp"
#include "shardalg/exec/agreement.hpp"
#include "shardalg/exec/mpi/mpi_communicator.hpp"
#include "shardalg/exec/strided_rows.hpp"

namespace shardalg {

namespace detail {

// One rank's POSIX shared-memory segment, mapped into this process: created (and its pages
// reserved, so that a full /dev/shm is an error now rather than a SIGBUS later) by its owner,
// opened by its peers. The name is removed once every peer has mapped it (unlink); unmapping
// is local, so tearing down never waits for a peer.
class SharedSegment {
 public:
  SharedSegment(std::string name, index_t bytes, bool create) : name_(std::move(name)), bytes_(static_cast<std::size_t>(bytes)), owner_(create) {
    int fd = create ? shm_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600) : shm_open(name_.c_str(), O_RDWR, 0);
    if (fd < 0) fail("shm_open(", name_, ") failed: ", std::strerror(errno));
    if (create) {
      if (int rc = posix_fallocate(fd, 0, static_cast<off_t>(bytes_)); rc != 0) {
        close(fd);
        shm_unlink(name_.c_str());
        fail("reserving ", bytes_, " bytes of shared memory (", name_, " in /dev/shm) failed: ", std::strerror(rc),
             "; give the communicator a smaller capacity or /dev/shm more room");
      }
    }
    void* data = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int mmap_errno = errno;
    close(fd);
    if (data == MAP_FAILED) {
      unlink();
      fail("mmap of ", bytes_, " bytes of ", name_, " failed: ", std::strerror(mmap_errno));
    }
    data_ = static_cast<std::byte*>(data);
  }
  SharedSegment(const SharedSegment&) = delete;
  SharedSegment& operator=(const SharedSegment&) = delete;
  ~SharedSegment() {
    if (data_) munmap(data_, bytes_);
    unlink();
  }
  std::byte* data() const { return data_; }
  // Removes the name (the owner's, once): the memory stays until every mapping is gone.
  void unlink() {
    if (owner_) shm_unlink(name_.c_str());
    owner_ = false;
  }

 private:
  std::string name_;
  std::size_t bytes_;
  bool owner_;
  std::byte* data_ = nullptr;
};

}  // namespace detail

class MpiSharedMemoryCommunicator {
 public:
  // Message bytes each rank's segment holds by default (the segment is this plus 128 bytes per
  // rank, in /dev/shm): Open MPI's own shared-memory segment size, small enough for a container's
  // 64 MB /dev/shm at 8 ranks. A reshard whose sends exceed it moves in rounds.
  static constexpr index_t default_capacity = index_t{4} << 20;

  // Collective over `comm`, whose ranks must all share one node and pass the same capacity.
  // Pre: MPI is initialized; `capacity` at least 4096 bytes and 128 per rank. Errors (on every
  // rank, naming the rank that failed): ranks on several nodes, no room in /dev/shm.
  explicit MpiSharedMemoryCommunicator(MPI_Comm comm = MPI_COMM_WORLD, index_t capacity = default_capacity)
      : collectives_(comm), rank_(collectives_.rank()), size_(collectives_.size()), capacity_(capacity) {
    index_t smallest = std::max<index_t>(4096, 128 * size_);
    if (capacity < smallest || capacity > (index_t{1} << 40))
      detail::fail("MpiSharedMemoryCommunicator: capacity ", capacity, " bytes must be at least ", smallest, " (4096, and 128 per rank) and at most 2^40");
    if (collectives_.all_max(capacity) != -collectives_.all_max(-capacity))
      detail::fail("MpiSharedMemoryCommunicator: the ranks passed different capacities (rank ", rank_, ": ", capacity, ")");
    MPI_Comm node = MPI_COMM_NULL;
    check(MPI_Comm_split_type(collectives_.comm(), MPI_COMM_TYPE_SHARED, static_cast<int>(rank_), MPI_INFO_NULL, &node), "MPI_Comm_split_type");
    int node_size = 0;
    MPI_Comm_size(node, &node_size);
    MPI_Comm_free(&node);
    if (collectives_.all_max(node_size == size_ ? 0 : 1) != 0)
      detail::fail("MpiSharedMemoryCommunicator: the ", size_, " ranks span several nodes (rank ", rank_, "'s node has ", node_size, "); use MpiCommunicator");
    // Segment names: a prefix unique to this communicator (rank 0's pid, clock and count), and the rank.
    std::array<char, 64> prefix{};
    if (rank_ == 0) {
      static std::atomic<unsigned> made{0};
      std::snprintf(prefix.data(), prefix.size(), "/shardalg-%d-%llx-%u", static_cast<int>(getpid()),
                    static_cast<unsigned long long>(std::chrono::steady_clock::now().time_since_epoch().count()), made++);
    }
    check(MPI_Bcast(prefix.data(), static_cast<int>(prefix.size()), MPI_CHAR, 0, collectives_.comm()), "MPI_Bcast");
    auto name_of = [&](index_t r) { return std::string(prefix.data()) + "-" + std::to_string(r); };
    index_t bytes = header_bytes() + capacity_;
    segments_.resize(static_cast<std::size_t>(size_));
    agreed_step([&] { segments_[static_cast<std::size_t>(rank_)] = std::make_unique<detail::SharedSegment>(name_of(rank_), bytes, true); });
    agreed_step([&] {
      for (index_t p = 0; p < size_; ++p)
        if (p != rank_) segments_[static_cast<std::size_t>(p)] = std::make_unique<detail::SharedSegment>(name_of(p), bytes, false);
    });
    segments_[static_cast<std::size_t>(rank_)]->unlink();  // every peer has mapped it
    sent_.assign(static_cast<std::size_t>(size_), 0);
    received_.assign(static_cast<std::size_t>(size_), 0);
    sent_in_batch_.assign(static_cast<std::size_t>(size_), 0);
    received_in_batch_.assign(static_cast<std::size_t>(size_), 0);
  }
  MpiSharedMemoryCommunicator(const MpiSharedMemoryCommunicator&) = delete;
  MpiSharedMemoryCommunicator& operator=(const MpiSharedMemoryCommunicator&) = delete;

  index_t rank() const { return rank_; }
  index_t size() const { return size_; }
  MPI_Comm comm() const { return collectives_.comm(); }
  // Bytes one batch may send in all (each message is placed at a 64-byte boundary).
  index_t staging_limit() const { return capacity_ - 64 * size_; }

  void all_max(std::span<index_t> values, double timeout_seconds) { collectives_.all_max(values, timeout_seconds); }
  index_t all_max(index_t value, double timeout_seconds = 300) { return collectives_.all_max(value, timeout_seconds); }
  index_t all_sum(index_t value, double timeout_seconds = 300) { return collectives_.all_sum(value, timeout_seconds); }

  void post_send(const std::byte* data, std::size_t bytes, index_t peer, int tag) {
    std::byte* at = reserve(static_cast<index_t>(bytes), peer);
    if (bytes > 0) std::memcpy(at, data, bytes);
    publish(peer, static_cast<index_t>(bytes), tag);
  }
  void post_send_strided(std::span<const StridedRows<const std::byte>> rows, index_t peer, int tag) {
    index_t bytes = message_bytes(rows);
    std::byte* at = reserve(bytes, peer);
    for (const StridedRows<const std::byte>& block : rows)
      if (block.row_bytes > 0)
        block.for_each_row([&](const std::byte* row) {
          std::memcpy(at, row, static_cast<std::size_t>(block.row_bytes));
          at += block.row_bytes;
        });
    publish(peer, bytes, tag);
  }
  void post_receive(std::byte* data, std::size_t bytes, index_t peer, int tag) {
    StridedRows<std::byte> row{data, {}, {}, static_cast<index_t>(bytes)};
    post_receive_strided(std::span<const StridedRows<std::byte>>(&row, 1), peer, tag);
  }
  void post_receive_strided(std::span<const StridedRows<std::byte>> rows, index_t peer, int tag) {
    check_usable(peer);
    if (received_in_batch_[static_cast<std::size_t>(peer)]++)
      detail::fail("MPI shared memory: rank ", rank_, " posted a second receive from rank ", peer, " in one batch (one per peer; wait_sends first)");
    received_[static_cast<std::size_t>(peer)] += 1;
    receives_.push_back(Receive{peer, tag, received_[static_cast<std::size_t>(peer)], message_bytes(rows), {rows.begin(), rows.end()}, false});
    ++pending_receives_;
  }

  // Index (in posting order since the last wait_sends) of a receive that arrived, already copied
  // into place.
  std::size_t wait_receive(double timeout_seconds) {
    auto deadline = deadline_after(timeout_seconds);
    if (pending_receives_ == 0) detail::fail("MPI shared memory: rank ", rank_, " waited for a receive, but none is pending");
    while (true) {
      for (std::size_t k = 0; k < receives_.size(); ++k) {
        Receive& receive = receives_[k];
        if (receive.done) continue;
        const Slot& slot = slot_of(receive.peer, rank_);
        std::uint64_t published = load(slot.sequence);
        if (published < receive.sequence) continue;
        unpack(receive, slot, published);
        receive.done = true;
        --pending_receives_;
        store(acknowledgement_of(rank_, receive.peer), receive.sequence);
        return k;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        index_t peer = -1;
        for (const Receive& receive : receives_)
          if (!receive.done) peer = receive.peer;
        failed_ = true;
        detail::fail("MPI shared memory: rank ", rank_, " timed out after ", timeout_seconds, " s waiting for a message from rank ", peer);
      }
      std::this_thread::yield();
    }
  }

  // Waits until every peer has consumed this batch's messages; then a new batch starts (the
  // segment is reused). Every receive posted in the batch must have been waited for.
  void wait_sends(double timeout_seconds) {
    auto deadline = deadline_after(timeout_seconds);
    if (pending_receives_ > 0)
      detail::fail("MPI shared memory: rank ", rank_, " ends a batch with ", pending_receives_, " receive(s) not waited for");
    for (index_t peer = 0; peer < size_; ++peer) {
      if (!sent_in_batch_[static_cast<std::size_t>(peer)]) continue;
      while (load(acknowledgement_of(peer, rank_)) < sent_[static_cast<std::size_t>(peer)]) {
        if (std::chrono::steady_clock::now() > deadline) {
          failed_ = true;
          detail::fail("MPI shared memory: rank ", rank_, " timed out after ", timeout_seconds, " s waiting for rank ", peer, " to receive a message");
        }
        std::this_thread::yield();
      }
    }
    std::fill(sent_in_batch_.begin(), sent_in_batch_.end(), 0);
    std::fill(received_in_batch_.begin(), received_in_batch_.end(), 0);
    receives_.clear();
    pending_receives_ = 0;
    used_ = 0;
  }

 private:
  // The message a sender offers one receiver (a cache line of its own: written by the sender,
  // polled by the receiver). Flags are atomics in memory shared between processes, which
  // lock-free atomics support (they are address-free).
  struct alignas(64) Slot {
    std::uint64_t sequence;  // messages published to this receiver so far
    std::uint64_t offset, bytes;
    std::int64_t tag;
  };
  struct alignas(64) Acknowledgement {
    std::uint64_t sequence;  // messages consumed from this sender so far
  };
  static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free, "shared-memory flags need lock-free (address-free) atomics");

  struct Receive {
    index_t peer;
    int tag;
    std::uint64_t sequence;  // the sender's sequence number of this message
    index_t bytes;
    std::vector<StridedRows<std::byte>> rows;
    bool done;
  };

  // Segment: size_ slots (by receiver), size_ acknowledgements (by sender), then the messages.
  index_t header_bytes() const { return size_ * static_cast<index_t>(sizeof(Slot) + sizeof(Acknowledgement)); }
  Slot& slot_of(index_t sender, index_t receiver) const {
    return reinterpret_cast<Slot*>(segment_of(sender))[receiver];
  }
  std::uint64_t& acknowledgement_of(index_t receiver, index_t sender) const {
    auto* acknowledgements = reinterpret_cast<Acknowledgement*>(segment_of(receiver) + size_ * static_cast<index_t>(sizeof(Slot)));
    return acknowledgements[sender].sequence;
  }
  std::byte* segment_of(index_t r) const { return segments_[static_cast<std::size_t>(r)]->data(); }
  std::byte* messages_of(index_t sender) const { return segment_of(sender) + header_bytes(); }
  static std::uint64_t load(const std::uint64_t& flag) {
    return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(flag)).load(std::memory_order_acquire);
  }
  static void store(std::uint64_t& flag, std::uint64_t value) { std::atomic_ref<std::uint64_t>(flag).store(value, std::memory_order_release); }

  void check(int rc, const char* call) const { detail::check_mpi(rc, call, rank_); }
  // Runs `step` (which throws Error) on this rank, then agrees over all ranks that none failed:
  // the failed rank throws its own error, the others one naming it.
  template <class F>
  void agreed_step(F&& step) {
    std::string failure = failure_of(step);
    if (!failure.empty()) failure = detail::concat("MpiSharedMemoryCommunicator: rank ", rank_, ": ", failure);
    throw_if_any_failed(failure, collectives_.all_max(failure_vote(failure, rank_)), "MpiSharedMemoryCommunicator",
                        "could not set up its shared memory");
  }
  void check_usable(index_t peer) const {
    if (failed_) detail::fail("MPI shared memory: rank ", rank_, " cannot use this communicator: an earlier wait failed; make a new communicator");
    if (peer < 0 || peer >= size_) detail::fail("MPI shared memory: rank ", rank_, " addresses rank ", peer, ", outside the communicator of ", size_, " ranks");
  }

  // Room for a `bytes` message to `peer` in this rank's segment, at a 64-byte boundary.
  std::byte* reserve(index_t bytes, index_t peer) {
    check_usable(peer);
    if (sent_in_batch_[static_cast<std::size_t>(peer)])
      detail::fail("MPI shared memory: rank ", rank_, " posted a second send to rank ", peer, " in one batch (one per peer; wait_sends first)");
    if (bytes > capacity_ - used_)
      detail::fail("MPI shared memory: rank ", rank_, "'s message of ", bytes, " bytes to rank ", peer, " does not fit its segment (", used_, " of ",
                   capacity_, " bytes used in this batch); keep a batch within staging_limit() (the engine does)");
    std::byte* at = messages_of(rank_) + used_;
    Slot& slot = slot_of(rank_, peer);
    slot.offset = static_cast<std::uint64_t>(used_);
    used_ = std::min(capacity_, (used_ + bytes + 63) / 64 * 64);
    return at;
  }
  void publish(index_t peer, index_t bytes, int tag) {
    Slot& slot = slot_of(rank_, peer);
    slot.bytes = static_cast<std::uint64_t>(bytes);
    slot.tag = tag;
    sent_in_batch_[static_cast<std::size_t>(peer)] = 1;
    store(slot.sequence, ++sent_[static_cast<std::size_t>(peer)]);
  }
  void unpack(const Receive& receive, const Slot& slot, std::uint64_t published) {
    if (published != receive.sequence || slot.tag != receive.tag || static_cast<index_t>(slot.bytes) != receive.bytes) {
      failed_ = true;
      detail::fail("MPI shared memory: rank ", rank_, " expected message ", receive.sequence, " of ", receive.bytes, " bytes with tag ", receive.tag,
                   " from rank ", receive.peer, "; it sent message ", published, " of ", slot.bytes, " bytes with tag ", slot.tag);
    }
    const std::byte* from = messages_of(receive.peer) + slot.offset;
    for (const StridedRows<std::byte>& block : receive.rows)
      if (block.row_bytes > 0)
        block.for_each_row([&](std::byte* row) {
          std::memcpy(row, from, static_cast<std::size_t>(block.row_bytes));
          from += block.row_bytes;
        });
  }

  MpiCommunicator collectives_;  // the duplicate communicator: set-up, agreements, errors returned
  index_t rank_, size_, capacity_;
  std::vector<std::unique_ptr<detail::SharedSegment>> segments_;  // every rank's segment, mapped here
  std::vector<std::uint64_t> sent_, received_;  // messages per peer so far (sequence numbers)
  std::vector<char> sent_in_batch_, received_in_batch_;
  std::vector<Receive> receives_;
  index_t pending_receives_ = 0;  // posted and not yet arrived
  index_t used_ = 0;  // message bytes of this batch in this rank's segment
  bool failed_ = false;
};

}  // namespace shardalg
