// ModelReshardPlan: moving a whole model state (named tensors, each with its own source and
// destination layout) from one ModelLayout to another. One ReshardPlan per tensor; a rank's part
// is the union of its parts of every tensor, each transfer tagged with its tensor.
//
// Models repeat layers: tensors whose source and destination layouts are both equal (same
// shapes, placements and meshes) have equal transfers, so a rank plans each distinct pair once.
// ZeRO-3 tensors of equal shape are equal up to where their windows start in the partition:
// their transfers are the representative's with the partition positions shifted.
#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include "shardalg/layout/model_layout.hpp"
#include "shardalg/plan/plan_verification.hpp"

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
    // The first tensor with an equivalent pair of layouts plans for all of them (hash, then compare).
    std::unordered_map<std::size_t, std::vector<std::size_t>> by_hash;
    for (std::size_t t = 0; t < plans_.size(); ++t) {
      std::size_t h = plans_[t].source().hash() * 31 + plans_[t].destination().hash();
      std::size_t rep = t;
      for (std::size_t other : by_hash[h])
        if (equivalent(plans_[other].source(), plans_[t].source()) && equivalent(plans_[other].destination(), plans_[t].destination())) {
          rep = other;
          break;
        }
      if (rep == t) by_hash[h].push_back(t);
      representative_.push_back(rep);
      shift_.push_back({window_start(plans_[t].source()) - window_start(plans_[rep].source()),
                        window_start(plans_[t].destination()) - window_start(plans_[rep].destination())});
    }
  }

  const ModelLayout& source() const { return src_; }
  const ModelLayout& destination() const { return dst_; }
  std::size_t size() const { return plans_.size(); }
  // The plan of source tensor t, and that tensor's index in the destination.
  const ReshardPlan& tensor_plan(std::size_t t) const { return plans_[t]; }
  std::size_t destination_index(std::size_t t) const { return dst_index_[t]; }

  // Everything `rank` receives, tensor by tensor (each transfer's `tensor` is the source index).
  std::vector<Transfer> transfers_to(index_t rank) const {
    return collect([&](const ReshardPlan& plan) { return plan.transfers_to(rank); });
  }
  // Everything `rank` sends, local copies included.
  std::vector<Transfer> transfers_from(index_t rank) const {
    return collect([&](const ReshardPlan& plan) { return plan.transfers_from(rank); });
  }
  std::vector<Transfer> all_transfers() const {
    return collect([](const ReshardPlan& plan) { return plan.all_transfers(); });
  }

  // Bytes `rank` must receive from other ranks at least (see ReshardPlan::lower_bound_elements).
  index_t lower_bound_bytes(index_t rank) const {
    index_t total = 0;
    for (std::size_t t = 0; t < plans_.size(); ++t)
      total = checked_add(total, checked_mul(plans_[t].lower_bound_elements(rank), dtype_bytes(src_[t].dtype)));
    return total;
  }

 private:
  // Equal layouts, or ZeRO-3 tensors of one flat layout equal up to their window start.
  static bool equivalent(const TensorLayout& a, const TensorLayout& b) {
    if (a == b) return true;
    if (!a.is_flat() || a.flat_layout() != b.flat_layout()) return false;
    auto ba = a.own_bucket(), bb = b.own_bucket();
    return ba && bb && ba->size == bb->size && a.placement_layout() == b.placement_layout();
  }
  static index_t window_start(const TensorLayout& layout) {
    auto bucket = layout.own_bucket();
    return bucket ? bucket->start : 0;
  }


  // Each distinct layout pair's part computed once, copied for the tensors that repeat it.
  template <class F>
  std::vector<Transfer> collect(F&& part_of) const {
    std::unordered_map<std::size_t, std::vector<Transfer>> parts;  // representative -> its part
    std::size_t total = 0;
    for (std::size_t t = 0; t < plans_.size(); ++t) {
      auto it = parts.find(representative_[t]);
      if (it == parts.end()) it = parts.emplace(representative_[t], part_of(plans_[representative_[t]])).first;
      total += it->second.size();
    }
    std::vector<Transfer> out;
    out.reserve(total);
    for (std::size_t t = 0; t < plans_.size(); ++t) {
      auto it = parts.find(representative_[t]);
      auto [src_shift, dst_shift] = shift_[t];
      for (const Transfer& transfer : it->second) {
        out.push_back(transfer);
        Transfer& copy = out.back();
        copy.tensor = static_cast<index_t>(t);
        if (src_shift != 0) copy.src_local[0] += src_shift;
        if (dst_shift != 0) copy.dst_local[0] += dst_shift;
      }
    }
    return out;
  }

  ModelLayout src_;
  ModelLayout dst_;
  std::vector<ReshardPlan> plans_;
  std::vector<std::size_t> dst_index_;
  std::vector<std::size_t> representative_;  // per tensor: the first tensor with an equivalent layout pair
  std::vector<std::pair<index_t, index_t>> shift_;  // per tensor: partition shifts (source, destination) from it
};

// Verifies every tensor's part of a model plan (see verify_plan); errors name the tensor.
// Transfers tagged with a tensor index the plan does not have are an error.
inline void verify_plan(const ModelReshardPlan& plan, const std::vector<Transfer>& transfers) {
  std::vector<std::vector<const Transfer*>> per_tensor(plan.size());
  for (const Transfer& t : transfers) {
    if (t.tensor < 0 || t.tensor >= static_cast<index_t>(plan.size()))
      detail::fail("plan: transfer ", t.src_rank, " -> ", t.dst_rank, " names tensor ", t.tensor, " of ", plan.size());
    per_tensor[static_cast<std::size_t>(t.tensor)].push_back(&t);
  }
  // Tensors with equal mesh layouts (repeated layers) share the lookups of what each rank holds;
  // a flat layout's lookups serve one tensor and are dropped after it.
  std::vector<std::unique_ptr<detail::Holdings>> holdings;
  std::unordered_map<std::size_t, std::vector<detail::Holdings*>> by_hash;
  std::unique_ptr<detail::Holdings> flat_src, flat_dst;
  auto holdings_of = [&](const TensorLayout& layout, std::unique_ptr<detail::Holdings>& flat) -> detail::Holdings& {
    if (layout.is_flat()) return *(flat = std::make_unique<detail::Holdings>(layout));
    auto& candidates = by_hash[layout.hash()];
    for (detail::Holdings* h : candidates)
      if (h->layout() == layout) return *h;
    holdings.push_back(std::make_unique<detail::Holdings>(layout));
    candidates.push_back(holdings.back().get());
    return *holdings.back();
  };
  for (std::size_t t = 0; t < plan.size(); ++t) {
    const ReshardPlan& tensor_plan = plan.tensor_plan(t);
    try {
      detail::verify_transfers(tensor_plan, holdings_of(tensor_plan.source(), flat_src),
                               holdings_of(tensor_plan.destination(), flat_dst), [&](auto&& f) {
        for (const Transfer* transfer : per_tensor[t]) f(*transfer);
      });
    } catch (const Error& e) {
      detail::fail("tensor '", plan.source()[t].name, "': ", e.what());
    }
  }
}

}  // namespace shardalg
