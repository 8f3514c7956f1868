// Verification of a reshard plan, before anything is executed: every destination element is
// written exactly once (once per partial contributor for reductions), from a source that holds
// that same global element, and nothing is out of bounds.
#pragma once

#include <algorithm>
#include <unordered_map>
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

// What each rank of one side holds, looked up once per rank: tiles for mesh layouts (a check is
// a few index-map lookups), pieces for flat layouts.
class Holdings {
 public:
  explicit Holdings(const TensorLayout& layout) : layout_(layout) {}
  const TensorLayout& layout() const { return layout_; }

  // True when the rank holds all of `box` as one block starting at `local`.
  bool holds_at(index_t rank, const Box& box, const Dims& local) {
    if (const MeshLayout* mesh = layout_.mesh_layout()) return detail::holds_at(tile(*mesh, rank), box, local);
    if (box.ndim() != layout_.tensor_ndim() || local.size() != 1 || box.empty()) return false;
    for (const Piece& piece : pieces(rank))
      if (piece.global.contains(box)) return piece.local_at(box.offset) == local;
    return false;
  }

  index_t held_elements(index_t rank) {
    if (const MeshLayout* mesh = layout_.mesh_layout()) return tile(*mesh, rank).volume();
    index_t total = 0;
    for (const Piece& piece : pieces(rank)) total += piece.global.volume();
    return total;
  }

 private:
  const Tile& tile(const MeshLayout& mesh, index_t rank) {
    auto it = tiles_.find(rank);
    if (it == tiles_.end()) it = tiles_.emplace(rank, mesh.tile(rank)).first;
    return it->second;
  }
  const std::vector<Piece>& pieces(index_t rank) {
    auto it = pieces_.find(rank);
    if (it == pieces_.end()) it = pieces_.emplace(rank, layout_.pieces(rank)).first;
    return it->second;
  }

  const TensorLayout& layout_;
  std::unordered_map<index_t, Tile> tiles_;
  std::unordered_map<index_t, std::vector<Piece>> pieces_;
};

}  // namespace detail

namespace detail {

// verify_plan over any sequence of transfers: `for_each(f)` calls f(const Transfer&) for each.
// `src_holdings` / `dst_holdings`: lookups of the plan's source and destination layouts (shared
// between plans of tensors with equal layouts).
template <class ForEach>
void verify_transfers(const ReshardPlan& plan, Holdings& src_holdings, Holdings& dst_holdings, ForEach&& for_each) {
  const TensorLayout& src = plan.source();
  const TensorLayout& dst = plan.destination();
  // Boxes written into each destination, per partial class of their sender.
  struct Written {
    std::vector<const Box*> boxes;
    index_t volume = 0;
  };
  std::unordered_map<index_t, std::unordered_map<index_t, Written>> written;  // dst -> class -> boxes
  for_each([&](const Transfer& t) {
    if (!src.mesh().contains(t.src_rank)) fail("plan: transfer from rank ", t.src_rank, ", which is not in the source mesh");
    if (!dst.mesh().contains(t.dst_rank)) fail("plan: transfer to rank ", t.dst_rank, ", which is not in the destination mesh");
    if (t.global.ndim() != src.tensor_ndim() || t.global.empty())
      fail("plan: transfer ", t.src_rank, " -> ", t.dst_rank, " moves ", t.global, ", not a non-empty box of the tensor");
    if (!src_holdings.holds_at(t.src_rank, t.global, t.src_local))
      fail("plan: source rank ", t.src_rank, " does not hold ", t.global, " at local ", t.src_local);
    if (!dst_holdings.holds_at(t.dst_rank, t.global, t.dst_local))
      fail("plan: destination rank ", t.dst_rank, " does not hold ", t.global, " at local ", t.dst_local);
    Written& w = written[t.dst_rank][plan.partial_class(t.src_rank)];
    w.boxes.push_back(&t.global);
    w.volume += t.global.volume();
  });
  index_t contributors = plan.partial_contributors();
  // Each class writes disjoint boxes covering what the destination holds: exactly once.
  for (auto& [rank, classes] : written) {
    index_t held = dst_holdings.held_elements(rank);
    for (auto& [partial, w] : classes) {
      if (w.volume != held)
        fail("plan: destination rank ", rank, " receives ", w.volume, " elements from one contributor class but holds ", held);
      if (dst.tensor_ndim() == 0) continue;  // one element: the volume check above decides
      std::sort(w.boxes.begin(), w.boxes.end(), [](const Box* a, const Box* b) { return a->offset[0] < b->offset[0]; });
      std::vector<const Box*> active;
      for (const Box* box : w.boxes) {
        std::erase_if(active, [box](const Box* a) { return a->end(0) <= box->offset[0]; });
        for (const Box* a : active)
          if (overlap(*a, *box)) fail("plan: destination rank ", rank, " receives ", *box, " twice");
        active.push_back(box);
      }
    }
  }
  for (index_t rank : dst.mesh().devices()) {
    auto it = written.find(rank);
    index_t classes = it == written.end() ? 0 : static_cast<index_t>(it->second.size());
    index_t expected = dst_holdings.held_elements(rank) == 0 ? 0 : contributors;
    if (classes != expected)
      fail("plan: destination rank ", rank, " receives from ", classes, " contributor classes, expected ", expected);
  }
}

}  // namespace detail

// Throws Error naming the first violation. Cost: one lookup of each rank's holding, a hash per
// transfer, and a sweep over each destination's boxes (sorted along dim 0) for overlaps.
inline void verify_plan(const ReshardPlan& plan, const std::vector<Transfer>& transfers) {
  detail::Holdings src_holdings(plan.source()), dst_holdings(plan.destination());
  detail::verify_transfers(plan, src_holdings, dst_holdings, [&](auto&& f) {
    for (const Transfer& t : transfers) f(t);
  });
}

}  // namespace shardalg
