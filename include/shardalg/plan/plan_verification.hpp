// Verification of a reshard plan, before anything is executed: every destination element is
// written exactly once (once per partial contributor for reductions), from a source that holds
// that same global element, and nothing is out of bounds.
#pragma once

#include <algorithm>
#include <map>
#include <vector>

#include "shardalg/plan/reshard_plan.hpp"

namespace shardalg {

namespace detail {

// True when `box` lies in `tile` as one contiguous local block starting at `local`.
inline bool holds_at(const Tile& tile, const Box& box, const Dims& local) {
  if (box.ndim() != tile.ndim() || local.size() != box.ndim()) return false;
  for (std::size_t d = 0; d < box.ndim(); ++d) {
    if (box.shape[d] <= 0) return false;
    auto first = tile.dim(d).local_of(box.offset[d]);
    auto last = tile.dim(d).local_of(box.end(d) - 1);
    if (!first || !last || *first != local[d] || *last - *first != box.shape[d] - 1) return false;
  }
  return true;
}

inline bool overlap(const Box& a, const Box& b) {
  for (std::size_t d = 0; d < a.ndim(); ++d)
    if (a.end(d) <= b.offset[d] || b.end(d) <= a.offset[d]) return false;
  return true;
}

}  // namespace detail

// Throws Error naming the first violation. Cost: one tile per rank involved, and a sweep over
// each destination's boxes (sorted along dim 0) for overlaps.
inline void verify_plan(const ReshardPlan& plan, const std::vector<Transfer>& transfers) {
  const MeshLayout& src = plan.source();
  const MeshLayout& dst = plan.destination();
  std::map<index_t, Tile> src_tiles, dst_tiles;
  auto tile_of = [](std::map<index_t, Tile>& cache, const MeshLayout& layout, index_t rank) -> const Tile& {
    auto it = cache.find(rank);
    if (it == cache.end()) it = cache.emplace(rank, layout.tile(rank)).first;
    return it->second;
  };
  // Boxes written into each destination, per partial class of their sender.
  std::map<std::pair<index_t, std::vector<index_t>>, std::vector<const Box*>> written;
  std::map<std::pair<index_t, std::vector<index_t>>, index_t> volume_written;
  for (const Transfer& t : transfers) {
    if (!src.mesh().contains(t.src_rank)) detail::fail("plan: transfer from rank ", t.src_rank, ", which is not in the source mesh");
    if (!dst.mesh().contains(t.dst_rank)) detail::fail("plan: transfer to rank ", t.dst_rank, ", which is not in the destination mesh");
    if (!detail::holds_at(tile_of(src_tiles, src, t.src_rank), t.global, t.src_local))
      detail::fail("plan: source rank ", t.src_rank, " does not hold ", t.global, " at local ", t.src_local);
    if (!detail::holds_at(tile_of(dst_tiles, dst, t.dst_rank), t.global, t.dst_local))
      detail::fail("plan: destination rank ", t.dst_rank, " does not hold ", t.global, " at local ", t.dst_local);
    Dims coord = *src.mesh().coordinate_of(t.src_rank);
    std::vector<index_t> partial_class;
    for (std::size_t m = 0; m < src.placements().size(); ++m)
      if (src.placements()[m].is_partial()) partial_class.push_back(coord[m]);
    auto key = std::make_pair(t.dst_rank, partial_class);
    written[key].push_back(&t.global);
    volume_written[key] += t.global.volume();
  }
  index_t contributors = 1;
  for (std::size_t m = 0; m < src.placements().size(); ++m)
    if (src.placements()[m].is_partial()) contributors *= src.mesh().size(m);
  // Each class writes disjoint boxes covering the destination tile: exactly once.
  std::map<index_t, index_t> classes_per_dst;
  for (auto& [key, boxes] : written) {
    const Tile& tile = tile_of(dst_tiles, dst, key.first);
    if (volume_written[key] != tile.volume())
      detail::fail("plan: destination rank ", key.first, " receives ", volume_written[key], " elements from one contributor class but holds ",
                   tile.volume());
    std::sort(boxes.begin(), boxes.end(), [](const Box* a, const Box* b) { return a->offset[0] < b->offset[0]; });
    std::vector<const Box*> active;
    for (const Box* box : boxes) {
      std::erase_if(active, [box](const Box* a) { return a->end(0) <= box->offset[0]; });
      for (const Box* a : active)
        if (detail::overlap(*a, *box)) detail::fail("plan: destination rank ", key.first, " receives ", *box, " twice");
      active.push_back(box);
    }
    ++classes_per_dst[key.first];
  }
  for (index_t rank : dst.mesh().devices()) {
    const Tile& tile = tile_of(dst_tiles, dst, rank);
    index_t expected = tile.empty() ? 0 : contributors;
    if (classes_per_dst[rank] != expected)
      detail::fail("plan: destination rank ", rank, " receives from ", classes_per_dst[rank], " contributor classes, expected ", expected);
  }
}

}  // namespace shardalg
