// CommunicationVolume: a plan's bytes as a rank-by-rank matrix (Eigen, sparse: a plan touches
// few pairs), with what a schedule needs from it: per-rank send and receive totals and maxima,
// the lower bound no plan can beat, and the alpha-beta time of running it point-to-point.
//
// Example: S(0) -> R of 8 fp32 on 2 ranks: bytes(0,1) = bytes(1,0) = 16, the diagonal holds the
// 16 bytes each rank keeps; max send = max receive = lower bound = 16.
#pragma once

#include <Eigen/SparseCore>
#include <algorithm>
#include <vector>

#include "shardalg/plan/cost_model.hpp"
#include "shardalg/plan/model_reshard_plan.hpp"

namespace shardalg {

class CommunicationVolume {
 public:
  using Matrix = Eigen::SparseMatrix<double, Eigen::RowMajor, std::int64_t>;

  // Bytes per (source rank, destination rank) of a model plan's transfers (each tensor at its
  // dtype's size); the plan supplies the receive lower bounds.
  CommunicationVolume(const ModelReshardPlan& plan, const TransferList& transfers) {
    std::vector<index_t> sizes;
    for (std::size_t t = 0; t < plan.source().size(); ++t) sizes.push_back(element_bytes(plan.source()[t].dtype));
    // Every rank of the layouts counts, also one that no transfer touches (it holds nothing).
    index_t ranks = 0;
    for (const ModelLayout* layout : {&plan.source(), &plan.destination()})
      if (!layout->ranks().empty()) ranks = std::max(ranks, layout->ranks().back() + 1);
    build(transfers, sizes, ranks);
    lower_bound_.assign(static_cast<std::size_t>(ranks_), 0.0);
    for (index_t rank : plan.destination().ranks()) lower_bound_[static_cast<std::size_t>(rank)] = static_cast<double>(plan.lower_bound_bytes(rank));
  }

  // Bytes per pair of a transfer list whose tensor t has elements of element_bytes[t] bytes
  // (no lower bounds: they need the plan). Error: a transfer of a tensor without a size.
  CommunicationVolume(const TransferList& transfers, std::span<const index_t> element_bytes) {
    build(transfers, element_bytes, 0);
    lower_bound_.assign(static_cast<std::size_t>(ranks_), 0.0);
  }

  // Rows: sending ranks; columns: receiving ranks; the diagonal: bytes kept local.
  const Matrix& bytes() const { return bytes_; }
  index_t ranks() const { return ranks_; }

  double total_bytes() const { return ranks_ ? bytes_.sum() : 0.0; }  // Eigen refuses sums of empty sparse matrices
  double local_bytes() const { return ranks_ ? diagonal_.sum() : 0.0; }
  double moved_bytes() const { return total_bytes() - local_bytes(); }
  // Bytes each rank sends to / receives from other ranks.
  const Eigen::VectorXd& sent() const { return sent_; }
  const Eigen::VectorXd& received() const { return received_; }
  double max_sent() const { return ranks_ ? sent_.maxCoeff() : 0.0; }
  double max_received() const { return ranks_ ? received_.maxCoeff() : 0.0; }
  // Pairs of distinct ranks that exchange bytes, and the most peers one rank talks to.
  index_t messages() const { return messages_; }
  index_t max_peers() const { return max_peers_; }
  // Bytes a rank must receive from others whatever the plan (elements it holds afterwards but
  // not before; replicated and partial sources can only need more), their total and maximum.
  double lower_bound_received(index_t rank) const { return lower_bound_.at(static_cast<std::size_t>(rank)); }
  double lower_bound_total() const { double s = 0; for (double b : lower_bound_) s += b; return s; }
  double lower_bound_max() const { return lower_bound_.empty() ? 0.0 : *std::max_element(lower_bound_.begin(), lower_bound_.end()); }

  // Microseconds to run the plan as point-to-point messages: each rank pays alpha + beta * bytes
  // per peer over that pair's link, sends and receives overlapping; the slowest rank decides.
  double point_to_point_us(const CostModel& model) const {
    Eigen::VectorXd send_us = Eigen::VectorXd::Zero(ranks_), receive_us = Eigen::VectorXd::Zero(ranks_);
    for (index_t row = 0; row < bytes_.outerSize(); ++row)
      for (Matrix::InnerIterator it(bytes_, row); it; ++it) {
        if (it.row() == it.col()) continue;
        double us = model.link(it.row(), it.col()).message_us(it.value());
        send_us[it.row()] += us;
        receive_us[it.col()] += us;
      }
    return ranks_ ? std::max(send_us.maxCoeff(), receive_us.maxCoeff()) : 0.0;
  }

 private:
  // Ranks: at least `min_ranks`, and every rank a transfer names.
  void build(const TransferList& transfers, std::span<const index_t> element_bytes, index_t min_ranks) {
    std::vector<Eigen::Triplet<double, std::int64_t>> entries;
    entries.reserve(transfers.size());
    ranks_ = min_ranks;
    for (std::size_t i = 0; i < transfers.size(); ++i) {
      index_t tensor = transfers.tensor(i);
      if (tensor < 0 || tensor >= static_cast<index_t>(element_bytes.size()))
        detail::fail("communication volume: transfer ", i, " is of tensor ", tensor, " but element sizes are given for ", element_bytes.size());
      // In double, as the totals are: byte counts of huge shapes may pass int64's range.
      double bytes = static_cast<double>(transfers.volume(i)) * static_cast<double>(element_bytes[static_cast<std::size_t>(tensor)]);
      entries.emplace_back(transfers.src_rank(i), transfers.dst_rank(i), bytes);
      ranks_ = std::max({ranks_, transfers.src_rank(i) + 1, transfers.dst_rank(i) + 1});
    }
    bytes_.resize(ranks_, ranks_);
    bytes_.setFromTriplets(entries.begin(), entries.end());  // duplicates add up
    diagonal_ = bytes_.diagonal();
    sent_ = Eigen::VectorXd::Zero(ranks_);
    received_ = Eigen::VectorXd::Zero(ranks_);
    std::vector<index_t> peers_in(static_cast<std::size_t>(ranks_), 0);
    messages_ = max_peers_ = 0;
    for (index_t row = 0; row < bytes_.outerSize(); ++row) {
      index_t peers_out = 0;
      for (Matrix::InnerIterator it(bytes_, row); it; ++it) {
        if (it.row() == it.col() || it.value() == 0) continue;
        sent_[it.row()] += it.value();
        received_[it.col()] += it.value();
        ++peers_out;
        ++peers_in[static_cast<std::size_t>(it.col())];
      }
      messages_ += peers_out;
      max_peers_ = std::max(max_peers_, peers_out);
    }
    for (index_t p : peers_in) max_peers_ = std::max(max_peers_, p);
  }

  Matrix bytes_;
  Eigen::VectorXd diagonal_, sent_, received_;
  std::vector<double> lower_bound_;
  index_t ranks_ = 0, messages_ = 0, max_peers_ = 0;
};

}  // namespace shardalg
