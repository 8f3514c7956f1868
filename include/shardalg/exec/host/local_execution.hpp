// execute_local: every rank's part of a model reshard plan run in this process, over buffers the
// caller owns (a framework's tensors, numpy arrays): nothing is copied into shardalg, and every
// byte moves once, from the source box straight into the destination box.
//
// The streams the engine sends between processes are the same boxes in the same order on both
// sides of a message (exec/rank_part.hpp), so here box k of what rank p sends rank r is put
// directly into box k of what r receives from p. Each destination rank is written by one thread
// only, so Partial contributions reduce without locks.
//
// Example: two ranks' fp32 tiles of a [4, 2] tensor Shard(0) -> Replicate:
//   ModelReshardPlan plan(src, dst);  // one tensor "w"
//   std::map<index_t, std::vector<SourceBuffer>> in{{0, {{a0, 16, DType::fp32}}}, {1, {{a1, 16, DType::fp32}}}};
//   std::map<index_t, std::vector<DestinationBuffer>> out{{0, {{b0, 32, DType::fp32}}}, {1, {{b1, 32, DType::fp32}}}};
//   execute_local(plan, in, out);  // b0 and b1 now hold the whole tensor
#pragma once

#include <algorithm>
#include <atomic>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "shardalg/exec/engine.hpp"

namespace shardalg {

using LocalSources = std::map<index_t, std::vector<SourceBuffer>>;
using LocalDestinations = std::map<index_t, std::vector<DestinationBuffer>>;

namespace detail {

// Destination memory must not overlap any other buffer (a source read after it was written, or
// two destinations writing one byte): Error naming both buffers.
inline void check_no_aliasing(const LocalSources& sources, const LocalDestinations& destinations) {
  struct Range {
    std::uintptr_t begin, end;
    index_t rank;
    std::size_t buffer;
    bool destination;
  };
  std::vector<Range> ranges;
  auto add = [&](const auto& by_rank, bool destination) {
    for (const auto& [rank, buffers] : by_rank)
      for (std::size_t b = 0; b < buffers.size(); ++b)
        if (buffers[b].bytes > 0) {
          auto begin = reinterpret_cast<std::uintptr_t>(buffers[b].data);
          ranges.push_back(Range{begin, begin + buffers[b].bytes, rank, b, destination});
        }
  };
  add(sources, false);
  add(destinations, true);
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  auto name = [](const Range& r) { return concat("rank ", r.rank, " ", r.destination ? "destination" : "source", " buffer ", r.buffer); };
  // Sorted by start: a range overlaps an earlier one exactly when it starts before the furthest end so far.
  std::size_t furthest = 0;
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[furthest].end && (ranges[i].destination || ranges[furthest].destination))
      fail("execute_local: ", name(ranges[furthest]), " and ", name(ranges[i]), " overlap in memory; destinations must not share memory with any other buffer");
    if (ranges[i].end > ranges[furthest].end) furthest = i;
  }
}

// A rank's buffers; `count` empty ones when none were given (a rank outside the layout holds
// nothing; for a rank inside it, the checks then name the missing buffer).
template <class Buffer>
std::vector<Buffer> buffers_for(const std::map<index_t, std::vector<Buffer>>& by_rank, index_t rank, std::size_t count) {
  auto it = by_rank.find(rank);
  return it == by_rank.end() ? std::vector<Buffer>(count) : it->second;
}

}  // namespace detail

// Every rank's part of a plan, prepared once and run over the caller's buffers as often as
// needed (a framework that reshards every step builds it once: run() then only checks buffers and
// moves bytes). Precondition: `plan` outlives it.
class LocalExecution {
 public:
  // Builds each rank's part with up to `threads` threads (0: one per core).
  explicit LocalExecution(const ModelReshardPlan& plan, unsigned threads = 1) : plan_(plan) {
    ranks_ = plan.source().ranks();
    ranks_.insert(ranks_.end(), plan.destination().ranks().begin(), plan.destination().ranks().end());
    std::sort(ranks_.begin(), ranks_.end());
    ranks_.erase(std::unique(ranks_.begin(), ranks_.end()), ranks_.end());
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    threads_ = std::min<unsigned>(threads, static_cast<unsigned>(std::max<std::size_t>(ranks_.size(), 1)));
    std::vector<std::optional<RankPart>> parts(ranks_.size());
    parallel(ranks_.size(), [&](std::size_t i) { parts[i].emplace(plan, ranks_[i]); });
    for (std::optional<RankPart>& part : parts) parts_.push_back(std::move(*part));
  }

  const ModelReshardPlan& plan() const { return plan_; }
  const std::vector<index_t>& ranks() const { return ranks_; }

  // Runs every rank's part from `sources` into `destinations` (per rank, one buffer per buffer of
  // the source / destination ModelLayout, as execute takes them; a rank outside a layout may be
  // left out). Every buffer of every rank is checked before any byte moves. Destination elements
  // no transfer writes (padding) keep their values. Errors: a missing or wrong-sized buffer, a
  // dtype other than the tensor's, buffers for a rank the layouts do not use, destinations
  // overlapping other buffers.
  ExecuteStats run(const LocalSources& sources, const LocalDestinations& destinations) const {
    auto check_ranks = [&](const auto& by_rank, const char* what) {
      for (const auto& entry : by_rank)
        if (!std::binary_search(ranks_.begin(), ranks_.end(), entry.first))
          detail::fail("execute_local: ", what, " buffers given for rank ", entry.first, ", which neither layout uses");
    };
    check_ranks(sources, "source");
    check_ranks(destinations, "destination");
    detail::check_no_aliasing(sources, destinations);
    std::vector<std::vector<SourceBuffer>> rank_sources(ranks_.size());
    std::vector<std::vector<DestinationBuffer>> rank_destinations(ranks_.size());
    for (std::size_t i = 0; i < ranks_.size(); ++i) {
      rank_sources[i] = detail::buffers_for(sources, ranks_[i], plan_.source().buffer_count());
      rank_destinations[i] = detail::buffers_for(destinations, ranks_[i], plan_.destination().buffer_count());
      detail::check_part(parts_[i], rank_sources[i], rank_destinations[i], 0);
    }
    auto index_of = [&](index_t rank) { return static_cast<std::size_t>(std::lower_bound(ranks_.begin(), ranks_.end(), rank) - ranks_.begin()); };
    // Each destination rank is written by one job only: Partial contributions reduce without locks.
    std::vector<ExecuteStats> stats(ranks_.size());
    parallel(ranks_.size(), [&](std::size_t i) {
      const RankPart& part = parts_[i];
      std::span<const DestinationBuffer> mine = rank_destinations[i];
      detail::fill_identities(plan_, part, mine);
      for (const LocalCopy& copy : part.local_copies())
        stats[i].bytes_local += detail::put_box(plan_, copy.from, rank_sources[i][copy.from.buffer].data, copy.to, mine[copy.to.buffer].data);
      for (const Message& in : part.receives()) {
        std::size_t peer = index_of(in.peer);
        const std::vector<Message>& peer_sends = parts_[peer].sends();
        auto out = std::find_if(peer_sends.begin(), peer_sends.end(), [&](const Message& m) { return m.peer == part.rank(); });
        if (out == peer_sends.end() || out->boxes.size() != in.boxes.size())
          detail::fail("execute_local: rank ", in.peer, "'s sends to rank ", part.rank(), " do not match its receives");  // a planner bug
        for (std::size_t k = 0; k < in.boxes.size(); ++k)
          stats[i].bytes_received += detail::put_box(plan_, out->boxes[k], rank_sources[peer][out->boxes[k].buffer].data, in.boxes[k],
                                                     mine[in.boxes[k].buffer].data);
      }
    });
    ExecuteStats total;
    for (const ExecuteStats& s : stats) {
      total.bytes_local += s.bytes_local;
      total.bytes_received += s.bytes_received;
    }
    total.bytes_sent = total.bytes_received;
    return total;
  }

 private:
  // Runs job(i) for i in [0, count) on the threads; rethrows the first error.
  template <class Job>
  void parallel(std::size_t count, Job&& job) const {
    std::atomic<std::size_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto worker = [&] {
      for (std::size_t i; (i = next++) < count;) {
        try {
          job(i);
        } catch (...) {
          std::lock_guard lock(error_mutex);
          if (!error) error = std::current_exception();
        }
      }
    };
    {
      std::vector<std::jthread> pool;
      for (unsigned t = 1; t < threads_; ++t) pool.emplace_back(worker);
      worker();
    }
    if (error) std::rethrow_exception(error);
  }

  const ModelReshardPlan& plan_;
  std::vector<index_t> ranks_;
  std::vector<RankPart> parts_;
  unsigned threads_ = 1;
};

// Runs every rank's part of `plan` once (LocalExecution's checks and run), with up to `threads`
// threads (0: one per core).
inline ExecuteStats execute_local(const ModelReshardPlan& plan, const LocalSources& sources, const LocalDestinations& destinations,
                                  unsigned threads = 1) {
  return LocalExecution(plan, threads).run(sources, destinations);
}

}  // namespace shardalg
