// CommunicationVolume: a plan's bytes per rank, counted one destination rank at a time (a plan
// touches few pairs per rank), with what a schedule needs from them: per-rank send and receive
// totals and maxima, the pairs that talk, the lower bound no plan can beat, and the alpha-beta
// time of running it point-to-point. Memory is per rank, never per transfer: a whole plan is
// counted without its transfer list (CommunicationVolume::of_plan).
//
// Example: S(0) -> R of 8 fp32 on 2 ranks: each rank sends 16 bytes to the other and keeps 16;
// max send = max receive = lower bound = 16; 2 messages.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <span>
#include <utility>
#include <vector>

#include "shardalg/plan/cost_model.hpp"
#include "shardalg/plan/model_reshard_plan.hpp"
#include "shardalg/plan/plan_verification.hpp"

namespace shardalg {

class CommunicationVolume {
 public:
  // The totals of a model plan's transfer list (each tensor at its dtype's size); the plan
  // supplies the receive lower bounds. Time at `model`'s links.
  CommunicationVolume(const ModelReshardPlan& plan, const TransferList& transfers, const CostModel& model = {})
      : CommunicationVolume(plan, model) {
    add(transfers);
  }

  // The totals of a transfer list whose tensor t has elements of element_bytes[t] bytes (no lower
  // bounds: they need the plan). Error: a transfer of a tensor without a size.
  CommunicationVolume(const TransferList& transfers, std::span<const index_t> element_bytes, const CostModel& model = {})
      : element_bytes_(element_bytes.begin(), element_bytes.end()), model_(model) {
    model_.validate();
    add(transfers);
  }

  // The totals of a whole plan without its transfer list: each destination rank's part is
  // planned, verified (DestinationParts: a failing plan is never counted as valid) and counted
  // in turn; memory per rank of the layouts and per sending rank's tile. `each_rank(done, total)` is called after each
  // destination rank (progress).
  template <class Progress = void (*)(std::size_t, std::size_t)>
  static CommunicationVolume of_plan(const ModelReshardPlan& plan, const CostModel& model = {}, Progress&& each_rank = [](std::size_t, std::size_t) {}) {
    CommunicationVolume volume(plan, model);
    DestinationParts parts(plan);
    const std::vector<index_t>& ranks = plan.destination().ranks();
    for (std::size_t i = 0; i < ranks.size(); ++i) {
      volume.add(parts.verified_part(ranks[i]));
      each_rank(i + 1, ranks.size());
    }
    return volume;
  }

  index_t ranks() const { return static_cast<index_t>(kept_.size()); }
  // Transfers (boxes) counted.
  std::size_t transfers() const { return transfers_; }

  double local_bytes() const { return kept_.sum(); }
  double moved_bytes() const { return sent_.sum(); }
  double total_bytes() const { return local_bytes() + moved_bytes(); }
  // Bytes each rank keeps (local copies), sends to and receives from other ranks.
  const Eigen::VectorXd& kept() const { return kept_; }
  const Eigen::VectorXd& sent() const { return sent_; }
  const Eigen::VectorXd& received() const { return received_; }
  double max_sent() const { return ranks() ? sent_.maxCoeff() : 0.0; }
  double max_received() const { return ranks() ? received_.maxCoeff() : 0.0; }
  // Pairs of distinct ranks that exchange bytes, and the most peers one rank talks to.
  index_t messages() const { return messages_; }
  index_t max_peers() const {
    index_t most = 0;
    for (std::size_t r = 0; r < peers_out_.size(); ++r) most = std::max({most, peers_out_[r], peers_in_[r]});
    return most;
  }
  // Bytes a rank must receive from others whatever the plan (elements it holds afterwards but
  // not before; replicated and partial sources can only need more), their total and maximum.
  double lower_bound_received(index_t rank) const { return lower_bound_.at(static_cast<std::size_t>(rank)); }
  double lower_bound_total() const { double s = 0; for (double b : lower_bound_) s += b; return s; }
  double lower_bound_max() const { return lower_bound_.empty() ? 0.0 : *std::max_element(lower_bound_.begin(), lower_bound_.end()); }

  // Microseconds to run the plan as point-to-point messages at the model's links: each rank pays
  // alpha + beta * bytes per peer over that pair's link, sends and receives overlapping; the
  // slowest rank decides (local copies are not messages).
  double point_to_point_us() const { return ranks() ? std::max(send_us_.maxCoeff(), receive_us_.maxCoeff()) : 0.0; }

 private:
  // Every rank of the layouts counts, also one that no transfer touches (it holds nothing).
  CommunicationVolume(const ModelReshardPlan& plan, const CostModel& model) : model_(model) {
    model_.validate();
    for (std::size_t t = 0; t < plan.source().size(); ++t) element_bytes_.push_back(element_bytes(plan.source()[t].dtype));
    index_t ranks = 0;
    for (const ModelLayout* layout : {&plan.source(), &plan.destination()})
      if (!layout->ranks().empty()) ranks = std::max(ranks, layout->ranks().back() + 1);
    grow(ranks);
    for (index_t rank : plan.destination().ranks()) lower_bound_[static_cast<std::size_t>(rank)] = static_cast<double>(plan.lower_bound_bytes(rank));
  }

  // Counts `transfers`, which hold every transfer into each destination rank they name (a rank's
  // pairs are merged here, so no rank may come back in a later call).
  void add(const TransferList& transfers) {
    struct Pair {
      index_t dst, src;
      double bytes;
    };
    std::vector<Pair> pairs;
    pairs.reserve(transfers.size());
    for (std::size_t i = 0; i < transfers.size(); ++i) {
      index_t tensor = transfers.tensor(i);
      if (tensor < 0 || tensor >= static_cast<index_t>(element_bytes_.size()))
        detail::fail("communication volume: transfer ", i, " is of tensor ", tensor, " but element sizes are given for ", element_bytes_.size());
      // In double, as the totals are: byte counts of huge shapes may pass int64's range.
      double bytes = static_cast<double>(transfers.volume(i)) * static_cast<double>(element_bytes_[static_cast<std::size_t>(tensor)]);
      pairs.push_back(Pair{transfers.dst_rank(i), transfers.src_rank(i), bytes});
      grow(std::max(transfers.src_rank(i), transfers.dst_rank(i)) + 1);
    }
    transfers_ += transfers.size();
    std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return std::tie(a.dst, a.src) < std::tie(b.dst, b.src); });
    for (std::size_t i = 0; i < pairs.size();) {
      index_t dst = pairs[i].dst, src = pairs[i].src;
      double bytes = 0;
      for (; i < pairs.size() && pairs[i].dst == dst && pairs[i].src == src; ++i) bytes += pairs[i].bytes;
      auto s = static_cast<std::size_t>(src), d = static_cast<std::size_t>(dst);
      if (src == dst) {
        kept_[dst] += bytes;
        continue;
      }
      if (bytes == 0) continue;
      sent_[src] += bytes;
      received_[dst] += bytes;
      double us = model_.link(src, dst).message_us(bytes);
      send_us_[src] += us;
      receive_us_[dst] += us;
      ++peers_out_[s];
      ++peers_in_[d];
      ++messages_;
    }
  }

  void grow(index_t ranks) {
    if (ranks <= this->ranks()) return;
    auto n = static_cast<std::size_t>(ranks);
    for (Eigen::VectorXd* v : {&kept_, &sent_, &received_, &send_us_, &receive_us_}) {
      Eigen::Index old = v->size();
      v->conservativeResize(ranks);
      v->tail(ranks - old).setZero();
    }
    peers_out_.resize(n, 0);
    peers_in_.resize(n, 0);
    lower_bound_.resize(n, 0.0);
  }

  std::vector<index_t> element_bytes_;
  CostModel model_;
  Eigen::VectorXd kept_, sent_, received_, send_us_, receive_us_;
  std::vector<index_t> peers_out_, peers_in_;
  std::vector<double> lower_bound_;
  index_t messages_ = 0;
  std::size_t transfers_ = 0;
};

}  // namespace shardalg
