// Shard order: the order in which several mesh dims split the same tensor dim, and its
// conversion to and from StridedShard placements (docs/semantics.md section 2).
//
// Plain placements apply mesh dims left to right. FSDP2 over TP shards on tp first, then dp:
// on mesh (dp, tp) that is the order [tp, dp] for dim 0, which PyTorch labels (_S(0, T), S(0)).
#pragma once

#include <algorithm>
#include <cctype>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shardalg/core/dims.hpp"
#include "shardalg/placement/placement.hpp"
#include "shardalg/core/text_scanner.hpp"

namespace shardalg {

// For one tensor dim, the mesh dims that split it, in the order they are applied.
struct ShardOrderEntry {
  index_t tensor_dim;
  std::vector<index_t> mesh_dims;
  friend bool operator==(const ShardOrderEntry&, const ShardOrderEntry&) = default;
};

// Entries sorted by tensor dim; tensor dims split by no mesh dim have no entry.
using ShardOrder = std::vector<ShardOrderEntry>;

namespace detail {
// The entry of a tensor dim, inserted (empty) in tensor-dim order when missing.
inline ShardOrderEntry& entry_for(ShardOrder& order, index_t tensor_dim) {
  auto it = order.begin();
  while (it != order.end() && it->tensor_dim < tensor_dim) ++it;
  if (it == order.end() || it->tensor_dim != tensor_dim) it = order.insert(it, ShardOrderEntry{tensor_dim, {}});
  return *it;
}
}  // namespace detail

// Placements equivalent to a shard order: mesh dim m at position idx of its tensor dim's list
// gets sf = product of size(i) over i in order[:idx] with i > m; sf = 1 stays Shard, else
// StridedShard. Mesh dims in no list are Replicate.
// Example: mesh (4,3,2), dim-0 order (2,0,1) -> (_S(0,2), _S(0,2), S(0)).
// Errors: a mesh dim out of range or listed twice.
inline std::vector<Placement> placements_from_shard_order(const Dims& mesh_shape, const ShardOrder& order) {
  std::vector<Placement> placements(mesh_shape.size(), Placement::replicate());
  std::vector<bool> used(mesh_shape.size(), false);
  for (const ShardOrderEntry& entry : order) {
    if (entry.tensor_dim < 0) detail::fail("shard order: tensor dim ", entry.tensor_dim, " must be non-negative");
    for (std::size_t idx = 0; idx < entry.mesh_dims.size(); ++idx) {
      index_t m = entry.mesh_dims[idx];
      if (m < 0 || m >= static_cast<index_t>(mesh_shape.size()))
        detail::fail("shard order: mesh dim ", m, " is out of range for mesh shape ", mesh_shape);
      if (used[static_cast<std::size_t>(m)]) detail::fail("shard order: mesh dim ", m, " is listed twice");
      used[static_cast<std::size_t>(m)] = true;
      index_t sf = 1;
      for (std::size_t j = 0; j < idx; ++j)
        if (entry.mesh_dims[j] > m) sf = checked_mul(sf, mesh_shape[static_cast<std::size_t>(entry.mesh_dims[j])]);
      placements[static_cast<std::size_t>(m)] =
          sf == 1 ? Placement::shard(entry.tensor_dim) : Placement::strided_shard(entry.tensor_dim, sf);
    }
  }
  return placements;
}

// The shard order that placements express, or nothing when they express none ("not
// convertible" is an answer, not an error). Per tensor dim, mesh dims are scanned right to left
// and each is inserted at the first position where the running product of the sizes before it
// equals its split factor. Legacy-semantics strided shards and block-cyclic placements are never
// convertible.
// Not convertible on mesh (4,8): [_S(0,2), _S(1,2)], [_S(0,2), S(1)], [_S(1,16), S(1)].
inline std::optional<ShardOrder> shard_order_from_placements(const Dims& mesh_shape, std::span<const Placement> placements) {
  if (placements.size() != mesh_shape.size())
    detail::fail("shard order: ", placements.size(), " placements for a mesh of ", mesh_shape.size(), " dims");
  ShardOrder order;
  for (std::size_t m = placements.size(); m-- > 0;) {
    const Placement& p = placements[m];
    if (!p.splits_tensor()) continue;
    if (p.is_block_cyclic() || (p.is_strided_shard() && p.semantics() == StridedSemantics::legacy)) return std::nullopt;
    std::vector<index_t>& dims = detail::entry_for(order, p.dim()).mesh_dims;
    index_t product = 1;
    std::size_t position = 0;
    while (product != p.split_factor() && position < dims.size())
      product = checked_mul(product, mesh_shape[static_cast<std::size_t>(dims[position++])]);
    if (product != p.split_factor()) return std::nullopt;
    dims.insert(dims.begin() + static_cast<std::ptrdiff_t>(position), static_cast<index_t>(m));
  }
  return order;
}

// The default (left-to-right) order of plain placements: each tensor dim's mesh dims ascending.
inline ShardOrder default_shard_order(std::span<const Placement> placements) {
  ShardOrder order;
  for (std::size_t m = 0; m < placements.size(); ++m) {
    if (placements[m].splits_tensor())
      detail::entry_for(order, placements[m].dim()).mesh_dims.push_back(static_cast<index_t>(m));
  }
  return order;
}

// "0:[2,0,1];1:[3]" (tensor dim, then its mesh dims in application order).
inline std::string format_shard_order(const ShardOrder& order) {
  std::string out;
  for (std::size_t e = 0; e < order.size(); ++e) {
    out += detail::concat(e ? ";" : "", order[e].tensor_dim, ":[");
    for (std::size_t i = 0; i < order[e].mesh_dims.size(); ++i) out += detail::concat(i ? "," : "", order[e].mesh_dims[i]);
    out += "]";
  }
  return out;
}

// Reads "0:[2,0,1];1:[3]"; mesh dims may also be given by name ("0:[tp,dp]") when mesh_names
// are passed.
inline ShardOrder parse_shard_order(std::string_view text, std::span<const std::string> mesh_names = {}) {
  detail::Scanner in(text, "shard order");
  ShardOrder order;
  do {
    ShardOrderEntry entry{in.integer(), {}};
    if (entry.tensor_dim < 0) in.fail_here("tensor dim must be non-negative");
    for (const auto& e : order)
      if (e.tensor_dim == entry.tensor_dim) in.fail_here("tensor dim ", entry.tensor_dim, " appears twice");
    in.expect(":");
    in.expect("[");
    do {
      if (std::isalpha(static_cast<unsigned char>(in.peek())) || in.peek() == '_') {
        std::string name = in.identifier();
        index_t found = -1;
        for (std::size_t i = 0; i < mesh_names.size(); ++i)
          if (mesh_names[i] == name) found = static_cast<index_t>(i);
        if (found < 0) in.fail_here("unknown mesh dim '", name, "'");
        entry.mesh_dims.push_back(found);
      } else {
        entry.mesh_dims.push_back(in.integer());
      }
    } while (in.accept(","));
    in.expect("]");
    order.push_back(std::move(entry));
  } while (in.accept(";"));
  in.expect_end();
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.tensor_dim < b.tensor_dim; });
  return order;
}

}  // namespace shardalg
