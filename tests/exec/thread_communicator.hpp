// An in-process world of ranks, one thread each, for the engine's communicator concept (a test
// double: the engine's laws checked without MPI, under the sanitizers too). A send copies its
// bytes into the receiver's mailbox at once, so sends complete immediately; receives match
// messages per (sender, tag) in posting order, as MPI matches them, and a size mismatch is an
// error. all_max reduces over all ranks. With `Strided`, the communicator also takes messages as
// rows in place (a StridedCommunicator), gathering and scattering the rows itself.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <span>
#include <thread>
#include <tuple>
#include <vector>

#include "shardalg/core/deadline.hpp"
#include "shardalg/core/error.hpp"
#include "shardalg/exec/rank_part.hpp"
#include "shardalg/exec/strided_rows.hpp"

namespace shardalg::testing {

class ThreadWorld {
 public:
  explicit ThreadWorld(index_t size) : size_(size) {}
  index_t size() const { return size_; }

  // Runs body(rank) on one thread per rank; rethrows the lowest rank's exception, if any.
  template <class F>
  void run(F&& body) {
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(size_));
    std::vector<std::thread> threads;
    for (index_t r = 0; r < size_; ++r)
      threads.emplace_back([&, r] {
        try {
          body(r);
        } catch (...) {
          errors[static_cast<std::size_t>(r)] = std::current_exception();
        }
      });
    for (std::thread& t : threads) t.join();
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
  }

 private:
  template <bool>
  friend class ThreadCommunicator;
  using Key = std::tuple<index_t, index_t, int>;  // sender, receiver, tag

  index_t size_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<Key, std::deque<std::vector<std::byte>>> mail_;
  std::vector<index_t> reducing_, reduced_;
  index_t arrived_ = 0, generation_ = 0;
};

template <bool Strided>
class ThreadCommunicator {
 public:
  ThreadCommunicator(ThreadWorld& world, index_t rank) : world_(world), rank_(rank) {}

  index_t rank() const { return rank_; }

  void all_max(std::span<index_t> values, double timeout_seconds) {
    std::unique_lock lock(world_.mutex_);
    if (world_.arrived_ == 0) {
      world_.reducing_.assign(values.begin(), values.end());
    } else {
      for (std::size_t i = 0; i < values.size(); ++i) world_.reducing_[i] = std::max(world_.reducing_[i], values[i]);
    }
    if (++world_.arrived_ == world_.size_) {
      world_.reduced_ = world_.reducing_;
      world_.arrived_ = 0;
      ++world_.generation_;
      world_.changed_.notify_all();
    } else {
      index_t generation = world_.generation_;
      if (!world_.changed_.wait_until(lock, deadline_after(timeout_seconds), [&] { return world_.generation_ != generation; }))
        detail::fail("thread communicator: rank ", rank_, " waited ", timeout_seconds, " s for the others in all_max");
    }
    std::copy(world_.reduced_.begin(), world_.reduced_.end(), values.begin());
  }

  void post_receive(std::byte* data, std::size_t bytes, index_t peer, int tag) {
    receives_.push_back(Receive{peer, tag, {StridedRows<std::byte>{data, {}, {}, static_cast<index_t>(bytes)}}, static_cast<index_t>(bytes)});
  }
  void post_send(const std::byte* data, std::size_t bytes, index_t peer, int tag) {
    deliver(std::vector<std::byte>(data, data + bytes), peer, tag);
  }
  void post_receive_strided(std::span<const StridedRows<std::byte>> rows, index_t peer, int tag)
    requires Strided
  {
    receives_.push_back(Receive{peer, tag, {rows.begin(), rows.end()}, message_bytes(rows)});
  }
  void post_send_strided(std::span<const StridedRows<const std::byte>> rows, index_t peer, int tag)
    requires Strided
  {
    std::vector<std::byte> message;
    for (const StridedRows<const std::byte>& block : rows)
      block.for_each_row([&](const std::byte* row) { message.insert(message.end(), row, row + block.row_bytes); });
    deliver(std::move(message), peer, tag);
  }

  // A completed receive's index in posting order: the first pending receive (per sender and
  // tag) whose message has arrived.
  std::size_t wait_receive(double timeout_seconds) {
    std::unique_lock lock(world_.mutex_);
    auto deadline = deadline_after(timeout_seconds);
    while (true) {
      for (std::size_t i = 0; i < receives_.size(); ++i) {
        Receive& receive = receives_[i];
        if (receive.done || earlier_pending(i)) continue;
        auto& box = world_.mail_[{receive.peer, rank_, receive.tag}];
        if (box.empty()) continue;
        std::vector<std::byte> message = std::move(box.front());
        box.pop_front();
        if (static_cast<index_t>(message.size()) != receive.bytes)
          detail::fail("thread communicator: rank ", rank_, " expected ", receive.bytes, " bytes from rank ", receive.peer, ", got ", message.size());
        const std::byte* at = message.data();
        for (const StridedRows<std::byte>& block : receive.rows)
          block.for_each_row([&](std::byte* row) {
            std::memcpy(row, at, static_cast<std::size_t>(block.row_bytes));
            at += block.row_bytes;
          });
        receive.done = true;
        return i;
      }
      if (world_.changed_.wait_until(lock, deadline) == std::cv_status::timeout)
        detail::fail("thread communicator: rank ", rank_, " timed out waiting for a message");
    }
  }

  // Sends completed when posted; a new batch starts, and every receive of this one must be done.
  void wait_sends(double) {
    for (const Receive& receive : receives_)
      if (!receive.done) detail::fail("thread communicator: rank ", rank_, " started a new batch with a receive from rank ", receive.peer, " pending");
    receives_.clear();
  }

 private:
  struct Receive {
    index_t peer;
    int tag;
    std::vector<StridedRows<std::byte>> rows;
    index_t bytes;
    bool done = false;
  };

  void deliver(std::vector<std::byte> message, index_t peer, int tag) {
    if (peer < 0 || peer >= world_.size_) detail::fail("thread communicator: rank ", rank_, " sends to rank ", peer, " of ", world_.size_);
    std::lock_guard lock(world_.mutex_);
    world_.mail_[{rank_, peer, tag}].push_back(std::move(message));
    world_.changed_.notify_all();
  }
  bool earlier_pending(std::size_t i) const {
    for (std::size_t j = 0; j < i; ++j)
      if (!receives_[j].done && receives_[j].peer == receives_[i].peer && receives_[j].tag == receives_[i].tag) return true;
    return false;
  }

  ThreadWorld& world_;
  index_t rank_;
  std::vector<Receive> receives_;
};

// A ThreadCommunicator that stages sends in memory of its own, like MpiSharedMemoryCommunicator
// (a BoundedCommunicator): one batch's sends must fit in its staging limit, or the send fails.
template <bool Strided>
class BoundedThreadCommunicator : public ThreadCommunicator<Strided> {
  using Base = ThreadCommunicator<Strided>;

 public:
  BoundedThreadCommunicator(ThreadWorld& world, index_t rank, index_t limit) : Base(world, rank), limit_(limit) {}

  index_t staging_limit() const { return limit_; }
  void post_send(const std::byte* data, std::size_t bytes, index_t peer, int tag) {
    stage(static_cast<index_t>(bytes));
    Base::post_send(data, bytes, peer, tag);
  }
  void post_send_strided(std::span<const StridedRows<const std::byte>> rows, index_t peer, int tag)
    requires Strided
  {
    stage(message_bytes(rows));
    Base::post_send_strided(rows, peer, tag);
  }
  void wait_sends(double timeout_seconds) {
    Base::wait_sends(timeout_seconds);
    staged_ = 0;
  }

 private:
  void stage(index_t bytes) {
    staged_ += bytes;
    if (staged_ > limit_) detail::fail("bounded thread communicator: rank ", this->rank(), "'s sends of one batch take ", staged_, " bytes, over its staging limit ", limit_);
  }

  index_t limit_, staged_ = 0;
};

}  // namespace shardalg::testing
