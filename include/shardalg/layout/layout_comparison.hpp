// Whether two layouts of the same tensor put the same elements on every rank.
#pragma once

#include <algorithm>
#include <optional>
#include <vector>

#include "shardalg/layout/mesh_layout.hpp"

namespace shardalg {

// An element that one of two tiles holds and the other does not.
struct TileDifference {
  bool held_by_a;          // held under a (so not under b), or under b only
  Dims element;            // its global index
  index_t local_position;  // row-major, in the tile that holds it
};

namespace detail {
// The first global position `a` holds and `b` does not, if any.
inline std::optional<index_t> first_missing(const IndexMap& a, const IndexMap& b) {
  for (const Run& run : a.runs()) {
    index_t at = run.global_begin;
    while (at < run.global_end()) {
      if (!b.contains(at)) return at;
      for (const Run& covering : b.runs())  // skip what b's run holding `at` covers
        if (covering.global_begin <= at && at < covering.global_end()) at = covering.global_end();
    }
  }
  return std::nullopt;
}
}  // namespace detail

// The first element one tile holds and the other does not, or nothing when both hold the same
// elements (two empty tiles hold the same: nothing). Index maps increase, so tiles that hold the
// same elements also keep them at the same local positions: the same bytes. Tiles are products of
// per-dim maps, so a dim whose positions differ gives the element: that position, and the
// holder's first position in every other dim.
// Example: rows [0,4) vs rows {[0,2),[4,6)} of a [6] tensor -> element [2], held by a at 2.
inline std::optional<TileDifference> first_difference(const Tile& a, const Tile& b) {
  if (a.ndim() != b.ndim()) detail::fail("first_difference: tiles of ", a.ndim(), " and ", b.ndim(), " dims");
  if (a.empty() && b.empty()) return std::nullopt;
  // The holder's first element, or in `dim` the given position instead.
  auto held = [](const Tile& holder, bool by_a, std::optional<std::size_t> dim = std::nullopt, index_t position = 0) {
    Dims element;
    for (const IndexMap& map : holder.maps()) element.push_back(map.first());
    if (dim) element[*dim] = position;
    return TileDifference{by_a, element, *holder.local_position(element)};
  };
  if (a.empty() || b.empty()) return b.empty() ? held(a, true) : held(b, false);
  for (std::size_t d = 0; d < a.ndim(); ++d) {
    if (auto missing = detail::first_missing(a.dim(d), b.dim(d))) return held(a, true, d, *missing);
    if (auto missing = detail::first_missing(b.dim(d), a.dim(d))) return held(b, false, d, *missing);
  }
  return std::nullopt;
}

struct RankHoldings {
  index_t rank;
  Tile in_a;
  Tile in_b;
  std::optional<TileDifference> difference() const { return first_difference(in_a, in_b); }
  bool same() const { return !difference(); }
};

struct LayoutComparison {
  std::vector<RankHoldings> ranks;  // every rank of either mesh, ascending

  bool equivalent() const {
    return std::all_of(ranks.begin(), ranks.end(), [](const RankHoldings& r) { return r.same(); });
  }
  std::vector<RankHoldings> differences() const {
    std::vector<RankHoldings> result;
    std::copy_if(ranks.begin(), ranks.end(), std::back_inserter(result), [](const RankHoldings& r) { return !r.same(); });
    return result;
  }
};

// Compares, rank by rank, what two layouts of the same global shape hold (a rank missing from
// one mesh holds nothing there). Error when the global shapes differ.
// Example: fsdp_over_tp_physical vs fsdp_over_tp_label at n=7, T=2, D=3 differ at rank (dp=2, tp=0).
inline LayoutComparison compare_layouts(const MeshLayout& a, const MeshLayout& b) {
  if (a.global_shape() != b.global_shape())
    detail::fail("compare_layouts: global shapes differ: ", a.global_shape(), " vs ", b.global_shape());
  std::vector<index_t> ranks = a.mesh().devices();
  ranks.insert(ranks.end(), b.mesh().devices().begin(), b.mesh().devices().end());
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  LayoutComparison result;
  for (index_t rank : ranks) result.ranks.push_back(RankHoldings{rank, a.tile(rank), b.tile(rank)});
  return result;
}

}  // namespace shardalg
