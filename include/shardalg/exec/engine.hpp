// The engine: runs one rank's part of a model reshard plan through any communicator (MPI, NCCL,
// or a test double), on raw buffers.
//
// Order of work, per round: post receives, pack and post sends, do the local copies (first round,
// while messages fly), unpack each receive as it arrives (copy, or reduce for Partial sources),
// wait for the sends. A message that is one contiguous range of a buffer on its side (FSDP rows,
// ZeRO windows) is sent from, or received into, the buffer itself, without staging. Messages
// longer than the staging limit are cut into pieces, one per round, at multiples of 8 bytes (see
// RankPart). Rounds are the same on every rank, so ranks never wait on each other in a cycle.
//
// Before anything is sent, every rank checks its buffers (count, size, element type) and every box
// against its buffer's bounds, then all ranks agree (one all-max) that all checks passed: a rank
// with a bad buffer fails with a message naming the buffer, and the others fail with a message
// naming that rank, before any communication. execute does all this per call; PreparedReshard
// checks and agrees once and then runs as often as the caller likes (a reshard every step).
//
// Communicator concept (one object per rank; see MpiCommunicator):
//   index_t rank();
//   void all_max(std::span<index_t>, double timeout_s); // element-wise max over all ranks, in place
//   void post_receive(std::byte*, std::size_t bytes, index_t peer, int tag);
//   void post_send(const std::byte*, std::size_t bytes, index_t peer, int tag);
//   std::size_t wait_receive(double timeout_s);     // a completed receive's index in posting order
//   void wait_sends(double timeout_s);              // all posted sends done; starts a new batch
// Waits are bounded: a peer that never answers gives a timeout error naming it.
// A StridedCommunicator also takes a message as rows in place (strided_rows.hpp):
//   void post_receive_strided(std::span<const StridedRows<std::byte>>, index_t peer, int tag);
//   void post_send_strided(std::span<const StridedRows<const std::byte>>, index_t peer, int tag);
// and the engine then sends and receives non-contiguous messages without staging them (MPI:
// derived datatypes), unless ExecuteOptions::in_place_messages is false.
// A BoundedCommunicator stages messages in memory of its own (MpiSharedMemoryCommunicator's
// segment) and says how many bytes one batch of sends may hold:
//   index_t staging_limit() const;
// and the engine keeps each round's sends within it (cutting messages into rounds).
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shardalg/core/deadline.hpp"
#include "shardalg/exec/agreement.hpp"
#include "shardalg/exec/element_ops.hpp"
#include "shardalg/exec/rank_part.hpp"
#include "shardalg/exec/strided_rows.hpp"

namespace shardalg {

// One of a rank's buffers (ModelLayout::buffer_of: a tile, or a partition shared by the tensors of
// a flat layout) as raw memory, with the element type it holds (raw bytes unless stated; the
// checks compare it with the plan's).
template <class Byte>
struct BasicBuffer {
  Byte* data = nullptr;
  std::size_t bytes = 0;
  DType dtype = DType::bytes;
};
using SourceBuffer = BasicBuffer<const std::byte>;
using DestinationBuffer = BasicBuffer<std::byte>;

// Staging memory kept between calls of execute: a framework that reshards repeatedly passes the
// same arena, so staging is allocated (and its pages faulted in) once, not on every call.
struct StagingArena {
  std::vector<std::vector<std::byte>> receives, sends;  // per message of the rank's part
};

struct ExecuteOptions {
  // Staging bytes a rank may use for packed messages (0: no limit: every message in one round).
  // Ranks may differ; the smallest wins.
  index_t memory_limit = 0;
  double timeout_seconds = 300;
  int tag = 0x5a17;
  // Called after each round's unpacked part of a message: (bytes received so far, bytes to
  // receive in all).
  std::function<void(index_t, index_t)> progress;
  // Staging to reuse (none: allocated for this call and freed when it returns).
  StagingArena* arena = nullptr;
  // Move non-contiguous messages as rows in place when the communicator can (a
  // StridedCommunicator; MPI: derived datatypes): no staging memory and no packing, 2.4x or
  // more faster than packing at 8 ranks (docs/benchmarks.md). false: pack into staging. The same on
  // every rank. Reduced messages are always staged.
  bool in_place_messages = true;
};

struct ExecuteStats {
  index_t bytes_sent = 0, bytes_received = 0, bytes_local = 0;
  index_t rounds = 0;
  index_t peak_staging = 0;  // bytes of staging in use at once, at most
};

template <class C>
concept Communicator = requires(C& c, const C& cc, std::byte* in, const std::byte* out, std::size_t n, index_t peer, int tag, double s) {
  { cc.rank() } -> std::convertible_to<index_t>;
  c.all_max(std::span<index_t>(), s);
  c.post_receive(in, n, peer, tag);
  c.post_send(out, n, peer, tag);
  { c.wait_receive(s) } -> std::convertible_to<std::size_t>;
  c.wait_sends(s);
};

template <class C>
concept StridedCommunicator = Communicator<C> && requires(C& c, std::span<const StridedRows<std::byte>> in,
                                                          std::span<const StridedRows<const std::byte>> out, index_t peer, int tag) {
  c.post_receive_strided(in, peer, tag);
  c.post_send_strided(out, peer, tag);
};

template <class C>
concept BoundedCommunicator = Communicator<C> && requires(const C& c) {
  { c.staging_limit() } -> std::convertible_to<index_t>;
};

namespace detail {

// Writes `length` bytes into a destination box: a copy, or a reduction for Partial sources.
inline void put_bytes(const ModelReshardPlan& plan, const BoxRows& box, std::byte* target, const std::byte* bytes, index_t length) {
  const ReshardPlan& tensor_plan = plan.tensor_plan(box.tensor);
  if (tensor_plan.reduce_op())
    reduce_bytes(plan.source()[box.tensor].dtype, *tensor_plan.reduce_op(), box.contributors, target, bytes, length / box.element_bytes);
  else
    std::memcpy(target, bytes, static_cast<std::size_t>(length));
}

// Puts box `from` of buffer memory `source` into box `to` of `destination`: the same global box,
// whose rows each side may have merged differently (merge_dense_rows), so the two row walks
// advance independently and each step moves the longest run both sides hold contiguously.
// Returns its bytes.
inline index_t put_box(const ModelReshardPlan& plan, const BoxRows& from, const std::byte* source, const BoxRows& to, std::byte* destination) {
  index_t total = from.bytes();
  if (total == 0) return 0;
  RowCursor read(from, 0), write(to, 0);
  index_t read_left = from.row_bytes, write_left = to.row_bytes;  // bytes left in the current rows
  const std::byte* in = source + read.offset();
  std::byte* out = destination + write.offset();
  for (index_t left = total;;) {
    index_t length = std::min(read_left, write_left);
    put_bytes(plan, to, out, in, length);
    if ((left -= length) == 0) break;
    in += length;
    out += length;
    if ((read_left -= length) == 0) {
      read.next();
      in = source + read.offset();
      read_left = from.row_bytes;
    }
    if ((write_left -= length) == 0) {
      write.next();
      out = destination + write.offset();
      write_left = to.row_bytes;
    }
  }
  return total;
}

// Reductions start from the identity in every destination element of a Partial plan.
inline void fill_identities(const ModelReshardPlan& plan, const RankPart& part, std::span<const DestinationBuffer> destinations) {
  const ModelLayout& dst = plan.destination();
  for (const BoxRows& box : part.identity_boxes()) {
    DType dtype = dst[plan.destination_index(box.tensor)].dtype;
    RowCursor row(box, 0);
    for (index_t r = 0; r < box.rows(); ++r, row.next())
      fill_identity(dtype, *plan.tensor_plan(box.tensor).reduce_op(), destinations[box.buffer].data + row.offset(), box.row_bytes / box.element_bytes);
  }
}

// Stream bytes [begin, end) of message m as rows in place in `buffers`, appended to `rows`.
template <class Byte>
void strided_rows_of(const Message& m, index_t begin, index_t end, std::span<const BasicBuffer<Byte>> buffers, std::vector<StridedRows<Byte>>& rows) {
  m.for_each_box(begin, end, [&](const BoxRows& box, index_t from, index_t to, index_t) {
    for_each_stream_block(box, from, to, [&](index_t at, index_t, const Dims& shape, index_t row_bytes) {
      rows.push_back(StridedRows<Byte>{buffers[box.buffer].data + at, shape, shape.empty() ? Dims{} : box.row_strides, row_bytes});
    });
  });
}

// Most bytes of one message moved in one round (MPI counts are int; NCCL prefers moderate sizes).
inline constexpr index_t max_round_bytes = index_t{1} << 30;

// Every check of one rank's buffers against its part of the plan (see execute): as many buffers
// as the layout has, each of the size and element type its tensors need, and every byte the part
// touches inside its buffer. Throws the first failure, naming the buffer by its first tensor.
template <class Byte>
void check_needs(const std::vector<BufferNeed>& needs, std::span<const BasicBuffer<Byte>> buffers, index_t rank, std::string_view what) {
  if (buffers.size() != needs.size()) fail("execute: rank ", rank, " gave ", buffers.size(), " ", what, " buffers; the layout has ", needs.size());
  for (std::size_t b = 0; b < needs.size(); ++b) {
    const BufferNeed& need = needs[b];
    const BasicBuffer<Byte>& buffer = buffers[b];
    // The dtype first: a buffer of the wrong type usually has the wrong size too, and its type is the news.
    if (need.bytes > 0 && buffer.bytes > 0 && buffer.dtype != need.dtype)
      fail("execute: rank ", rank, " ", what, " buffer ", b, " (tensor '", need.tensor, "') holds ", buffer.dtype, "; the plan needs ", need.dtype);
    if (static_cast<index_t>(buffer.bytes) != need.bytes)
      fail("execute: rank ", rank, " ", what, " buffer ", b, " (tensor '", need.tensor, "') has ", buffer.bytes, " bytes; the plan needs ", need.bytes);
    if (need.bytes > 0 && buffer.data == nullptr) fail("execute: rank ", rank, " ", what, " buffer ", b, " is null");
    if (need.touched_end > need.bytes)  // a planner bug, caught before it writes out of bounds
      fail("execute: rank ", rank, " ", what, " buffer ", b, " of ", buffer.bytes, " bytes is too small for bytes up to ", need.touched_end, " of the plan");
  }
}

inline void check_part(const RankPart& part, std::span<const SourceBuffer> sources,
                       std::span<const DestinationBuffer> destinations, index_t memory_limit) {
  check_needs(part.source_needs(), sources, part.rank(), "source");
  check_needs(part.destination_needs(), destinations, part.rank(), "destination");
  if (memory_limit < 0) fail("execute: memory limit ", memory_limit, " is negative");
}

// What the ranks agree on before a reshard, in one all-max: each proposes whether it failed its
// checks (its rank, or -1), its peers, its longest message, its memory limit (negated, so the
// smallest wins; the lowest value when it has none), its send peers, and its communicator's
// staging limit (a BoundedCommunicator's, negated likewise).
class Agreement {
 public:
  static constexpr std::size_t size = 6;
  using Values = std::array<index_t, size>;

  static Values propose(const RankPart& part, index_t memory_limit, bool failed, index_t staging_limit = 0) {
    auto smallest_wins = [](index_t limit) { return limit > 0 ? -limit : std::numeric_limits<index_t>::min(); };
    return {failed ? part.rank() : -1, static_cast<index_t>(part.sends().size() + part.receives().size()), part.longest_message(),
            smallest_wins(memory_limit), static_cast<index_t>(part.sends().size()), smallest_wins(staging_limit)};
  }
  explicit Agreement(const Values& maxima) : maxima_(maxima) {}

  // Runs this rank's `checks` (which throw Error), then the all-max (`all_max(span)`), so that
  // every rank learns whether any failed before anything moves: this rank throws its own
  // failure; the others throw naming the failed rank (`who`: the executor, for the message).
  template <class Checks, class AllMax>
  static Agreement reach(const RankPart& part, index_t memory_limit, std::string_view who, Checks&& checks, AllMax&& all_max,
                         index_t staging_limit = 0) {
    std::string failure = failure_of(checks);
    Values proposal = propose(part, memory_limit, !failure.empty(), staging_limit);
    all_max(std::span<index_t>(proposal));
    throw_if_any_failed(failure, proposal[0], who);
    return Agreement(proposal);
  }

  // The bytes of each message moved per round: the longest message anywhere, at most
  // max_round_bytes, and at most the smallest memory limit over the most peers any rank has
  // (staging for its sends and receives) and the smallest staging limit over the most send peers
  // any rank has (the communicator stages only sends); rounded down to a multiple of 8. Error
  // when a limit leaves less than 8 bytes per message.
  index_t round_bytes() const {
    index_t bytes = std::min(max_round_bytes, round_up_8(std::max<index_t>(8, maxima_[2])));
    auto within = [&](index_t negated_limit, index_t peers, const char* what) {
      if (negated_limit == std::numeric_limits<index_t>::min()) return;
      index_t limit = -negated_limit;
      peers = std::max<index_t>(1, peers);
      bytes = std::min(bytes, limit / peers / 8 * 8);
      if (bytes < 8) fail("execute: ", what, " ", limit, " leaves less than 8 bytes per message for ", peers, " peers; allow at least ", 8 * peers);
    };
    within(maxima_[3], maxima_[1], "memory limit");
    within(maxima_[5], maxima_[4], "the communicator's staging limit");
    return bytes;
  }

 private:
  Values maxima_;
};

}  // namespace detail

// One rank's part of a reshard, checked and agreed once, run any number of times: a framework
// that moves the same buffers every step (weights from the training layout to the inference
// layout, say) prepares once and calls run() each step, without the per-call checks and all-max
// of execute (one collective; skipping it made 8-rank reshards on 2 cores about 8% faster,
// docs/benchmarks.md).
//
// Pre: `plan`, `part`, `comm` and the buffers' memory outlive the object; the buffers keep their
// addresses and sizes (their contents may change between runs; that is the point).
// Construction is collective (every rank of the communicator constructs, as for execute): it runs
// execute's checks and agreement and throws what execute would, before any data moves.
// run() moves the bytes the source buffers hold now; every rank calls it the same number of times.
//
// Example (every rank, each step after the optimizer):
//   PreparedReshard reshard(plan, part, sources, destinations, comm, options);  // once
//   for (;;) { train_step(); reshard.run(); serve(); }
template <Communicator C>
class PreparedReshard {
 public:
  PreparedReshard(const ModelReshardPlan& plan, const RankPart& part, std::span<const SourceBuffer> sources,
                  std::span<const DestinationBuffer> destinations, C& comm, ExecuteOptions options = {})
      : plan_(plan),
        part_(part),
        comm_(comm),
        options_(std::move(options)),
        sources_(sources.begin(), sources.end()),
        destinations_(destinations.begin(), destinations.end()) {
    // 0. The bound of every wait, the agreement's included: a bad one fails at once, on this rank.
    checked_timeout(options_.timeout_seconds);
    // 1. Local checks, then agreement that every rank passed, and on the round size (within the
    // memory limit, and the communicator's own staging when it has a bound).
    index_t staging_limit = 0;
    if constexpr (BoundedCommunicator<C>) staging_limit = comm.staging_limit();
    detail::Agreement agreed = detail::Agreement::reach(
        part, options_.memory_limit, "execute",
        [&] {
          if (comm.rank() != part.rank()) detail::fail("execute: the communicator's rank ", comm.rank(), " is not the part's rank ", part.rank());
          detail::check_part(part, sources, destinations, options_.memory_limit);
        },
        [&](std::span<index_t> values) { comm.all_max(values, options_.timeout_seconds); }, staging_limit);
    round_bytes_ = agreed.round_bytes();
    rounds_ = part.rounds(round_bytes_);
    // 2. Whether each message moves in place on both sides (no staging): contiguous, or strided
    // rows. Sender and receiver decide alike (the same boxes; in_place_messages the same on every
    // rank), so both move the boxes' bytes, or both the padded stream. Reduced messages are staged.
    receive_in_place_ = moves_in_place(part.receives());
    send_in_place_ = moves_in_place(part.sends());
    for (const Message& m : part.receives()) to_receive_ += m.bytes;
  }

  // Runs the reshard once. Errors: communication errors and timeouts (bounded waits naming the
  // peer). On an error destinations may be partly written, and messages of the failed run may
  // still be pending in the communicator: later runs refuse to start (make a new communicator
  // and a new PreparedReshard).
  ExecuteStats run() {
    if (failed_) detail::fail("execute: a previous run of this prepared reshard failed; its messages may still be pending in the communicator");
    failed_ = true;
    ExecuteStats stats = run_rounds();
    failed_ = false;
    return stats;
  }

 private:
  static constexpr bool strided = StridedCommunicator<C>;

  // run()'s work: identity fills, then the rounds.
  ExecuteStats run_rounds() {
    detail::fill_identities(plan_, part_, std::span<const DestinationBuffer>(destinations_));
    // Rounds: bytes [j * round_bytes, (j + 1) * round_bytes) of every message in round j.
    ExecuteStats stats;
    stats.rounds = rounds_;
    StagingArena& arena = options_.arena ? *options_.arena : arena_;
    if (arena.receives.size() < part_.receives().size()) arena.receives.resize(part_.receives().size());
    if (arena.sends.size() < part_.sends().size()) arena.sends.resize(part_.sends().size());
    index_t received = 0;
    for (index_t round = 0; round < std::max<index_t>(rounds_, 1); ++round) {
      index_t begin = round * round_bytes_;
      index_t staging = post_receives(begin, arena.receives) + post_sends(begin, arena.sends, stats);
      stats.peak_staging = std::max(stats.peak_staging, staging);
      if (round == 0) stats.bytes_local = local_copies();  // while messages fly
      for (std::size_t done = 0; done < posted_.size(); ++done) {
        std::size_t index = comm_.wait_receive(options_.timeout_seconds);
        if (index >= posted_.size())
          detail::fail("execute: the communicator reported receive ", index, " of ", posted_.size(), " posted in this round; was it left with pending messages?");
        std::size_t k = posted_[index];
        const Message& m = part_.receives()[k];
        index_t end = std::min(m.bytes, begin + round_bytes_);
        if (!receive_in_place_[k])
          m.for_each_run(begin, end, [&](const BoxRows& box, index_t at, index_t stream, index_t length) {
            detail::put_bytes(plan_, box, destinations_[box.buffer].data + at, arena.receives[k].data() + (stream - begin), length);
          });
        received += end - begin;
        stats.bytes_received += end - begin;
        if (options_.progress) options_.progress(received, to_receive_);
      }
      comm_.wait_sends(options_.timeout_seconds);
    }
    return stats;
  }

  std::vector<char> moves_in_place(const std::vector<Message>& messages) const {
    std::vector<char> result;
    for (const Message& m : messages) {
      bool reduced = false;
      for (const BoxRows& box : m.boxes) reduced = reduced || plan_.tensor_plan(box.tensor).reduce_op().has_value();
      result.push_back(!reduced && (m.contiguous() || (strided && options_.in_place_messages)));
    }
    return result;
  }

  // Posts this round's receives (from stream byte `begin`); returns the staging bytes they use.
  index_t post_receives(index_t begin, std::vector<std::vector<std::byte>>& in) {
    index_t staging = 0;
    posted_.clear();
    for (std::size_t k = 0; k < part_.receives().size(); ++k) {
      const Message& m = part_.receives()[k];
      if (begin >= m.bytes) continue;
      auto length = static_cast<std::size_t>(std::min(round_bytes_, m.bytes - begin));
      const BoxRows* direct = m.contiguous();
      if (receive_in_place_[k] && direct) {  // straight into the destination
        comm_.post_receive(destinations_[direct->buffer].data + direct->base + begin, length, m.peer, options_.tag);
      } else if (receive_in_place_[k]) {
        if constexpr (strided) {
          receive_rows_.clear();
          detail::strided_rows_of(m, begin, begin + static_cast<index_t>(length), std::span<const DestinationBuffer>(destinations_), receive_rows_);
          comm_.post_receive_strided(std::span<const StridedRows<std::byte>>(receive_rows_), m.peer, options_.tag);
        }
      } else {
        if (in[k].size() < length) in[k].resize(length);
        staging += static_cast<index_t>(length);
        comm_.post_receive(in[k].data(), length, m.peer, options_.tag);
      }
      posted_.push_back(k);
    }
    return staging;
  }

  // Packs (where needed) and posts this round's sends; returns the staging bytes they use.
  index_t post_sends(index_t begin, std::vector<std::vector<std::byte>>& out, ExecuteStats& stats) {
    index_t staging = 0;
    for (std::size_t k = 0; k < part_.sends().size(); ++k) {
      const Message& m = part_.sends()[k];
      if (begin >= m.bytes) continue;
      index_t end = std::min(m.bytes, begin + round_bytes_);
      stats.bytes_sent += end - begin;
      if (const BoxRows* direct = m.contiguous()) {  // straight from the source
        comm_.post_send(sources_[direct->buffer].data + direct->base + begin, static_cast<std::size_t>(end - begin), m.peer, options_.tag);
        continue;
      }
      if constexpr (strided) {
        if (send_in_place_[k]) {  // rows in place
          send_rows_.clear();
          detail::strided_rows_of(m, begin, end, std::span<const SourceBuffer>(sources_), send_rows_);
          comm_.post_send_strided(std::span<const StridedRows<const std::byte>>(send_rows_), m.peer, options_.tag);
          continue;
        }
      }
      if (out[k].size() < static_cast<std::size_t>(end - begin)) out[k].resize(static_cast<std::size_t>(end - begin));
      m.for_each_run(begin, end, [&](const BoxRows& box, index_t at, index_t stream, index_t length) {
        std::memcpy(out[k].data() + (stream - begin), sources_[box.buffer].data + at, static_cast<std::size_t>(length));
      });
      staging += end - begin;
      comm_.post_send(out[k].data(), static_cast<std::size_t>(end - begin), m.peer, options_.tag);
    }
    return staging;
  }

  // Copies (or reduces) the boxes whose source and destination are both on this rank; returns
  // their bytes.
  index_t local_copies() const {
    index_t bytes = 0;
    for (const LocalCopy& copy : part_.local_copies())
      bytes += detail::put_box(plan_, copy.from, sources_[copy.from.buffer].data, copy.to, destinations_[copy.to.buffer].data);
    return bytes;
  }

  const ModelReshardPlan& plan_;
  const RankPart& part_;
  C& comm_;
  ExecuteOptions options_;
  std::vector<SourceBuffer> sources_;
  std::vector<DestinationBuffer> destinations_;
  index_t round_bytes_ = 0, rounds_ = 0, to_receive_ = 0;
  std::vector<char> receive_in_place_, send_in_place_;
  StagingArena arena_;  // when options.arena is not given: kept between runs
  bool failed_ = false;  // a run threw
  // Per round (reused): receive message index per posted receive; a message's rows in place.
  std::vector<std::size_t> posted_;
  std::vector<StridedRows<std::byte>> receive_rows_;
  std::vector<StridedRows<const std::byte>> send_rows_;
};

// Runs `part` (this rank's part of `plan`) once from `sources` into `destinations` (one buffer
// per buffer of the source / destination ModelLayout; a rank outside a layout passes empty
// buffers): PreparedReshard's checks and agreement, then one run. Destination elements no
// transfer writes (padding, elements of other plans) are left as they are. Errors: bad buffers
// on any rank (before any communication), communication errors and timeouts.
template <Communicator C>
ExecuteStats execute(const ModelReshardPlan& plan, const RankPart& part, std::span<const SourceBuffer> sources,
                     std::span<const DestinationBuffer> destinations, C& comm, const ExecuteOptions& options = {}) {
  return PreparedReshard<C>(plan, part, sources, destinations, comm, options).run();
}

}  // namespace shardalg
