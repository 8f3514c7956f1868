// DeviceSchedule: everything the NCCL executor queues for one rank's part of a plan, built on the
// host with no CUDA: the kernel launches (BoxCopy batches, one descriptor array for the whole
// call) and, per round, the messages to receive and send. exec/nccl/nccl_executor.hpp queues it on a
// stream; the host tests run it with run_on_host and matched messages, so the schedule the GPU
// runs is the schedule the tests check.
//
//   fills    Partial destinations start at the op's identity
//   locals   local copies box to box (copies, and reductions per (dtype, op, contributors))
//   rounds   pack (staged sends into staging), receives and sends, unpack (staged receives out
//            of staging: copies and reductions)
// A message that is one contiguous range of a buffer is sent from, or received into, the buffer
// itself (a reduced receive is always staged). Staging of a round: its staged receives, then its
// staged sends, back to back from the staging base.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include "shardalg/exec/nccl/copy_batch.hpp"
#include "shardalg/core/dtype.hpp"
#include "shardalg/exec/engine.hpp"

namespace shardalg {

// Descriptors of all launches of one call, in one array.
class LaunchList {
 public:
  enum class Kind { copy, reduce, fill };
  struct Launch {
    Kind kind;
    std::size_t first, count;  // descriptors [first, first + count)
    index_t units;
    DType dtype;
    ReduceOp op;
    index_t contributors;
  };

  // Appends `batch` as one launch and returns its index; none when the batch is empty.
  std::optional<std::size_t> add(const CopyBatch& batch, Kind kind, DType dtype = DType::fp32, ReduceOp op = ReduceOp::sum,
                                 index_t contributors = 1) {
    if (batch.empty()) return std::nullopt;
    launches_.push_back(Launch{kind, descriptors_.size(), batch.copies().size(), batch.units(), dtype, op, contributors});
    descriptors_.insert(descriptors_.end(), batch.copies().begin(), batch.copies().end());
    return launches_.size() - 1;
  }

  const std::vector<BoxCopy>& descriptors() const { return descriptors_; }
  const Launch& operator[](std::size_t i) const { return launches_[i]; }

 private:
  std::vector<BoxCopy> descriptors_;
  std::vector<Launch> launches_;
};

// One receive (Byte = std::byte) or send (const std::byte) of a round.
template <class Byte>
struct DeviceTransfer {
  Byte* data;
  index_t bytes, peer;
};

struct DeviceRound {
  std::optional<std::size_t> pack;
  std::vector<std::size_t> unpack;
  std::vector<DeviceTransfer<std::byte>> receives;
  std::vector<DeviceTransfer<const std::byte>> sends;
};

struct DeviceSchedule {
  LaunchList launches;
  std::vector<std::size_t> fills, locals;
  std::vector<DeviceRound> rounds;
};

namespace detail {

// Copies, and reductions grouped by what their kernel needs.
struct UnpackBatches {
  CopyBatch copies;
  std::map<std::tuple<DType, ReduceOp, index_t>, CopyBatch> reductions;

  CopyBatch& for_box(const ModelReshardPlan& plan, const BoxRows& box) {
    const ReshardPlan& tensor_plan = plan.tensor_plan(box.tensor);
    if (!tensor_plan.reduce_op()) return copies;
    return reductions[{arithmetic_dtype(plan.source()[box.tensor].dtype), *tensor_plan.reduce_op(), box.contributors}];
  }
  std::vector<std::size_t> add_to(LaunchList& list) const {
    std::vector<std::size_t> launches;
    if (auto l = list.add(copies, LaunchList::Kind::copy)) launches.push_back(*l);
    for (const auto& [key, batch] : reductions)
      if (auto l = list.add(batch, LaunchList::Kind::reduce, std::get<0>(key), std::get<1>(key), std::get<2>(key))) launches.push_back(*l);
    return launches;
  }
};

inline bool staged(const ModelReshardPlan& plan, const Message& m, bool receiving) {
  const BoxRows* direct = m.contiguous();
  return !direct || (receiving && plan.tensor_plan(direct->tensor).reduce_op());
}

inline index_t bytes_in_round(const Message& m, index_t round_bytes, index_t round) {
  return std::max<index_t>(0, std::min(round_bytes, m.bytes - round * round_bytes));
}

}  // namespace detail

// Staging bytes the schedule needs: the largest round's staged receives and sends.
inline index_t device_staging_bytes(const ModelReshardPlan& plan, const RankPart& part, index_t round_bytes) {
  index_t most = 0;
  for (index_t round = 0; round < part.rounds(round_bytes); ++round) {
    index_t bytes = 0;
    for (const Message& m : part.receives())
      if (detail::staged(plan, m, true)) bytes += detail::bytes_in_round(m, round_bytes, round);
    for (const Message& m : part.sends())
      if (detail::staged(plan, m, false)) bytes += detail::bytes_in_round(m, round_bytes, round);
    most = std::max(most, bytes);
  }
  return most;
}

// The schedule of `part` moving `round_bytes` of each message per round, and staging at `staging` (at least
// device_staging_bytes). Buffers as for execute (device or host memory: only addresses are
// taken). Precondition: the buffers passed detail::check_part. Error: a Partial plan of a dtype
// without device arithmetic.
inline DeviceSchedule make_device_schedule(const ModelReshardPlan& plan, const RankPart& part, std::span<const SourceBuffer> sources,
                                           std::span<const DestinationBuffer> destinations, index_t round_bytes, std::byte* staging) {
  const ModelLayout& dst = plan.destination();
  DeviceSchedule schedule;
  LaunchList& list = schedule.launches;
  std::map<std::pair<DType, ReduceOp>, CopyBatch> fills;
  for (const BoxRows& box : part.identity_boxes()) {
    DType dtype = arithmetic_dtype(dst[plan.destination_index(box.tensor)].dtype);
    std::byte* at = destinations[box.buffer].data + box.base;
    fills[{dtype, *plan.tensor_plan(box.tensor).reduce_op()}].add(nullptr, at, box.row_shape, box.row_strides, box.row_strides, box.row_bytes);
  }
  for (const auto& [key, batch] : fills)
    if (auto l = list.add(batch, LaunchList::Kind::fill, key.first, key.second)) schedule.fills.push_back(*l);
  detail::UnpackBatches local;
  for (const LocalCopy& copy : part.local_copies())
    add_box_box(local.for_box(plan, copy.to), copy.from, sources[copy.from.buffer].data, copy.to, destinations[copy.to.buffer].data);
  schedule.locals = local.add_to(list);

  for (index_t round = 0; round < part.rounds(round_bytes); ++round) {
    DeviceRound& r = schedule.rounds.emplace_back();
    index_t begin = round * round_bytes;
    std::byte* cursor = staging;
    detail::UnpackBatches unpack;
    for (const Message& m : part.receives()) {
      index_t length = detail::bytes_in_round(m, round_bytes, round);
      if (length == 0) continue;
      std::byte* at = nullptr;
      if (detail::staged(plan, m, true)) {
        at = cursor;
        cursor += length;
        m.for_each_box(begin, begin + length, [&](const BoxRows& box, index_t from, index_t to, index_t stream_offset) {
          add_unpack(unpack.for_box(plan, box), box, destinations[box.buffer].data, from, to, at + (stream_offset - begin));
        });
      } else {
        const BoxRows& box = *m.contiguous();
        at = destinations[box.buffer].data + box.base + begin;
      }
      r.receives.push_back({at, length, m.peer});
    }
    CopyBatch pack;
    for (const Message& m : part.sends()) {
      index_t length = detail::bytes_in_round(m, round_bytes, round);
      if (length == 0) continue;
      const std::byte* at = nullptr;
      if (detail::staged(plan, m, false)) {
        std::byte* packed = cursor;
        cursor += length;
        at = packed;
        m.for_each_box(begin, begin + length, [&](const BoxRows& box, index_t from, index_t to, index_t stream_offset) {
          add_pack(pack, box, sources[box.buffer].data, from, to, packed + (stream_offset - begin));
        });
      } else {
        const BoxRows& box = *m.contiguous();
        at = sources[box.buffer].data + box.base + begin;
      }
      r.sends.push_back({at, length, m.peer});
    }
    r.pack = list.add(pack, LaunchList::Kind::copy);
    r.unpack = unpack.add_to(list);
  }
  return schedule;
}

}  // namespace shardalg
