// ModelReshardPlan: moving a whole model state (named tensors, each with its own source and
// destination layout) from one ModelLayout to another. One ReshardPlan per tensor; a rank's part
// is the union of its parts of every tensor, each transfer tagged with its tensor.
//
// Models repeat layers: tensors whose source and destination layouts are both equal (same
// shapes, placements and meshes) have equal transfers, so a rank plans each distinct pair once.
// ZeRO-3 tensors of equal shape are equal up to where their windows start in the partition:
// their transfers are the representative's with the partition positions shifted.
#pragma once

#include <span>
#include <utility>
#include <vector>

#include "shardalg/layout/model_layout.hpp"
#include "shardalg/layout/equivalent_layouts.hpp"
#include "shardalg/plan/reshard_plan.hpp"

namespace shardalg {

class ModelReshardPlan {
 public:
  // Tensors are matched by name. Errors: a tensor missing on one side, different shapes or
  // dtypes, or any error of the one-tensor plan (named with the tensor).
  ModelReshardPlan(ModelLayout source, ModelLayout destination) : src_(std::move(source)), dst_(std::move(destination)) {
    for (const NamedTensorLayout& t : dst_.tensors())
      if (!src_.find(t.name)) detail::fail("reshard: tensor '", t.name, "' of the destination is not in the source");
    for (std::size_t t = 0; t < src_.size(); ++t) {
      const NamedTensorLayout& s = src_[t];
      auto d = dst_.find(s.name);
      if (!d) detail::fail("reshard: tensor '", s.name, "' of the source is not in the destination");
      if (s.dtype != dst_[*d].dtype)
        detail::fail("reshard: tensor '", s.name, "' is ", s.dtype, " in the source and ", dst_[*d].dtype, " in the destination");
      try {
        plans_.emplace_back(s.layout, dst_[*d].layout);
      } catch (const Error& e) {
        detail::fail("tensor '", s.name, "': ", e.what());
      }
      dst_index_.push_back(*d);
    }
    // The first tensor whose layouts both are shifts of this one's plans for it.
    EquivalentLayouts<std::size_t, 2> classes;
    auto layouts_of = [&](std::size_t t) { return EquivalentLayouts<std::size_t, 2>::Layouts{&plans_[t].source(), &plans_[t].destination()}; };
    for (std::size_t t = 0; t < plans_.size(); ++t) {
      auto match = classes.find(layouts_of(t), layouts_of);
      if (!match) classes.add(layouts_of(t), t);
      representative_.push_back(match ? match->key : t);
      shift_.push_back(match ? std::pair{match->shifts[0], match->shifts[1]} : std::pair<index_t, index_t>{0, 0});
    }
  }

  const ModelLayout& source() const { return src_; }
  const ModelLayout& destination() const { return dst_; }
  std::size_t size() const { return plans_.size(); }
  // The plan of source tensor t, and that tensor's index in the destination.
  const ReshardPlan& tensor_plan(std::size_t t) const { return plans_[t]; }
  std::size_t destination_index(std::size_t t) const { return dst_index_[t]; }

  // Everything `rank` receives, tensor by tensor (each transfer's `tensor` is the source index).
  TransferList transfers_to(index_t rank) const {
    return collect([&](std::size_t t) { return plans_[t].transfers_to(rank); });
  }
  // Everything `rank` sends, local copies included.
  TransferList transfers_from(index_t rank) const {
    return collect([&](std::size_t t) { return plans_[t].transfers_from(rank); });
  }
  TransferList all_transfers() const {
    return collect([&](std::size_t t) { return plans_[t].all_transfers(); });
  }

  // Bytes `rank` must receive from other ranks at least (see ReshardPlan::lower_bound_elements).
  index_t lower_bound_bytes(index_t rank) const {
    index_t total = 0;
    for (std::size_t t = 0; t < plans_.size(); ++t)
      total = checked_add(total, checked_mul(plans_[t].lower_bound_elements(rank), element_bytes(src_[t].dtype)));
    return total;
  }

  // Every tensor's part together, tensor by tensor: `part_of(t)` gives tensor t's part (tensor 0,
  // unshifted), called once for each distinct layout pair; tensors that repeat a pair get a copy
  // of its part, tagged and shifted.
  template <class PartOf>
  TransferList collect(PartOf&& part_of) const {
    std::unordered_map<std::size_t, TransferList> parts;  // representative -> its part
    std::size_t transfers = 0, coordinates = 0;
    for (std::size_t t = 0; t < plans_.size(); ++t) {
      auto it = parts.find(representative_[t]);
      if (it == parts.end()) it = parts.emplace(representative_[t], part_of(representative_[t])).first;
      transfers += it->second.size();
      coordinates += it->second.coordinate_count();
    }
    // One tensor: its part is the answer (tensor 0, no shift), without a copy.
    if (plans_.size() == 1) return std::move(parts.begin()->second);
    TransferList out;
    out.reserve(transfers, coordinates);
    for (std::size_t t = 0; t < plans_.size(); ++t) {
      auto [src_shift, dst_shift] = shift_[t];
      out.append(parts.at(representative_[t]), static_cast<index_t>(t), src_shift, dst_shift);
    }
    return out;
  }

 private:
  ModelLayout src_;
  ModelLayout dst_;
  std::vector<ReshardPlan> plans_;
  std::vector<std::size_t> dst_index_;
  std::vector<std::size_t> representative_;  // per tensor: the first tensor with an equivalent layout pair
  std::vector<std::pair<index_t, index_t>> shift_;  // per tensor: partition shifts (source, destination) from it
};

}  // namespace shardalg
