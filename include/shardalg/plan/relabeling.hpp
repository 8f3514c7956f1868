// Relabeling: when a restarted job may choose which process takes which destination rank, the
// choice that keeps the most bytes where they already are.
//
// kept(p, r): bytes destination rank r holds that process p holds in the source. A relabeling
// gives role r to process perm(r) (a permutation of the destination's ranks); bytes moved between
// distinct processes = needed - sum over r of kept(perm(r), r). Maximizing the sum is an
// assignment problem: solved exactly (Hungarian algorithm, O(n^3)) up to `exact_limit` ranks,
// greedily above (heaviest pairs first, a 1/2-approximation), with the gap to an upper bound
// on the optimum reported.
//
// Example: S(0) over ranks [0,1,2,3] -> S(0) over devices [3,2,1,0]: the identity moves every
// byte; the relabeling role 0 -> process 3, 1 -> 2, ... moves none.
#pragma once

#include <algorithm>
#include <limits>
#include <map>
#include <numeric>
#include <vector>

#include "shardalg/plan/model_reshard_plan.hpp"

namespace shardalg {

struct Relabeling {
  // The destination's ranks (roles), ascending, and the process that takes each.
  std::vector<index_t> roles;
  std::vector<index_t> process_of_role;
  double bytes_needed = 0;   // bytes the destination holds, all ranks together
  double moved_before = 0;   // bytes moved between distinct processes with the identity
  double moved_after = 0;    // ... with this relabeling
  double moved_bound = 0;    // no relabeling moves fewer bytes than this
  bool exact = false;        // moved_after is the optimum (then moved_bound == moved_after)
  double saved() const { return moved_before - moved_after; }
  // The process of a destination rank. Precondition: `role` is a destination rank.
  index_t process_of(index_t role) const {
    auto it = std::lower_bound(roles.begin(), roles.end(), role);
    return process_of_role[static_cast<std::size_t>(it - roles.begin())];
  }
};

namespace detail {

// Kept bytes as sparse rows: for each role (index into roles), (process index, bytes).
using KeptMatrix = std::vector<std::map<std::size_t, double>>;

// Hungarian algorithm (shortest augmenting paths with potentials) on the dense n x n matrix
// cost[role][process]; returns the process index of each role.
inline std::vector<std::size_t> min_cost_assignment(const std::vector<double>& cost, std::size_t n) {
  const double infinity = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0), v(n + 1, 0);
  std::vector<std::size_t> match(n + 1, 0), way(n + 1, 0);  // match[process + 1] = role + 1
  for (std::size_t row = 1; row <= n; ++row) {
    match[0] = row;
    std::size_t column = 0;
    std::vector<double> least(n + 1, infinity);
    std::vector<bool> used(n + 1, false);
    do {
      used[column] = true;
      std::size_t r = match[column], next = 0;
      double delta = infinity;
      for (std::size_t c = 1; c <= n; ++c) {
        if (used[c]) continue;
        double reduced = cost[(r - 1) * n + (c - 1)] - u[r] - v[c];
        if (reduced < least[c]) least[c] = reduced, way[c] = column;
        if (least[c] < delta) delta = least[c], next = c;
      }
      for (std::size_t c = 0; c <= n; ++c) {
        if (used[c]) u[match[c]] += delta, v[c] -= delta;
        else least[c] -= delta;
      }
      column = next;
    } while (match[column] != 0);
    do {
      std::size_t previous = way[column];
      match[column] = match[previous];
      column = previous;
    } while (column != 0);
  }
  std::vector<std::size_t> process_of(n);
  for (std::size_t c = 1; c <= n; ++c) process_of[match[c] - 1] = c - 1;
  return process_of;
}

// Heaviest pairs first; roles left over take free processes, their own first.
inline std::vector<std::size_t> greedy_assignment(const KeptMatrix& kept, std::size_t n) {
  struct Pair {
    double bytes;
    std::size_t role, process;
  };
  std::vector<Pair> pairs;
  for (std::size_t r = 0; r < n; ++r)
    for (const auto& [p, bytes] : kept[r]) pairs.push_back(Pair{bytes, r, p});
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : std::tie(a.role, a.process) < std::tie(b.role, b.process);
  });
  constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> process_of(n, none);
  std::vector<bool> taken(n, false);
  for (const Pair& pair : pairs)
    if (process_of[pair.role] == none && !taken[pair.process]) process_of[pair.role] = pair.process, taken[pair.process] = true;
  for (std::size_t r = 0; r < n; ++r)
    if (process_of[r] == none && !taken[r]) process_of[r] = r, taken[r] = true;
  std::size_t free = 0;
  for (std::size_t r = 0; r < n; ++r) {
    if (process_of[r] != none) continue;
    while (taken[free]) ++free;
    process_of[r] = free;
    taken[free] = true;
  }
  return process_of;
}

}  // namespace detail

// The relabeling of `plan`'s destination ranks that moves the fewest bytes. Processes are the
// destination's ranks: a source rank outside the destination is gone and keeps nothing.
// Time: the overlaps (each destination piece against the source ranks holding it), then
// O(n^3) exact up to exact_limit ranks, O(E log E) greedy above, E the overlapping pairs.
inline Relabeling relabel_destination(const ModelReshardPlan& plan, index_t exact_limit = 256) {
  if (exact_limit < 0) detail::fail("relabeling: exact limit ", exact_limit, " must be >= 0 ranks");
  Relabeling result;
  result.roles = plan.destination().ranks();
  std::sort(result.roles.begin(), result.roles.end());
  std::size_t n = result.roles.size();
  auto index_of = [&](index_t rank) -> std::optional<std::size_t> {
    auto it = std::lower_bound(result.roles.begin(), result.roles.end(), rank);
    if (it == result.roles.end() || *it != rank) return std::nullopt;
    return static_cast<std::size_t>(it - result.roles.begin());
  };
  detail::KeptMatrix kept(n);
  std::vector<double> needed(n, 0);
  for (std::size_t t = 0; t < plan.size(); ++t) {
    const TensorLayout& src = plan.source()[t].layout;
    const TensorLayout& dst = plan.destination()[plan.destination_index(t)].layout;
    auto bytes_per_element = static_cast<double>(element_bytes(plan.source()[t].dtype));
    std::map<index_t, std::vector<Piece>> src_pieces;  // per source rank, looked up once
    for (std::size_t r = 0; r < n; ++r) {
      for (const Piece& piece : dst.pieces(result.roles[r])) {
        needed[r] += bytes_per_element * static_cast<double>(piece.global.volume());
        for (index_t holder : src.ranks_holding(piece.global)) {
          auto p = index_of(holder);
          if (!p) continue;
          auto it = src_pieces.find(holder);
          if (it == src_pieces.end()) it = src_pieces.emplace(holder, src.pieces(holder)).first;
          double overlap = 0;
          for (const Piece& held : it->second) overlap += static_cast<double>(intersect(held.global, piece.global).volume());
          if (overlap > 0) kept[r][*p] += bytes_per_element * overlap;
        }
      }
    }
  }
  auto kept_by = [&](const std::vector<std::size_t>& process_of) {
    double total = 0;
    for (std::size_t r = 0; r < n; ++r) {
      auto it = kept[r].find(process_of[r]);
      if (it != kept[r].end()) total += it->second;
    }
    return total;
  };
  std::vector<std::size_t> identity(n);
  std::iota(identity.begin(), identity.end(), std::size_t{0});
  result.bytes_needed = std::accumulate(needed.begin(), needed.end(), 0.0);
  result.moved_before = result.bytes_needed - kept_by(identity);
  std::vector<std::size_t> process_of;
  if (static_cast<index_t>(n) <= exact_limit) {
    std::vector<double> cost(n * n, 0.0);
    for (std::size_t r = 0; r < n; ++r)
      for (const auto& [p, bytes] : kept[r]) cost[r * n + p] = -bytes;
    process_of = detail::min_cost_assignment(cost, n);
    result.exact = true;
  } else {
    process_of = detail::greedy_assignment(kept, n);
  }
  // Never worse than the identity (the greedy can be).
  if (kept_by(process_of) < kept_by(identity)) process_of = identity;
  result.moved_after = result.bytes_needed - kept_by(process_of);
  // Upper bound on what any relabeling keeps: each role its best process, or each process its best role.
  double by_role = 0;
  std::vector<double> best_of_process(n, 0);
  for (std::size_t r = 0; r < n; ++r) {
    double best = 0;
    for (const auto& [p, bytes] : kept[r]) best = std::max(best, bytes), best_of_process[p] = std::max(best_of_process[p], bytes);
    by_role += best;
  }
  double by_process = std::accumulate(best_of_process.begin(), best_of_process.end(), 0.0);
  result.moved_bound = result.exact ? result.moved_after : result.bytes_needed - std::min(by_role, by_process);
  for (std::size_t r = 0; r < n; ++r) result.process_of_role.push_back(result.roles[process_of[r]]);
  return result;
}

}  // namespace shardalg
