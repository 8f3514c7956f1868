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
// A job whose ranks replicate tensors reads each stored byte once: every rank plans with
// share_replicas (the default), loads its reads, then runs forward_messages(planner, plan) with an
// executor (Python: shardalg.torch.load_checkpoint).
#pragma once

#include <algorithm>
#include <exception>
#include <map>
#include <span>
#include <thread>
#include <vector>

#include "shardalg/exec/rank_part.hpp"
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

// The element of a rank's buffer at `offsets` within its piece (read items and forwards address
// the wanted chunk this way).
inline index_t piece_position(const TensorLayout::Addressing& address, const Piece& piece, const Dims& offsets) {
  return checked_add(address.base(piece.local), dot(offsets, address.strides));
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
      index_t position = piece_position(address, piece, r.dest_offsets);
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

// A rank's forwards (RankReadPlan::sends and ::receives) as an executor's messages: per peer, the
// boxes sent from or received into the rank's buffers of the planner's destination, streamed as
// RankPart's messages are (boxes in (tensor, global offset) order, each starting at a multiple of
// 8 bytes), so that sender and receiver, each planning alone, cut the same stream.
// Example: `replicated ranks=2` of a [6, 4] fp32 tensor saved as rows [0,3) and [3,6): rank 0
// sends rank 1 one 48-byte message (its rows [0, 3), buffer bytes [0, 48)) and receives rows
// [3, 6) from rank 1 into buffer bytes [48, 96).
struct ForwardMessages {
  std::vector<Message> sends, receives;
};

inline ForwardMessages forward_messages(const CheckpointReadPlanner& planner, const RankReadPlan& plan) {
  const ModelLayout& layout = planner.destination();
  std::map<std::size_t, std::size_t> destination_of;  // checkpoint tensor -> destination tensor
  for (std::size_t d = 0; d < layout.size(); ++d) destination_of[planner.checkpoint_tensor(d)] = d;
  std::map<std::size_t, std::pair<std::vector<Piece>, TensorLayout::Addressing>> placed;  // per destination tensor, on first use
  auto messages = [&](const std::vector<CheckpointForward>& forwards, bool sending) {
    struct Entry {
      std::size_t tensor;
      Dims global;
      BoxRows box;
    };
    std::map<index_t, std::vector<Entry>> by_peer;
    for (const CheckpointForward& f : forwards) {
      auto d = destination_of.find(f.tensor);
      if (d == destination_of.end()) detail::fail("forwards: checkpoint tensor ", f.tensor, " is not in the destination");
      const TensorLayout& tl = layout[d->second].layout;
      auto at = placed.find(d->second);
      if (at == placed.end()) at = placed.emplace(d->second, std::make_pair(tl.pieces(plan.rank), tl.addressing(plan.rank))).first;
      const auto& [pieces, address] = at->second;
      std::size_t w = sending ? f.wanted_from : f.wanted_to;
      if (w >= pieces.size()) detail::fail("forwards: rank ", plan.rank, " has no piece ", w, " of tensor '", layout[d->second].name, "'");
      const Piece& piece = pieces[w];
      index_t element = element_bytes(layout[d->second].dtype);
      const Dims& offsets = sending ? f.src_offsets : f.dest_offsets;
      BoxRows box = box_rows(d->second, layout.buffer_of(d->second), piece_position(address, piece, offsets), f.lengths, address.strides, element);
      merge_dense_rows(box);
      Dims global = piece.global.offset;
      for (std::size_t k = 0; k < global.size(); ++k) global[k] += offsets[k];
      by_peer[sending ? f.to : f.from].push_back(Entry{d->second, std::move(global), std::move(box)});
    }
    std::vector<Message> result;
    for (auto& [peer, entries] : by_peer) {
      std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        if (a.tensor != b.tensor) return a.tensor < b.tensor;
        return std::lexicographical_compare(a.global.begin(), a.global.end(), b.global.begin(), b.global.end());
      });
      Message m;
      m.peer = peer;
      for (Entry& e : entries) {
        m.starts.push_back(m.bytes);
        m.bytes = checked_add(m.bytes, detail::round_up_8(e.box.bytes()));
        m.boxes.push_back(std::move(e.box));
      }
      result.push_back(std::move(m));
    }
    return result;
  };
  return ForwardMessages{messages(plan.sends, true), messages(plan.receives, false)};
}

}  // namespace shardalg
