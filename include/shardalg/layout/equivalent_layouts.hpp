// EquivalentLayouts: layouts that are equal up to where their windows start in a partition
// (TensorLayout::shift_from), the repeated layers of a model. Planning plans one representative
// per class and shifts its transfers; verification looks up what each rank holds once per class.
// Candidates are found by hash and only then compared, so n layouts of distinct hashes cost n
// lookups, not n^2 comparisons. The one grouping rule for both (model_reshard_plan.hpp,
// plan_verification.hpp).
//
// Example: ZeRO-3 on 4 ranks, two [8, 8] tensors q0 and q1 in one partition: q1's layout is q0's
// shifted by q0's 16 elements per rank, so find({&q1}) returns q0's key with shift 16.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <unordered_map>
#include <vector>

#include "shardalg/layout/tensor_layout.hpp"

namespace shardalg {

// Classes of N-tuples of layouts (N = 1: one tensor's layout; N = 2: a plan's source and
// destination), each class named by its representative's `Key`.
template <class Key, std::size_t N = 1>
class EquivalentLayouts {
 public:
  using Layouts = std::array<const TensorLayout*, N>;
  using Shifts = std::array<index_t, N>;
  struct Match {
    Key key;
    Shifts shifts;  // layouts[i] is the representative's i-th layout shifted by shifts[i]
  };

  // The class `layouts` belongs to, or none. `layouts_of(key)` gives a representative's layouts.
  template <class LayoutsOf>
  std::optional<Match> find(const Layouts& layouts, LayoutsOf&& layouts_of) const {
    auto candidates = by_hash_.find(hash(layouts));
    if (candidates == by_hash_.end()) return std::nullopt;
    for (const Key& key : candidates->second) {
      Layouts representative = layouts_of(key);
      Match match{key, {}};
      bool equivalent = true;
      for (std::size_t i = 0; i < N && equivalent; ++i) {
        std::optional<index_t> shift = layouts[i]->shift_from(*representative[i]);
        equivalent = shift.has_value();
        if (shift) match.shifts[i] = *shift;
      }
      if (equivalent) return match;
    }
    return std::nullopt;
  }

  // Makes `layouts` the representative of a new class named `key`.
  void add(const Layouts& layouts, Key key) { by_hash_[hash(layouts)].push_back(std::move(key)); }

 private:
  static std::size_t hash(const Layouts& layouts) {
    std::size_t h = 0;
    for (const TensorLayout* layout : layouts) h = h * 31 + layout->hash();
    return h;
  }

  std::unordered_map<std::size_t, std::vector<Key>> by_hash_;
};

}  // namespace shardalg
