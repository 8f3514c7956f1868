// Checkpoint read items with PyTorch DCP's semantics (docs/semantics.md section 11), without its
// loop over every pair of (wanted chunk, saved chunk).
//
// A saved chunk and a wanted chunk overlap unless, in some dim, one starts at or past the
// other's end. Each overlapping pair gives one read item: per dim, the length
// min(saved end, wanted end) - max(saved offset, wanted offset), and, if the saved chunk starts
// after the wanted one, storage offset 0 and destination offset (saved - wanted offset), else
// storage offset (wanted - saved offset) and destination offset 0.
// Items come wanted chunk by wanted chunk, and within one in saved-chunk order: DCP's order.
//
// Example: saved [0,8) and [8,16); wanted offset 4, size 7 ->
//   (saved 0: storage 4, dest 0, length 4) and (saved 1: storage 0, dest 4, length 3).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "shardalg/layout/tensor_layout.hpp"

namespace shardalg {

// A chunk of a tensor: where it starts and its extent per dim (DCP's ChunkStorageMetadata).
struct ChunkMeta {
  Dims offsets;
  Dims sizes;
  friend bool operator==(const ChunkMeta&, const ChunkMeta&) = default;
};

struct ReadItem {
  std::size_t wanted;  // index of the wanted chunk
  std::size_t saved;   // index of the saved chunk
  Dims storage_offsets;
  Dims dest_offsets;
  Dims lengths;
  friend bool operator==(const ReadItem&, const ReadItem&) = default;
};

namespace detail {

inline bool dcp_overlap(const ChunkMeta& a, const ChunkMeta& b) {
  for (std::size_t d = 0; d < a.offsets.size(); ++d)
    if (a.offsets[d] >= b.offsets[d] + b.sizes[d] || b.offsets[d] >= a.offsets[d] + a.sizes[d]) return false;
  return true;
}

inline ReadItem dcp_read_item(std::size_t wanted_index, const ChunkMeta& wanted, std::size_t saved_index, const ChunkMeta& saved) {
  ReadItem item{wanted_index, saved_index, {}, {}, {}};
  for (std::size_t d = 0; d < wanted.offsets.size(); ++d) {
    index_t so = saved.offsets[d], co = wanted.offsets[d];
    item.lengths.push_back(std::min(so + saved.sizes[d], co + wanted.sizes[d]) - std::max(co, so));
    item.storage_offsets.push_back(so > co ? 0 : co - so);
    item.dest_offsets.push_back(so > co ? so - co : 0);
  }
  return item;
}

inline void check_chunk(const ChunkMeta& chunk, std::size_t ndim, std::string_view what, std::size_t index) {
  if (chunk.offsets.size() != ndim || chunk.sizes.size() != ndim)
    fail(what, " chunk ", index, " has offsets ", chunk.offsets, " and sizes ", chunk.sizes, "; expected ", ndim, " dims");
  for (std::size_t d = 0; d < ndim; ++d) {
    if (chunk.offsets[d] < 0 || chunk.sizes[d] < 0)
      fail(what, " chunk ", index, " has a negative offset or size: offsets ", chunk.offsets, " sizes ", chunk.sizes);
    checked_add(chunk.offsets[d], chunk.sizes[d]);
  }
}

}  // namespace detail

// The reference definition: DCP's pairwise loop (time: wanted x saved). For tests and the
// benchmark baseline; use CheckpointIndex.
inline std::vector<ReadItem> read_items_pairwise(const std::vector<ChunkMeta>& saved, const std::vector<ChunkMeta>& wanted) {
  std::vector<ReadItem> items;
  for (std::size_t w = 0; w < wanted.size(); ++w)
    for (std::size_t s = 0; s < saved.size(); ++s)
      if (detail::dcp_overlap(wanted[w], saved[s])) items.push_back(detail::dcp_read_item(w, wanted[w], s, saved[s]));
  return items;
}

// An index of a tensor's saved chunks answering "which saved chunks overlap this wanted chunk" in
// time proportional to the answer for the usual checkpoints. The chunk boundaries cut each dim
// into cells; the grid of cells over a set of dims (as many as keep the grid within a few cells
// per chunk) lists the chunks covering each cell. A query visits the cells its chunk meets and
// checks each candidate with DCP's exact overlap rule. Checkpoints whose chunks form a product of
// per-dim partitions (every DTensor and FSDP layout) have one cell per chunk.
class CheckpointIndex {
 public:
  // Errors: chunks of different ranks, negative or overflowing extents.
  explicit CheckpointIndex(std::vector<ChunkMeta> saved) : saved_(std::move(saved)) {
    ndim_ = saved_.empty() ? 0 : saved_.front().offsets.size();
    for (std::size_t s = 0; s < saved_.size(); ++s) detail::check_chunk(saved_[s], ndim_, "saved", s);
    // Boundaries per dim; choose grid dims, fewest boundaries first, while the grid stays small.
    std::vector<std::vector<index_t>> bounds(ndim_);
    for (std::size_t d = 0; d < ndim_; ++d) {
      for (const ChunkMeta& c : saved_) {
        bounds[d].push_back(c.offsets[d]);
        bounds[d].push_back(c.offsets[d] + c.sizes[d]);
      }
      std::sort(bounds[d].begin(), bounds[d].end());
      bounds[d].erase(std::unique(bounds[d].begin(), bounds[d].end()), bounds[d].end());
    }
    std::vector<std::size_t> order(ndim_);
    for (std::size_t d = 0; d < ndim_; ++d) order[d] = d;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return bounds[a].size() < bounds[b].size(); });
    index_t limit = 4 * static_cast<index_t>(saved_.size()) + 1024, cells = 1;
    for (std::size_t d : order) {
      index_t count = std::max<index_t>(1, static_cast<index_t>(bounds[d].size()) - 1);
      if (cells * count > limit) break;
      cells *= count;
      grid_dims_.push_back(d);
      grid_bounds_.push_back(std::move(bounds[d]));
    }
    // Cells covered by each chunk (chunks with no cell, being empty in a grid dim, are kept aside).
    std::vector<std::vector<std::size_t>> lists(static_cast<std::size_t>(cells));
    for (std::size_t s = 0; s < saved_.size(); ++s) {
      Dims lo, hi;
      for (std::size_t g = 0; g < grid_dims_.size(); ++g) {
        const auto& b = grid_bounds_[g];
        std::size_t d = grid_dims_[g];
        lo.push_back(std::lower_bound(b.begin(), b.end(), saved_[s].offsets[d]) - b.begin());
        hi.push_back(std::lower_bound(b.begin(), b.end(), saved_[s].offsets[d] + saved_[s].sizes[d]) - b.begin());
      }
      bool covers = true;
      for (std::size_t g = 0; g < lo.size(); ++g) covers = covers && lo[g] < hi[g];
      if (!covers) {
        degenerate_.push_back(s);
        continue;
      }
      for_each_cell(lo, hi, [&](index_t cell) { lists[static_cast<std::size_t>(cell)].push_back(s); });
    }
    cell_begin_.push_back(0);
    for (auto& list : lists) {
      cell_chunks_.insert(cell_chunks_.end(), list.begin(), list.end());
      cell_begin_.push_back(cell_chunks_.size());
    }
    stamp_.assign(saved_.size(), 0);
  }

  const std::vector<ChunkMeta>& saved() const { return saved_; }

  // The read items of `wanted` chunks, exactly as DCP's pairwise loop would list them.
  // Not thread-safe (reuses a scratch array); use one index per thread.
  std::vector<ReadItem> read_items(const std::vector<ChunkMeta>& wanted) {
    std::vector<ReadItem> items;
    std::vector<std::size_t> hits;
    // Without saved chunks the rank is unknown: the wanted chunks need only agree among themselves.
    std::size_t ndim = saved_.empty() && !wanted.empty() ? wanted.front().offsets.size() : ndim_;
    for (std::size_t w = 0; w < wanted.size(); ++w) {
      detail::check_chunk(wanted[w], ndim, "wanted", w);
      hits.clear();
      ++generation_;
      auto consider = [&](std::size_t s) {
        if (stamp_[s] == generation_) return;
        stamp_[s] = generation_;
        if (detail::dcp_overlap(wanted[w], saved_[s])) hits.push_back(s);
      };
      Dims lo, hi;
      bool any = true;
      for (std::size_t g = 0; g < grid_dims_.size() && any; ++g) {
        const auto& b = grid_bounds_[g];
        index_t co = wanted[w].offsets[grid_dims_[g]], ce = co + wanted[w].sizes[grid_dims_[g]];
        // Cells k with bounds[k] <= max(co, ce - 1) and bounds[k + 1] > co; a zero-size chunk
        // meets only the cell containing co.
        index_t first = std::upper_bound(b.begin(), b.end(), co) - b.begin() - 1;
        index_t last = std::upper_bound(b.begin(), b.end(), std::max(co, ce - 1)) - b.begin() - 1;
        first = std::max<index_t>(first, 0);
        last = std::min<index_t>(last, static_cast<index_t>(b.size()) - 2);
        any = first <= last;
        lo.push_back(first);
        hi.push_back(last + 1);
      }
      if (any)
        for_each_cell(lo, hi, [&](index_t cell) {
          for (std::size_t k = cell_begin_[static_cast<std::size_t>(cell)]; k < cell_begin_[static_cast<std::size_t>(cell) + 1]; ++k)
            consider(cell_chunks_[k]);
        });
      for (std::size_t s : degenerate_) consider(s);
      std::sort(hits.begin(), hits.end());
      for (std::size_t s : hits) items.push_back(detail::dcp_read_item(w, wanted[w], s, saved_[s]));
    }
    return items;
  }

 private:
  // Calls f(cell index) for every grid cell in [lo, hi) (per grid dim), row-major.
  template <class F>
  void for_each_cell(const Dims& lo, const Dims& hi, F&& f) const {
    Dims at = lo;
    std::size_t n = lo.size();
    while (true) {
      index_t cell = 0;
      for (std::size_t g = 0; g < n; ++g) cell = cell * std::max<index_t>(1, static_cast<index_t>(grid_bounds_[g].size()) - 1) + at[g];
      f(cell);
      std::size_t g = n;
      while (g > 0) {
        --g;
        if (++at[g] < hi[g]) break;
        at[g] = lo[g];
        if (g == 0) return;
      }
      if (n == 0) return;
    }
  }

  std::vector<ChunkMeta> saved_;
  std::size_t ndim_ = 0;
  std::vector<std::size_t> grid_dims_;
  std::vector<std::vector<index_t>> grid_bounds_;
  std::vector<std::size_t> cell_begin_, cell_chunks_, degenerate_;
  std::vector<std::uint64_t> stamp_;  // query generation that last considered each chunk
  std::uint64_t generation_ = 0;
};

// The chunks a checkpoint saved under `layout` holds: every held box once (replicas saved once,
// as DCP deduplicates them), ordered by offset.
// Chunks ordered by offsets, then sizes (lexicographically).
inline bool chunk_before(const ChunkMeta& a, const ChunkMeta& b) {
  if (a.offsets != b.offsets) return std::lexicographical_compare(a.offsets.begin(), a.offsets.end(), b.offsets.begin(), b.offsets.end());
  return std::lexicographical_compare(a.sizes.begin(), a.sizes.end(), b.sizes.begin(), b.sizes.end());
}

inline std::vector<ChunkMeta> saved_chunks(const TensorLayout& layout) {
  std::vector<ChunkMeta> chunks;
  for (index_t rank : layout.mesh().devices())
    for (Piece& piece : layout.pieces(rank)) chunks.push_back(ChunkMeta{std::move(piece.global.offset), std::move(piece.global.shape)});
  std::sort(chunks.begin(), chunks.end(), chunk_before);
  chunks.erase(std::unique(chunks.begin(), chunks.end()), chunks.end());
  return chunks;
}

// The chunks a rank wants when loading into `layout`: its pieces' global boxes, in buffer order.
inline std::vector<ChunkMeta> wanted_chunks(const TensorLayout& layout, index_t rank) {
  std::vector<ChunkMeta> chunks;
  for (Piece& piece : layout.pieces(rank)) chunks.push_back(ChunkMeta{std::move(piece.global.offset), std::move(piece.global.shape)});
  return chunks;
}

}  // namespace shardalg
