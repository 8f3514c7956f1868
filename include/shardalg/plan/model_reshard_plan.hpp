// ModelReshardPlan: moving a whole model state (named tensors, each with its own source and
// destination layout) from one ModelLayout to another. One ReshardPlan per tensor; a rank's part
// is the union of its parts of every tensor, each transfer tagged with its tensor.
#pragma once

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
  template <class F>
  std::vector<Transfer> collect(F&& part_of) const {
    std::vector<Transfer> out;
    for (std::size_t t = 0; t < plans_.size(); ++t) {
      std::vector<Transfer> part = part_of(plans_[t]);
      for (Transfer& transfer : part) {
        transfer.tensor = static_cast<index_t>(t);
        out.push_back(std::move(transfer));
      }
    }
    return out;
  }

  ModelLayout src_;
  ModelLayout dst_;
  std::vector<ReshardPlan> plans_;
  std::vector<std::size_t> dst_index_;
};

// Verifies every tensor's part of a model plan (see verify_plan); errors name the tensor.
// Transfers tagged with a tensor index the plan does not have are an error.
inline void verify_plan(const ModelReshardPlan& plan, const std::vector<Transfer>& transfers) {
  std::vector<std::vector<Transfer>> per_tensor(plan.size());
  for (const Transfer& t : transfers) {
    if (t.tensor < 0 || t.tensor >= static_cast<index_t>(plan.size()))
      detail::fail("plan: transfer ", t.src_rank, " -> ", t.dst_rank, " names tensor ", t.tensor, " of ", plan.size());
    per_tensor[static_cast<std::size_t>(t.tensor)].push_back(t);
  }
  for (std::size_t t = 0; t < plan.size(); ++t) {
    try {
      verify_plan(plan.tensor_plan(t), per_tensor[t]);
    } catch (const Error& e) {
      detail::fail("tensor '", plan.source()[t].name, "': ", e.what());
    }
  }
}

}  // namespace shardalg
