// Loading a rank's part of a checkpoint straight into its buffers: the rank's read items, on
// threads, each reading contiguous runs of a saved chunk into place (strided runs through a
// bounded bounce buffer per thread), buffer sizes checked before any byte is read.
//
// Example: the rank-1 part of a DCP checkpoint under "fsdp dp=3":
//   Checkpoint ck = Checkpoint::open("ck");
//   ModelLayout want = layout_model(checkpoint_model(ck.layout()), "fsdp dp=3");
//   CheckpointReadPlanner planner(ck.layout(), want);
//   RankReadPlan plan = planner.plan(1, /*share_replicas=*/false);
//   load_reads(ck, planner, plan, buffers);   // buffers[b]: the rank's buffer b of `want`
#pragma once

#include <algorithm>
#include <exception>
#include <span>
#include <thread>
#include <vector>

#include "shardalg/storage/checkpoint_files.hpp"
#include "shardalg/storage/checkpoint_read_plan.hpp"

namespace shardalg {

struct LoadOptions {
  unsigned threads = 4;
  std::uint64_t memory_limit = std::uint64_t{256} << 20;  // bounce buffers, all threads together
};

// The bytes each of a rank's buffers must have under the planner's destination, by buffer index.
inline std::vector<std::uint64_t> rank_buffer_bytes(const CheckpointReadPlanner& planner, index_t rank) {
  const ModelLayout& layout = planner.destination();
  std::vector<std::uint64_t> bytes(layout.buffer_count(), 0);
  for (std::size_t d = 0; d < layout.size(); ++d)
    bytes[layout.buffer_of(d)] = static_cast<std::uint64_t>(checked_mul(layout[d].layout.buffer_elements(rank), element_bytes(layout[d].dtype)));
  return bytes;
}

// Performs `plan.reads` (a plan of `planner` for plan.rank) into `buffers` (one per buffer of the
// destination). Forwards are not performed here (see RankReadPlan; a rank loading alone plans
// with share_replicas = false).
// Errors: a buffer count or size that differs from the destination's (naming the buffer and
// both sizes, before reading), unreadable or inconsistent files (FormatError naming them).
inline void load_reads(const Checkpoint& checkpoint, const CheckpointReadPlanner& planner, const RankReadPlan& plan,
                       std::span<const std::span<std::byte>> buffers, const LoadOptions& options = {}) {
  const ModelLayout& layout = planner.destination();
  std::vector<std::uint64_t> need = rank_buffer_bytes(planner, plan.rank);
  if (buffers.size() != need.size()) detail::fail("load: ", buffers.size(), " buffers given; the destination has ", need.size(), " per rank");
  for (std::size_t b = 0; b < need.size(); ++b)
    if (buffers[b].size() != need[b]) detail::fail("load: rank ", plan.rank, " buffer ", b, " has ", buffers[b].size(), " bytes; it needs ", need[b]);
  // Per destination tensor: the rank's pieces and addressing; checkpoint tensor -> destination tensor.
  std::vector<std::size_t> destination_of(checkpoint.layout().tensors.size(), 0);
  std::vector<std::vector<Piece>> pieces(layout.size());
  std::vector<TensorLayout::Addressing> addressing;
  for (std::size_t d = 0; d < layout.size(); ++d) {
    destination_of[planner.checkpoint_tensor(d)] = d;
    pieces[d] = layout[d].layout.pieces(plan.rank);
    addressing.push_back(layout[d].layout.addressing(plan.rank));
  }
  // Reads in file order, split into one contiguous range per thread with about equal bytes.
  std::vector<std::size_t> order(plan.reads.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  const CheckpointLayout& saved = checkpoint.layout();
  auto key = [&](std::size_t i) {
    const StoredChunk& c = saved.tensors[plan.reads[i].tensor].chunks[plan.reads[i].chunk];
    return std::make_pair(c.file, c.item_offset);
  };
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key(a) < key(b); });
  std::uint64_t total = 0;
  for (const CheckpointRead& r : plan.reads) total += static_cast<std::uint64_t>(volume(r.lengths) * element_bytes(saved.tensors[r.tensor].dtype));
  unsigned threads = std::max(1u, std::min<unsigned>(options.threads, static_cast<unsigned>(std::max<std::size_t>(1, order.size()))));
  std::uint64_t bounce_limit = std::max<std::uint64_t>(options.memory_limit / threads, 1 << 20);
  auto run = [&](std::size_t begin, std::size_t end) {
    std::vector<std::byte> bounce;
    for (std::size_t k = begin; k < end; ++k) {
      const CheckpointRead& r = plan.reads[order[k]];
      std::size_t d = destination_of[r.tensor];
      const Piece& piece = pieces[d][r.wanted];
      const TensorLayout::Addressing& address = addressing[d];
      index_t position = address.base(piece.local) + dot(r.dest_offsets, address.strides);
      std::byte* dest = buffers[layout.buffer_of(d)].data() + position * element_bytes(layout[d].dtype);
      checkpoint.read_box(r.tensor, r.chunk, r.storage_offsets, r.lengths, dest, address.strides, &bounce, bounce_limit);
    }
  };
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(threads);
  std::size_t begin = 0;
  std::uint64_t done = 0;
  for (unsigned w = 0; w < threads; ++w) {
    std::size_t end = begin;
    std::uint64_t target = total * (w + 1) / threads;
    while (end < order.size() && (done < target || w + 1 == threads)) {
      const CheckpointRead& r = plan.reads[order[end++]];
      done += static_cast<std::uint64_t>(volume(r.lengths) * element_bytes(saved.tensors[r.tensor].dtype));
    }
    workers.emplace_back([&, w, begin, end] {
      try {
        run(begin, end);
      } catch (...) {
        errors[w] = std::current_exception();
      }
    });
    begin = end;
  }
  for (std::thread& t : workers) t.join();
  for (std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace shardalg
