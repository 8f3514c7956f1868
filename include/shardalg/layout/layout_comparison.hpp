// Whether two layouts of the same tensor put the same elements on every rank.
#pragma once

#include <algorithm>
#include <vector>

#include "shardalg/layout/mesh_layout.hpp"

namespace shardalg {

struct RankHoldings {
  index_t rank;
  Tile in_a;
  Tile in_b;
  bool same() const { return in_a == in_b; }
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
