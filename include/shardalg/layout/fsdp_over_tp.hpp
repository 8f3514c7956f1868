// FSDP2 over tensor parallelism: the bytes FSDP2 holds and the label it gives them
// (docs/semantics.md section 3).
//
// With TP on mesh dim `tp` (size T) and FSDP on mesh dim `dp` (size D), both on tensor dim d, the
// rank (dp, tp) physically holds chunk(chunk(n, T)[tp], D)[dp]: TP splits first. PyTorch labels
// this (_S(d, T) on dp, S(d) on tp). The two agree when n divides evenly and can disagree
// otherwise (n=7, T=2, D=3: rank (dp=2, tp=0) holds nothing; the label says row 6).
// compare_layouts (layout_comparison.hpp) detects the mismatch.
#pragma once

#include <string_view>

#include "shardalg/layout/mesh_layout.hpp"

namespace shardalg {

namespace detail {
inline std::vector<Placement> fsdp_over_tp_shards(const DeviceMesh& mesh, std::size_t dp, std::size_t tp,
                                                  index_t tensor_dim) {
  if (dp == tp) fail("FSDP over TP: dp and tp must be different mesh dims, both are '", mesh.name(dp), "'");
  std::vector<Placement> placements(mesh.ndim(), Placement::replicate());
  placements[dp] = Placement::shard(tensor_dim);
  placements[tp] = Placement::shard(tensor_dim);
  return placements;
}
}  // namespace detail

// The physical layout: Shard(d) on both dims, applied tp first, then dp.
inline MeshLayout fsdp_over_tp_physical(const DeviceMesh& mesh, std::string_view dp_name, std::string_view tp_name,
                                        const Dims& global_shape, index_t tensor_dim = 0) {
  std::size_t dp = mesh.dim_index(dp_name), tp = mesh.dim_index(tp_name);
  ShardOrder order{ShardOrderEntry{tensor_dim, {static_cast<index_t>(tp), static_cast<index_t>(dp)}}};
  return MeshLayout(mesh, detail::fsdp_over_tp_shards(mesh, dp, tp, tensor_dim), global_shape, order);
}

// The label PyTorch attaches: the strided placements of the same shard order
// (placements_from_shard_order), e.g. (_S(0, T), S(0)) on mesh (dp, tp).
inline MeshLayout fsdp_over_tp_label(const DeviceMesh& mesh, std::string_view dp_name, std::string_view tp_name,
                                     const Dims& global_shape, index_t tensor_dim = 0) {
  std::size_t dp = mesh.dim_index(dp_name), tp = mesh.dim_index(tp_name);
  detail::fsdp_over_tp_shards(mesh, dp, tp, tensor_dim);  // same checks as the physical layout
  ShardOrder order{ShardOrderEntry{tensor_dim, {static_cast<index_t>(tp), static_cast<index_t>(dp)}}};
  return MeshLayout(mesh, placements_from_shard_order(mesh.shape(), order), global_shape);
}

}  // namespace shardalg
