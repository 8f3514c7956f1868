// Lint: what is valid about a mesh layout but likely not what its author meant. Findings are
// reported, not refused (tools make them errors on request: `--strict`).
//
// - empty_shards: an uneven split leaves some ranks holding nothing of the tensor while others
//   hold elements (S(0) of 2 rows on 4 ranks: ranks 2 and 3 are idle and their buffers empty).
// - strided_without_order: a StridedShard whose split factor matches no product of the mesh
//   dims that shard its tensor dim before it, so the placements express no shard order
//   (PyTorch cannot redistribute them through one).
// - label_differs_from_bytes: StridedShard placements that express a shard order, whose tiles
//   differ from those of Shard placements applied in that order. FSDP2 over TP labels its bytes
//   _S(d, T) on dp, S(d) on tp, while it holds TP's chunk then FSDP's: at uneven extents the label
//   names rows a rank does not hold (n=7, T=2, D=3).
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "shardalg/layout/layout_comparison.hpp"
#include "shardalg/layout/mesh_layout.hpp"

namespace shardalg {

struct LintFinding {
  std::string kind;     // empty_shards, strided_without_order, label_differs_from_bytes
  std::string message;  // names the layout, a rank and what is wrong
};

namespace detail {
// Calls visit(coordinate) once per distinct tile: every coordinate of the mesh dims that split
// the tensor, the others at 0 (replicas hold what their representative holds).
template <class Visit>
void for_each_distinct_tile(const MeshLayout& layout, Visit&& visit) {
  const Dims& shape = layout.mesh().shape();
  std::vector<std::size_t> splitting;
  for (std::size_t m = 0; m < shape.size(); ++m)
    if (layout.placements()[m].splits_tensor()) splitting.push_back(m);
  Dims coord(shape.size(), 0);
  while (true) {
    if (!visit(coord)) return;
    std::size_t i = splitting.size();
    while (i > 0) {
      --i;
      if (++coord[splitting[i]] < shape[splitting[i]]) break;
      coord[splitting[i]] = 0;
      if (i == 0) return;
    }
    if (splitting.empty()) return;
  }
}
}  // namespace detail

// The findings about `layout`, in the order above; none for a clean layout. Time: one tile per
// distinct tile of the layout (two for strided placements), memory: one tile.
// Example: S(0) of shape [2] on dp=4 -> empty_shards "... 2 of 4 tiles hold nothing, the first
// at mesh coordinate [2] (rank 2) ..."; _S(0,2),S(0) of [7,4] on dp=3,tp=2 ->
// label_differs_from_bytes naming rank 4 and element [6, 0].
inline std::vector<LintFinding> lint_layout(const MeshLayout& layout) {
  std::vector<LintFinding> findings;
  const DeviceMesh& mesh = layout.mesh();
  const std::string what = detail::concat(format_placements(layout.placements()), " of ", layout.global_shape(), " on ", mesh.spec_string());
  index_t tiles = 0, empty = 0;
  std::optional<Dims> first_empty;
  detail::for_each_distinct_tile(layout, [&](const Dims& coord) {
    ++tiles;
    if (layout.tile_at(coord).empty()) {
      ++empty;
      if (!first_empty) first_empty = coord;
    }
    return true;
  });
  if (empty > 0 && empty < tiles)
    findings.push_back(LintFinding{"empty_shards", detail::concat(what, ": ", empty, " of ", tiles, " distinct tiles hold nothing, the first at mesh coordinate ",
                                                                  *first_empty, " (rank ", mesh.rank_at(*first_empty),
                                                                  "); an uneven split leaves ranks idle with empty buffers")});
  bool strided = std::any_of(layout.placements().begin(), layout.placements().end(), [](const Placement& p) { return p.is_strided_shard(); });
  if (!strided) return findings;
  std::optional<ShardOrder> order = shard_order_from_placements(mesh.shape(), layout.placements());
  if (!order) {
    findings.push_back(LintFinding{"strided_without_order", detail::concat(what, ": the strided placements express no shard order (a split factor matches no product of the mesh dims sharding its tensor dim before it); PyTorch cannot redistribute them through one")});
    return findings;
  }
  std::vector<Placement> plain = layout.placements();
  for (Placement& p : plain)
    if (p.is_strided_shard()) p = Placement::shard(p.dim());
  MeshLayout bytes(mesh, plain, layout.global_shape(), *order);
  detail::for_each_distinct_tile(layout, [&](const Dims& coord) {
    std::optional<TileDifference> difference = first_difference(layout.tile_at(coord), bytes.tile_at(coord));
    if (difference)
      findings.push_back(LintFinding{"label_differs_from_bytes",
                                     detail::concat(what, ": the strided label is not the bytes of its shard order ", format_shard_order(*order), ": rank ",
                                                    mesh.rank_at(coord), " holds element ", difference->element, difference->held_by_a ? " under the label and not in the bytes" : " in the bytes and not under the label",
                                                    " (FSDP2 over TP at an uneven extent; describe the bytes with --shard-order)")});
    return !difference;
  });
  return findings;
}

}  // namespace shardalg
