// ModelReshardPlan: moving a whole model state (named tensors, each with its own source and
// destination layout) from one ModelLayout to another. One ReshardPlan per tensor; a rank's part
// is the union of its parts of every tensor, each transfer tagged with its tensor.
//
// Models repeat layers: tensors whose source and destination layouts are both equal (same
// shapes, placements and meshes) have equal transfers, so a rank plans each distinct pair once.
// ZeRO-3 tensors of equal shape are equal up to where their windows start in the partition:
// their transfers are the representative's with the partition positions shifted.
#pragma once

#include <map>
#include <memory>
#include <span>
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
    // The first tensor whose layouts both are shifts of this one's plans for it (hash, then compare).
    std::unordered_map<std::size_t, std::vector<std::size_t>> by_hash;
    for (std::size_t t = 0; t < plans_.size(); ++t) {
      const ReshardPlan& plan = plans_[t];
      std::size_t h = plan.source().hash() * 31 + plan.destination().hash();
      std::size_t rep = t;
      std::pair<index_t, index_t> shift{0, 0};
      for (std::size_t other : by_hash[h]) {
        auto src_shift = plan.source().shift_from(plans_[other].source());
        auto dst_shift = plan.destination().shift_from(plans_[other].destination());
        if (src_shift && dst_shift) {
          rep = other;
          shift = {*src_shift, *dst_shift};
          break;
        }
      }
      if (rep == t) by_hash[h].push_back(t);
      representative_.push_back(rep);
      shift_.push_back(shift);
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
    return collect([&](const ReshardPlan& plan) { return plan.transfers_to(rank); });
  }
  // Everything `rank` sends, local copies included.
  TransferList transfers_from(index_t rank) const {
    return collect([&](const ReshardPlan& plan) { return plan.transfers_from(rank); });
  }
  TransferList all_transfers() const {
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
  // Each distinct layout pair's part computed once, copied for the tensors that repeat it.
  template <class F>
  TransferList collect(F&& part_of) const {
    std::unordered_map<std::size_t, TransferList> parts;  // representative -> its part
    std::size_t transfers = 0, coordinates = 0;
    for (std::size_t t = 0; t < plans_.size(); ++t) {
      auto it = parts.find(representative_[t]);
      if (it == parts.end()) it = parts.emplace(representative_[t], part_of(plans_[representative_[t]])).first;
      transfers += it->second.size();
      coordinates += it->second.coordinate_count();
    }
    TransferList out;
    out.reserve(transfers, coordinates);
    for (std::size_t t = 0; t < plans_.size(); ++t) {
      auto [src_shift, dst_shift] = shift_[t];
      out.append(parts.at(representative_[t]), static_cast<index_t>(t), src_shift, dst_shift);
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
//
// Repeated layers: when a tensor's source and destination layouts are shifts of an already
// verified tensor's (TensorLayout::shift_from) and its transfers are that tensor's, shifted
// alike, they are valid for the same reasons (what each rank holds shifts with the layout), so
// they are compared instead of checked again. Anything else is checked in full.
inline void verify_plan(const ModelReshardPlan& plan, const TransferList& transfers) {
  // Transfer indices grouped by tensor (a counting sort keeps plan order within each tensor).
  std::vector<std::size_t> first(plan.size() + 1, 0);
  for (std::size_t i = 0; i < transfers.size(); ++i) {
    index_t tensor = transfers.tensor(i);
    if (tensor < 0 || tensor >= static_cast<index_t>(plan.size()))
      detail::fail("plan: transfer ", transfers.src_rank(i), " -> ", transfers.dst_rank(i), " names tensor ", tensor, " of ", plan.size());
    ++first[static_cast<std::size_t>(tensor) + 1];
  }
  for (std::size_t t = 0; t < plan.size(); ++t) first[t + 1] += first[t];
  std::vector<std::size_t> grouped(transfers.size());
  {
    std::vector<std::size_t> next(first.begin(), first.end() - 1);
    for (std::size_t i = 0; i < transfers.size(); ++i) grouped[next[static_cast<std::size_t>(transfers.tensor(i))]++] = i;
  }
  auto part_of = [&](std::size_t t) { return std::span<const std::size_t>(grouped).subspan(first[t], first[t + 1] - first[t]); };

  // Layouts that are shifts of one already seen share its lookups of what each rank holds. Other
  // flat layouts (one tensor of a shared partition) are looked up for their tensor only, so
  // memory stays bounded by the distinct layouts.
  std::vector<std::unique_ptr<detail::Holdings>> holdings;
  std::unordered_map<std::size_t, std::vector<detail::Holdings*>> by_hash;
  std::unique_ptr<detail::Holdings> single_src, single_dst;
  auto holdings_of = [&](const TensorLayout& layout, std::unique_ptr<detail::Holdings>& single) -> std::pair<detail::Holdings*, index_t> {
    if (layout.is_flat() && !layout.own_bucket()) {
      single = std::make_unique<detail::Holdings>(layout);
      return {single.get(), 0};
    }
    auto& candidates = by_hash[layout.hash()];
    for (detail::Holdings* h : candidates)
      if (auto shift = layout.shift_from(h->layout())) return {h, *shift};
    holdings.push_back(std::make_unique<detail::Holdings>(layout));
    candidates.push_back(holdings.back().get());
    return {holdings.back().get(), 0};
  };
  struct Verified {
    std::size_t tensor;
    detail::HoldingShifts shifts;
  };
  std::map<std::pair<const detail::Holdings*, const detail::Holdings*>, Verified> verified;  // per pair of shared holdings
  for (std::size_t t = 0; t < plan.size(); ++t) {
    const ReshardPlan& tensor_plan = plan.tensor_plan(t);
    try {
      auto [src_holdings, src_shift] = holdings_of(tensor_plan.source(), single_src);
      auto [dst_holdings, dst_shift] = holdings_of(tensor_plan.destination(), single_dst);
      detail::HoldingShifts shifts{src_shift, dst_shift};
      bool shared = src_holdings != single_src.get() && dst_holdings != single_dst.get();
      auto earlier = shared ? verified.find({src_holdings, dst_holdings}) : verified.end();
      if (earlier != verified.end() &&
          detail::shifted_copy(transfers, part_of(t), part_of(earlier->second.tensor),
                               {shifts.src - earlier->second.shifts.src, shifts.dst - earlier->second.shifts.dst}))
        continue;
      detail::verify_transfers(tensor_plan, *src_holdings, *dst_holdings, shifts, transfers, part_of(t));
      if (shared) verified.try_emplace({src_holdings, dst_holdings}, Verified{t, shifts});
    } catch (const Error& e) {
      detail::fail("tensor '", plan.source()[t].name, "': ", e.what());
    }
  }
}

}  // namespace shardalg
