// MpiCollectiveProgram: runs this process's part of a lowered collective program with MPI
// collectives, one sub-communicator per group of mesh dims (MPI_Comm_split, made once). Needs
// <mpi.h> and MPI initialized; the process's rank in the communicator is its mesh rank.
//
// Each step works on the rank's tile, a dense row-major buffer (program_simulator.hpp does the
// same on all ranks in one process and is the reference):
//   local           keep a chunk of the tile
//   all_gather      MPI_Iallgatherv of the tiles, joined along the tensor dim in group order
//   all_to_all      MPI_Ialltoallv of each member's chunk, joined along the gathered dim
//   reduce_scatter  MPI_Ialltoallv of each member's chunk, reduced here (element_ops: every
//                   dtype and op, avg included)
//   all_reduce      reduce-scatter of flat chunks, then MPI_Iallgatherv of the reduced chunks
// MPI's v-collectives take exact sizes, so uneven tiles need no padding. Buffers are checked
// and the check agreed by every rank before the first step; waits poll with a deadline, so a
// rank that never joins a collective gives a timeout error naming the step and its group. A
// collective cannot be cancelled: after a timeout, abort the job (MPI_Abort); the timed-out
// collective's buffers stay allocated meanwhile, since MPI may still complete it.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "shardalg/core/deadline.hpp"
#include "shardalg/core/dtype.hpp"
#include "shardalg/exec/agreement.hpp"
#include "shardalg/exec/collective_step.hpp"
#include "shardalg/exec/element_ops.hpp"
#include "shardalg/exec/mpi/mpi_communicator.hpp"

namespace shardalg {

class MpiCollectiveProgram {
 public:
  // Collective over `comm`: every process calls it (processes outside the mesh too). Keeps a copy
  // of the program.
  MpiCollectiveProgram(const CollectiveProgram& program, MPI_Comm comm = MPI_COMM_WORLD, double timeout_seconds = 600)
      : program_(program), timeout_(checked_timeout(timeout_seconds)) {
    if (program_.states.size() != program_.steps.size() + 1) detail::fail("MPI collective program: ", program_.states.size(), " states for ", program_.steps.size(), " steps");
    check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    int rank = 0;
    check(MPI_Comm_rank(comm_, &rank), "MPI_Comm_rank");
    rank_ = rank;
    for (const LoweredStep& step : program_.steps) {
      if (groups_.count(step.mesh_dims)) continue;
      auto membership = group_membership(program_.states.front().mesh(), step.mesh_dims, rank_);
      int color = MPI_UNDEFINED, key = 0;
      std::vector<index_t> members;
      if (membership) {
        color = static_cast<int>(membership->leader);
        key = static_cast<int>(membership->position);
        members = std::move(membership->members);
      }
      MPI_Comm sub = MPI_COMM_NULL;
      check(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
      if (sub != MPI_COMM_NULL) check(MPI_Comm_set_errhandler(sub, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
      groups_.emplace(step.mesh_dims, Group{sub, std::move(members)});
    }
  }
  MpiCollectiveProgram(const MpiCollectiveProgram&) = delete;
  MpiCollectiveProgram& operator=(const MpiCollectiveProgram&) = delete;
  ~MpiCollectiveProgram() {
    for (auto& [dims, group] : groups_)
      if (group.comm != MPI_COMM_NULL) MPI_Comm_free(&group.comm);
    MPI_Comm_free(&comm_);
  }

  // This rank's tile of the program's first state (elements of `dtype`) in, its tile of the last
  // state out (empty outside the mesh). Collective over the communicator.
  // Errors, before any data moves: a source of the wrong size, a dtype without arithmetic for a
  // Partial source, or a source mixing Partial ops on any rank (that rank names its problem, the others name that rank); then MPI
  // errors naming the call.
  std::vector<std::byte> run(std::span<const std::byte> source, DType dtype) {
    const MeshLayout& first = program_.states.front();
    bool inside = first.mesh().contains(rank_);
    index_t element = 0;
    ReduceOp op = ReduceOp::sum;
    check_on_every_rank(
        rank_, "MPI collective program",
        [&] {
          element = element_bytes(dtype);
          op = source_reduce_op(first.placements(), "MPI collective program").value_or(ReduceOp::sum);
          index_t expected = inside ? first.tile(rank_).volume() * element : 0;
          if (static_cast<index_t>(source.size()) != expected)
            detail::fail("MPI collective program: rank ", rank_, " source buffer has ", source.size(), " bytes, its tile needs ", expected, " (", dtype, ")");
        },
        [&](index_t vote) { return all_max(vote); });
    if (!inside) return {};
    std::vector<std::byte> buffer(source.begin(), source.end());
    for (std::size_t i = 0; i < program_.steps.size(); ++i) buffer = run_step(i, buffer, dtype, element, op);
    return buffer;
  }

 private:
  struct Group {
    MPI_Comm comm;
    std::vector<index_t> members;  // ranks in flattened order
  };

  // This rank's side of each kind of step, over the group's sub-communicator.
  struct Transport {
    MpiCollectiveProgram& self;
    const Group& group;
    std::span<const std::byte> buffer;  // the tile before the step
    DType dtype;
    index_t element;
    ReduceOp op;

    std::vector<std::byte> local(const CollectiveStep& step) const { return slice_along(buffer, step.shape, step.sends.front()); }
    std::vector<std::byte> all_gather(const CollectiveStep& step) const {
      std::vector<int> counts;
      for (const Dims& part : step.receives) counts.push_back(self.count_of(volume(part), step));
      auto [received, offsets] = self.all_gather(buffer, counts, group, step);
      return join(received, offsets, counts, step);
    }
    std::vector<std::byte> all_to_all(const CollectiveStep& step) const {
      std::vector<int> receive_counts;
      for (const Dims& part : step.receives) receive_counts.push_back(self.count_of(volume(part), step));
      auto [received, offsets] = self.all_to_all(chunks(step), receive_counts, group, step);
      return join(received, offsets, receive_counts, step);
    }
    std::vector<std::byte> reduce_scatter(const CollectiveStep& step) const {
      return self.reduce(chunks(step), step.out_bytes, dtype, element, op, group, step);
    }
    std::vector<std::byte> all_reduce(const CollectiveStep& step) const {
      // Reduce-scatter flat chunks of the buffer, then gather the reduced chunks.
      index_t elements = static_cast<index_t>(buffer.size()) / element;
      auto n = static_cast<index_t>(group.members.size());
      std::vector<std::vector<std::byte>> pieces;
      std::vector<int> counts;
      for (index_t j = 0; j < n; ++j) {
        Chunk c = chunk_of(elements, n, j);
        auto from = buffer.begin() + c.offset * element;
        pieces.emplace_back(from, from + c.size * element);
        counts.push_back(self.count_of(c.size * element, step));
      }
      std::vector<std::byte> reduced = self.reduce(pieces, counts[step.me], dtype, element, op, group, step);
      return self.all_gather(reduced, counts, group, step).first;
    }

   private:
    std::vector<std::vector<std::byte>> chunks(const CollectiveStep& step) const {
      std::vector<std::vector<std::byte>> pieces;
      for (const SliceAlong& slice : step.sends) pieces.push_back(slice_along(buffer, step.shape, slice));
      return pieces;
    }
    static std::vector<std::byte> join(const std::vector<std::byte>& received, const std::vector<int>& offsets, const std::vector<int>& counts,
                                       const CollectiveStep& step) {
      std::vector<std::span<const std::byte>> parts;
      for (std::size_t j = 0; j < counts.size(); ++j) parts.emplace_back(received.data() + offsets[j], static_cast<std::size_t>(counts[j]));
      return concat_along(parts, step.receives, step.join_dim);
    }
  };

  std::vector<std::byte> run_step(std::size_t i, std::span<const std::byte> buffer, DType dtype, index_t element, ReduceOp op) {
    const Group& group = groups_.at(program_.steps[i].mesh_dims);
    Transport transport{*this, group, buffer, dtype, element, op};
    return run_collective_step(describe_collective_step(program_, i, group.members, group_tiles(program_, i, group.members), rank_, element),
                               transport, "MPI collective program");
  }

  // Member j's piece goes to j; the pieces for this rank (all `bytes` long) are reduced.
  std::vector<std::byte> reduce(const std::vector<std::vector<std::byte>>& pieces, index_t bytes, DType dtype, index_t element, ReduceOp op,
                                const Group& group, const CollectiveStep& step) {
    std::vector<int> receive_counts(group.members.size(), count_of(bytes, step));
    auto [received, offsets] = all_to_all(pieces, receive_counts, group, step);
    std::vector<std::byte> out(static_cast<std::size_t>(bytes));
    fill_identity(dtype, op, out.data(), bytes / element);
    for (std::size_t j = 0; j < group.members.size(); ++j)
      reduce_bytes(dtype, op, static_cast<index_t>(group.members.size()), out.data(), received.data() + offsets[j], bytes / element);
    return out;
  }

  std::pair<std::vector<std::byte>, std::vector<int>> all_gather(std::span<const std::byte> mine, const std::vector<int>& counts, const Group& group,
                                                                 const CollectiveStep& step) {
    std::vector<int> offsets = prefix(counts, step);
    std::vector<std::byte> received(static_cast<std::size_t>(offsets.back() + counts.back()));
    std::vector<std::byte> send(mine.begin(), mine.end());  // owned: outlives a timed-out collective
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Iallgatherv(send.data(), static_cast<int>(send.size()), MPI_BYTE, received.data(), counts.data(), offsets.data(), MPI_BYTE,
                          group.comm, &request),
          "MPI_Iallgatherv");
    wait(request, "MPI_Iallgatherv", where(group, step), {std::move(send), &received});
    return {std::move(received), std::move(offsets)};
  }

  std::pair<std::vector<std::byte>, std::vector<int>> all_to_all(const std::vector<std::vector<std::byte>>& pieces, const std::vector<int>& receive_counts,
                                                                 const Group& group, const CollectiveStep& step) {
    std::vector<int> send_counts;
    std::vector<std::byte> send;
    for (const auto& piece : pieces) {
      send_counts.push_back(count_of(static_cast<index_t>(piece.size()), step));
      send.insert(send.end(), piece.begin(), piece.end());
    }
    std::vector<int> send_offsets = prefix(send_counts, step), receive_offsets = prefix(receive_counts, step);
    std::vector<std::byte> received(static_cast<std::size_t>(receive_offsets.back() + receive_counts.back()));
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Ialltoallv(send.data(), send_counts.data(), send_offsets.data(), MPI_BYTE, received.data(), receive_counts.data(),
                         receive_offsets.data(), MPI_BYTE, group.comm, &request),
          "MPI_Ialltoallv");
    wait(request, "MPI_Ialltoallv", where(group, step), {std::move(send), &received});
    return {std::move(received), std::move(receive_offsets)};
  }

  // The largest `value` over every rank of the communicator (bounded wait).
  index_t all_max(index_t value) {
    std::vector<std::byte> send(sizeof(index_t)), received(sizeof(index_t));
    std::memcpy(send.data(), &value, sizeof(index_t));
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Iallreduce(send.data(), received.data(), 1, MPI_INT64_T, MPI_MAX, comm_, &request), "MPI_Iallreduce");
    wait(request, "MPI_Iallreduce", "of the buffer check (every rank)", {std::move(send), &received});
    std::memcpy(&value, received.data(), sizeof(index_t));
    return value;
  }

  // The buffers of a collective in flight: what MPI may still read and write.
  struct InFlight {
    std::vector<std::byte> send;
    std::vector<std::byte>* receive;
  };

  // Collectives cannot be cancelled: after a timeout MPI may still complete this one when the
  // missing rank joins, so its buffers stay allocated until the process exits.
  static void abandon(InFlight&& buffers) {
    static std::vector<std::vector<std::byte>> abandoned;
    abandoned.push_back(std::move(buffers.send));
    abandoned.push_back(std::move(*buffers.receive));
  }

  // "of step 2 (all_gather) with ranks [0,4]".
  static std::string where(const Group& group, const CollectiveStep& step) {
    std::string ranks;
    for (index_t r : group.members) ranks += (ranks.empty() ? "" : ",") + std::to_string(r);
    return detail::concat("of step ", step.index, " (", to_string(step.kind), ") with ranks [", ranks, "]");
  }

  void wait(MPI_Request& request, const char* call, const std::string& context, InFlight buffers) {
    auto deadline = deadline_after(timeout_);
    while (true) {
      int done = 0;
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), call);
      if (done) return;
      if (std::chrono::steady_clock::now() > deadline) {
        abandon(std::move(buffers));
        detail::fail("MPI collective program: rank ", rank_, " timed out after ", timeout_, " s in ", call, " ", context);
      }
      std::this_thread::yield();
    }
  }

  int count_of(index_t bytes, const CollectiveStep& step) const {
    if (bytes > std::numeric_limits<int>::max())
      detail::fail("MPI collective program: step ", step.index, " (", to_string(step.kind), ") on rank ", rank_, " moves ", bytes,
                   " bytes in one piece, more than MPI's int count; split the tensor or use the point-to-point engine");
    return static_cast<int>(bytes);
  }
  std::vector<int> prefix(const std::vector<int>& counts, const CollectiveStep& step) const {
    std::vector<int> offsets;
    index_t total = 0;
    for (int c : counts) {
      offsets.push_back(count_of(total, step));
      total += c;
    }
    count_of(total, step);
    return offsets;
  }
  void check(int rc, const char* call) const { detail::check_mpi(rc, call, rank_); }

  CollectiveProgram program_;
  double timeout_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  index_t rank_ = 0;
  std::map<std::vector<index_t>, Group> groups_;
};

}  // namespace shardalg
