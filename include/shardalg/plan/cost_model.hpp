// CostModel: the alpha-beta estimate of how long communication takes (docs/semantics.md section 10).
//
// A message of b bytes over a link costs alpha + beta * b. Ranks are grouped into nodes of
// `ranks_per_node` consecutive ranks; two ranks on one node talk over the intra-node link
// (default NVLink), others over the inter-node link (default InfiniBand). A collective over the
// group of a mesh dim (or of several, flattened) runs at the speed of its slowest link.
// Collectives over n ranks, b the per-rank buffer (gathered output, scattered input, reduced or
// exchanged buffer):
//   all-gather, reduce-scatter, all-to-all   alpha + beta * (n-1)/n * b
//   all-reduce                               alpha + 2 * beta * (n-1)/n * b
// Local steps (a chunk copied out of the rank's own buffer) cost b / local bandwidth.
#pragma once

#include <cmath>
#include <span>

#include "shardalg/core/error.hpp"
#include "shardalg/mesh/device_mesh.hpp"

namespace shardalg {

// One kind of link: latency in microseconds and bandwidth in GB/s (10^9 bytes per second).
struct LinkParameters {
  double alpha_us;
  double gigabytes_per_second;
  // Microseconds per byte.
  double beta_us() const { return 1e-3 / gigabytes_per_second; }
  double message_us(double bytes) const { return alpha_us + beta_us() * bytes; }
  // Finite latency >= 0 and finite bandwidth > 0 (an infinite bandwidth would price every byte
  // at nothing; NaN fails every comparison).
  bool valid() const {
    return std::isfinite(alpha_us) && alpha_us >= 0 && std::isfinite(gigabytes_per_second) && gigabytes_per_second > 0;
  }
};

enum class CollectiveKind { local, all_gather, reduce_scatter, all_reduce, all_to_all, p2p };

constexpr const char* to_string(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::local: return "local";
    case CollectiveKind::all_gather: return "all_gather";
    case CollectiveKind::reduce_scatter: return "reduce_scatter";
    case CollectiveKind::all_reduce: return "all_reduce";
    case CollectiveKind::all_to_all: return "all_to_all";
    case CollectiveKind::p2p: return "p2p";
  }
  return "?";
}

struct CostModel {
  // Defaults: NVLink 4 through NVSwitch (H100 SXM, NCCL bus bandwidth) and one 400 Gb/s
  // InfiniBand NIC per GPU; device memory copies at HBM speed.
  LinkParameters intra_node{3.0, 150.0};
  LinkParameters inter_node{10.0, 40.0};
  LinkParameters local_copy{0.0, 1500.0};
  index_t ranks_per_node = 8;

  // Errors name a link that is not valid() or a bad node size.
  void validate() const {
    for (const auto& [name, link] : {std::pair{"intra-node", intra_node}, {"inter-node", inter_node}, {"local copy", local_copy}})
      if (!link.valid())
        detail::fail("cost model: ", name, " link needs a finite alpha >= 0 and bandwidth > 0 (got alpha ", link.alpha_us, " us, ",
                     link.gigabytes_per_second, " GB/s)");
    if (ranks_per_node < 1) detail::fail("cost model: ranks per node ", ranks_per_node, " must be >= 1");
  }

  bool same_node(index_t a, index_t b) const { return a / ranks_per_node == b / ranks_per_node; }
  const LinkParameters& link(index_t a, index_t b) const { return same_node(a, b) ? intra_node : inter_node; }

  // The link a collective over the flattened group of `mesh_dims` runs at: inter-node when any
  // of its groups spans two nodes. Time linear in the mesh's ranks.
  const LinkParameters& group_link(const DeviceMesh& mesh, std::span<const index_t> mesh_dims) const {
    for (index_t rank : mesh.devices()) {
      Dims coord = *mesh.coordinate_of(rank);
      for (index_t m : mesh_dims) coord[static_cast<std::size_t>(m)] = 0;
      if (!same_node(rank, mesh.rank_at(coord))) return inter_node;
    }
    return intra_node;
  }

  // Microseconds for one collective over `group_size` ranks with per-rank buffer `bytes`.
  double collective_us(CollectiveKind kind, const LinkParameters& over, index_t group_size, double bytes) const {
    double spread = group_size > 1 ? static_cast<double>(group_size - 1) / static_cast<double>(group_size) : 0.0;
    switch (kind) {
      case CollectiveKind::local: return local_copy.message_us(bytes);
      case CollectiveKind::all_reduce: return over.alpha_us + 2.0 * over.beta_us() * spread * bytes;
      case CollectiveKind::all_gather:
      case CollectiveKind::reduce_scatter:
      case CollectiveKind::all_to_all: return over.alpha_us + over.beta_us() * spread * bytes;
      case CollectiveKind::p2p: break;
    }
    detail::fail("cost model: point-to-point traffic is priced from its volume matrix, not as one collective");
  }
};

}  // namespace shardalg
